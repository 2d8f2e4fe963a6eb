import { assign, enqueueActions, not, sendTo, setup } from 'xstate';
import {
  type Capabilities,
  compareRanked,
  type DiscoveredPeer,
  type DiscoveryRequirements,
  type PeerObservations,
  peerMatches,
  type ServerMessage,
  scorePeer,
} from '../protocol/index.ts';

export interface DiscoveryInput {
  /** How long to wait for `peers-discovered`. */
  timeoutMs?: number;
}

export interface DiscoveryContext {
  requirements: DiscoveryRequirements | undefined;
  /** What the server told us about each peer (kept live by updates and leaves). */
  known: Record<string, Capabilities>;
  /** What we measured ourselves. */
  observations: Record<string, PeerObservations>;
  /** Known peers meeting the requirements, best first, re-scored with our own RTT and trust. */
  ranked: DiscoveredPeer[];
  requestSeq: number;
  timeoutMs: number;
  error: string | undefined;
}

export type DiscoveryEvent =
  | Extract<ServerMessage, { type: 'peers-discovered' | 'peer-capability-update' | 'peer-left' }>
  | { type: 'user.discover'; requirements: DiscoveryRequirements }
  | { type: 'link.rtt'; peerId: string; rttMs: number }
  | { type: 'peer.trust'; peerId: string; trust: number }
  | { type: 'discover.failed'; message: string };

export type DiscoveryEmitted = { type: 'discovery.peerFound'; peer: DiscoveredPeer };

export const DEFAULT_REQUIREMENTS: DiscoveryRequirements = {
  needsAI: true,
  minQuota: 1,
  preferredModels: [],
};

function rank(context: Pick<DiscoveryContext, 'known' | 'observations' | 'requirements'>): DiscoveredPeer[] {
  const requirements = context.requirements ?? DEFAULT_REQUIREMENTS;
  const ranked: DiscoveredPeer[] = [];
  for (const [peerId, capabilities] of Object.entries(context.known)) {
    if (!peerMatches(capabilities, requirements)) continue;
    ranked.push({
      peerId,
      capabilities,
      score: scorePeer(capabilities, requirements, context.observations[peerId]),
    });
  }
  return ranked.sort(compareRanked);
}

const requestId = (seq: number) => `discover-${seq}`;

type Enqueue = { assign(values: Partial<DiscoveryContext>): void; emit(event: DiscoveryEmitted): void };

/** Re-ranks after a change and announces peers that just entered the ranked list. */
function update(
  enqueue: Enqueue,
  context: DiscoveryContext,
  change: Partial<Pick<DiscoveryContext, 'known' | 'observations'>>,
): void {
  const next = { ...context, ...change };
  const ranked = rank(next);
  enqueue.assign({ ...change, ranked });
  const before = new Set(context.ranked.map((peer) => peer.peerId));
  for (const peer of ranked)
    if (!before.has(peer.peerId)) enqueue.emit({ type: 'discovery.peerFound', peer });
}

export const discoveryMachine = setup({
  types: {
    input: {} as DiscoveryInput,
    context: {} as DiscoveryContext,
    events: {} as DiscoveryEvent,
    emitted: {} as DiscoveryEmitted,
    tags: {} as 'busy',
  },
  delays: { discoverTimeout: ({ context }) => context.timeoutMs },
  guards: {
    answersCurrentRequest: ({ context, event }) =>
      event.type === 'peers-discovered' &&
      (event.requestId === undefined || event.requestId === requestId(context.requestSeq)),
    hasPeers: ({ context }) => context.ranked.length > 0,
  },
  actions: {
    setRequirements: assign(({ context, event }) => {
      const requirements = event.type === 'user.discover' ? event.requirements : context.requirements;
      // Re-rank what we already know against the new requirements at once.
      return {
        requirements,
        requestSeq: context.requestSeq + 1,
        error: undefined,
        ranked: rank({ ...context, requirements }),
      };
    }),
    sendDiscover: sendTo(
      ({ system }) => system.get('connection'),
      ({ context }) => ({
        type: 'signal.send' as const,
        message: {
          type: 'discover' as const,
          requirements: context.requirements ?? DEFAULT_REQUIREMENTS,
          requestId: requestId(context.requestSeq),
        },
      }),
    ),
    takeResults: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'peers-discovered') return;
      const known = { ...context.known };
      for (const peer of event.peers) known[peer.peerId] = peer.capabilities;
      update(enqueue, context, { known });
    }),
    upsertPeer: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'peer-capability-update') return;
      update(enqueue, context, { known: { ...context.known, [event.peerId]: event.capabilities } });
    }),
    removePeer: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'peer-left') return;
      const { [event.peerId]: _gone, ...known } = context.known;
      const { [event.peerId]: _seen, ...observations } = context.observations;
      update(enqueue, context, { known, observations });
    }),
    observe: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'link.rtt' && event.type !== 'peer.trust') return;
      const seen = context.observations[event.peerId] ?? {};
      const next =
        event.type === 'link.rtt' ? { ...seen, rttMs: event.rttMs } : { ...seen, trust: event.trust };
      update(enqueue, context, { observations: { ...context.observations, [event.peerId]: next } });
    }),
    recordTimeout: assign({ error: 'the signaling server did not answer discover' }),
    recordFailure: assign({
      error: ({ event }) => (event.type === 'discover.failed' ? event.message : undefined),
    }),
  },
}).createMachine({
  id: 'discovery',
  description: 'Finds peers that can serve us and keeps the ranked list live.',
  context: ({ input }) => ({
    requirements: undefined,
    known: {},
    observations: {},
    ranked: [],
    requestSeq: 0,
    timeoutMs: input.timeoutMs ?? 5_000,
    error: undefined,
  }),
  initial: 'idle',
  on: {
    'peer-capability-update': { actions: 'upsertPeer' },
    'peer-left': { actions: 'removePeer' },
    'link.rtt': { actions: 'observe' },
    'peer.trust': { actions: 'observe' },
    'user.discover': { target: '.discovering', actions: 'setRequirements' },
  },
  states: {
    idle: { description: 'Nothing asked yet; updates still fill the list.' },
    discovering: {
      tags: 'busy',
      description: '`discover` sent; waiting for `peers-discovered`.',
      entry: 'sendDiscover',
      on: {
        'peers-discovered': { guard: 'answersCurrentRequest', target: 'ready', actions: 'takeResults' },
        'discover.failed': { target: 'failed', actions: 'recordFailure' },
      },
      after: { discoverTimeout: { target: 'failed', actions: 'recordTimeout' } },
    },
    ready: {
      description: 'Results in; the list stays live from capability updates and leaves.',
      initial: 'checking',
      states: {
        checking: { always: [{ guard: 'hasPeers', target: 'peerFound' }, { target: 'noPeers' }] },
        peerFound: { always: { guard: not('hasPeers'), target: 'noPeers' } },
        noPeers: { always: { guard: 'hasPeers', target: 'peerFound' } },
      },
    },
    failed: { description: 'No answer; discover again to retry.' },
  },
});
