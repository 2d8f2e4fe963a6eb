import { afterEach, describe, expect, it } from 'vitest';
import { type Actor, type AnyStateNode, createActor, SimulatedClock, type SnapshotFrom } from 'xstate';
import { createTestModel, type TestPath } from 'xstate/graph';
import {
  type Capabilities,
  type PeerIdAssigned,
  PROTOCOL_VERSION,
  type ServerMessage,
} from '../../protocol/index.ts';
import { SignalingMetrics } from '../../signaling/metrics.ts';
import { newPeerEntry, type PeerEntry, PeerRegistry } from '../../signaling/peer-registry.ts';
import { socketMachine } from '../../signaling/socket.machine.ts';
import { MemorySocketPort } from '../support/memory-socket-port.ts';
import { stateNodes, transitionId } from '../support/spec-graph.ts';
import { type Observation, POLICY, type SpecEvent, socketSpec } from './socket-spec.machine.ts';

type SpecSnapshot = SnapshotFrom<typeof socketSpec>;
type SocketSnapshot = SnapshotFrom<typeof socketMachine>;
type SpecTransition = ReturnType<typeof socketSpec.getTransitionData>[number];

const PEER = 'peer-a';
const TARGET = 'peer-b';
const ANNOUNCED: Capabilities = { hasAI: true, models: ['llama-3.1-8b'] };
const TARGET_CAPABILITIES: Capabilities = {
  hasAI: true,
  models: ['llama-3.1-8b'],
  quota: {
    totalQuota: 100,
    usedQuota: 10,
    availableQuota: 90,
    resetTime: 1_700_000_000_000,
    provider: 'local',
    capabilities: [],
  },
};

const ICE_SERVERS = [{ urls: 'stun:stun.example.org:3478' }];

/** One of each: the model picks the events a state can take. */
const SPEC_EVENTS: SpecEvent[] = [
  { type: 'socket.open', protocolVersion: PROTOCOL_VERSION + 1, resumedAnnounced: false },
  { type: 'socket.open', protocolVersion: PROTOCOL_VERSION, resumedAnnounced: true },
  { type: 'socket.open', protocolVersion: PROTOCOL_VERSION, resumedAnnounced: false },
  { type: 'capability-announce', capabilities: ANNOUNCED },
  {
    type: 'discover',
    requirements: { needsAI: true, minQuota: 0, preferredModels: ['llama-3.1-8b'] },
    requestId: 'req-1',
  },
  { type: 'offer', targetPeerId: TARGET, sdp: { type: 'offer', sdp: 'v=0 offer' } },
  { type: 'answer', targetPeerId: TARGET, sdp: { type: 'answer', sdp: 'v=0 answer' } },
  {
    type: 'ice-candidate',
    targetPeerId: TARGET,
    candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0' },
  },
  { type: 'relay', targetPeerId: TARGET, payload: { type: 'link-ping', ts: 42 } },
  { type: 'heartbeat', ts: 42 },
  { type: 'ice-servers-request' },
  { type: 'peer-lookup', peerId: 'nobody-here' },
  { type: 'leave' },
  {
    type: 'socket.invalid',
    code: 'invalid-message',
    message: '`sdp.sdp` in offer: Invalid type',
    inReplyTo: 'offer',
  },
  { type: 'socket.rateLimited', code: 'rate-limited', retryAfterMs: 10 },
  { type: 'socket.oversize', bytes: 70_000 },
  { type: 'socket.backpressure' },
  { type: 'socket.drain', bufferedAmount: POLICY.congestionLowWaterBytes / 2 },
  { type: 'socket.drain', bufferedAmount: POLICY.congestionLowWaterBytes * 5 },
  { type: 'socket.closed', code: 1000, reason: 'bye' },
  { type: 'socket.closed', code: 1006, reason: '' },
  { type: 'hub.shutdown', retryAfterMs: 500 },
  { type: 'hub.replaced' },
  { type: 'hub.terminate' },
  { type: 'clock.heartbeatInterval' },
  { type: 'clock.heartbeatTimeout' },
  { type: 'clock.congestionTimeout' },
  { type: 'clock.hangUpWait' },
  { type: 'clock.closingTimeout' },
];

const transitionsTaken = (before: SpecSnapshot, event: SpecEvent): SpecTransition[] =>
  socketSpec.getTransitionData(before, event);

/** `matches` takes a dotted path at runtime; its type only lists the spec's literal values. */
const pathOf = (node: AnyStateNode) => node.path.join('.') as Parameters<SpecSnapshot['matches']>[0];

/**
 * A vertex is the spec state (value and bounded context) together with the transitions that led
 * into it and the state they left. So every transition from every reachable configuration gets a
 * path, including those that keep the state (a reply, a counted violation).
 */
const serializeState = (state: SpecSnapshot, event: SpecEvent | undefined, before?: SpecSnapshot) =>
  JSON.stringify({
    value: state.value,
    context: state.context,
    from: before?.value,
    via: before && event ? transitionsTaken(before, event).map(transitionId).sort() : [],
  });

const model = createTestModel(socketSpec, {
  events: SPEC_EVENTS,
  // Only events the spec takes in that state: an ignored event would add nothing to check.
  filterEvents: (state, event) => transitionsTaken(state, event).length > 0,
  serializeState,
});
const paths = model.getShortestPaths();

function label(message: ServerMessage): string {
  if (message.type === 'error') return `error:${message.code}`;
  if (message.type === 'reconnect') return `reconnect:${message.retryAfterMs}`;
  return message.type;
}

function eventLabel(event: SpecEvent): string {
  switch (event.type) {
    case 'socket.open':
      if (event.protocolVersion !== PROTOCOL_VERSION) return `socket.open(v${event.protocolVersion})`;
      return event.resumedAnnounced ? 'socket.open(resumed, announced)' : 'socket.open';
    case 'socket.drain':
      return `socket.drain(${event.bufferedAmount} bytes buffered)`;
    case 'socket.closed':
      return `socket.closed(${event.code})`;
    default:
      return event.type;
  }
}

function scenario(path: TestPath<SpecSnapshot, SpecEvent>): string {
  const events = path.steps.slice(1).map((step) => eventLabel(step.event));
  const { ending } = path.state.context;
  const end = path.state.matches('closed')
    ? `closed (${ending?.departure}, ${ending?.code})`
    : path.state.matches('closing')
      ? `closing with ${ending?.code}`
      : JSON.stringify(path.state.value).replace(/"/g, '');
  return `${events.join(' → ')} ⇒ ${end}`;
}

const entry = (peerId: string, socketId: string): PeerEntry => ({ ...newPeerEntry(peerId), socketId });

/** The real socket actor on an in-memory port, with a second connected peer to route to. */
class SocketUnderTest {
  readonly clock = new SimulatedClock();
  readonly port = new MemorySocketPort();
  readonly targetPort = new MemorySocketPort();
  readonly registry = new PeerRegistry();
  readonly metrics = new SignalingMetrics();
  /** What `notifyAnnounced` would have told the hub. */
  readonly toldHub: Capabilities[] = [];
  readonly errors: unknown[] = [];
  actor: Actor<typeof socketMachine> | undefined;
  welcome: PeerIdAssigned | undefined;

  constructor() {
    const self = entry(PEER, 'socket-a');
    this.registry.add(self);
    this.registry.connect(self, 'socket-a', this.port);
    const target = entry(TARGET, 'socket-b');
    this.registry.add(target);
    this.registry.connect(target, 'socket-b', this.targetPort);
    this.registry.announce(target, TARGET_CAPABILITIES);
  }

  open(protocolVersion: number, resumedAnnounced: boolean): void {
    this.welcome = {
      type: 'peer-id',
      peerId: PEER,
      resumeToken: 'resume-token',
      resumed: resumedAnnounced,
      ...(resumedAnnounced ? { capabilities: ANNOUNCED } : {}),
      protocolVersion: PROTOCOL_VERSION,
      iceServers: [],
      heartbeatIntervalMs: POLICY.heartbeatIntervalMs,
      resumeGraceMs: 5_000,
    };
    const machine = socketMachine.provide({
      actions: {
        notifyAnnounced: ({ event }) => {
          if (event.type === 'capability-announce') this.toldHub.push(event.capabilities);
        },
      },
    });
    const welcome = this.welcome;
    this.actor = createActor(machine, {
      clock: this.clock,
      input: {
        socketId: 'socket-a',
        peerId: PEER,
        port: this.port,
        env: {
          registry: this.registry,
          metrics: this.metrics,
          policy: POLICY,
          welcome: (peerId, resumed) => {
            expect({ peerId, resumed }).toEqual({ peerId: PEER, resumed: resumedAnnounced });
            return welcome;
          },
          iceServers: () => ({ iceServers: ICE_SERVERS, expiresAt: 0 }),
          now: () => this.clock.now(),
        },
        protocolVersion,
        resumed: resumedAnnounced,
        announced: resumedAnnounced,
      },
    });
    this.actor.subscribe({ error: (error) => this.errors.push(error) });
    this.actor.start();
  }

  get snapshot() {
    if (!this.actor) throw new Error('the socket actor was never started');
    return this.actor.getSnapshot();
  }

  /** Plays one spec event against the real actor: time passes on the simulated clock only. */
  drive(event: SpecEvent): void {
    if (event.type === 'socket.open') {
      this.open(event.protocolVersion, event.resumedAnnounced);
      return;
    }
    const actor = this.actor;
    if (!actor) throw new Error(`${event.type} before the socket opened`);
    switch (event.type) {
      // Heartbeat time is paced by the hub's tick: time passes, then the hub ticks.
      case 'clock.heartbeatInterval':
        this.clock.increment(POLICY.heartbeatIntervalMs);
        actor.send({ type: 'hub.tick' });
        break;
      case 'clock.heartbeatTimeout':
        this.clock.increment(POLICY.heartbeatTimeoutMs);
        actor.send({ type: 'hub.tick' });
        break;
      case 'clock.congestionTimeout':
        this.clock.increment(POLICY.maxCongestedMs);
        break;
      case 'clock.hangUpWait':
        this.clock.increment(POLICY.hangUpWaitMs);
        break;
      case 'clock.closingTimeout':
        this.clock.increment(POLICY.closingTimeoutMs);
        break;
      case 'socket.backpressure':
        this.port.buffered = POLICY.congestionHighWaterBytes * 4;
        actor.send(event);
        break;
      case 'socket.drain':
        this.port.buffered = event.bufferedAmount;
        actor.send({ type: 'socket.drain' });
        break;
      default:
        // Every other event stands for a frame from the client: the transport stamps its arrival.
        if (!event.type.startsWith('hub.') && event.type !== 'socket.closed')
          this.port.heard(this.clock.now());
        actor.send(event);
    }
  }

  dispose(): void {
    this.actor?.stop();
    this.metrics.stop();
  }
}

/** Everything the outside world can see of the socket, to compare before and after one step. */
function observe(sut: SocketUnderTest) {
  return {
    sent: sut.port.sent.length,
    forwarded: sut.targetPort.sent.length,
    ends: sut.port.ends.length,
    terminations: sut.port.terminations,
    toldHub: sut.toldHub.length,
  };
}

const OBSERVATIONS: ReadonlySet<string> = new Set<Observation['type']>([
  'reply',
  'replyError',
  'tellReconnect',
  'forward',
  'notifyHub',
  'endSocket',
  'terminate',
]);
const SPEC_NODES = [...stateNodes(socketSpec.root)];

/** The spec's observable actions for one step: those of the transitions taken, then of the states entered. */
function observations(before: SpecSnapshot, event: SpecEvent, after: SpecSnapshot): Observation[] {
  const entered = SPEC_NODES.filter(
    (node) => node.entry.length > 0 && after.matches(pathOf(node)) && !before.matches(pathOf(node)),
  );
  const actions: unknown[] = [
    ...transitionsTaken(before, event).flatMap((transition) => transition.actions),
    ...entered.flatMap((node) => node.entry),
  ];
  return actions
    .map((action) => (typeof action === 'string' ? { type: action } : (action as { type: string })))
    .filter((action): action is Observation => OBSERVATIONS.has(action.type));
}

function expectedFrames(observed: Observation[], event: SpecEvent): string[] {
  return observed.flatMap((observation) => {
    switch (observation.type) {
      case 'reply':
        return observation.params.frames;
      case 'replyError':
        return 'code' in event ? [`error:${event.code}`] : ['error:?'];
      case 'tellReconnect':
        return event.type === 'hub.shutdown' ? [`reconnect:${event.retryAfterMs}`] : ['reconnect:?'];
      default:
        return [];
    }
  });
}

/** Checks what one step showed the client, its target peer and the hub against the spec. */
function checkStep(
  sut: SocketUnderTest,
  mark: ReturnType<typeof observe>,
  before: SpecSnapshot,
  event: SpecEvent,
  after: SpecSnapshot,
): void {
  const observed = observations(before, event, after);
  const has = (type: Observation['type']) => observed.some((observation) => observation.type === type);

  const sent = sut.port.sent.slice(mark.sent);
  expect(sent.map(label), 'frames the client received').toEqual(expectedFrames(observed, event));
  for (const message of sent) {
    if (message.type === 'heartbeat') expect(message.ts).toBe(sut.clock.now());
    if (message.type === 'peer-id') expect(message).toEqual(sut.welcome);
    if (message.type === 'peers-discovered') {
      expect(message.requestId).toBe('req-1');
      expect(message.peers.map((peer) => peer.peerId)).toEqual([TARGET]);
    }
    if (message.type === 'ice-servers') expect(message.iceServers).toEqual(ICE_SERVERS);
    if (message.type === 'error' && 'inReplyTo' in event) expect(message.inReplyTo).toBe(event.inReplyTo);
  }

  expect(sut.targetPort.sent.slice(mark.forwarded), 'frames forwarded to the target peer').toEqual(
    has('forward') ? [{ ...event, fromPeerId: PEER }] : [],
  );
  if (has('forward')) expect(sut.registry.get(PEER)?.contacts?.has(TARGET)).toBe(true);
  expect(sut.toldHub.slice(mark.toldHub), 'announcements passed to the hub').toEqual(
    has('notifyHub') && event.type === 'capability-announce' ? [event.capabilities] : [],
  );
  expect(
    sut.port.ends.slice(mark.ends).map((end) => end.code),
    'close frames',
  ).toEqual(has('endSocket') ? [after.context.ending?.code] : []);
  expect(sut.port.terminations - mark.terminations, 'connections dropped').toBe(has('terminate') ? 1 : 0);
  expect(sut.port.malformed).toEqual([]);
  expect(sut.errors).toEqual([]);
}

describe('socket actor against its spec', () => {
  let sut: SocketUnderTest | undefined;
  afterEach(() => {
    sut?.dispose();
    sut = undefined;
  });

  it('generated paths reach every state and transition of the spec', () => {
    const allStates = [...stateNodes(socketSpec.root)].filter((node) => node !== socketSpec.root);
    const allTransitions = allStates.flatMap((node) =>
      [...node.transitions.values()].flat().map(transitionId),
    );
    const reachedStates = new Set<string>();
    const takenTransitions = new Set<string>();
    for (const path of paths) {
      path.steps.forEach((step, index) => {
        for (const node of allStates) if (step.state.matches(pathOf(node))) reachedStates.add(node.id);
        const previous = path.steps[index - 1];
        if (previous)
          for (const t of transitionsTaken(previous.state, step.event)) takenTransitions.add(transitionId(t));
      });
    }
    const states = allStates.map((node) => node.id);
    console.log(
      `socket model: ${states.filter((id) => reachedStates.has(id)).length}/${states.length} states, ` +
        `${allTransitions.filter((id) => takenTransitions.has(id)).length}/${allTransitions.length} transitions ` +
        `covered by ${paths.length} paths`,
    );
    expect(states.filter((id) => !reachedStates.has(id))).toEqual([]);
    expect(allTransitions.filter((id) => !takenTransitions.has(id))).toEqual([]);
  });

  for (const path of paths) {
    it(scenario(path), async () => {
      const harness = new SocketUnderTest();
      sut = harness;
      // The spec state the next step starts from; steps[0] is always the initial state (`xstate.init`).
      let before = path.steps[0]!.state;
      const step = ({ event, state }: { event: SpecEvent; state: SpecSnapshot }) => {
        const mark = observe(harness);
        harness.drive(event);
        checkStep(harness, mark, before, event, state);
        before = state;
      };
      const matches = (value: Parameters<SocketSnapshot['matches']>[0]) => () =>
        expect(harness.snapshot.matches(value)).toBe(true);
      await path.test({
        events: Object.fromEntries(SPEC_EVENTS.map((event) => [event.type, step])),
        states: {
          open: () => {
            expect(harness.actor).toBeUndefined();
            expect(harness.port.sent).toEqual([]);
          },
          active: (state) => {
            expect(harness.snapshot.value).toEqual(state.value);
            expect(harness.snapshot.status).toBe('active');
            expect(harness.snapshot.hasTag('online')).toBe(true);
          },
          'active.requests.serving': matches({ active: { requests: 'serving' } }),
          'active.session.registered': matches({ active: { session: 'registered' } }),
          'active.session.announced': matches({ active: { session: 'announced' } }),
          'active.flow.flowing': () => {
            expect(harness.snapshot.matches({ active: { flow: 'flowing' } })).toBe(true);
            expect(harness.snapshot.hasTag('congested')).toBe(false);
          },
          'active.flow.congested': () => {
            expect(harness.snapshot.matches({ active: { flow: 'congested' } })).toBe(true);
            expect(harness.snapshot.hasTag('congested')).toBe(true);
          },
          'active.liveness.quiet': matches({ active: { liveness: 'quiet' } }),
          'active.liveness.awaitingBeat': matches({ active: { liveness: 'awaitingBeat' } }),
          draining: () => {
            expect(harness.snapshot.value).toBe('draining');
            expect(harness.snapshot.hasTag('online')).toBe(false);
            expect(harness.port.ends).toEqual([]);
          },
          closing: (state) => {
            expect(harness.snapshot.value).toBe('closing');
            expect(harness.snapshot.hasTag('online')).toBe(false);
            expect(harness.port.ends.map((end) => end.code)).toEqual([state.context.ending?.code]);
          },
          closed: (state) => {
            expect(harness.snapshot.status).toBe('done');
            expect(harness.snapshot.output).toEqual({
              socketId: 'socket-a',
              peerId: PEER,
              departure: state.context.ending?.departure,
              code: state.context.ending?.code,
            });
          },
        },
      });
    });
  }
});
