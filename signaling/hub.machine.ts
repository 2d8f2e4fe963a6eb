import { type ActorRefFrom, assign, createActor, enqueueActions, setup } from 'xstate';
import {
  type Capabilities,
  encodeMessage,
  type IceServer,
  type PeerLeft,
  PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '../protocol/index.ts';
import type { SignalingConfig } from './config.ts';
import { iceServersFor, mintResumeToken, newPeerId, verifyResumeToken } from './credentials.ts';
import type { Logger } from './logger.ts';
import type { SignalingMetrics } from './metrics.ts';
import { newPeerEntry, type PeerEntry, type PeerRegistry } from './peer-registry.ts';
import { type SocketOutput, type SocketPolicy, socketMachine } from './socket.machine.ts';
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
  | { type: `xstate.done.actor.${string}`; output: SocketOutput };

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
  /** One policy object and one ICE function for every socket (a copy each cost 1.2 KB per peer). */
  socketPolicy: SocketPolicy;
  iceServersFor: (peerId: string) => { iceServers: IceServer[]; expiresAt: number };
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
      const restored = resumed && entry.capabilities ? entry.capabilities : undefined;
      const actor = createActor(socketMachine, {
        parent: self,
        id: socketId,
        input: {
          socketId,
          peerId: entry.peerId,
          port: event.port,
          registry,
          metrics: context.metrics,
          policy: context.socketPolicy,
          protocolVersion: event.protocolVersion,
          welcome: {
            type: 'peer-id',
            peerId: entry.peerId,
            resumeToken: mintResumeToken(config.resumeSecret, entry.peerId, issuedAt),
            resumed,
            ...(restored ? { capabilities: restored } : {}),
            protocolVersion: PROTOCOL_VERSION,
            iceServers: iceServersFor(config, entry.peerId, now).iceServers,
            heartbeatIntervalMs: config.heartbeatIntervalMs,
            resumeGraceMs: config.resumeGraceMs,
          },
          announced: restored !== undefined,
          iceServers: context.iceServersFor,
          now: context.now,
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
      if (!('output' in event)) return;
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
    socketPolicy: socketPolicyOf(input.config),
    iceServersFor: (peerId: string) => iceServersFor(input.config, peerId, input.now()),
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
      on: {
        'socket.open': { actions: ['openSocket', 'startSocket'] },
        'xstate.done.actor.*': { actions: 'reapSocket' },
        'hub.shutdown': 'draining',
      },
      after: { sweepInterval: { target: 'running', reenter: true, actions: 'expireSessions' } },
    },
    draining: {
      description: 'Shutting down: every client is told to reconnect later, then closed.',
      entry: 'shutDownSockets',
      always: { guard: 'noSockets', target: 'stopped' },
      on: {
        'socket.open': { actions: ['openSocket', 'startSocket', 'shutDownSockets'] },
        'xstate.done.actor.*': { actions: 'reapSocket' },
      },
      after: { shutdownGrace: { actions: 'terminateSockets' } },
    },
    stopped: { type: 'final' },
  },
});

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
