import { and, assign, setup, stateIn } from 'xstate';
import { CloseCode, PROTOCOL_VERSION } from '../../protocol/index.ts';
import type { Departure, SocketEvent, SocketPolicy } from '../../signaling/socket.machine.ts';

/**
 * The socket policy the model runs with. One invalid message and one rate-limit strike are
 * tolerated; the second of either closes. The congestion timeout is shorter than both heartbeat
 * timers, which the spec relies on (see the guards on the heartbeat clock events).
 */
export const POLICY: SocketPolicy = {
  heartbeatIntervalMs: 30_000,
  heartbeatTimeoutMs: 10_000,
  maxViolations: 1,
  maxRateLimitStrikes: 1,
  abuseWindowMs: 24 * 60 * 60 * 1000,
  maxCongestedMs: 5_000,
  congestionHighWaterBytes: 1_000,
  congestionLowWaterBytes: 100,
  closingTimeoutMs: 2_000,
  hangUpWaitMs: 1_000,
};

/**
 * What the spec is driven with: the socket actor's own events, plus the socket opening (the choice
 * the real machine makes with `always` from its input), time passing (the real machine's `after`
 * timers, and for heartbeats time followed by the hub's tick; a spec may have no timers) and how
 * full the send buffer is when uWS reports a drain.
 */
export type SpecEvent =
  | Exclude<SocketEvent, { type: 'socket.drain' }>
  | { type: 'socket.open'; protocolVersion: number; resumedAnnounced: boolean }
  | { type: 'socket.drain'; bufferedAmount: number }
  | { type: 'clock.heartbeatInterval' }
  | { type: 'clock.heartbeatTimeout' }
  | { type: 'clock.congestionTimeout' }
  | { type: 'clock.hangUpWait' }
  | { type: 'clock.closingTimeout' };

/** Kept small on purpose: every field is bounded, so the graph is finite. */
export interface SpecContext {
  /** Invalid messages so far; the abuse window never ends within a model path. */
  violations: number;
  /** Rate-limited messages so far. */
  strikes: number;
  /** How the socket ends, once decided: the close code and what the hub is told. */
  ending: { code: number; departure: Departure } | null;
  /** Whether a frame arrived since the outstanding heartbeat went out. */
  heard: boolean;
}

/**
 * The spec's actions name what the outside world observes; the spec itself does nothing with them.
 * The model test reads them off the transitions taken (and the states entered) and checks that
 * the real actor did exactly that, on its port, to its target peer and to the hub.
 */
export type Observation =
  /** The client receives these frames, named as the test's `label()` names them. */
  | { type: 'reply'; params: { frames: readonly string[] } }
  /** The client receives an `error` carrying the event's code (and `inReplyTo`). */
  | { type: 'replyError' }
  /** The client is told to reconnect after the event's `retryAfterMs`. */
  | { type: 'tellReconnect' }
  /** The message reaches its target peer, stamped with the sender's peer id. */
  | { type: 'forward' }
  /** The hub is told the peer announced capabilities. */
  | { type: 'notifyHub' }
  /** The server closes the socket with `ending.code`. */
  | { type: 'endSocket' }
  /** The connection is dropped without a close frame. */
  | { type: 'terminate' };

const observed = () => {};
const reply = (...frames: string[]) => ({ type: 'reply', params: { frames } }) as const;
const end = (code: number, departure: Departure) =>
  ({ type: 'decideEnding', params: { code, departure } }) as const;

/** The intended behaviour of one signaling socket, written without timers so it can be traversed. */
export const socketSpec = setup({
  types: {
    context: {} as SpecContext,
    events: {} as SpecEvent,
  },
  actions: {
    decideEnding: assign((_, ending: { code: number; departure: Departure }) => ({ ending })),
    reply: (_, _params: { frames: readonly string[] }) => observed(),
    replyError: observed,
    tellReconnect: observed,
    forward: observed,
    notifyHub: observed,
    /** A frame arrived: it answers an outstanding heartbeat (the real transport stamps the port). */
    hear: assign({ heard: true }),
    endSocket: observed,
    terminate: observed,
  },
  guards: {
    versionUnsupported: ({ event }) =>
      event.type === 'socket.open' && event.protocolVersion !== PROTOCOL_VERSION,
    resumedAnnounced: ({ event }) => event.type === 'socket.open' && event.resumedAnnounced,
    violationLimitReached: ({ context }) => context.violations + 1 > POLICY.maxViolations,
    strikeLimitReached: ({ context }) => context.strikes + 1 > POLICY.maxRateLimitStrikes,
    belowLowWater: ({ event }) =>
      event.type === 'socket.drain' && event.bufferedAmount <= POLICY.congestionLowWaterBytes,
    closedOnPurpose: ({ event }) => event.type === 'socket.closed' && event.code === CloseCode.normal,
    heard: ({ context }) => context.heard,
  },
}).createMachine({
  id: 'spec',
  context: { violations: 0, strikes: 0, ending: null, heard: false },
  initial: 'open',
  states: {
    open: {
      description: 'The socket is accepted; the actor has not said anything yet.',
      on: {
        'socket.open': [
          {
            guard: 'versionUnsupported',
            target: 'closing',
            actions: [reply('error:unsupported-version'), end(CloseCode.unsupportedVersion, 'rejected')],
          },
          { guard: 'resumedAnnounced', target: 'active.session.announced', actions: reply('peer-id') },
          { target: 'active', actions: reply('peer-id') },
        ],
      },
    },
    active: {
      type: 'parallel',
      on: {
        leave: { target: 'closing', actions: end(CloseCode.normal, 'left') },
        'socket.invalid': [
          {
            guard: 'violationLimitReached',
            target: 'closing',
            actions: ['replyError', end(CloseCode.policyViolation, 'violation')],
          },
          {
            actions: ['replyError', assign({ violations: ({ context }) => context.violations + 1 }), 'hear'],
          },
        ],
        'socket.rateLimited': [
          {
            guard: 'strikeLimitReached',
            target: 'closing',
            actions: end(CloseCode.policyViolation, 'violation'),
          },
          { actions: ['replyError', assign({ strikes: ({ context }) => context.strikes + 1 }), 'hear'] },
        ],
        'socket.oversize': { target: 'closing', actions: end(CloseCode.messageTooBig, 'violation') },
        'socket.closed': [
          { guard: 'closedOnPurpose', target: 'closed', actions: end(CloseCode.normal, 'left') },
          {
            target: 'closed',
            actions: assign({
              ending: ({ event }) => ({
                code: event.type === 'socket.closed' ? event.code : -1,
                departure: 'closed' as const,
              }),
            }),
          },
        ],
        'hub.shutdown': {
          target: 'draining',
          actions: ['tellReconnect', end(CloseCode.goingAway, 'shutdown')],
        },
        'hub.replaced': { target: 'closing', actions: end(CloseCode.sessionReplaced, 'replaced') },
        'hub.terminate': {
          target: 'closed',
          actions: ['terminate', end(CloseCode.goingAway, 'shutdown')],
        },
      },
      states: {
        requests: {
          description: 'Requests are served whatever the other regions are doing.',
          initial: 'serving',
          states: {
            serving: {
              on: {
                discover: { actions: [reply('peers-discovered'), 'hear'] },
                offer: { actions: ['forward', 'hear'] },
                answer: { actions: ['forward', 'hear'] },
                'ice-candidate': { actions: ['forward', 'hear'] },
                relay: { actions: ['forward', 'hear'] },
                'ice-servers-request': { actions: [reply('ice-servers'), 'hear'] },
                'peer-lookup': { actions: [reply('error:unknown-target'), 'hear'] },
                heartbeat: { actions: 'hear' },
              },
            },
          },
        },
        session: {
          initial: 'registered',
          states: {
            registered: {
              description: 'Connected, capabilities not announced yet.',
              on: { 'capability-announce': { target: 'announced', actions: ['notifyHub', 'hear'] } },
            },
            announced: {
              description: 'Discoverable; every further announcement is passed on too.',
              on: { 'capability-announce': { actions: ['notifyHub', 'hear'] } },
            },
          },
        },
        flow: {
          initial: 'flowing',
          states: {
            flowing: { on: { 'socket.backpressure': 'congested' } },
            congested: {
              description: 'The client reads slower than we write.',
              on: {
                'socket.drain': [
                  { guard: 'belowLowWater', target: 'flowing' },
                  { description: 'Still above the low-water mark: stays congested.' },
                ],
                'clock.congestionTimeout': {
                  target: '#spec.closing',
                  actions: end(CloseCode.tooSlow, 'too-slow'),
                },
              },
            },
          },
        },
        liveness: {
          initial: 'quiet',
          states: {
            quiet: {
              on: {
                'clock.heartbeatInterval': {
                  description:
                    'While congested the congestion timeout (shorter than either heartbeat timer, armed no ' +
                    'earlier) fires first: heartbeat time only passes while flowing.',
                  guard: stateIn({ active: { flow: 'flowing' } }),
                  target: 'awaitingBeat',
                },
              },
            },
            awaitingBeat: {
              description:
                'A heartbeat went out; any frame from the client before the timeout answers it (it is not ' +
                'consumed here: the transport stamps its arrival, the timeout reads the stamp).',
              entry: [reply('heartbeat'), assign({ heard: false })],
              on: {
                'clock.heartbeatTimeout': [
                  { guard: and([stateIn({ active: { flow: 'flowing' } }), 'heard']), target: 'quiet' },
                  {
                    guard: stateIn({ active: { flow: 'flowing' } }),
                    target: '#spec.closing',
                    actions: end(CloseCode.heartbeatTimeout, 'timeout'),
                  },
                ],
              },
            },
          },
        },
      },
    },
    draining: {
      description: 'Told to reconnect: the client may hang up first, else the server closes with 1001.',
      on: {
        'socket.closed': 'closed',
        'hub.terminate': { target: 'closed', actions: 'terminate' },
        'clock.hangUpWait': 'closing',
      },
    },
    closing: {
      description: 'The server sent its close frame and waits for the socket to close.',
      entry: 'endSocket',
      on: {
        'socket.closed': 'closed',
        'hub.terminate': { target: 'closed', actions: 'terminate' },
        'clock.closingTimeout': { target: 'closed', actions: 'terminate' },
      },
    },
    closed: { type: 'final' },
  },
});
