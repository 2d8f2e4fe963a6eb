import type * as UWS from 'uWebSockets.js';
import type { HttpRequest, HttpResponse, TemplatedApp, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import {
  decodeClientMessage,
  encodeMessage,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  type ServerMessage,
} from '../protocol/index.ts';
import type { SignalingConfig } from './config.ts';
import { verifyAccessToken, verifySharedToken } from './credentials.ts';
import type { HubEvent, SocketActor } from './hub.machine.ts';
import type { Logger } from './logger.ts';
import type { SignalingMetrics } from './metrics.ts';
import { type Flushable, Outbox } from './outbox.ts';
import type { PeerRegistry } from './peer-registry.ts';
import { routeMessage } from './router.ts';
import { SendStatus, type SocketPort } from './socket-port.ts';
import { TokenBucket } from './token-bucket.ts';

/** What uWS keeps per socket; captured during the upgrade, when the request is still readable. */
interface UserData {
  ip: string;
  resumeToken: string | undefined;
  protocolVersion: number;
  port: UwsSocketPort | undefined;
}

/**
 * A SocketPort over one uWS socket, with its admission meters and a backpressure latch. Frames are
 * queued and written in one corked batch at the end of the event-loop turn (see outbox.ts).
 */
class UwsSocketPort implements SocketPort, Flushable {
  open = true;
  actor: SocketActor | undefined;
  /** Set by the hub when it gives the socket its session. */
  peerId = '';
  lastHeardAt: number;
  routing = false;
  readonly frames: TokenBucket;
  /** Made on the first relayed frame: most peers never relay, and an idle server holds one port per peer. */
  #relayBytes: TokenBucket | undefined;
  /** Set once `socket.backpressure` was reported, cleared when the buffer drains: one event per episode. */
  congested = false;
  /** Frames waiting for this turn's flush; undefined while there are none. */
  #queued: string[] | undefined;
  readonly #ws: WebSocket<UserData>;
  readonly #config: SignalingConfig;
  readonly #outbox: Outbox;

  constructor(ws: WebSocket<UserData>, config: SignalingConfig, outbox: Outbox, now: number) {
    this.#ws = ws;
    this.#config = config;
    this.#outbox = outbox;
    this.lastHeardAt = now;
    this.frames = new TokenBucket(config.messageBurst, config.messagesPerSecond, now);
  }

  relayBytes(now: number): TokenBucket {
    this.#relayBytes ??= new TokenBucket(this.#config.relayBurstBytes, this.#config.relayBytesPerSecond, now);
    return this.#relayBytes;
  }

  send(message: ServerMessage): SendStatus {
    return this.sendText(encodeMessage(message));
  }

  sendText(text: string): SendStatus {
    if (!this.open) return SendStatus.dropped;
    if (this.#queued) this.#queued.push(text);
    else {
      this.#queued = [text];
      this.#outbox.schedule(this);
    }
    return SendStatus.buffered;
  }

  /** Writes the queued frames in one corked batch; reports backpressure once per episode. */
  flush(): void {
    const frames = this.#queued;
    this.#queued = undefined;
    if (!frames || !this.open) return;
    let dropped = false;
    this.#ws.cork(() => {
      for (const text of frames) {
        if ((this.#ws.send(text, false) as SendStatus) === SendStatus.dropped) dropped = true;
      }
    });
    // Inside a cork every send reports success; what the kernel would not take is buffered by uWS.
    if (!this.congested && (dropped || this.bufferedAmount() > this.#config.congestionHighWaterBytes)) {
      this.congested = true;
      this.actor?.send({ type: 'socket.backpressure' });
    }
  }

  /** Every frame is batched already (see `sendText`). */
  cork(fn: () => void): void {
    fn();
  }

  end(code: number, reason: string): void {
    if (!this.open) return;
    this.flush();
    this.#ws.end(code, reason);
  }

  terminate(): void {
    if (!this.open) return;
    this.#queued = undefined;
    this.#ws.close();
  }

  /**
   * What the client has not taken yet (uWS's backlog). Frames still queued for this turn's flush are
   * not counted: they are at most one turn's input, and counting them would call a burst congestion.
   */
  bufferedAmount(): number {
    return this.open ? this.#ws.getBufferedAmount() : 0;
  }
}

export interface TransportOptions {
  uws: typeof UWS;
  config: SignalingConfig;
  registry: PeerRegistry;
  metrics: SignalingMetrics;
  log: Logger;
  /** Delivers socket lifecycle to the hub actor. */
  toHub: (event: HubEvent) => void;
  acceptingConnections: () => boolean;
  health: () => Record<string, unknown>;
  renderMetrics: () => string;
}

/** Wires a uWS app: upgrade checks, per-socket ports, message admission and decoding, HTTP probes. */
export function createTransport(options: TransportOptions): TemplatedApp {
  const { uws, config, metrics, log, toHub } = options;
  const router = {
    registry: options.registry,
    metrics,
    congestionHighWaterBytes: config.congestionHighWaterBytes,
  };
  const connectionsPerIp = new Map<string, number>();
  const outbox = new Outbox((error) => log.error('flush failed', { error }));
  const anyOrigin = config.allowedOrigins.includes('*');
  const origins = new Set(config.allowedOrigins);

  /** No exception may cross into uWS: log it and close this socket with 1011. */
  const guarded = (ws: WebSocket<UserData>, what: string, fn: () => void) => {
    try {
      fn();
    } catch (error) {
      log.error('handler failed', { what, error });
      metrics.rejected('internal');
      const port = ws.getUserData().port;
      try {
        if (port?.open) ws.end(1011, 'internal error');
      } catch {
        // the socket is already gone
      }
    }
  };
  const guardedHttp = (res: HttpResponse, what: string, fn: () => void) => {
    try {
      fn();
    } catch (error) {
      log.error('http handler failed', { what, error });
      try {
        res.writeStatus('500 Internal Server Error').end('internal error');
      } catch {
        // response already sent or aborted
      }
    }
  };
  const refuse = (res: HttpResponse, status: string, reason: string, why: string) => {
    metrics.upgradeRejected(reason);
    log.info('upgrade refused', { reason });
    res.writeStatus(status).writeHeader('content-type', 'text/plain').end(why);
  };

  const authorized = (token: string | null): boolean => {
    if (!config.authToken && !config.authHmacSecret) return true;
    if (!token) return false;
    if (config.authToken && verifySharedToken(config.authToken, token)) return true;
    return Boolean(config.authHmacSecret && verifyAccessToken(config.authHmacSecret, token, Date.now()));
  };

  const app = uws.App();
  app.ws<UserData>('/', {
    // Frames up to 1 MiB reach us so we can close over-64-KiB ones with 1009; larger ones uWS drops (1006).
    maxPayloadLength: 1024 * 1024,
    maxBackpressure: 4 * config.congestionHighWaterBytes,
    closeOnBackpressureLimit: 0,
    idleTimeout: Math.max(
      8,
      Math.ceil((3 * (config.heartbeatIntervalMs + config.heartbeatTimeoutMs)) / 1000),
    ),
    sendPingsAutomatically: true,
    upgrade: (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) =>
      guardedHttp(res, 'upgrade', () => {
        // The request is stack-allocated: read everything before answering.
        const origin = req.getHeader('origin');
        const key = req.getHeader('sec-websocket-key');
        const protocol = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        const query = new URLSearchParams(req.getQuery() ?? '');
        const ip = Buffer.from(res.getRemoteAddressAsText()).toString();
        if (!options.acceptingConnections())
          return refuse(res, '503 Service Unavailable', 'shutting-down', 'shutting down');
        if (origin ? !(anyOrigin || origins.has(origin)) : !config.allowNoOrigin) {
          return refuse(res, '403 Forbidden', 'origin', `origin ${origin || '(none)'} is not allowed`);
        }
        if (!authorized(query.get('token')))
          return refuse(res, '401 Unauthorized', 'token', 'missing or invalid token');
        if ((connectionsPerIp.get(ip) ?? 0) >= config.maxConnectionsPerIp) {
          return refuse(
            res,
            '429 Too Many Requests',
            'connections-per-ip',
            'too many connections from this address',
          );
        }
        const version = query.get('v');
        res.upgrade<UserData>(
          {
            ip,
            resumeToken: query.get('resume') ?? undefined,
            protocolVersion:
              version === null ? PROTOCOL_VERSION : /^\d{1,4}$/.test(version) ? Number(version) : -1,
            port: undefined,
          },
          key,
          protocol,
          extensions,
          context,
        );
      }),
    open: (ws) =>
      guarded(ws, 'open', () => {
        const data = ws.getUserData();
        const port = new UwsSocketPort(ws, config, outbox, Date.now());
        data.port = port;
        connectionsPerIp.set(data.ip, (connectionsPerIp.get(data.ip) ?? 0) + 1);
        toHub({
          type: 'socket.open',
          port,
          bind: (actor, peerId) => {
            port.actor = actor;
            port.peerId = peerId;
          },
          resumeToken: data.resumeToken,
          protocolVersion: data.protocolVersion,
          ip: data.ip,
        });
      }),
    message: (ws, message, isBinary) =>
      guarded(ws, 'message', () => {
        const port = ws.getUserData().port;
        const actor = port?.actor;
        if (!port || !actor) return;
        const bytes = message.byteLength;
        const now = Date.now();
        port.lastHeardAt = now;
        if (bytes > MAX_FRAME_BYTES) return actor.send({ type: 'socket.oversize', bytes });
        if (!port.frames.take(now)) {
          return actor.send({
            type: 'socket.rateLimited',
            code: 'rate-limited',
            retryAfterMs: port.frames.waitMs(),
          });
        }
        if (isBinary) {
          return actor.send({
            type: 'socket.invalid',
            code: 'binary-frame',
            message: 'binary frames are not part of the protocol; send JSON text',
          });
        }
        // uWS reuses `message` after we return: decode (and so copy) it now.
        const frame = Buffer.from(message).toString('utf8');
        const decoded = decodeClientMessage(frame);
        if (!decoded.ok) {
          return actor.send({
            type: 'socket.invalid',
            code: decoded.code,
            message: decoded.message,
            ...(decoded.inReplyTo ? { inReplyTo: decoded.inReplyTo } : {}),
          });
        }
        metrics.messageReceived(decoded.value.type);
        if (decoded.value.type === 'relay' && !port.relayBytes(now).take(now, bytes)) {
          return actor.send({
            type: 'socket.rateLimited',
            code: 'relay-limited',
            retryAfterMs: Math.min(port.relayBytes(now).waitMs(bytes), 86_400_000),
            inReplyTo: 'relay',
          });
        }
        const value = decoded.value;
        // The hot path: routed messages skip the actor while it is active (see router.ts).
        if (
          port.routing &&
          (value.type === 'relay' ||
            value.type === 'offer' ||
            value.type === 'answer' ||
            value.type === 'ice-candidate')
        ) {
          return routeMessage(router, { peerId: port.peerId, port }, value, frame, bytes);
        }
        actor.send(value);
      }),
    drain: (ws) =>
      guarded(ws, 'drain', () => {
        const port = ws.getUserData().port;
        if (port?.congested && port.bufferedAmount() <= config.congestionLowWaterBytes) {
          port.congested = false;
          port.actor?.send({ type: 'socket.drain' });
        }
      }),
    close: (ws, code, reason) => {
      try {
        const data = ws.getUserData();
        const left = (connectionsPerIp.get(data.ip) ?? 1) - 1;
        if (left > 0) connectionsPerIp.set(data.ip, left);
        else connectionsPerIp.delete(data.ip);
        const port = data.port;
        if (!port) return;
        port.open = false;
        port.actor?.send({
          type: 'socket.closed',
          code,
          reason: Buffer.from(reason).toString('utf8').slice(0, 123),
        });
      } catch (error) {
        log.error('close handler failed', { error });
      }
    },
  });

  app.get('/healthz', (res) =>
    guardedHttp(res, 'healthz', () => {
      res.writeHeader('content-type', 'application/json').end(JSON.stringify(options.health()));
    }),
  );
  app.get('/metrics', (res) =>
    guardedHttp(res, 'metrics', () => {
      res.writeHeader('content-type', 'text/plain; version=0.0.4').end(options.renderMetrics());
    }),
  );
  app.any('/*', (res, req) =>
    guardedHttp(res, 'fallback', () => {
      const isRoot = req.getUrl() === '/';
      res
        .writeStatus(isRoot ? '426 Upgrade Required' : '404 Not Found')
        .writeHeader('content-type', 'text/plain')
        .end(isRoot ? 'Handoff signaling: connect with a WebSocket to this URL\n' : 'not found\n');
    }),
  );
  return app;
}
