import { assign, emit, sendParent, sendTo, setup } from 'xstate';
import {
  type Capabilities,
  type ClientMessage,
  CloseCode,
  type IceServer,
  PROTOCOL_VERSION,
  type ServerMessage,
  TERMINAL_CLOSE_CODES,
} from '../protocol/index.ts';
import { type WebSocketEvent, websocketActor } from './actors/websocket.actor.ts';
import { fullJitterBackoff } from './backoff.ts';
import type { WebSocketConstructor } from './environment.ts';

export interface ConnectionInput {
  WebSocket: WebSocketConstructor;
  /** Our Ed25519 public key, registered with every announcement. */
  publicKey?: string;
  /** Reconnect attempts before `failed` (Infinity = keep trying). */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** How long to wait for `peer-id` after starting to connect. */
  connectTimeoutMs?: number;
  /** Access token appended as `?token=`. */
  token?: string;
  random?: () => number;
}

export interface ConnectionContext {
  WebSocket: WebSocketConstructor;
  publicKey: string | undefined;
  url: string;
  token: string | undefined;
  peerId: string | undefined;
  resumeToken: string | undefined;
  iceServers: IceServer[];
  heartbeatIntervalMs: number;
  /** What this peer announced last; re-announced when a restarted server forgot it. */
  capabilities: Capabilities | undefined;
  /** Reconnect attempts since the last successful session. */
  attempt: number;
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  connectTimeoutMs: number;
  /** Extra wait asked for by the server's `reconnect`. */
  serverRetryAfterMs: number;
  lastCloseCode: number | undefined;
  lastError: string | undefined;
  /** Client messages sent while not connected; flushed (in order) once connected. Bounded. */
  outbox: ClientMessage[];
  random: () => number;
}

export const OUTBOX_LIMIT = 256;

/** Server messages the connection hands up to the client's root actor. */
export const FORWARDED_MESSAGE_TYPES = [
  'peer-capability-update',
  'peers-discovered',
  'peer-left',
  'offer',
  'answer',
  'ice-candidate',
  'relay',
  'error',
] as const satisfies readonly ServerMessage['type'][];
export type ForwardedMessage = Extract<ServerMessage, { type: (typeof FORWARDED_MESSAGE_TYPES)[number] }>;

export type ConnectionEvent =
  | WebSocketEvent
  | { type: 'user.connect'; url: string }
  | { type: 'user.disconnect' }
  | { type: 'user.retry' }
  | { type: 'user.announce'; capabilities: Capabilities }
  | { type: 'signal.send'; message: ClientMessage };

export type ConnectionEmitted =
  | { type: 'connection.session'; peerId: string; resumed: boolean; iceServers: IceServer[] }
  | { type: 'connection.lost'; attempt: number; code: number | undefined };

function socketUrl(context: ConnectionContext): string {
  const url = new URL(context.url);
  url.searchParams.set('v', String(PROTOCOL_VERSION));
  if (context.resumeToken) url.searchParams.set('resume', context.resumeToken);
  if (context.token) url.searchParams.set('token', context.token);
  return url.toString();
}

const closedEvent = (event: ConnectionEvent) => (event.type === 'socket.closed' ? event : undefined);

export const connectionMachine = setup({
  types: {
    input: {} as ConnectionInput,
    context: {} as ConnectionContext,
    events: {} as ConnectionEvent,
    emitted: {} as ConnectionEmitted,
    tags: {} as 'online' | 'busy',
  },
  actors: { websocket: websocketActor },
  delays: {
    reconnectBackoff: ({ context }) =>
      Math.max(
        context.serverRetryAfterMs,
        fullJitterBackoff(context.attempt, context.baseDelayMs, context.maxDelayMs, context.random),
      ),
    connectTimeout: ({ context }) => context.connectTimeoutMs,
    /** Two and a half heartbeats without one means the server (or the path to it) is gone. */
    livenessTimeout: ({ context }) => Math.ceil(context.heartbeatIntervalMs * 2.5),
  },
  guards: {
    attemptsExhausted: ({ context }) => context.attempt >= context.maxAttempts,
    closedForGood: ({ event }) => TERMINAL_CLOSE_CODES.has(closedEvent(event)?.code ?? 0),
    /** A restarted server forgot what we announced, or restored something older than our latest. */
    serverForgotCapabilities: ({ context, event }) =>
      event.type === 'peer-id' &&
      context.capabilities !== undefined &&
      JSON.stringify(event.capabilities) !== JSON.stringify(context.capabilities),
  },
  actions: {
    sendToSocket: sendTo('socket', ({ event }) => ({
      type: 'socket.send' as const,
      message: (event as Extract<ConnectionEvent, { type: 'signal.send' }>).message,
    })),
    queueMessage: assign({
      outbox: ({ context, event }) =>
        event.type === 'signal.send'
          ? [...context.outbox, event.message].slice(-OUTBOX_LIMIT)
          : context.outbox,
    }),
    flushOutbox: ({ context, self }) => {
      const socket = self.getSnapshot().children.socket;
      for (const message of context.outbox) socket?.send({ type: 'socket.send', message });
    },
    clearOutbox: assign({ outbox: [] }),
    rememberSession: assign(({ event }) => {
      if (event.type !== 'peer-id') return {};
      return {
        peerId: event.peerId,
        resumeToken: event.resumeToken,
        iceServers: event.iceServers,
        heartbeatIntervalMs: event.heartbeatIntervalMs,
        attempt: 0,
        serverRetryAfterMs: 0,
        lastError: undefined,
      };
    }),
    emitSession: emit(({ event }) => {
      const hello = event as Extract<ConnectionEvent, { type: 'peer-id' }>;
      return {
        type: 'connection.session' as const,
        peerId: hello.peerId,
        resumed: hello.resumed,
        iceServers: hello.iceServers,
      };
    }),
    reannounce: sendTo('socket', ({ context }) => ({
      type: 'socket.send' as const,
      message: {
        type: 'capability-announce' as const,
        capabilities: context.capabilities as Capabilities,
        ...(context.publicKey ? { publicKey: context.publicKey } : {}),
      },
    })),
    storeCapabilities: assign({
      capabilities: ({ context, event }) =>
        event.type === 'user.announce' ? event.capabilities : context.capabilities,
    }),
    announce: sendTo('socket', ({ context, event }) => ({
      type: 'socket.send' as const,
      message: {
        type: 'capability-announce' as const,
        capabilities: (event as Extract<ConnectionEvent, { type: 'user.announce' }>).capabilities,
        ...(context.publicKey ? { publicKey: context.publicKey } : {}),
      },
    })),
    answerHeartbeat: sendTo('socket', ({ event }) => ({
      type: 'socket.send' as const,
      message: {
        type: 'heartbeat' as const,
        ts: (event as Extract<ServerMessage, { type: 'heartbeat' }>).ts,
      },
    })),
    closeForGood: sendTo('socket', { type: 'socket.close', code: CloseCode.normal, reason: 'leaving' }),
    forwardToParent: sendParent(({ event }) => event as ForwardedMessage),
    recordClose: assign(({ event }) => {
      const closed = closedEvent(event);
      return closed
        ? { lastCloseCode: closed.code, lastError: closed.reason || `socket closed (${closed.code})` }
        : {};
    }),
    recordServerReconnect: assign({
      serverRetryAfterMs: ({ event }) => (event.type === 'reconnect' ? event.retryAfterMs : 0),
    }),
    recordTimeout: assign({ lastError: 'no answer from the signaling server' }),
    countAttempt: assign({ attempt: ({ context }) => context.attempt + 1 }),
    resetAttempts: assign({ attempt: 0, serverRetryAfterMs: 0 }),
    emitLost: emit(({ context }) => ({
      type: 'connection.lost' as const,
      attempt: context.attempt,
      code: context.lastCloseCode,
    })),
    setUrl: assign({
      url: ({ context, event }) => (event.type === 'user.connect' ? event.url : context.url),
    }),
    forgetSession: assign({ peerId: undefined, resumeToken: undefined, outbox: [] }),
  },
}).createMachine({
  id: 'connection',
  description:
    'The signaling session: connects, keeps its peer id across reconnects with the resume token, backs off with full jitter, and fails visibly.',
  context: ({ input }) => ({
    WebSocket: input.WebSocket,
    publicKey: input.publicKey,
    url: '',
    token: input.token,
    peerId: undefined,
    resumeToken: undefined,
    iceServers: [],
    heartbeatIntervalMs: 5_000,
    capabilities: undefined,
    attempt: 0,
    maxAttempts: input.maxAttempts ?? Number.POSITIVE_INFINITY,
    baseDelayMs: input.baseDelayMs ?? 250,
    maxDelayMs: input.maxDelayMs ?? 10_000,
    connectTimeoutMs: input.connectTimeoutMs ?? 10_000,
    serverRetryAfterMs: 0,
    lastCloseCode: undefined,
    lastError: undefined,
    outbox: [],
    random: input.random ?? Math.random,
  }),
  initial: 'disconnected',
  on: {
    'user.announce': { actions: 'storeCapabilities' },
  },
  states: {
    disconnected: {
      description: 'Not connected, and not trying to be.',
      on: {
        'user.connect': { target: 'session', actions: ['setUrl', 'resetAttempts'] },
        'signal.send': { actions: 'queueMessage' },
      },
    },
    session: {
      description: 'A WebSocket to the signaling server exists.',
      invoke: {
        id: 'socket',
        src: 'websocket',
        input: ({ context }) => ({ url: socketUrl(context), WebSocket: context.WebSocket }),
      },
      initial: 'signaling',
      on: {
        'socket.closed': [
          { guard: 'closedForGood', target: 'failed', actions: 'recordClose' },
          { target: 'reconnecting', actions: 'recordClose' },
        ],
        'user.disconnect': '.leaving',
      },
      states: {
        signaling: {
          description: "Connecting; waiting for the server's peer-id.",
          tags: 'busy',
          on: {
            'peer-id': [
              {
                guard: 'serverForgotCapabilities',
                target: 'connected',
                actions: ['rememberSession', 'reannounce', 'flushOutbox', 'clearOutbox', 'emitSession'],
              },
              {
                target: 'connected',
                actions: ['rememberSession', 'flushOutbox', 'clearOutbox', 'emitSession'],
              },
            ],
            'signal.send': { actions: 'queueMessage' },
          },
          after: { connectTimeout: { target: '#connection.reconnecting', actions: 'recordTimeout' } },
        },
        leaving: {
          description: 'Closing with 1000, which the server takes as "left for good" (no resume).',
          entry: 'closeForGood',
          always: { target: '#connection.disconnected', actions: 'forgetSession' },
        },
        connected: {
          description: 'Registered with the server: messages flow both ways.',
          tags: 'online',
          on: {
            'signal.send': { actions: 'sendToSocket' },
            'user.announce': { actions: ['storeCapabilities', 'announce'] },
            heartbeat: { target: 'connected', reenter: true, actions: 'answerHeartbeat' },
            reconnect: { target: '#connection.reconnecting', actions: 'recordServerReconnect' },
            'peer-capability-update': { actions: 'forwardToParent' },
            'peers-discovered': { actions: 'forwardToParent' },
            'peer-left': { actions: 'forwardToParent' },
            offer: { actions: 'forwardToParent' },
            answer: { actions: 'forwardToParent' },
            'ice-candidate': { actions: 'forwardToParent' },
            relay: { actions: 'forwardToParent' },
            error: { actions: 'forwardToParent' },
          },
          after: { livenessTimeout: { target: '#connection.reconnecting', actions: 'recordTimeout' } },
        },
      },
    },
    reconnecting: {
      description: 'Waiting out the backoff before the next attempt; the resume token keeps our peer id.',
      tags: 'busy',
      initial: 'deciding',
      on: {
        'signal.send': { actions: 'queueMessage' },
        'user.disconnect': { target: 'disconnected', actions: 'forgetSession' },
      },
      states: {
        deciding: {
          description: '`attempt` counts reconnects actually made; after `maxAttempts` of them we give up.',
          always: [
            { guard: 'attemptsExhausted', target: '#connection.failed' },
            { target: 'waiting', actions: ['countAttempt', 'emitLost'] },
          ],
        },
        waiting: {
          after: { reconnectBackoff: '#connection.session' },
        },
      },
    },
    failed: {
      description:
        'Gave up (attempts exhausted, or the server refused us for good). Retry is up to the user.',
      on: {
        'user.retry': { target: 'session', actions: 'resetAttempts' },
        'user.connect': { target: 'session', actions: ['setUrl', 'resetAttempts'] },
        'user.disconnect': { target: 'disconnected', actions: 'forgetSession' },
        'signal.send': { actions: 'queueMessage' },
      },
    },
  },
});
