import { afterEach, describe, expect, it } from 'vitest';
import { type AnyStateNode, assign, type SnapshotFrom, setup, transition } from 'xstate';
import { createTestModel, type TestPath } from 'xstate/graph';
import type { RtcCommand } from '../../machines/actors/rtc-peer.actor.ts';
import type { LinkMessage } from '../../machines/link-framing.ts';
import type { LinkTransport } from '../../machines/peer-link.machine.ts';
import { LOCAL_PEER, type PeerLinkHarness, REMOTE_PEER, startPeerLink } from '../support/fake-rtc.ts';
import { stateNodes, transitionId } from '../support/spec-graph.ts';

const DIRECT_TIMEOUT_MS = 4_000;
const RESTART_TIMEOUT_MS = 3_000;
/** Far beyond any path's clock: pings and silence are the unit tests' business, not the model's. */
const PROBE_OFF_MS = 3_600_000;
const UNREACHABLE_REASON = 'unknown target peer-a';

/** Bounds that keep the spec's graph finite: enough to see order in a flush and a second restart. */
const MAX_QUEUED = 2;
const MAX_RESTARTS = 2;
/** Fresh connections the (initiating) link may start while connecting (its `maxConnectRetries`). */
const MAX_CONNECT_RETRIES = 1;

/**
 * What the spec is driven with: the RTC actor's reports, a relayed message from the remote peer,
 * time passing (the real machine's `after` timers, which a spec may not have) and the parent's commands.
 */
type SpecEvent =
  | { type: 'rtc.channelOpen' }
  | { type: 'rtc.channelClosed' }
  | { type: 'rtc.connectionState'; state: 'disconnected' | 'connected' | 'closed' }
  | { type: 'relay.message' }
  | { type: 'clock.directTimeout' }
  | { type: 'clock.restartTimeout' }
  | { type: 'link.send' }
  | { type: 'link.close' }
  | { type: 'link.unreachable' }
  | { type: 'link.busy' }
  | { type: 'link.idle' };

interface SpecContext {
  /** Messages held for a path that is not open yet. */
  queued: number;
  /** ICE restarts so far. */
  restarts: number;
  /** Fresh connections started while connecting, after an attempt ended without a channel. */
  connectRetries: number;
  /** Why the link closed, once it has. */
  ending: 'closed' | 'unreachable' | null;
  /** The parent said a task of ours is in flight over the link (the probe's tighter timing). */
  busy: boolean;
}

/**
 * The spec's actions name what the outside world observes; the spec does nothing with them. The
 * test reads them off the transitions taken and the states entered, and checks that the real link
 * did exactly that to its RTC actor and its parent.
 */
const OBSERVATIONS = [
  /** The outgoing message goes to the RTC actor as `rtc.send`. */
  'sendDirect',
  /** The outgoing message goes to the parent as a `link.signal` relay frame. */
  'sendRelayed',
  /** The incoming message reaches the parent as `link.message`. */
  'deliver',
  /** The parent hears `link.transport` with the path just entered (and it is emitted too). */
  'announce',
  /** Every held message goes to the RTC actor, in order. */
  'flushDirect',
  /** Every held message goes to the parent as a relay frame, in order. */
  'flushRelayed',
  /** The RTC actor is told `rtc.restart`. */
  'restartIce',
  /** The RTC actor is stopped and the parent gets the link's output. */
  'finish',
] as const;
type Observation = (typeof OBSERVATIONS)[number];

const observed = () => {};

/**
 * The intended behaviour of the link's path region, written without timers so it can be traversed,
 * and which probe timing (idle or busy) the parent's word has selected.
 */
const peerLinkSpec = setup({
  types: { context: {} as SpecContext, events: {} as SpecEvent },
  actions: {
    sendDirect: observed,
    sendRelayed: observed,
    deliver: observed,
    announce: observed,
    flushDirect: observed,
    flushRelayed: observed,
    restartIce: observed,
    finish: observed,
    /**
     * Nothing observable happens. (A transition with neither target nor actions is invisible to the
     * model's event picker, so the ignored events name this to be played and checked too.)
     */
    ignore: observed,
    queue: assign({ queued: ({ context }) => context.queued + 1 }),
    clearQueue: assign({ queued: 0 }),
    countRestart: assign({ restarts: ({ context }) => context.restarts + 1 }),
    countConnectRetry: assign({ connectRetries: ({ context }) => context.connectRetries + 1 }),
    end: assign((_, ending: 'closed' | 'unreachable') => ({ ending })),
    setBusy: assign((_, busy: boolean) => ({ busy })),
  },
  guards: {
    busy: ({ context }) => context.busy,
    broken: ({ event }) => event.type === 'rtc.connectionState' && event.state === 'disconnected',
    restored: ({ event }) => event.type === 'rtc.connectionState' && event.state === 'connected',
    /** The connection was closed under the link (libdatachannel refused the answer) and a retry is left. */
    attemptEnded: ({ context, event }) =>
      event.type === 'rtc.connectionState' &&
      event.state === 'closed' &&
      context.connectRetries < MAX_CONNECT_RETRIES,
  },
}).createMachine({
  id: 'spec',
  context: { queued: 0, restarts: 0, connectRetries: 0, ending: null, busy: false },
  initial: 'active',
  states: {
    active: {
      initial: 'connecting',
      on: {
        'relay.message': {
          description: 'Whichever path is open, a relayed message is delivered.',
          actions: 'deliver',
        },
        'link.close': { target: 'closed', actions: { type: 'end', params: 'closed' } },
        // Busy or idle only changes how often the probe pings and how soon it calls the peer silent:
        // nothing the path does, holds or sends changes with it.
        'link.busy': [
          { guard: 'busy', description: 'Already busy: nothing changes.', actions: 'ignore' },
          { actions: { type: 'setBusy', params: true } },
        ],
        'link.idle': [
          { guard: 'busy', actions: { type: 'setBusy', params: false } },
          { description: 'Already idle: nothing changes.', actions: 'ignore' },
        ],
        'link.unreachable': { target: 'closed', actions: { type: 'end', params: 'unreachable' } },
      },
      states: {
        connecting: {
          on: {
            'rtc.channelOpen': 'direct',
            'clock.directTimeout': 'relayed',
            'relay.message': {
              description: 'The remote already fell back to the relay: follow it, and deliver the message.',
              target: 'relayed',
              actions: 'deliver',
            },
            'link.send': { actions: 'queue' },
            'rtc.channelClosed': { description: 'No channel was open: nothing changes.', actions: 'ignore' },
            'rtc.connectionState': [
              {
                guard: 'attemptEnded',
                description: 'The attempt ended without a channel: start over on a fresh connection.',
                actions: ['countConnectRetry', 'restartIce'],
              },
              { description: 'Only an open data channel makes the path direct.', actions: 'ignore' },
            ],
          },
        },
        direct: {
          entry: ['announce', 'flushDirect', 'clearQueue'],
          on: {
            'link.send': { actions: 'sendDirect' },
            'rtc.channelClosed': 'restarting',
            'rtc.connectionState': [
              { guard: 'broken', target: 'restarting' },
              { description: 'Connected again while direct: nothing changes.', actions: 'ignore' },
            ],
            'rtc.channelOpen': { description: 'Already direct: nothing changes.', actions: 'ignore' },
          },
        },
        restarting: {
          entry: ['countRestart', 'restartIce'],
          on: {
            'rtc.channelOpen': 'direct',
            'rtc.connectionState': [
              { guard: 'restored', target: 'direct' },
              {
                description: 'Still broken: the restart goes on, and is not counted again.',
                actions: 'ignore',
              },
            ],
            'rtc.channelClosed': { description: 'Already restarting: not counted again.', actions: 'ignore' },
            'clock.restartTimeout': 'relayed',
            'relay.message': {
              description: 'The remote fell back to the relay: follow it, and deliver the message.',
              target: 'relayed',
              actions: 'deliver',
            },
            'link.send': { actions: 'queue' },
          },
        },
        relayed: {
          entry: ['announce', 'flushRelayed', 'clearQueue'],
          on: {
            'link.send': { actions: 'sendRelayed' },
            'rtc.channelOpen': 'direct',
            'rtc.channelClosed': {
              description: 'No channel was open: stays on the relay.',
              actions: 'ignore',
            },
            'rtc.connectionState': {
              description: 'Only an open data channel brings the direct path back.',
              actions: 'ignore',
            },
          },
        },
      },
    },
    closed: { type: 'final', entry: 'finish' },
  },
});

type SpecSnapshot = SnapshotFrom<typeof peerLinkSpec>;
type SpecTransition = ReturnType<typeof peerLinkSpec.getTransitionData>[number];

/** One of each: the model picks the events a state can take. */
const SPEC_EVENTS: SpecEvent[] = [
  { type: 'rtc.channelOpen' },
  { type: 'rtc.channelClosed' },
  { type: 'rtc.connectionState', state: 'disconnected' },
  { type: 'rtc.connectionState', state: 'connected' },
  { type: 'rtc.connectionState', state: 'closed' },
  { type: 'relay.message' },
  { type: 'clock.directTimeout' },
  { type: 'clock.restartTimeout' },
  { type: 'link.send' },
  { type: 'link.close' },
  { type: 'link.unreachable' },
  { type: 'link.busy' },
  { type: 'link.idle' },
];

const transitionsTaken = (before: SpecSnapshot, event: SpecEvent): SpecTransition[] =>
  peerLinkSpec.getTransitionData(before, event);

/** `matches` takes a dotted path at runtime; its type only lists the spec's literal values. */
const pathOf = (node: AnyStateNode) => node.path.join('.') as Parameters<SpecSnapshot['matches']>[0];

/**
 * A vertex is the spec state (value and bounded context) with the transitions that led into it and
 * the state (value and context) they left, so every transition from every reachable configuration
 * gets a path: a flush of two held messages is a different vertex from a flush of none.
 */
const serializeState = (state: SpecSnapshot, event: SpecEvent | undefined, before?: SpecSnapshot) =>
  JSON.stringify({
    value: state.value,
    context: state.context,
    from: before && { value: before.value, context: before.context },
    via: before && event ? transitionsTaken(before, event).map(transitionId).sort() : [],
  });

const model = createTestModel(peerLinkSpec, {
  events: SPEC_EVENTS,
  // Events the spec takes in that state, within the context bounds.
  filterEvents: (state, event) => {
    if (transitionsTaken(state, event).length === 0) return false;
    const [next] = transition(peerLinkSpec, state, event);
    return next.context.queued <= MAX_QUEUED && next.context.restarts <= MAX_RESTARTS;
  },
  serializeState,
});
const paths = model.getShortestPaths();

function eventLabel(event: SpecEvent): string {
  return event.type === 'rtc.connectionState' ? `rtc.connectionState(${event.state})` : event.type;
}

function scenario(path: TestPath<SpecSnapshot, SpecEvent>): string {
  const events = path.steps.slice(1).map((step) => eventLabel(step.event));
  const { value, context } = path.state;
  const end = value === 'closed' ? `closed (${context.ending})` : JSON.stringify(value).replace(/"/g, '');
  return `${events.join(' → ')} ⇒ ${end}`;
}

const SPEC_NODES = [...stateNodes(peerLinkSpec.root)];
const isObservation = (type: string): type is Observation =>
  (OBSERVATIONS as readonly string[]).includes(type);

/** The spec's observable actions for one step: those of the transitions taken, then of the states entered. */
function observations(before: SpecSnapshot, event: SpecEvent, after: SpecSnapshot): Observation[] {
  const entered = SPEC_NODES.filter(
    (node) => node.entry.length > 0 && after.matches(pathOf(node)) && !before.matches(pathOf(node)),
  );
  const actions: unknown[] = [
    ...transitionsTaken(before, event).flatMap((t) => t.actions),
    ...entered.flatMap((node) => node.entry),
  ];
  return actions
    .map((action) => (typeof action === 'string' ? action : (action as { type: string }).type))
    .filter(isObservation);
}

/** The real link (fake RTC actor, simulated clock, recording parent) and what the test handed it. */
class LinkUnderTest {
  readonly link: PeerLinkHarness = startPeerLink({
    directTimeoutMs: DIRECT_TIMEOUT_MS,
    restartTimeoutMs: RESTART_TIMEOUT_MS,
    maxConnectRetries: MAX_CONNECT_RETRIES,
    pingIntervalMs: PROBE_OFF_MS,
    silenceTimeoutMs: PROBE_OFF_MS,
    busyPingIntervalMs: PROBE_OFF_MS,
    busySilenceTimeoutMs: PROBE_OFF_MS,
  });
  /** Messages the link should be holding, oldest first. */
  held: LinkMessage[] = [];
  /** The last message handed to `link.send`, and the last one relayed in from the remote. */
  outgoing: LinkMessage | undefined;
  incoming: LinkMessage | undefined;
  #seq = 0;

  /** Plays one spec event against the real actor: time passes on the simulated clock only. */
  drive(event: SpecEvent): void {
    const { link } = this;
    switch (event.type) {
      case 'rtc.channelOpen':
      case 'rtc.channelClosed':
      case 'rtc.connectionState':
        link.rtc.current.push(event);
        break;
      case 'relay.message':
        // As the root hands it over: the signaling server's `relay` frame from the remote peer.
        this.incoming = { type: 'task-cancel', taskId: `in-${this.#seq++}` };
        link.send({
          type: 'relay',
          fromPeerId: REMOTE_PEER,
          targetPeerId: LOCAL_PEER,
          payload: this.incoming,
        });
        break;
      case 'clock.directTimeout':
        this.#expire(DIRECT_TIMEOUT_MS, 'connecting');
        break;
      case 'clock.restartTimeout':
        this.#expire(RESTART_TIMEOUT_MS, 'restarting');
        break;
      case 'link.send':
        this.outgoing = { type: 'task-cancel', taskId: `out-${this.#seq++}` };
        link.send({ type: 'link.send', message: this.outgoing });
        break;
      case 'link.close':
        link.send({ type: 'link.close' });
        break;
      case 'link.unreachable':
        link.send({ type: 'link.unreachable', reason: UNREACHABLE_REASON });
        break;
      case 'link.busy':
      case 'link.idle':
        link.send({ type: event.type });
        break;
    }
  }

  /** The timer armed on entering `state` runs out: not a millisecond early. */
  #expire(ms: number, state: 'connecting' | 'restarting'): void {
    this.link.clock.increment(ms - 1);
    expect(this.link.snapshot.matches({ active: { path: state } }), `still ${state} 1 ms early`).toBe(true);
    this.link.clock.increment(1);
  }
}

/** Everything the outside world can see of the link, to compare before and after one step. */
function observe(sut: LinkUnderTest) {
  return {
    commands: sut.link.rtc.current.commands.length,
    toParent: sut.link.toParent.length,
    emitted: sut.link.emitted.length,
  };
}

/** Checks what one step showed the RTC actor and the parent against the spec. */
function checkStep(
  sut: LinkUnderTest,
  mark: ReturnType<typeof observe>,
  before: SpecSnapshot,
  event: SpecEvent,
  after: SpecSnapshot,
): void {
  const { link } = sut;
  const observed = observations(before, event, after);
  const entered = (['direct', 'relayed'] as const).find((path) => after.matches({ active: path }));
  const outgoing = () => {
    if (!sut.outgoing) throw new Error('no message was sent');
    return sut.outgoing;
  };
  expect(sut.held, 'messages the test expects the link to hold').toHaveLength(before.context.queued);

  const commands: RtcCommand[] = [];
  const transports: LinkTransport[] = [];
  const relayed: LinkMessage[] = [];
  const delivered: LinkMessage[] = [];
  for (const observation of observed) {
    switch (observation) {
      case 'sendDirect':
        commands.push({ type: 'rtc.send', message: outgoing() });
        break;
      case 'flushDirect':
        commands.push(...sut.held.map((message) => ({ type: 'rtc.send' as const, message })));
        break;
      case 'restartIce':
        commands.push({ type: 'rtc.restart' });
        break;
      case 'announce':
        if (!entered) throw new Error('the spec announced a path it is not on');
        transports.push(entered);
        break;
      case 'sendRelayed':
        relayed.push(outgoing());
        break;
      case 'flushRelayed':
        relayed.push(...sut.held);
        break;
      case 'deliver':
        if (!sut.incoming) throw new Error('nothing was relayed in');
        delivered.push(sut.incoming);
        break;
      case 'finish':
        break;
    }
  }
  if (event.type === 'link.send' && after.context.queued > before.context.queued) sut.held.push(outgoing());
  if (after.context.queued === 0) sut.held = [];

  expect(link.rtc.current.commands.slice(mark.commands), 'commands to the RTC actor').toEqual(commands);
  const toParent = link.toParent.slice(mark.toParent);
  expect(
    toParent.flatMap((e) => (e.type === 'link.transport' ? [e.transport] : [])),
    'link.transport to the parent',
  ).toEqual(transports);
  expect(
    link.emitted.slice(mark.emitted).map((e) => e.transport),
    'link.transport emitted',
  ).toEqual(transports);
  expect(
    toParent.flatMap((e) => (e.type === 'link.signal' ? [e.message] : [])),
    'relay frames to the remote',
  ).toEqual(relayed.map((payload) => ({ type: 'relay', targetPeerId: REMOTE_PEER, payload })));
  expect(
    toParent.flatMap((e) => (e.type === 'link.message' ? [e.message] : [])),
    'messages delivered to the parent',
  ).toEqual(delivered);
  expect(
    toParent.filter((e) => 'peerId' in e && e.peerId !== REMOTE_PEER),
    'events about another peer',
  ).toEqual([]);
  expect(
    toParent.filter((e) => !['link.transport', 'link.signal', 'link.message'].includes(e.type)),
    'nothing else to the parent',
  ).toEqual([]);
  expect(link.rtc.current.stopped, 'RTC actor stopped').toBe(observed.includes('finish'));
  expect(link.rtc.peers, 'one RTC actor for the whole life of the link').toHaveLength(1);
  expect(link.errors).toEqual([]);
}

describe('peer link actor against its spec', () => {
  let sut: LinkUnderTest | undefined;
  afterEach(() => {
    sut?.link.stop();
    sut = undefined;
  });

  it('generated paths reach every state and transition of the spec', () => {
    const allStates = SPEC_NODES.filter((node) => node !== peerLinkSpec.root);
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
      `peer link model: ${states.filter((id) => reachedStates.has(id)).length}/${states.length} states, ` +
        `${allTransitions.filter((id) => takenTransitions.has(id)).length}/${allTransitions.length} transitions ` +
        `covered by ${paths.length} paths`,
    );
    expect(states.filter((id) => !reachedStates.has(id))).toEqual([]);
    expect(allTransitions.filter((id) => !takenTransitions.has(id))).toEqual([]);
  });

  for (const path of paths) {
    it(scenario(path), async () => {
      const harness = new LinkUnderTest();
      sut = harness;
      const { link } = harness;
      // The spec state the next step starts from; steps[0] is always the initial state (`xstate.init`).
      let before = path.steps[0]!.state;
      const step = ({ event, state }: { event: SpecEvent; state: SpecSnapshot }) => {
        const mark = observe(harness);
        harness.drive(event);
        checkStep(harness, mark, before, event, state);
        before = state;
      };
      const onPath = (value: 'connecting' | 'direct' | 'restarting' | 'relayed') => () =>
        expect(link.snapshot.matches({ active: { path: value } }), `real link ${value}`).toBe(true);
      await path.test({
        events: Object.fromEntries(SPEC_EVENTS.map((event) => [event.type, step])),
        states: {
          active: (state) => {
            expect(link.snapshot.status).toBe('active');
            expect(link.snapshot.context.restarts).toBe(state.context.restarts);
            expect(link.snapshot.context.connectRetries).toBe(state.context.connectRetries);
            expect(
              link.snapshot.matches({ active: { probe: state.context.busy ? 'busy' : 'idle' } }),
              'probe timing',
            ).toBe(true);
            expect(link.snapshot.context.outbox).toEqual(harness.held);
            expect(harness.held).toHaveLength(state.context.queued);
          },
          'active.connecting': () => {
            onPath('connecting')();
            expect(link.snapshot.hasTag('connecting')).toBe(true);
            expect(link.snapshot.context.transport).toBe('none');
          },
          'active.direct': () => {
            onPath('direct')();
            expect(link.snapshot.hasTag('direct')).toBe(true);
            expect(link.snapshot.context.transport).toBe('direct');
          },
          'active.restarting': () => {
            onPath('restarting')();
            expect(link.snapshot.hasTag('connecting')).toBe(true);
          },
          'active.relayed': () => {
            onPath('relayed')();
            expect(link.snapshot.hasTag('relayed')).toBe(true);
            expect(link.snapshot.context.transport).toBe('relayed');
          },
          closed: (state) => {
            expect(link.snapshot.status).toBe('done');
            expect(link.snapshot.value).toBe('closed');
            expect(link.done).toEqual({
              output: {
                peerId: REMOTE_PEER,
                error: state.context.ending === 'unreachable' ? UNREACHABLE_REASON : undefined,
              },
            });
          },
        },
      });
    });
  }
});
