import { afterEach, describe, expect, it } from 'vitest';
import { type DiscoveryEmitted, discoveryMachine } from '../../machines/discovery.machine.ts';
import type { Capabilities, DiscoveredPeer, DiscoveryRequirements } from '../../protocol/index.ts';
import { aiPeer, NO_AI, type ParentHarness, runUnderParent } from '../support/client-fakes.ts';

const REQUIREMENTS: DiscoveryRequirements = {
  needsAI: true,
  minQuota: 1,
  preferredModels: ['m-large', 'm-small'],
};

/*
 * Scores by the formula documented in protocol/ranking.ts, worked out by hand
 * (K = max(minQuota, 10) = 10; trust 0.5 and speed 0.5 when unknown):
 *   A: quota 90/(90+10) = 0.9 → 36, first preferred model → 30, speed 0.5 → 10, trust 0.5 → 5  = 81
 *   B: quota 990/1000 = 0.99 → 39.6, last of two preferred → 0.5 → 15,
 *      latency 250 ms → 1/(1+1) = 0.5 → 10, trust → 5                                          = 69.6
 */
const A: Capabilities = aiPeer(['m-large'], { available: 90 });
const B: Capabilities = aiPeer(['m-small'], { available: 990, latency: 250 });
/** Has AI but none of the preferred models: model match 0; quota unmetered → 40; speed 10; trust 5 = 55. */
const C: Capabilities = aiPeer(['m-other']);

const peer = (peerId: string, capabilities: Capabilities, score = 50): DiscoveredPeer => ({
  peerId,
  capabilities,
  score,
});

let h: ParentHarness<typeof discoveryMachine> | undefined;
afterEach(() => {
  h?.stop();
  h = undefined;
});

function startDiscovery(timeoutMs = 2_000) {
  const harness = runUnderParent(discoveryMachine, { timeoutMs }, { withConnection: true });
  h = harness;
  const found: DiscoveryEmitted[] = [];
  harness.child.on('discovery.peerFound', (event) => found.push(event));
  const snapshot = () => harness.child.getSnapshot();
  /** The requestIds of every `discover` the connection was asked to send. */
  const requestIds = () =>
    harness.toConnection.map(
      (event) => (event as unknown as { message: { requestId?: string } }).message.requestId,
    );
  const ranking = () => snapshot().context.ranked.map((ranked) => [ranked.peerId, ranked.score]);
  return { ...harness, found, snapshot, requestIds, ranking };
}

describe('discovery machine', () => {
  it('asks the connection to send discover with the requirements and a fresh requestId', () => {
    const d = startDiscovery();
    expect(d.snapshot().value).toBe('idle');
    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    expect(d.snapshot().value).toBe('discovering');
    expect(d.snapshot().hasTag('busy')).toBe(true);
    expect(d.toConnection).toEqual([
      {
        type: 'signal.send',
        message: { type: 'discover', requirements: REQUIREMENTS, requestId: expect.any(String) },
      },
    ]);
    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    const [first, second] = d.requestIds();
    expect(first).toBeTruthy();
    expect(second).toBeTruthy();
    expect(second).not.toBe(first);
  });

  it('is ready with a peer when the answer lists one that meets the requirements', () => {
    const d = startDiscovery();
    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    d.child.send({ type: 'peers-discovered', peers: [peer('a', A)], requestId: d.requestIds()[0] });
    expect(d.snapshot().value).toEqual({ ready: 'peerFound' });
    expect(d.snapshot().hasTag('busy')).toBe(false);
    // The server's score (50) is replaced by the client's own.
    expect(d.ranking()).toEqual([['a', 81]]);
    expect(d.found.map((event) => event.peer.peerId)).toEqual(['a']);
  });

  it('is ready with no peers when nobody in the answer meets the requirements', () => {
    const d = startDiscovery();
    d.child.send({ type: 'user.discover', requirements: { ...REQUIREMENTS, requireModel: true } });
    d.child.send({
      type: 'peers-discovered',
      peers: [peer('c', C), peer('n', NO_AI)],
      requestId: d.requestIds()[0],
    });
    expect(d.snapshot().value).toEqual({ ready: 'noPeers' });
    expect(d.snapshot().context.ranked).toEqual([]);
    expect(d.found).toEqual([]);
  });

  it('is ready with no peers on an empty answer', () => {
    const d = startDiscovery();
    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    d.child.send({ type: 'peers-discovered', peers: [], requestId: d.requestIds()[0] });
    expect(d.snapshot().value).toEqual({ ready: 'noPeers' });
  });

  it('ignores the answer to an older request and waits for the current one', () => {
    const d = startDiscovery();
    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    const [older, current] = d.requestIds();
    d.child.send({ type: 'peers-discovered', peers: [peer('a', A)], requestId: older });
    expect(d.snapshot().value).toBe('discovering');
    expect(d.snapshot().context.ranked).toEqual([]);
    d.child.send({ type: 'peers-discovered', peers: [peer('b', B)], requestId: current });
    expect(d.snapshot().value).toEqual({ ready: 'peerFound' });
    expect(d.ranking()).toEqual([['b', 69.6]]);
  });

  it('fails when the server does not answer within the timeout, and can be asked again', () => {
    const d = startDiscovery(2_000);
    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    d.clock.increment(1_999);
    expect(d.snapshot().value).toBe('discovering');
    d.clock.increment(1);
    expect(d.snapshot().value).toBe('failed');
    expect(d.snapshot().context.error).toBe('the signaling server did not answer discover');

    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    expect(d.snapshot().value).toBe('discovering');
    expect(d.snapshot().context.error).toBeUndefined();
    expect(d.toConnection).toHaveLength(2);
  });

  it('fails with the message when discovery is reported failed', () => {
    const d = startDiscovery();
    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    d.child.send({ type: 'discover.failed', message: 'not connected' });
    expect(d.snapshot().value).toBe('failed');
    expect(d.snapshot().context.error).toBe('not connected');
  });

  it('adds and re-ranks peers from capability updates while ready', () => {
    const d = startDiscovery();
    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    d.child.send({ type: 'peers-discovered', peers: [], requestId: d.requestIds()[0] });
    expect(d.snapshot().value).toEqual({ ready: 'noPeers' });

    d.child.send({ type: 'peer-capability-update', peerId: 'b', capabilities: B });
    expect(d.snapshot().value).toEqual({ ready: 'peerFound' });
    d.child.send({ type: 'peer-capability-update', peerId: 'a', capabilities: A });
    expect(d.ranking()).toEqual([
      ['a', 81],
      ['b', 69.6],
    ]);

    // A's quota runs low: 5/(5+10) → 40/3 = 13.33; 13.33 + 30 + 10 + 5 = 58.33 (still ≥ minQuota 1).
    d.child.send({
      type: 'peer-capability-update',
      peerId: 'a',
      capabilities: aiPeer(['m-large'], { available: 5 }),
    });
    expect(d.ranking()).toEqual([
      ['b', 69.6],
      ['a', 58.33],
    ]);
    // A peer that no longer meets the requirements leaves the list.
    d.child.send({ type: 'peer-capability-update', peerId: 'a', capabilities: NO_AI });
    expect(d.ranking()).toEqual([['b', 69.6]]);
  });

  it('drops a peer that left, and has no peers once the last one is gone', () => {
    const d = startDiscovery();
    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    d.child.send({
      type: 'peers-discovered',
      peers: [peer('a', A), peer('b', B)],
      requestId: d.requestIds()[0],
    });
    d.child.send({ type: 'peer-left', peerId: 'a', reason: 'left' });
    expect(d.ranking()).toEqual([['b', 69.6]]);
    expect(d.snapshot().context.known).not.toHaveProperty('a');
    d.child.send({ type: 'peer-left', peerId: 'b', reason: 'timeout' });
    expect(d.snapshot().value).toEqual({ ready: 'noPeers' });
  });

  it('re-ranks with the RTT it measured and the trust it earned, as the documented formula predicts', () => {
    const d = startDiscovery();
    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    d.child.send({
      type: 'peers-discovered',
      peers: [peer('b', B), peer('a', A)],
      requestId: d.requestIds()[0],
    });
    expect(d.ranking()).toEqual([
      ['a', 81],
      ['b', 69.6],
    ]);
    // A measured 750 ms: speed 1/(1+3) = 0.25 → 5, so A = 36 + 30 + 5 + 5 = 76.
    // B measured 0 ms (it overrides B's own 250 ms latency): speed 1 → 20, so B = 79.6.
    d.child.send({ type: 'link.rtt', peerId: 'a', rttMs: 750 });
    expect(d.ranking()).toEqual([
      ['a', 76],
      ['b', 69.6],
    ]);
    d.child.send({ type: 'link.rtt', peerId: 'b', rttMs: 0 });
    expect(d.ranking()).toEqual([
      ['b', 79.6],
      ['a', 76],
    ]);
    // Full trust in A: 10 instead of 5 → 81; no trust in B: 0 instead of 5 → 74.6.
    d.child.send({ type: 'peer.trust', peerId: 'a', trust: 1 });
    d.child.send({ type: 'peer.trust', peerId: 'b', trust: 0 });
    expect(d.ranking()).toEqual([
      ['a', 81],
      ['b', 74.6],
    ]);
    // Trust is clamped to 0..1.
    d.child.send({ type: 'peer.trust', peerId: 'b', trust: 7 });
    expect(d.ranking()).toEqual([
      ['b', 84.6],
      ['a', 81],
    ]);
  });

  it('forgets what it measured about a peer that left', () => {
    const d = startDiscovery();
    d.child.send({ type: 'peer-capability-update', peerId: 'a', capabilities: A });
    d.child.send({ type: 'link.rtt', peerId: 'a', rttMs: 750 });
    expect(d.ranking()).toEqual([['a', 76]]);
    d.child.send({ type: 'peer-left', peerId: 'a', reason: 'closed' });
    expect(d.snapshot().context.observations).toEqual({});
    d.child.send({ type: 'peer-capability-update', peerId: 'a', capabilities: A });
    expect(d.ranking()).toEqual([['a', 81]]);
  });

  it('announces each peer once, when it first enters the ranked list', () => {
    const d = startDiscovery();
    // Updates fill the list even before anyone asked.
    d.child.send({ type: 'peer-capability-update', peerId: 'a', capabilities: A });
    expect(d.snapshot().value).toBe('idle');
    d.child.send({ type: 'peer-capability-update', peerId: 'a', capabilities: A });
    d.child.send({ type: 'link.rtt', peerId: 'a', rttMs: 20 });
    d.child.send({ type: 'peer-capability-update', peerId: 'c', capabilities: NO_AI });
    d.child.send({ type: 'user.discover', requirements: REQUIREMENTS });
    d.child.send({
      type: 'peers-discovered',
      peers: [peer('a', A), peer('b', B)],
      requestId: d.requestIds()[0],
    });
    expect(d.found.map((event) => event.peer.peerId)).toEqual(['a', 'b']);
    expect(d.found[1]?.peer).toEqual({ peerId: 'b', capabilities: B, score: 69.6 });

    d.child.send({ type: 'link.rtt', peerId: 'b', rttMs: 0 });
    d.child.send({ type: 'peer-left', peerId: 'a', reason: 'left' });
    d.child.send({ type: 'peer-capability-update', peerId: 'a', capabilities: A });
    expect(d.found.map((event) => event.peer.peerId)).toEqual(['a', 'b', 'a']);
  });
});
