import type { us_listen_socket } from 'uWebSockets.js';
import { type ActorRefFrom, createActor, toPromise } from 'xstate';
import { defaultConfig, type SignalingConfig, validateConfig } from './config.ts';
import { hubMachine } from './hub.machine.ts';
import { listenWithRetry } from './listen.ts';
import { loadNativeUws } from './load-uws.ts';
import { createLogger, type Logger } from './logger.ts';
import { SignalingMetrics } from './metrics.ts';
import { PeerRegistry } from './peer-registry.ts';
import { createTransport } from './uws-transport.ts';

export type HubActor = ActorRefFrom<typeof hubMachine>;

export interface SignalingServer {
  readonly host: string;
  /** The bound port (useful with `port: 0`). */
  readonly port: number;
  /** `ws://host:port/` */
  readonly url: string;
  readonly hub: HubActor;
  readonly registry: PeerRegistry;
  readonly metrics: SignalingMetrics;
  readonly config: SignalingConfig;
  /**
   * Staged shutdown: stop listening, tell every client to reconnect and close it with 1001, give
   * them `shutdownGraceMs`, then drop the rest. Resolves when every socket actor has ended.
   */
  close(): Promise<void>;
}

/** Starts the signaling server. Refuses to start without native uWebSockets.js. */
export async function startSignalingServer(
  overrides: Partial<SignalingConfig> = {},
  options: { log?: Logger; now?: () => number } = {},
): Promise<SignalingServer> {
  const uws = loadNativeUws();
  const config = validateConfig({ ...defaultConfig(), ...overrides });
  const log = options.log ?? createLogger(config.logLevel);
  const metrics = new SignalingMetrics();
  const registry = new PeerRegistry();
  const hub = createActor(hubMachine, {
    input: { config, registry, metrics, log, now: options.now ?? Date.now },
  });
  hub.subscribe({ error: (error) => log.error('hub failed', { error }) });
  hub.start();
  let listenSocket: us_listen_socket | null = null;

  const app = createTransport({
    uws,
    config,
    registry,
    metrics,
    log,
    toHub: (event) => hub.send(event),
    acceptingConnections: () => listenSocket !== null,
    health: () => ({
      status: listenSocket ? 'ok' : 'draining',
      peers: registry.liveCount,
      announced: registry.announcedCount,
      sockets: hub.getSnapshot().context.sockets.size,
    }),
    renderMetrics: () =>
      metrics.render({
        peersConnected: registry.liveCount,
        peersAnnounced: registry.announcedCount,
        sessionsInGrace: registry.size - registry.liveCount,
        sockets: hub.getSnapshot().context.sockets.size,
      }),
  });

  try {
    listenSocket = await listenWithRetry(app, config.host, config.port, config.bindRetryMs, log);
  } catch (error) {
    hub.stop();
    metrics.stop();
    throw error;
  }
  const port = uws.us_socket_local_port(listenSocket);
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  log.info('signaling listening', { url: `ws://${host}:${port}/` });

  let closing: Promise<void> | undefined;
  return {
    host: config.host,
    port,
    url: `ws://${host}:${port}/`,
    hub,
    registry,
    metrics,
    config,
    close() {
      closing ??= (async () => {
        if (listenSocket) uws.us_listen_socket_close(listenSocket);
        listenSocket = null;
        hub.send({ type: 'hub.shutdown' });
        await toPromise(hub);
        metrics.stop();
        log.info('signaling stopped');
      })();
      return closing;
    },
  };
}
