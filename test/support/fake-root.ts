import { type Actor, createActor } from 'xstate';
import type { connectionMachine } from '../../machines/connection.machine.ts';
import type { discoveryMachine } from '../../machines/discovery.machine.ts';
import { handoffMachine } from '../../machines/handoff.machine.ts';
import type { LinkMessage } from '../../machines/link-framing.ts';
import type { peerLinkMachine } from '../../machines/peer-link.machine.ts';
import type { Capabilities, DiscoveredPeer } from '../../protocol/index.ts';
import { UnusedWebSocket } from './client-fakes.ts';
import { FakeChildren } from './fake-children.ts';
import { UnusedRTCPeerConnection } from './fake-rtc.ts';

/*
 * The client's real root actor (and real task actors) with fake connection, discovery and peer
 * links, for browser tests that need exact control: the test speaks for the peers (their task
 * messages arrive as the links would deliver them) and sets what the links' snapshots show.
 */

export const ME = 'peer-me';

export const demoPeer = (peerId: string, availableQuota = 10): DiscoveredPeer => ({
  peerId,
  capabilities: {
    hasAI: true,
    models: ['demo-1'],
    quota: {
      totalQuota: 10,
      usedQuota: 10 - availableQuota,
      availableQuota,
      resetTime: Date.now() + 3_600_000,
      provider: 'demo',
      capabilities: ['text'],
    },
  },
  score: 80,
});

export interface FakeRoot {
  actor: Actor<typeof handoffMachine>;
  fakes: FakeChildren;
  /** A task message from `peerId`, as its link delivers it. */
  deliver(peerId: string, message: LinkMessage): void;
  /** Sets what the link to `peerId` shows (transport, rttMs, samples …). */
  link(peerId: string, values: Record<string, unknown>): void;
}

export function startFakeRoot(peers: DiscoveredPeer[] = []): FakeRoot {
  const fakes = new FakeChildren();
  const known: Record<string, Capabilities> = Object.fromEntries(
    peers.map((peer) => [peer.peerId, peer.capabilities]),
  );
  const machine = handoffMachine.provide({
    actors: {
      connection: fakes.logic<typeof connectionMachine>('connection', () => ({ peerId: ME, iceServers: [] })),
      discovery: fakes.logic<typeof discoveryMachine>('discovery', () => ({
        ranked: peers,
        known,
        observations: {},
      })),
      peerLink: fakes.logic<typeof peerLinkMachine>('peerLink', () => ({
        transport: 'none',
        rttMs: undefined,
        samples: [],
      })),
    },
  });
  const actor = createActor(machine, {
    input: { environment: { WebSocket: UnusedWebSocket, RTCPeerConnection: UnusedRTCPeerConnection } },
  }).start();
  return {
    actor,
    fakes,
    deliver: (peerId, message) => actor.send({ type: 'link.message', peerId, message }),
    link: (peerId, values) => fakes.assign(`link-${peerId}`, values),
  };
}
