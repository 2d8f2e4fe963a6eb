import { type ActorRefFrom, assign, createActor, enqueueActions, setup } from 'xstate';
import {
  type Capabilities,
  encodeMessage,
  type PeerLeft,
  PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '../protocol/index.ts';
import type { SignalingConfig } from './config.ts';
import { iceServersFor, mintResumeToken, newPeerId, verifyResumeToken } from './credentials.ts';
import type { Logger } from './logger.ts';
import type { SignalingMetrics } from './metrics.ts';
import { newPeerEntry, type PeerEntry, type PeerRegistry } from './peer-registry.ts';
import {
  type SocketEnvironment,
  type SocketOutput,
  type SocketPolicy,
  socketMachine,
} from './socket.machine.ts';
import type { SocketPort } from './socket-port.ts';

export type SocketActor = ActorRefFrom<typeof socketMachine>;

export interface HubInput {
  config: SignalingConfig;
  registry: PeerRegistry;
  metrics: SignalingMetrics;
  log: Logger;
  now: () => number;
}

export type HubEvent =
  | {
      type: 'socket.open';
      port: SocketPort;
      /** Hands the transport the actor that owns this socket. */
      bind: (actor: SocketActor, peerId: string) => void;
      resumeToken: string | undefined;
      protocolVersion: number;
      ip: string;
    }
  | { type: 'peer.announced'; peerId: string; capabilities: Capabilities; publicKey?: string }
  | { type: 'updates.flush' }
  | { type: 'hub.shutdown' }
  | { type: 'xstate.done.actor.socket'; output: SocketOutput }
  | { type: 'xstate.error.actor.socket'; error: unknown };

interface HubContext extends HubInput {
  /**
   * Socket actors by socket id. Held in a Map rather than spawned into `snapshot.children`: XState
   * copies that object on every spawn, which is O(n²) over 10k sockets (18 s against 0.3 s measured).
   * Each actor is still created with `parent: hub`, so its done event and inspection reach the hub.
   */
  sockets: Map<string, SocketActor>;
  /** Latest capabilities per peer since the last flush. */
  pendingUpdates: Map<string, Capabilities>;
  /** Peers whose pending update is their first announcement: nobody has heard of them yet. */
  firstAnnouncements: Set<string>;
  socketCount: number;
  /** What every socket shares (a copy each cost 1.2 KB per peer). */
  socketEnvironment: SocketEnvironment;
  /** The socket actor the last `socket.open` created; `startSocket` starts it. */
  opened: { actor: SocketActor; resumeRejected: boolean } | undefined;
}

/** Orders the others' view of a departed peer: everyone if it had announced, else those it talked to. */
function sendPeerLeft(context: HubContext, entry: PeerEntry, reason: PeerLeft['reason']): void {
  context.pendingUpdates.delete(entry.peerId);
  // A re-announcement still pending does not make the others forget the announcement they heard.
  const neverAnnounced = context.firstAnnouncements.delete(entry.peerId) || !entry.capabilities;
  const text = encodeMessage({ type: 'peer-left', peerId: entry.peerId, reason } satisfies PeerLeft);
  let sent = 0;
  if (neverAnnounced) {
    for (const peerId of entry.contacts ?? []) {
      if (context.registry.portOf(peerId)?.sendText(text) !== undefined) sent++;
    }
  } else {
    for (const other of context.registry.live()) {
      if (other !== entry) {
        other.port?.sendText(text);
        sent++;
      }
    }
  }
  context.metrics.peerLeftSent += sent;
  context.log.debug('peer left', { peerId: entry.peerId, reason, told: sent });
}

export const hubMachine = setup({
  types: {
    input: {} as HubInput,
    context: {} as HubContext,
    events: {} as HubEvent,
  },
  delays: {
    coalesce: ({ context }) => context.config.coalesceMs,
    heartbeatTick: ({ context }) => heartbeatTickMs(context.config),
    sweepInterval: ({ context }) =>
      Math.max(50, Math.min(1000, Math.floor(context.config.resumeGraceMs / 4))),
    shutdownGrace: ({ context }) => context.config.shutdownGraceMs,
  },
  guards: {
    noSockets: ({ context }) => context.sockets.size === 0,
  },
  actions: {
    /**
     * Creates the socket actor in the resolve phase, as XState's own `spawn` does; `startSocket`
     * starts it. (Creating an actor inside a custom action trips XState's "assign() called
     * directly" check, since its initial context is computed with `assign`.)
     */
    openSocket: assign(({ context, event, self }) => {
      if (event.type !== 'socket.open') return {};
      const { config, registry } = context;
      const now = context.now();
      const socketId = `socket-${context.socketCount + 1}`;
      let entry: PeerEntry | undefined;
      let resumed = false;
      let resumeRejected = false;
      // A socket about to be refused for its protocol version must not take over (and so end) a session.
      if (event.resumeToken && SUPPORTED_PROTOCOL_VERSIONS.includes(event.protocolVersion)) {
        const claim = verifyResumeToken(
          config.resumeSecret,
          event.resumeToken,
          now,
          config.resumeTokenMaxAgeMs,
        );
        const known = claim ? registry.get(claim.peerId) : undefined;
        if (claim && known && claim.issuedAt >= known.tokenIssuedAt) {
          entry = known;
          resumed = true;
          if (known.socketId) context.sockets.get(known.socketId)?.send({ type: 'hub.replaced' });
        } else if (claim && !known) {
          // The server restarted (or the grace ran out): the token still proves who the peer is.
          entry = newPeerEntry(claim.peerId);
          registry.add(entry);
          resumed = true;
        } else {
          resumeRejected = true;
        }
      }
      if (!entry) {
        entry = newPeerEntry(newPeerId());
        registry.add(entry);
      }
      registry.connect(entry, socketId, event.port);
      // Strictly increasing, so a token rotated within the same millisecond still supersedes the old one.
      const issuedAt = Math.max(now, entry.tokenIssuedAt + 1);
      entry.tokenIssuedAt = issuedAt;
      const actor = createActor(socketMachine, {
        parent: self,
        // One id for every socket actor (sessions tell them apart): XState memoizes transition
        // lookups per event type, so a per-socket id made `xstate.done.actor.<id>` a leak per connection.
        id: 'socket',
        input: {
          socketId,
          peerId: entry.peerId,
          port: event.port,
          env: context.socketEnvironment,
          protocolVersion: event.protocolVersion,
          resumed,
          announced: resumed && entry.capabilities !== null,
        },
      });
      context.sockets.set(socketId, actor);
      context.log.debug('socket open', { socketId, peerId: entry.peerId, resumed, ip: event.ip });
      return { socketCount: context.socketCount + 1, opened: { actor, resumeRejected } };
    }),
    startSocket: ({ context, event }) => {
      if (event.type !== 'socket.open' || !context.opened) return;
      const { actor, resumeRejected } = context.opened;
      context.metrics.connectionsTotal++;
      event.bind(actor, actor.getSnapshot().context.peerId);
      actor.start();
      if (resumeRejected) {
        event.port.send({
          type: 'error',
          code: 'resume-rejected',
          message: 'resume token is invalid, expired or superseded; this is a new session',
        });
      }
    },
    reapSocket: ({ context, event }) => {
      if (event.type !== 'xstate.done.actor.socket') return;
      const { socketId, peerId, departure } = event.output;
      context.sockets.delete(socketId);
      const entry = context.registry.get(peerId);
      if (!entry || entry.socketId !== socketId) return; // resumed elsewhere meanwhile
      switch (departure) {
        case 'left':
        case 'violation':
          context.registry.delete(peerId);
          sendPeerLeft(context, entry, departure === 'left' ? 'left' : 'closed');
          break;
        case 'rejected':
          context.registry.delete(peerId);
          break;
        default:
          entry.leaveReason = departure === 'timeout' ? 'timeout' : 'closed';
          context.registry.disconnect(entry, context.now() + context.config.resumeGraceMs);
      }
      context.log.debug('socket closed', { socketId, peerId, departure, code: event.output.code });
    },
    /**
     * A socket actor failed (a bug, not a client's doing: clients' mistakes are events). Its error
     * event does not say which, so find it; drop its connection and keep its session for a resume.
     */
    reapFailedSockets: ({ context, event }) => {
      if (event.type !== 'xstate.error.actor.socket') return;
      for (const [socketId, actor] of [...context.sockets]) {
        if (actor.getSnapshot().status !== 'error') continue;
        context.sockets.delete(socketId);
        const { peerId, port } = actor.getSnapshot().context;
        port.terminate();
        const entry = context.registry.get(peerId);
        if (entry?.socketId === socketId) {
          entry.leaveReason = 'closed';
          context.registry.disconnect(entry, context.now() + context.config.resumeGraceMs);
        }
        context.log.error('socket actor failed', { socketId, peerId, error: event.error });
      }
    },
    tickSockets: ({ context }) => {
      for (const actor of context.sockets.values()) actor.send(TICK);
    },
    expireSessions: ({ context }) => {
      for (const entry of [...context.registry.expired(context.now())]) {
        context.registry.delete(entry.peerId);
        sendPeerLeft(context, entry, entry.leaveReason);
      }
    },
    recordAnnouncement: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'peer.announced') return;
      const entry = context.registry.get(event.peerId);
      if (!entry?.port) return;
      if (!entry.capabilities) context.firstAnnouncements.add(event.peerId);
      context.registry.announce(entry, event.capabilities, event.publicKey);
      const first = context.pendingUpdates.size === 0;
      context.pendingUpdates.set(event.peerId, event.capabilities);
      if (first) enqueue.raise({ type: 'updates.flush' }, { delay: 'coalesce', id: 'flush' });
    }),
    flushUpdates: ({ context }) => {
      const updates = [...context.pendingUpdates].map(([peerId, capabilities]) => ({
        peerId,
        text: encodeMessage(capabilityUpdate(context.registry.get(peerId), peerId, capabilities)),
      }));
      context.pendingUpdates.clear();
      context.firstAnnouncements.clear();
      let sent = 0;
      for (const recipient of context.registry.live()) {
        const port = recipient.port as SocketPort;
        port.cork(() => {
          for (const update of updates) {
            if (update.peerId === recipient.peerId) continue;
            port.sendText(update.text);
            sent++;
          }
        });
      }
      context.metrics.capabilityUpdatesSent += sent;
    },
    shutDownSockets: ({ context }) => {
      for (const actor of context.sockets.values()) {
        actor.send({ type: 'hub.shutdown', retryAfterMs: context.config.reconnectAfterMs });
      }
    },
    terminateSockets: ({ context }) => {
      for (const actor of [...context.sockets.values()]) actor.send({ type: 'hub.terminate' });
    },
  },
}).createMachine({
  id: 'hub',
  description:
    'Owns every socket actor and the peer registry; coalesces announcements; expires dropped sessions.',
  context: ({ input }) => ({
    ...input,
    socketEnvironment: socketEnvironmentOf(input),
    sockets: new Map(),
    pendingUpdates: new Map(),
    firstAnnouncements: new Set(),
    socketCount: 0,
    opened: undefined,
  }),
  initial: 'running',
  on: {
    'peer.announced': { actions: 'recordAnnouncement' },
    'updates.flush': { actions: 'flushUpdates' },
  },
  states: {
    running: {
      type: 'parallel',
      on: {
        'socket.open': { actions: ['openSocket', 'startSocket'] },
        'xstate.done.actor.socket': { actions: 'reapSocket' },
        'xstate.error.actor.socket': { actions: 'reapFailedSockets' },
        'hub.shutdown': 'draining',
      },
      states: {
        sessions: {
          description: 'Forgets sessions whose resume grace ran out.',
          initial: 'sweeping',
          states: {
            sweeping: {
              after: { sweepInterval: { target: 'sweeping', reenter: true, actions: 'expireSessions' } },
            },
          },
        },
        heartbeats: {
          description:
            "Paces every socket's heartbeats with one timer (a timer per socket cost ~0.5 KB each).",
          initial: 'ticking',
          states: {
            ticking: {
              after: { heartbeatTick: { target: 'ticking', reenter: true, actions: 'tickSockets' } },
            },
          },
        },
      },
    },
    draining: {
      description: 'Shutting down: every client is told to reconnect later, then closed.',
      entry: 'shutDownSockets',
      always: { guard: 'noSockets', target: 'stopped' },
      on: {
        'socket.open': { actions: ['openSocket', 'startSocket', 'shutDownSockets'] },
        'xstate.done.actor.socket': { actions: 'reapSocket' },
        'xstate.error.actor.socket': { actions: 'reapFailedSockets' },
      },
      after: { shutdownGrace: { actions: 'terminateSockets' } },
    },
    stopped: { type: 'final' },
  },
});

const TICK = Object.freeze({ type: 'hub.tick' as const });

/**
 * How often the hub ticks every socket's heartbeat clock: half the shorter of the heartbeat interval
 * and timeout, so a beat goes out at most half an interval late and a silent client is dropped at
 * most half a timeout late.
 */
export function heartbeatTickMs(config: SignalingConfig): number {
  return Math.max(25, Math.floor(Math.min(config.heartbeatIntervalMs, config.heartbeatTimeoutMs) / 2));
}

/** What every socket actor shares. */
export function socketEnvironmentOf(input: HubInput): SocketEnvironment {
  const { config, registry, metrics, now } = input;
  return {
    registry,
    metrics,
    policy: socketPolicyOf(config),
    now,
    iceServers: (peerId) => iceServersFor(config, peerId, now()),
    welcome: (peerId, resumed) => {
      const entry = registry.get(peerId);
      const restored = resumed ? entry?.capabilities : null;
      return {
        type: 'peer-id',
        peerId,
        resumeToken: mintResumeToken(config.resumeSecret, peerId, entry?.tokenIssuedAt ?? now()),
        resumed,
        ...(restored ? { capabilities: restored } : {}),
        protocolVersion: PROTOCOL_VERSION,
        iceServers: iceServersFor(config, peerId, now()).iceServers,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        resumeGraceMs: config.resumeGraceMs,
      };
    },
  };
}

/** The per-socket slice of the server's configuration. */
function socketPolicyOf(config: SignalingConfig): SocketPolicy {
  return {
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
    maxViolations: config.maxViolations,
    maxRateLimitStrikes: config.maxRateLimitStrikes,
    abuseWindowMs: config.abuseWindowMs,
    maxCongestedMs: config.maxCongestedMs,
    congestionHighWaterBytes: config.congestionHighWaterBytes,
    congestionLowWaterBytes: config.congestionLowWaterBytes,
    closingTimeoutMs: 2_000,
    hangUpWaitMs: Math.min(1_000, Math.floor(config.shutdownGraceMs / 2)),
  };
}

/** The `peer-capability-update` the others get about a peer (with its registered key, if any). */
export function capabilityUpdate(entry: PeerEntry | undefined, peerId: string, capabilities: Capabilities) {
  return {
    type: 'peer-capability-update' as const,
    peerId,
    capabilities,
    ...(entry?.publicKey ? { publicKey: entry.publicKey } : {}),
  };
}
