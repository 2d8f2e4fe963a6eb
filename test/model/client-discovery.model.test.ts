import { afterEach, describe, expect, it } from 'vitest';
import { assign, not, type SnapshotFrom, setup } from 'xstate';
import { createTestModel, type TestPath } from 'xstate/graph';
import { type DiscoveryEmitted, discoveryMachine } from '../../machines/discovery.machine.ts';
import type { Capabilities, DiscoveryRequirements } from '../../protocol/index.ts';
import {
  aiPeer,
  observed,
  runUnderParent,
  serializeVia,
  specActions,
  specCoverage,
  specTakes,
  took,
} from '../support/client-fakes.ts';

const TIMEOUT = 2_000;
const REQUIREMENTS: DiscoveryRequirements = {
  needsAI: true,
  minQuota: 1,
  preferredModels: ['m-large', 'm-small'],
};
const CAPABILITIES: Record<PeerKey, Capabilities> = {
  a: aiPeer(['m-large'], { available: 90 }),
  b: aiPeer(['m-small'], { available: 990, latency: 250 }),
};

type PeerKey = 'a' | 'b';

type SpecEvent =
  | { type: 'user.discover' }
  | { type: 'peers-discovered'; peers: PeerKey[] }
  | { type: 'peers-discovered.stale' }
  | { type: 'discover.failed' }
  | { type: 'clock.discoverTimeout' }
  | { type: 'peer-capability-update'; peerId: PeerKey }
  | { type: 'peer-left'; peerId: PeerKey }
  | { type: 'link.rtt'; peerId: 'b'; rttMs: 0 }
  | { type: 'peer.trust'; peerId: 'a'; trust: 0 };

interface SpecContext {
  /** Requirements were given (before that, the defaults rank). */
  asked: boolean;
  a: boolean;
  b: boolean;
  /** We measured a 0 ms round trip to b. */
  rttB: boolean;
  /** We do not trust a at all. */
  distrustA: boolean;
}

/*
 * The ranking the spec expects, by protocol/ranking.ts's documented formula, worked out by hand.
 * With REQUIREMENTS (K = 10):
 *   a = 36 (quota 90/100) + 30 (first preferred model) + 10 (speed unknown) + 5 (trust unknown) = 81,
 *       76 with trust 0;
 *   b = 39.6 (quota 990/1000) + 15 (second of two models) + 10 (latency 250 ms) + 5 = 69.6,
 *       79.6 with a measured RTT of 0 ms.
 *   Only when both apply does b overtake a.
 * Before anyone asked, the default requirements hold (no preferred model: every model matches, 30):
 *   a = 81 (76 with trust 0); b = 39.6 + 30 + 10 + 5 = 84.6 (94.6 with RTT 0): b always leads.
 */
function expectedRanking(context: SpecContext): [string, number][] {
  const ranked: [string, number][] = [];
  if (context.a) ranked.push(['a', context.distrustA ? 76 : 81]);
  if (context.b) ranked.push(['b', (context.asked ? 69.6 : 84.6) + (context.rttB ? 10 : 0)]);
  return ranked.sort((x, y) => y[1] - x[1]);
}

/** The intended behaviour of discovery, without timers (time passing is an event). */
const discoverySpec = setup({
  types: { context: {} as SpecContext, events: {} as SpecEvent },
  actions: { took: observed, sendDiscover: observed },
  guards: { hasPeers: ({ context }) => context.a || context.b },
}).createMachine({
  id: 'spec',
  context: { asked: false, a: false, b: false, rttB: false, distrustA: false },
  initial: 'idle',
  on: {
    'user.discover': {
      target: '.discovering',
      actions: [took('anywhere.discover'), assign({ asked: true })],
    },
    'peer-capability-update': {
      actions: [
        took('anywhere.capability update'),
        assign(({ event }) => (event.type === 'peer-capability-update' ? { [event.peerId]: true } : {})),
      ],
    },
    'peer-left': {
      actions: [
        took('anywhere.peer left'),
        assign(({ event }) =>
          event.type !== 'peer-left'
            ? {}
            : event.peerId === 'a'
              ? { a: false, distrustA: false }
              : { b: false, rttB: false },
        ),
      ],
    },
    'link.rtt': { actions: [took('anywhere.rtt measured'), assign({ rttB: true })] },
    'peer.trust': { actions: [took('anywhere.trust earned'), assign({ distrustA: true })] },
  },
  states: {
    idle: {},
    discovering: {
      entry: 'sendDiscover',
      on: {
        'peers-discovered': {
          target: 'ready',
          actions: [
            took('discovering.answer'),
            assign(({ context, event }) =>
              event.type === 'peers-discovered'
                ? { a: context.a || event.peers.includes('a'), b: context.b || event.peers.includes('b') }
                : {},
            ),
          ],
        },
        'peers-discovered.stale': { actions: took('discovering.stale answer ignored') },
        'discover.failed': { target: 'failed', actions: took('discovering.failed') },
        'clock.discoverTimeout': { target: 'failed', actions: took('discovering.timeout') },
      },
    },
    ready: {
      initial: 'checking',
      states: {
        checking: {
          always: [
            { guard: 'hasPeers', target: 'peerFound', actions: took('ready.checking.found') },
            { target: 'noPeers', actions: took('ready.checking.none') },
          ],
        },
        peerFound: {
          always: { guard: not('hasPeers'), target: 'noPeers', actions: took('ready.peerFound.lost all') },
        },
        noPeers: { always: { guard: 'hasPeers', target: 'peerFound', actions: took('ready.noPeers.found') } },
      },
    },
    failed: {},
  },
});

type SpecSnapshot = SnapshotFrom<typeof discoverySpec>;

const SPEC_EVENTS: SpecEvent[] = [
  { type: 'user.discover' },
  { type: 'peers-discovered', peers: ['a', 'b'] },
  { type: 'peers-discovered', peers: [] },
  { type: 'peers-discovered.stale' },
  { type: 'discover.failed' },
  { type: 'clock.discoverTimeout' },
  { type: 'peer-capability-update', peerId: 'a' },
  { type: 'peer-capability-update', peerId: 'b' },
  { type: 'peer-left', peerId: 'a' },
  { type: 'peer-left', peerId: 'b' },
  { type: 'link.rtt', peerId: 'b', rttMs: 0 },
  { type: 'peer.trust', peerId: 'a', trust: 0 },
];

const takes = specTakes(discoverySpec);
const model = createTestModel(discoverySpec, {
  events: SPEC_EVENTS,
  filterEvents: (state, event) => takes(state, event),
  serializeState: serializeVia(discoverySpec),
});
const paths = model.getShortestPaths();

/** The real discovery actor under a parent that plays the `connection` actor. */
class DiscoveryUnderTest {
  readonly harness = runUnderParent(discoveryMachine, { timeoutMs: TIMEOUT }, { withConnection: true });
  readonly found: DiscoveryEmitted[] = [];

  constructor() {
    this.harness.child.on('discovery.peerFound', (event) => this.found.push(event));
  }

  get snapshot() {
    return this.harness.child.getSnapshot();
  }

  /** requestIds of the `discover` messages sent so far, oldest first. */
  get requestIds(): string[] {
    return this.harness.toConnection.map(
      (event) => (event as unknown as { message: { requestId: string } }).message.requestId,
    );
  }

  drive(event: SpecEvent): void {
    const { child, clock } = this.harness;
    switch (event.type) {
      case 'user.discover':
        child.send({ type: 'user.discover', requirements: REQUIREMENTS });
        break;
      case 'peers-discovered':
        child.send({
          type: 'peers-discovered',
          requestId: this.requestIds.at(-1),
          peers: event.peers.map((peerId) => ({ peerId, capabilities: CAPABILITIES[peerId], score: 50 })),
        });
        break;
      case 'peers-discovered.stale':
        child.send({
          type: 'peers-discovered',
          requestId: this.requestIds.at(-2) ?? 'discover-0',
          peers: [
            { peerId: 'a', capabilities: CAPABILITIES.a, score: 50 },
            { peerId: 'b', capabilities: CAPABILITIES.b, score: 50 },
          ],
        });
        break;
      case 'discover.failed':
        child.send({ type: 'discover.failed', message: 'not connected' });
        break;
      case 'clock.discoverTimeout':
        clock.increment(TIMEOUT - 1);
        expect(this.snapshot.value, `still discovering 1 ms before ${TIMEOUT} ms`).toBe('discovering');
        clock.increment(1);
        break;
      case 'peer-capability-update':
        child.send({
          type: 'peer-capability-update',
          peerId: event.peerId,
          capabilities: CAPABILITIES[event.peerId],
        });
        break;
      case 'peer-left':
        child.send({ type: 'peer-left', peerId: event.peerId, reason: 'left' });
        break;
      default:
        child.send(event);
    }
  }
}

function checkStep(
  sut: DiscoveryUnderTest,
  mark: { sent: number; found: number },
  before: SpecSnapshot,
  event: SpecEvent,
  after: SpecSnapshot,
): void {
  const actions = specActions(discoverySpec, before, event).map((action) => action.type);
  const real = sut.snapshot;
  expect(real.value).toEqual(after.value);
  expect(real.context.ranked.map((peer) => [peer.peerId, peer.score])).toEqual(
    expectedRanking(after.context),
  );

  const sent = sut.harness.toConnection.slice(mark.sent);
  if (actions.includes('sendDiscover')) {
    expect(sent).toEqual([
      {
        type: 'signal.send',
        message: { type: 'discover', requirements: REQUIREMENTS, requestId: expect.any(String) },
      },
    ]);
    expect(sut.requestIds.slice(0, -1)).not.toContain(sut.requestIds.at(-1));
  } else {
    expect(sent).toEqual([]);
  }

  const wasRanked = new Set(expectedRanking(before.context).map(([peerId]) => peerId));
  const entered = expectedRanking(after.context)
    .map(([peerId]) => peerId)
    .filter((peerId) => !wasRanked.has(peerId));
  expect(
    sut.found.slice(mark.found).map((emitted) => emitted.peer.peerId),
    'peers announced',
  ).toEqual(entered);
  expect(sut.harness.errors).toEqual([]);
}

function describeEvent(event: SpecEvent): string {
  switch (event.type) {
    case 'peers-discovered':
      return `peers-discovered[${event.peers.join(',')}]`;
    case 'peer-capability-update':
    case 'peer-left':
      return `${event.type}(${event.peerId})`;
    case 'link.rtt':
      return 'link.rtt(b, 0 ms)';
    case 'peer.trust':
      return 'peer.trust(a, 0)';
    default:
      return event.type;
  }
}

function scenario(path: TestPath<SpecSnapshot, SpecEvent>): string {
  const events = path.steps.slice(1).map((step) => describeEvent(step.event));
  return `${events.join(' → ')} ⇒ ${JSON.stringify(path.state.value).replace(/"/g, '')} ${JSON.stringify(
    expectedRanking(path.state.context).map(([peerId]) => peerId),
  )}`;
}

describe('discovery actor against its spec', () => {
  let sut: DiscoveryUnderTest | undefined;
  afterEach(() => {
    sut?.harness.stop();
    sut = undefined;
  });

  it('generated paths reach every state and transition of the spec', () => {
    const coverage = specCoverage('discovery', discoverySpec, paths);
    console.log(coverage.line);
    expect(coverage.missingStates).toEqual([]);
    expect(coverage.missingTransitions).toEqual([]);
  });

  for (const path of paths) {
    it(scenario(path), async () => {
      const harness = new DiscoveryUnderTest();
      sut = harness;
      let before = path.steps[0]!.state;
      const step = ({ event, state }: { event: SpecEvent; state: SpecSnapshot }) => {
        const mark = { sent: harness.harness.toConnection.length, found: harness.found.length };
        harness.drive(event);
        checkStep(harness, mark, before, event, state);
        before = state;
      };
      await path.test({
        events: Object.fromEntries(SPEC_EVENTS.map((event) => [event.type, step])),
        states: {
          idle: () => expect(harness.snapshot.hasTag('busy')).toBe(false),
          discovering: () => expect(harness.snapshot.hasTag('busy')).toBe(true),
          'ready.peerFound': () => expect(harness.snapshot.context.ranked.length).toBeGreaterThan(0),
          'ready.noPeers': () => expect(harness.snapshot.context.ranked).toEqual([]),
          failed: () => {
            expect(harness.snapshot.hasTag('busy')).toBe(false);
            expect(harness.snapshot.context.error).toBeTruthy();
          },
        },
      });
    });
  }
});
