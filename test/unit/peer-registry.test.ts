import { describe, expect, it } from 'vitest';
import { type Capabilities, type DiscoveryRequirements, MAX_DISCOVERED_PEERS } from '../../protocol/index.ts';
import { newPeerEntry, type PeerEntry, PeerRegistry } from '../../signaling/peer-registry.ts';
import { MemorySocketPort } from '../support/memory-socket-port.ts';

const T0 = 1_767_225_600_000;
const anyAI: DiscoveryRequirements = { needsAI: true, minQuota: 0, preferredModels: [] };

const entry = (peerId: string): PeerEntry => newPeerEntry(peerId);
const offering = (availableQuota: number, tokensPerSecond?: number): Capabilities => ({
  hasAI: true,
  models: ['llama-3.1-8b'],
  quota: {
    totalQuota: 1000,
    usedQuota: 1000 - availableQuota,
    availableQuota,
    resetTime: T0,
    provider: 'ollama',
    capabilities: [],
  },
  ...(tokensPerSecond === undefined ? {} : { performance: { tokensPerSecond } }),
});

/** A registry and helpers to put peers in it the way the hub does. */
function registryWith() {
  const registry = new PeerRegistry();
  let sockets = 0;
  const connect = (peerId: string) => {
    const peer = registry.get(peerId) ?? entry(peerId);
    if (!registry.get(peerId)) registry.add(peer);
    registry.connect(peer, `socket-${++sockets}`, new MemorySocketPort());
    return peer;
  };
  const announce = (peerId: string, capabilities: Capabilities) => {
    const peer = connect(peerId);
    registry.announce(peer, capabilities);
    return peer;
  };
  return { registry, connect, announce };
}

describe('discover', () => {
  it('ranks the announced peers best first, with their capabilities and score', () => {
    const { registry, announce } = registryWith();
    announce('poor', offering(10));
    announce('rich', offering(90));
    announce('middling', offering(40));
    // 40·q/(q+10) + 30 (no preference) + 10 (speed unknown) + 5 (trust unknown)
    expect(registry.discover(anyAI, 'someone-else')).toEqual([
      { peerId: 'rich', capabilities: offering(90), score: 81 },
      { peerId: 'middling', capabilities: offering(40), score: 77 },
      { peerId: 'poor', capabilities: offering(10), score: 65 },
    ]);
  });

  it('never returns the requester itself', () => {
    const { registry, announce } = registryWith();
    announce('me', offering(90));
    announce('you', offering(10));
    expect(registry.discover(anyAI, 'me').map((p) => p.peerId)).toEqual(['you']);
  });

  it('leaves out peers that never announced, that lost their socket, and that do not match', () => {
    const { registry, connect, announce } = registryWith();
    connect('silent');
    const dropped = announce('dropped', offering(90));
    registry.disconnect(dropped, T0 + 5_000);
    announce('no-ai', { hasAI: false, models: [] });
    announce('ok', offering(50));
    expect(registry.discover(anyAI, 'requester').map((p) => p.peerId)).toEqual(['ok']);
  });

  it('brings a peer back once it resumes on a new socket', () => {
    const { registry, announce } = registryWith();
    const peer = announce('flaky', offering(50));
    registry.disconnect(peer, T0 + 5_000);
    expect(registry.discover(anyAI, 'requester')).toEqual([]);
    registry.connect(peer, 'socket-again', new MemorySocketPort());
    expect(peer.graceUntil).toBe(0);
    expect(registry.discover(anyAI, 'requester').map((p) => p.peerId)).toEqual(['flaky']);
  });

  it('returns at most `limit` peers, the best ones', () => {
    const { registry, announce } = registryWith();
    for (const [peerId, quota] of [
      ['q20', 20],
      ['q80', 80],
      ['q5', 5],
      ['q60', 60],
      ['q40', 40],
    ] as const) {
      announce(peerId, offering(quota));
    }
    expect(registry.discover({ ...anyAI, limit: 3 }, 'requester').map((p) => p.peerId)).toEqual([
      'q80',
      'q60',
      'q40',
    ]);
  });

  it(`returns no more than ${MAX_DISCOVERED_PEERS} peers without a limit: the best ${MAX_DISCOVERED_PEERS}, in order`, () => {
    const { registry, announce } = registryWith();
    // Quotas 1..60 announced in a scrambled order; every score differs, so the order is the quotas'.
    for (let i = 0; i < 60; i++) {
      const quota = ((i * 37) % 60) + 1;
      announce(`q${quota}`, offering(quota));
    }
    const found = registry.discover(anyAI, 'requester');
    expect(found.map((p) => p.peerId)).toEqual(Array.from({ length: 50 }, (_, i) => `q${60 - i}`));
  });

  it('breaks score ties by throughput, then by peer id', () => {
    const { registry, announce } = registryWith();
    announce('b-slow', offering(50, 10));
    announce('a-slow', offering(50, 10));
    announce('fast', offering(50, 90));
    announce('unknown-speed', offering(50));
    expect(registry.discover(anyAI, 'requester').map((p) => p.peerId)).toEqual([
      'fast',
      'a-slow',
      'b-slow',
      'unknown-speed',
    ]);
  });
});

describe('membership', () => {
  it('counts live and announced peers and finds the port of a live one', () => {
    const { registry, connect, announce } = registryWith();
    const a = announce('a', offering(10));
    connect('b');
    const c = connect('c');
    registry.disconnect(c, T0 + 1000);
    expect(registry.size).toBe(3);
    expect(registry.liveCount).toBe(2);
    expect(registry.announcedCount).toBe(1);
    expect([...registry.live()].map((e) => e.peerId)).toEqual(['a', 'b']);
    expect(registry.portOf('a')).toBe(a.port);
    expect(registry.portOf('c')).toBeUndefined();
    expect(registry.portOf('nobody')).toBeUndefined();
  });

  it('links two peers both ways, once', () => {
    const { registry, connect } = registryWith();
    const a = connect('a');
    const b = connect('b');
    registry.link(a, b);
    registry.link(b, a);
    expect([...(a.contacts ?? [])]).toEqual(['b']);
    expect([...(b.contacts ?? [])]).toEqual(['a']);
  });

  it('deleting a peer removes it from its contacts, from discovery and from the counts', () => {
    const { registry, announce, connect } = registryWith();
    const a = announce('a', offering(10));
    const b = connect('b');
    const c = connect('c');
    registry.link(a, b);
    registry.link(a, c);
    registry.link(b, c);
    expect(registry.delete('a')).toBe(a);
    expect(registry.get('a')).toBeUndefined();
    expect([...(b.contacts ?? [])]).toEqual(['c']);
    expect([...(c.contacts ?? [])]).toEqual(['b']);
    expect(registry.announcedCount).toBe(0);
    expect(registry.discover(anyAI, 'b')).toEqual([]);
    expect(registry.delete('a')).toBeUndefined();
  });
});

describe('grace expiry', () => {
  it('yields the sessions whose grace ended at or before now, and never a live one', () => {
    const { registry, connect } = registryWith();
    connect('live');
    for (const [peerId, graceUntil] of [
      ['ended', T0 - 1],
      ['ends-now', T0],
      ['ends-later', T0 + 1],
    ] as const) {
      registry.disconnect(connect(peerId), graceUntil);
    }
    expect([...registry.expired(T0)].map((e) => e.peerId)).toEqual(['ended', 'ends-now']);
    expect([...registry.expired(T0 + 1)].map((e) => e.peerId)).toEqual(['ended', 'ends-now', 'ends-later']);
  });

  it('lets the hub delete every expired session while it walks a snapshot of them', () => {
    const { registry, connect } = registryWith();
    for (const peerId of ['x', 'y', 'z']) registry.disconnect(connect(peerId), T0);
    connect('live');
    for (const expired of [...registry.expired(T0)]) registry.delete(expired.peerId);
    expect(registry.size).toBe(1);
    expect([...registry.expired(T0 + 60_000)]).toEqual([]);
  });
});
