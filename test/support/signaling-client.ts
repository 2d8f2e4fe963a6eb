import WebSocket from 'ws';
import { type ClientMessage, decodeServerMessage, type ServerMessage } from '../../protocol/index.ts';

type Of<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

export interface TestClientOptions extends WebSocket.ClientOptions {
  /** Answer every server `heartbeat` by echoing its `ts`, as a well-behaved client does. */
  answerHeartbeats?: boolean;
}

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
  /** The HTTP status of a refused upgrade, once known. */
  refusedStatus: number | undefined;
  #waiters: { match: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }[] = [];
  #inbox: ServerMessage[] = [];
  #requests = 0;

  constructor(url: string, options: TestClientOptions = {}) {
    const { answerHeartbeats = false, ...wsOptions } = options;
    this.ws = new WebSocket(url, wsOptions);
    // Attach the message handler before anything awaits: `open` and the first frame can share a tick.
    this.ws.on('message', (data, isBinary) => {
      const decoded = decodeServerMessage(isBinary ? '' : data.toString());
      if (!decoded.ok) {
        this.invalid.push(`${decoded.message}: ${data.toString().slice(0, 200)}`);
        return;
      }
      this.received.push(decoded.value);
      if (answerHeartbeats && decoded.value.type === 'heartbeat') {
        this.send({ type: 'heartbeat', ts: decoded.value.ts });
      }
      const index = this.#waiters.findIndex((w) => w.match(decoded.value));
      if (index >= 0) this.#waiters.splice(index, 1)[0]?.resolve(decoded.value);
      else this.#inbox.push(decoded.value);
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) => {
        this.refusedStatus = res.statusCode;
        reject(new Error(`HTTP ${res.statusCode}`));
        // Drop the refused HTTP connection; this also emits `close`.
        this.ws.terminate();
      });
    });
    // A test that never awaits `opened` must not leave an unhandled rejection behind.
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.ws.on('error', () => {});
  }

  /** Connects and waits for the `peer-id` greeting (fails at once if the upgrade is refused). */
  static async connect(
    url: string,
    options?: TestClientOptions,
  ): Promise<TestClient & { peerId: string; hello: Of<'peer-id'> }> {
    const client = new TestClient(url, options);
    const hello = await Promise.race([
      client.next('peer-id'),
      client.opened.then(() => new Promise<never>(() => {})),
    ]);
    return Object.assign(client, { peerId: hello.peerId, hello });
  }

  /** Tries to open a socket that the server is expected to refuse; resolves with the HTTP status. */
  static async refusal(url: string, options?: TestClientOptions): Promise<number> {
    const client = new TestClient(url, options);
    try {
      await client.opened;
    } catch {
      return client.refusedStatus ?? 0;
    }
    client.terminate();
    throw new Error('the server accepted a connection it should have refused');
  }

  send(message: ClientMessage | Record<string, unknown>): void {
    this.ws.send(JSON.stringify(message));
  }

  sendRaw(data: string | Buffer, options: { binary?: boolean } = {}): void {
    this.ws.send(data, { binary: options.binary ?? typeof data !== 'string' });
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

  /**
   * A round trip through the server: a `discover` answered in order after every frame the server
   * sent this client before it. Use it as a barrier before asserting that something did NOT arrive.
   */
  async roundTrip(timeoutMs = 5_000): Promise<Of<'peers-discovered'>> {
    const requestId = `sync-${++this.#requests}`;
    this.send({
      type: 'discover',
      requestId,
      requirements: { needsAI: false, minQuota: 0, preferredModels: [] },
    });
    return this.next('peers-discovered', (m) => m.requestId === requestId, timeoutMs);
  }

  /** Every message received so far of `type` (optionally matching `where`), taken or not. */
  all<T extends ServerMessage['type']>(type: T, where: (m: Of<T>) => boolean = () => true): Of<T>[] {
    return this.received.filter((m): m is Of<T> => m.type === type && where(m as Of<T>));
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
    totalQuota: Math.max(100, availableQuota),
    usedQuota: Math.max(100, availableQuota) - availableQuota,
    availableQuota,
    resetTime: Date.now() + 3_600_000,
    provider: 'demo',
    capabilities: ['text'],
  },
  performance: { latency: 40, tokensPerSecond: 50 },
});
