import { afterEach, describe, expect, it } from 'vitest';
import { assign, not, type SnapshotFrom, setup } from 'xstate';
import { createTestModel, type TestPath } from 'xstate/graph';
import {
  type ConnectionEmitted,
  connectionMachine,
  type ForwardedMessage,
} from '../../machines/connection.machine.ts';
import type { Capabilities, ClientMessage } from '../../protocol/index.ts';
import {
  aiPeer,
  FakeSignalingSockets,
  observed,
  peerIdMessage,
  runUnderParent,
  serializeVia,
  specActions,
  specCoverage,
  specTakes,
  took,
  UnusedWebSocket,
} from '../support/client-fakes.ts';

const MAX_ATTEMPTS = 2;
const BASE_DELAY = 100;
const MAX_DELAY = 1_000;
const RANDOM = 0.5;
const CONNECT_TIMEOUT = 3_000;
const HEARTBEAT_INTERVAL = 1_000;
/** Longer than any jitter, so the server's wait is what the spec sees. */
const RETRY_AFTER = 1_500;
/** The close codes PROTOCOL.md §11 says not to reconnect after. */
const TERMINAL = [1008, 4001, 4002];
const CAPABILITIES: Capabilities = aiPeer(['demo-1']);

const FORWARDED: ForwardedMessage[] = [
  { type: 'peer-capability-update', peerId: 'peer-b', capabilities: CAPABILITIES },
  { type: 'peers-discovered', peers: [], requestId: 'discover-1' },
  { type: 'peer-left', peerId: 'peer-b', reason: 'left' },
  { type: 'offer', targetPeerId: 'me', fromPeerId: 'peer-c', sdp: { type: 'offer', sdp: 'v=0 o' } },
  { type: 'answer', targetPeerId: 'me', fromPeerId: 'peer-c', sdp: { type: 'answer', sdp: 'v=0 a' } },
  { type: 'ice-candidate', targetPeerId: 'me', fromPeerId: 'peer-c', candidate: null },
  { type: 'relay', targetPeerId: 'me', fromPeerId: 'peer-c', payload: { type: 'link-ping', ts: 1 } },
  { type: 'error', code: 'unknown-target', message: 'gone', targetPeerId: 'peer-z' },
];

type SpecEvent =
  | { type: 'user.connect' }
  | { type: 'user.disconnect' }
  | { type: 'user.retry' }
  | { type: 'user.announce' }
  | { type: 'signal.send' }
  | { type: 'peer-id'; keptCapabilities: boolean }
  | { type: 'heartbeat' }
  | { type: 'reconnect' }
  | { type: 'socket.closed'; code: number }
  | ForwardedMessage
  | { type: 'clock.connectTimeout' }
  | { type: 'clock.liveness' }
  | { type: 'clock.backoff' };

interface SpecContext {
  /** Reconnect attempts since the last session (bounded by MAX_ATTEMPTS). */
  attempt: number;
  /** The user announced capabilities (the machine remembers them). */
  announced: boolean;
  /** Messages waiting for a session (kept at most 1 by the event filter). */
  queued: number;
  /** A resume token is held. */
  resumable: boolean;
  /** The server asked for a wait before reconnecting. */
  serverWait: boolean;
}

const forward = (type: ForwardedMessage['type']) => ({
  actions: [took(`connected.forward ${type}`), 'forward' as const],
});

/**
 * What the connection machine should do, without timers: the clock passing is an event. Actions
 * other than `took` name what the outside world sees; the test checks the real actor did exactly
 * that.
 */
const connectionSpec = setup({
  types: { context: {} as SpecContext, events: {} as SpecEvent },
  actions: {
    took: observed,
    openSocket: observed,
    closeSocket: observed,
    sendAnnounce: observed,
    flushOutbox: observed,
    echoHeartbeat: observed,
    sendNow: observed,
    forward: observed,
    emitSession: observed,
    emitLost: observed,
  },
  guards: {
    terminal: ({ event }) => event.type === 'socket.closed' && TERMINAL.includes(event.code),
    serverForgot: ({ context, event }) =>
      event.type === 'peer-id' && !event.keptCapabilities && context.announced,
    retriesLeft: ({ context }) => context.attempt < MAX_ATTEMPTS,
  },
}).createMachine({
  id: 'spec',
  context: { attempt: 0, announced: false, queued: 0, resumable: false, serverWait: false },
  initial: 'disconnected',
  on: {
    'user.announce': { actions: [took('anywhere.announce stored'), assign({ announced: true })] },
  },
  states: {
    disconnected: {
      on: {
        'user.connect': {
          target: 'session',
          actions: [took('disconnected.connect'), assign({ attempt: 0, serverWait: false })],
        },
        'signal.send': { actions: [took('disconnected.queue'), assign({ queued: 1 })] },
      },
    },
    session: {
      entry: 'openSocket',
      exit: 'closeSocket',
      initial: 'signaling',
      on: {
        'socket.closed': [
          { guard: 'terminal', target: 'failed', actions: took('session.closed for good') },
          { target: 'reconnecting', actions: took('session.closed') },
        ],
        'user.disconnect': {
          target: 'disconnected',
          actions: [took('session.disconnect'), assign({ queued: 0, resumable: false })],
        },
      },
      states: {
        signaling: {
          on: {
            'peer-id': [
              {
                guard: 'serverForgot',
                target: 'connected',
                actions: [
                  took('signaling.peer-id, server forgot'),
                  'sendAnnounce',
                  'flushOutbox',
                  'emitSession',
                  assign({ attempt: 0, queued: 0, resumable: true, serverWait: false }),
                ],
              },
              {
                target: 'connected',
                actions: [
                  took('signaling.peer-id'),
                  'flushOutbox',
                  'emitSession',
                  assign({ attempt: 0, queued: 0, resumable: true, serverWait: false }),
                ],
              },
            ],
            'signal.send': { actions: [took('signaling.queue'), assign({ queued: 1 })] },
            'clock.connectTimeout': { target: '#spec.reconnecting', actions: took('signaling.timeout') },
          },
        },
        connected: {
          on: {
            'signal.send': { actions: [took('connected.send'), 'sendNow'] },
            'user.announce': {
              actions: [took('connected.announce'), 'sendAnnounce', assign({ announced: true })],
            },
            heartbeat: {
              target: 'connected',
              reenter: true,
              actions: [took('connected.heartbeat'), 'echoHeartbeat'],
            },
            reconnect: {
              target: '#spec.reconnecting',
              actions: [took('connected.server reconnect'), assign({ serverWait: true })],
            },
            'peer-capability-update': forward('peer-capability-update'),
            'peers-discovered': forward('peers-discovered'),
            'peer-left': forward('peer-left'),
            offer: forward('offer'),
            answer: forward('answer'),
            'ice-candidate': forward('ice-candidate'),
            relay: forward('relay'),
            error: forward('error'),
            'clock.liveness': { target: '#spec.reconnecting', actions: took('connected.silent') },
          },
        },
      },
    },
    reconnecting: {
      initial: 'deciding',
      on: {
        'signal.send': { actions: [took('reconnecting.queue'), assign({ queued: 1 })] },
        'user.disconnect': {
          target: 'disconnected',
          actions: [took('reconnecting.disconnect'), assign({ queued: 0, resumable: false })],
        },
      },
      states: {
        deciding: {
          always: [
            { guard: not('retriesLeft'), target: '#spec.failed', actions: took('reconnecting.exhausted') },
            {
              target: 'waiting',
              actions: [
                took('reconnecting.wait'),
                assign({ attempt: ({ context }) => context.attempt + 1 }),
                'emitLost',
              ],
            },
          ],
        },
        waiting: {
          on: { 'clock.backoff': { target: '#spec.session', actions: took('reconnecting.backoff over') } },
        },
      },
    },
    failed: {
      on: {
        'user.retry': {
          target: 'session',
          actions: [took('failed.retry'), assign({ attempt: 0, serverWait: false })],
        },
        'user.connect': {
          target: 'session',
          actions: [took('failed.connect'), assign({ attempt: 0, serverWait: false })],
        },
        'user.disconnect': {
          target: 'disconnected',
          actions: [took('failed.disconnect'), assign({ queued: 0, resumable: false })],
        },
        'signal.send': { actions: [took('failed.queue'), assign({ queued: 1 })] },
      },
    },
  },
});

type SpecSnapshot = SnapshotFrom<typeof connectionSpec>;
type RealSnapshot = SnapshotFrom<typeof connectionMachine>;

const SPEC_EVENTS: SpecEvent[] = [
  { type: 'user.connect' },
  { type: 'user.disconnect' },
  { type: 'user.retry' },
  { type: 'user.announce' },
  { type: 'signal.send' },
  { type: 'peer-id', keptCapabilities: false },
  { type: 'peer-id', keptCapabilities: true },
  { type: 'heartbeat' },
  { type: 'reconnect' },
  { type: 'socket.closed', code: 1006 },
  ...TERMINAL.map((code) => ({ type: 'socket.closed' as const, code })),
  ...FORWARDED,
  { type: 'clock.connectTimeout' },
  { type: 'clock.liveness' },
  { type: 'clock.backoff' },
];

const takes = specTakes(connectionSpec);
const model = createTestModel(connectionSpec, {
  events: SPEC_EVENTS,
  filterEvents: (state, event) =>
    takes(state, event) &&
    // The outbox is bounded in the spec: one queued message shows the ordering and the flush.
    !(event.type === 'signal.send' && state.context.queued > 0) &&
    // A server only restores capabilities that were announced.
    !(event.type === 'peer-id' && event.keptCapabilities && !state.context.announced),
  serializeState: serializeVia(connectionSpec),
});
const paths = model.getShortestPaths();

const discover = (n: number): ClientMessage => ({
  type: 'discover',
  requirements: { needsAI: true, minQuota: 0, preferredModels: [] },
  requestId: `r-${n}`,
});

/** The real connection actor under a recording parent, its socket replaced by the fake. */
class ConnectionUnderTest {
  readonly sockets = new FakeSignalingSockets();
  readonly harness = runUnderParent(
    connectionMachine.provide({ actors: { websocket: this.sockets.logic } }),
    {
      WebSocket: UnusedWebSocket,
      maxAttempts: MAX_ATTEMPTS,
      baseDelayMs: BASE_DELAY,
      maxDelayMs: MAX_DELAY,
      connectTimeoutMs: CONNECT_TIMEOUT,
      random: () => RANDOM,
    },
  );
  readonly emitted: ConnectionEmitted[] = [];
  /** Messages sent while offline and not yet delivered, as the test sent them. */
  pending: ClientMessage[] = [];
  lastMessage: ClientMessage | undefined;
  lastToken: string | undefined;
  lastHeartbeat = 0;
  #count = 0;

  constructor() {
    this.harness.child.on('*', (event) => this.emitted.push(event));
  }

  get snapshot() {
    return this.harness.child.getSnapshot();
  }

  /** Plays one spec event against the real actor; time passes on the simulated clock only. */
  drive(event: SpecEvent, before: SpecSnapshot): void {
    const { child } = this.harness;
    const n = ++this.#count;
    switch (event.type) {
      case 'user.connect':
        child.send({ type: 'user.connect', url: 'wss://signal.test/' });
        break;
      case 'user.announce':
        child.send({ type: 'user.announce', capabilities: CAPABILITIES });
        break;
      case 'user.disconnect':
        this.pending = [];
        child.send({ type: event.type });
        break;
      case 'user.retry':
        child.send({ type: event.type });
        break;
      case 'signal.send':
        this.lastMessage = discover(n);
        if (!before.matches({ session: 'connected' })) this.pending.push(this.lastMessage);
        child.send({ type: 'signal.send', message: this.lastMessage });
        break;
      case 'peer-id':
        this.lastToken = `tok-${n}`;
        this.sockets.current.push(
          peerIdMessage({
            resumeToken: this.lastToken,
            resumed: before.context.resumable,
            heartbeatIntervalMs: HEARTBEAT_INTERVAL,
            ...(event.keptCapabilities ? { capabilities: CAPABILITIES } : {}),
          }),
        );
        break;
      case 'heartbeat':
        this.lastHeartbeat = n;
        this.sockets.current.push({ type: 'heartbeat', ts: n });
        break;
      case 'reconnect':
        this.sockets.current.push({ type: 'reconnect', reason: 'restart', retryAfterMs: RETRY_AFTER });
        break;
      case 'socket.closed':
        this.sockets.current.push({
          type: 'socket.closed',
          code: event.code,
          reason: `closed ${event.code}`,
        });
        break;
      case 'clock.connectTimeout':
        this.#passJustBefore(CONNECT_TIMEOUT, { session: 'signaling' });
        break;
      case 'clock.liveness':
        this.#passJustBefore(Math.ceil(HEARTBEAT_INTERVAL * 2.5), { session: 'connected' });
        break;
      case 'clock.backoff': {
        const jitter = Math.floor(RANDOM * Math.min(MAX_DELAY, BASE_DELAY * 2 ** before.context.attempt));
        const delay = Math.max(before.context.serverWait ? RETRY_AFTER : 0, jitter);
        this.#passJustBefore(delay, 'reconnecting');
        break;
      }
      default:
        this.sockets.current.push(event);
    }
  }

  /** Lets `ms` pass, checking that nothing happened a millisecond before. */
  #passJustBefore(ms: number, still: Parameters<RealSnapshot['matches']>[0]): void {
    const opened = this.sockets.sockets.length;
    this.harness.clock.increment(ms - 1);
    expect(this.snapshot.matches(still), `still ${JSON.stringify(still)} 1 ms before ${ms} ms`).toBe(true);
    expect(this.sockets.sockets).toHaveLength(opened);
    this.harness.clock.increment(1);
  }

  mark() {
    return {
      sockets: this.sockets.sockets.length,
      sent: this.sockets.sockets.at(-1)?.sent.length ?? 0,
      toParent: this.harness.toParent.length,
      emitted: this.emitted.length,
    };
  }
}

/** Checks what one step showed the server, the parent and listeners against the spec's actions. */
function checkStep(
  sut: ConnectionUnderTest,
  mark: ReturnType<ConnectionUnderTest['mark']>,
  before: SpecSnapshot,
  event: SpecEvent,
  after: SpecSnapshot,
): void {
  const actions = specActions(connectionSpec, before, event).map((action) => action.type);
  const has = (type: string) => actions.includes(type);
  const real = sut.snapshot;

  expect(real.value).toEqual(after.value);
  expect(real.context.attempt).toBe(after.context.attempt);
  expect(real.context.outbox).toHaveLength(after.context.queued);
  expect(real.context.resumeToken !== undefined).toBe(after.context.resumable);
  expect(real.context.capabilities !== undefined).toBe(after.context.announced);

  if (has('closeSocket')) expect(sut.sockets.sockets[mark.sockets - 1]?.stopped).toBe(true);
  expect(sut.sockets.sockets.length - mark.sockets, 'sockets opened').toBe(has('openSocket') ? 1 : 0);
  if (has('openSocket')) {
    const url = sut.sockets.current.url;
    expect(url.searchParams.get('v')).toBe('1');
    expect(url.searchParams.get('resume')).toBe(before.context.resumable ? (sut.lastToken ?? null) : null);
  }

  const expectedSent: ClientMessage[] = actions.flatMap((type): ClientMessage[] => {
    switch (type) {
      case 'sendAnnounce':
        return [{ type: 'capability-announce', capabilities: CAPABILITIES }];
      case 'flushOutbox':
        return sut.pending.splice(0);
      case 'echoHeartbeat':
        return [{ type: 'heartbeat', ts: sut.lastHeartbeat }];
      case 'sendNow':
        return [sut.lastMessage as ClientMessage];
      default:
        return [];
    }
  });
  const socket = sut.sockets.sockets.at(-1);
  const sentNow = socket ? socket.sent.slice(has('openSocket') ? 0 : mark.sent) : [];
  expect(sentNow, 'messages on the socket').toEqual(expectedSent);
  expect(sut.pending).toHaveLength(after.context.queued);

  expect(sut.harness.toParent.slice(mark.toParent), 'messages handed to the parent').toEqual(
    has('forward') ? [event] : [],
  );
  expect(
    sut.emitted.slice(mark.emitted).map((emitted) => emitted.type),
    'emitted',
  ).toEqual(
    actions
      .filter((type) => type === 'emitSession' || type === 'emitLost')
      .map((type) => (type === 'emitSession' ? 'connection.session' : 'connection.lost')),
  );
  expect(sut.harness.errors).toEqual([]);
}

function describeEvent(event: SpecEvent): string {
  switch (event.type) {
    case 'peer-id':
      return event.keptCapabilities ? 'peer-id(with capabilities)' : 'peer-id';
    case 'socket.closed':
      return `closed(${event.code})`;
    default:
      return event.type;
  }
}

function scenario(path: TestPath<SpecSnapshot, SpecEvent>): string {
  const events = path.steps.slice(1).map((step) => describeEvent(step.event));
  return `${events.join(' → ')} ⇒ ${JSON.stringify(path.state.value).replace(/"/g, '')}`;
}

describe('connection actor against its spec', () => {
  let sut: ConnectionUnderTest | undefined;
  afterEach(() => {
    sut?.harness.stop();
    sut = undefined;
  });

  it('generated paths reach every state and transition of the spec', () => {
    const coverage = specCoverage('connection', connectionSpec, paths);
    console.log(coverage.line);
    expect(coverage.missingStates).toEqual([]);
    expect(coverage.missingTransitions).toEqual([]);
  });

  for (const path of paths) {
    it(scenario(path), async () => {
      const harness = new ConnectionUnderTest();
      sut = harness;
      let before = path.steps[0]!.state;
      const step = ({ event, state }: { event: SpecEvent; state: SpecSnapshot }) => {
        const mark = harness.mark();
        harness.drive(event, before);
        checkStep(harness, mark, before, event, state);
        before = state;
      };
      await path.test({
        events: Object.fromEntries(SPEC_EVENTS.map((event) => [event.type, step])),
        states: {
          disconnected: () => {
            expect(harness.snapshot.tags.size).toBe(0);
            expect(harness.sockets.sockets.every((socket) => socket.stopped)).toBe(true);
          },
          session: () => expect(harness.sockets.current.stopped).toBe(false),
          'session.signaling': () => {
            expect(harness.snapshot.hasTag('busy')).toBe(true);
            expect(harness.snapshot.hasTag('online')).toBe(false);
          },
          'session.connected': () => {
            expect(harness.snapshot.hasTag('online')).toBe(true);
            expect(harness.snapshot.context.peerId).toBe('me');
            expect(harness.snapshot.context.resumeToken).toBe(harness.lastToken);
          },
          reconnecting: () => {
            expect(harness.snapshot.hasTag('busy')).toBe(true);
            expect(harness.sockets.current.stopped).toBe(true);
          },
          failed: () => {
            expect(harness.snapshot.tags.size).toBe(0);
            const opened = harness.sockets.sockets.length;
            harness.harness.clock.increment(10 * 60_000);
            expect(harness.sockets.sockets).toHaveLength(opened);
            expect(harness.snapshot.value).toBe('failed');
          },
        },
      });
    });
  }
});
