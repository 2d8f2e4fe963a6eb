import { assign, sendParent, setup } from 'xstate';
import type { IceServer } from '../protocol/index.ts';
import {
  type ClientMessage,
  CloseCode,
  type ErrorCode,
  encodeMessage,
  type PeerIdAssigned,
  type RoutedClientMessage,
  SUPPORTED_PROTOCOL_VERSIONS,
  utf8Length,
} from '../protocol/index.ts';
import type { SignalingMetrics } from './metrics.ts';
import type { PeerRegistry } from './peer-registry.ts';
import { routeMessage } from './router.ts';
import type { SocketPort } from './socket-port.ts';

/** The per-socket limits and timings; a slice of SignalingConfig. */
export interface SocketPolicy {
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  maxViolations: number;
  maxRateLimitStrikes: number;
  abuseWindowMs: number;
  maxCongestedMs: number;
  congestionHighWaterBytes: number;
  congestionLowWaterBytes: number;
  /** How long a closing socket may take to close before it is dropped. */
  closingTimeoutMs: number;
  /** On shutdown, how long a client told to reconnect gets to hang up before we close it (1001). */
  hangUpWaitMs: number;
}

/** What every socket actor shares: one object per server, referenced by each socket's context. */
export interface SocketEnvironment {
  registry: PeerRegistry;
  metrics: SignalingMetrics;
  policy: SocketPolicy;
  /** The `peer-id` greeting for a session (built when sent, so no socket holds it afterwards). */
  welcome: (peerId: string, resumed: boolean) => PeerIdAssigned;
  /** A fresh ICE server list for a peer (TURN credentials are minted per call). */
  iceServers: (peerId: string) => { iceServers: IceServer[]; expiresAt: number };
  now: () => number;
}

/**
 * One socket's own facts. Kept to a handful of fields: an idle server holds one of these (and a
 * context built from it) per connected peer.
 */
export interface SocketInput {
  socketId: string;
  peerId: string;
  port: SocketPort;
  env: SocketEnvironment;
  /** `?v=` the client asked for. */
  protocolVersion: number;
  /** The session was resumed (from a token) rather than newly created. */
  resumed: boolean;
  /** True when the session resumed with capabilities already announced. */
  announced: boolean;
}

/** Why a socket's session ended; the hub turns it into grace, `peer-left`, or nothing. */
export type Departure =
  | 'left'
  | 'closed'
  | 'timeout'
  | 'too-slow'
  | 'violation'
  | 'replaced'
  | 'shutdown'
  | 'rejected';

export interface SocketOutput {
  socketId: string;
  peerId: string;
  departure: Departure;
  code: number;
}

/** Events from the transport (`socket.*`) and from the hub (`hub.*`); client messages come as themselves. */
export type SocketEvent =
  | ClientMessage
  | { type: 'socket.invalid'; code: ErrorCode; message: string; inReplyTo?: string }
  | {
      type: 'socket.rateLimited';
      code: 'rate-limited' | 'relay-limited';
      retryAfterMs: number;
      inReplyTo?: string;
    }
  | { type: 'socket.oversize'; bytes: number }
  | { type: 'socket.backpressure' }
  | { type: 'socket.drain' }
  | { type: 'socket.closed'; code: number; reason: string }
  | { type: 'hub.tick' }
  | { type: 'hub.shutdown'; retryAfterMs: number }
  | { type: 'hub.replaced' }
  | { type: 'hub.terminate' };

interface AbuseWindow {
  start: number;
  count: number;
}

interface SocketContext extends SocketInput {
  /** When the last heartbeat went out (when the socket opened, before the first). */
  beatSentAt: number;
  closeCode: number;
  closeReason: string;
  departure: Departure;
  violations: AbuseWindow;
  strikes: AbuseWindow;
}

/** The window before anything was counted: shared, so a well-behaved socket allocates none. */
const NOTHING_COUNTED: AbuseWindow = Object.freeze({ start: 0, count: 0 });

/** Counts one more event in a sliding-start window; returns the new window. */
function bump(window: AbuseWindow, now: number, windowMs: number): AbuseWindow {
  return now - window.start > windowMs
    ? { start: now, count: 1 }
    : { start: window.start, count: window.count + 1 };
}

function replyError(
  context: SocketContext,
  code: ErrorCode,
  message: string,
  extra: { inReplyTo?: string; targetPeerId?: string; retryAfterMs?: number } = {},
) {
  context.env.metrics.rejected(code);
  context.port.send({ type: 'error', code, message, ...extra });
}

const ending = (code: number, reason: string, departure: Departure) => ({
  closeCode: code,
  closeReason: reason,
  departure,
});

export const socketMachine = setup({
  types: {
    input: {} as SocketInput,
    context: {} as SocketContext,
    events: {} as SocketEvent,
    output: {} as SocketOutput,
    tags: {} as 'online' | 'congested',
  },
  delays: {
    congestionTimeout: ({ context }) => context.env.policy.maxCongestedMs,
    closingTimeout: ({ context }) => context.env.policy.closingTimeoutMs,
    hangUpWait: ({ context }) => context.env.policy.hangUpWaitMs,
  },
  guards: {
    versionUnsupported: ({ context }) => !SUPPORTED_PROTOCOL_VERSIONS.includes(context.protocolVersion),
    resumedAnnounced: ({ context }) => context.announced,
    beatDue: ({ context }) =>
      context.env.now() - context.beatSentAt >= context.env.policy.heartbeatIntervalMs,
    /** Any frame since the heartbeat went out answers it (the transport stamps every frame). */
    heardSinceBeat: ({ context }) => context.port.lastHeardAt >= context.beatSentAt,
    beatOverdue: ({ context }) =>
      context.env.now() - context.beatSentAt >= context.env.policy.heartbeatTimeoutMs,
    tooManyViolations: ({ context }) =>
      bump(context.violations, context.env.now(), context.env.policy.abuseWindowMs).count >
      context.env.policy.maxViolations,
    tooManyStrikes: ({ context }) =>
      bump(context.strikes, context.env.now(), context.env.policy.abuseWindowMs).count >
      context.env.policy.maxRateLimitStrikes,
    drained: ({ context }) => context.port.bufferedAmount() <= context.env.policy.congestionLowWaterBytes,
    closedByClientOnPurpose: ({ event }) => event.type === 'socket.closed' && event.code === CloseCode.normal,
  },
  actions: {
    greet: ({ context }) => {
      context.port.send(context.env.welcome(context.peerId, context.resumed));
    },
    rejectVersion: ({ context }) => {
      replyError(
        context,
        'unsupported-version',
        `protocol version ${context.protocolVersion} is not supported; this server speaks ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')}`,
      );
    },
    notifyAnnounced: sendParent(({ context, event }) => {
      const announce = event as Extract<ClientMessage, { type: 'capability-announce' }>;
      return {
        type: 'peer.announced' as const,
        peerId: context.peerId,
        capabilities: announce.capabilities,
        ...(announce.publicKey ? { publicKey: announce.publicKey } : {}),
      };
    }),
    answerLookup: ({ context, event }) => {
      if (event.type !== 'peer-lookup') return;
      const entry = context.env.registry.get(event.peerId);
      if (entry?.capabilities) {
        context.port.send({
          type: 'peer-capability-update',
          peerId: entry.peerId,
          capabilities: entry.capabilities,
          ...(entry.publicKey ? { publicKey: entry.publicKey } : {}),
        });
      } else {
        replyError(context, 'unknown-target', `peer ${event.peerId} is not known here`, {
          inReplyTo: 'peer-lookup',
          targetPeerId: event.peerId,
        });
      }
    },
    answerDiscover: ({ context, event }) => {
      if (event.type !== 'discover') return;
      const peers = context.env.registry.discover(event.requirements, context.peerId);
      context.port.send({
        type: 'peers-discovered',
        peers,
        ...(event.requestId ? { requestId: event.requestId } : {}),
      });
    },
    /** The slow path for routed messages (the transport normally routes them itself; see router.ts). */
    route: ({ context, event }) => {
      const message = event as RoutedClientMessage;
      const frame = encodeMessage(message);
      routeMessage(
        {
          registry: context.env.registry,
          metrics: context.env.metrics,
          congestionHighWaterBytes: context.env.policy.congestionHighWaterBytes,
        },
        { peerId: context.peerId, port: context.port },
        message,
        frame,
        utf8Length(frame),
      );
    },
    sendIceServers: ({ context }) => {
      context.port.send({ type: 'ice-servers', ...context.env.iceServers(context.peerId) });
    },
    sendHeartbeat: assign(({ context }) => {
      const now = context.env.now();
      context.port.send({ type: 'heartbeat', ts: now });
      return { beatSentAt: now };
    }),
    startRouting: ({ context }) => {
      context.port.routing = true;
    },
    stopRouting: ({ context }) => {
      context.port.routing = false;
    },
    replyInvalid: ({ context, event }) => {
      if (event.type !== 'socket.invalid') return;
      replyError(context, event.code, event.message, event.inReplyTo ? { inReplyTo: event.inReplyTo } : {});
    },
    countViolation: assign({
      violations: ({ context }) =>
        bump(context.violations, context.env.now(), context.env.policy.abuseWindowMs),
    }),
    replyRateLimited: ({ context, event }) => {
      if (event.type !== 'socket.rateLimited') return;
      replyError(
        context,
        event.code,
        event.code === 'relay-limited'
          ? 'relay budget exceeded; message dropped'
          : 'too many messages; message dropped',
        { retryAfterMs: event.retryAfterMs, ...(event.inReplyTo ? { inReplyTo: event.inReplyTo } : {}) },
      );
    },
    countStrike: assign({
      strikes: ({ context }) => bump(context.strikes, context.env.now(), context.env.policy.abuseWindowMs),
    }),
    sendReconnect: ({ context, event }) => {
      if (event.type !== 'hub.shutdown') return;
      context.port.send({
        type: 'reconnect',
        reason: 'server shutting down',
        retryAfterMs: event.retryAfterMs,
      });
    },
    endSocket: ({ context }) => {
      context.port.end(context.closeCode, context.closeReason);
    },
    terminateSocket: ({ context }) => {
      context.port.terminate();
    },
  },
}).createMachine({
  id: 'socket',
  description: 'One signaling WebSocket: greets, serves and polices one client until its socket closes.',
  context: ({ input }) => ({
    ...input,
    beatSentAt: input.env.now(),
    closeCode: CloseCode.normal,
    closeReason: '',
    departure: 'closed',
    violations: NOTHING_COUNTED,
    strikes: NOTHING_COUNTED,
  }),
  initial: 'open',
  states: {
    open: {
      description: 'The socket just opened; the client learns its peer id, or why it cannot stay.',
      always: [
        {
          guard: 'versionUnsupported',
          target: 'closing',
          actions: [
            'rejectVersion',
            assignEnding(CloseCode.unsupportedVersion, 'unsupported protocol version', 'rejected'),
          ],
        },
        { guard: 'resumedAnnounced', target: 'active.session.announced', actions: 'greet' },
        { target: 'active', actions: 'greet' },
      ],
    },
    active: {
      type: 'parallel',
      tags: 'online',
      entry: 'startRouting',
      exit: 'stopRouting',
      on: {
        leave: { target: 'closing', actions: assignEnding(CloseCode.normal, 'left', 'left') },
        'socket.invalid': [
          {
            guard: 'tooManyViolations',
            target: 'closing',
            actions: [
              'replyInvalid',
              assignEnding(CloseCode.policyViolation, 'too many invalid messages', 'violation'),
            ],
          },
          { actions: ['replyInvalid', 'countViolation'] },
        ],
        'socket.rateLimited': [
          {
            guard: 'tooManyStrikes',
            target: 'closing',
            actions: assignEnding(CloseCode.policyViolation, 'rate limit abused', 'violation'),
          },
          { actions: ['replyRateLimited', 'countStrike'] },
        ],
        'socket.oversize': {
          target: 'closing',
          actions: assignEnding(CloseCode.messageTooBig, 'frame over 65536 bytes', 'violation'),
        },
        'socket.closed': [
          {
            guard: 'closedByClientOnPurpose',
            target: 'closed',
            actions: assignEnding(CloseCode.normal, '', 'left'),
          },
          { target: 'closed', actions: assignClosedByClient() },
        ],
        'hub.shutdown': {
          target: 'draining',
          actions: ['sendReconnect', assignEnding(CloseCode.goingAway, 'server shutting down', 'shutdown')],
        },
        'hub.replaced': {
          target: 'closing',
          actions: assignEnding(CloseCode.sessionReplaced, 'session resumed on another socket', 'replaced'),
        },
        'hub.terminate': {
          target: 'closed',
          actions: ['terminateSocket', assignEnding(CloseCode.goingAway, '', 'shutdown')],
        },
      },
      states: {
        session: {
          description: 'Whether the peer has said what it can offer (announced peers are discoverable).',
          initial: 'registered',
          states: {
            registered: {
              on: { 'capability-announce': { target: 'announced', actions: 'notifyAnnounced' } },
            },
            announced: {
              on: { 'capability-announce': { actions: 'notifyAnnounced' } },
            },
          },
        },
        flow: {
          description: 'uWS backpressure: congested while the client reads slower than we write.',
          initial: 'flowing',
          states: {
            flowing: {
              on: { 'socket.backpressure': 'congested' },
            },
            congested: {
              tags: 'congested',
              on: { 'socket.drain': { guard: 'drained', target: 'flowing' } },
              after: {
                congestionTimeout: {
                  target: '#socket.closing',
                  actions: assignEnding(CloseCode.tooSlow, 'client too slow to read', 'too-slow'),
                },
              },
            },
          },
        },
        requests: {
          description:
            'Serves requests: discovery, lookups, ICE servers, and routed messages when the transport ' +
            'does not route them itself.',
          initial: 'serving',
          states: {
            serving: {
              on: {
                discover: { actions: 'answerDiscover' },
                offer: { actions: 'route' },
                answer: { actions: 'route' },
                'ice-candidate': { actions: 'route' },
                relay: { actions: 'route' },
                'ice-servers-request': { actions: 'sendIceServers' },
                'peer-lookup': { actions: 'answerLookup' },
              },
            },
          },
        },
        liveness: {
          description:
            "Heartbeats, paced by the hub's tick (one timer for every socket, not one per socket): a beat " +
            'goes out every heartbeat interval; any frame heard before the timeout answers it.',
          initial: 'quiet',
          states: {
            quiet: {
              on: { 'hub.tick': { guard: 'beatDue', target: 'awaitingBeat' } },
            },
            awaitingBeat: {
              entry: 'sendHeartbeat',
              on: {
                'hub.tick': [
                  { guard: 'heardSinceBeat', target: 'quiet' },
                  {
                    guard: 'beatOverdue',
                    target: '#socket.closing',
                    actions: assignEnding(CloseCode.heartbeatTimeout, 'heartbeat timeout', 'timeout'),
                  },
                ],
              },
            },
          },
        },
      },
    },
    draining: {
      description:
        'The server is shutting down and told the client to reconnect; a client that hangs up first spares the ' +
        "server's port a TIME_WAIT (so a restarted server can bind it at once). Otherwise we close with 1001.",
      on: {
        'socket.closed': 'closed',
        'hub.terminate': { target: 'closed', actions: 'terminateSocket' },
      },
      after: { hangUpWait: 'closing' },
    },
    closing: {
      description: 'We sent a close frame; waiting for the socket to finish closing.',
      entry: 'endSocket',
      on: {
        'socket.closed': 'closed',
        'hub.terminate': { target: 'closed', actions: 'terminateSocket' },
      },
      after: { closingTimeout: { target: 'closed', actions: 'terminateSocket' } },
    },
    closed: { type: 'final' },
  },
  output: ({ context }) => ({
    socketId: context.socketId,
    peerId: context.peerId,
    departure: context.departure,
    code: context.closeCode,
  }),
});

/** Records how the socket will end, for the close frame and the hub. */
function assignEnding(code: number, reason: string, departure: Departure) {
  return assign<SocketContext, SocketEvent, undefined, SocketEvent, never>(() =>
    ending(code, reason, departure),
  );
}

/** The client closed: 1000 means it left on purpose, anything else may come back (resume). */
function assignClosedByClient() {
  return assign<SocketContext, SocketEvent, undefined, SocketEvent, never>(({ event }) =>
    ending(event.type === 'socket.closed' ? event.code : 1006, '', 'closed'),
  );
}
