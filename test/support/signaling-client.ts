import WebSocket from 'ws';
import { type ClientMessage, decodeServerMessage, type ServerMessage } from '../../protocol/index.ts';

type Of<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

/**
 * A real WebSocket client for tests: every frame it receives is decoded and validated with the
 * protocol's schemas (an invalid server frame fails the test), then queued until a test takes it.
 */
export class TestClient {
  readonly ws: WebSocket;
  readonly received: ServerMessage[] = [];
  readonly invalid: string[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: { match: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }[] = [];
  #inbox: ServerMessage[] = [];

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, options);
    // Attach the message handler before anything awaits: `open` and the first frame can share a tick.
    this.ws.on('message', (data, isBinary) => {
      const decoded = decodeServerMessage(isBinary ? '' : data.toString());
      if (!decoded.ok) {
        this.invalid.push(`${decoded.message}: ${data.toString().slice(0, 200)}`);
        return;
      }
      this.received.push(decoded.value);
      const index = this.#waiters.findIndex((w) => w.match(decoded.value));
      if (index >= 0) this.#waiters.splice(index, 1)[0]?.resolve(decoded.value);
      else this.#inbox.push(decoded.value);
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.ws.on('error', () => {});
  }

  /** Connects and waits for the `peer-id` greeting. */
  static async connect(
    url: string,
    options?: WebSocket.ClientOptions,
  ): Promise<TestClient & { peerId: string }> {
    const client = new TestClient(url, options);
    const hello = await client.next('peer-id');
    return Object.assign(client, { peerId: hello.peerId, hello });
  }

  send(message: ClientMessage | Record<string, unknown>): void {
    this.ws.send(JSON.stringify(message));
  }

  sendRaw(data: string | Buffer): void {
    this.ws.send(data);
  }

  /** The next message of `type` (optionally matching `where`), within `timeoutMs`. */
  next<T extends ServerMessage['type']>(
    type: T,
    where: (m: Of<T>) => boolean = () => true,
    timeoutMs = 5_000,
  ): Promise<Of<T>> {
    const match = (m: ServerMessage): boolean => m.type === type && where(m as Of<T>);
    const queued = this.#inbox.findIndex(match);
    if (queued >= 0) return Promise.resolve(this.#inbox.splice(queued, 1)[0] as Of<T>);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (m: ServerMessage) => {
          clearTimeout(timer);
          resolve(m as Of<T>);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(
          new Error(`no ${type} within ${timeoutMs} ms; inbox: ${this.#inbox.map((m) => m.type).join(', ')}`),
        );
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Resolves true if a message of `type` arrives within `ms`, false otherwise (consumes it). */
  async receives(
    type: ServerMessage['type'],
    ms: number,
    where?: (m: ServerMessage) => boolean,
  ): Promise<boolean> {
    try {
      await this.next(type, where as never, ms);
      return true;
    } catch {
      return false;
    }
  }

  close(code = 1000): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.close(code);
  }

  terminate(): void {
    this.ws.terminate();
  }
}

export const demoCapabilities = (availableQuota = 100, models = ['demo-1']) => ({
  hasAI: true,
  models,
  quota: {
    totalQuota: 100,
    usedQuota: 100 - availableQuota,
    availableQuota,
    resetTime: Date.now() + 3_600_000,
    provider: 'demo',
    capabilities: ['text'],
  },
  performance: { latency: 40, tokensPerSecond: 50 },
});
