import { describe, expect, it } from 'vitest';
import {
  availableQuota,
  type Capabilities,
  compareRanked,
  type DiscoveryRequirements,
  peerMatches,
  scorePeer,
} from '../../protocol/index.ts';

const quota = (availableQuota: number) => ({
  totalQuota: 1000,
  usedQuota: 1000 - availableQuota,
  availableQuota,
  resetTime: 1_767_225_600_000,
  provider: 'ollama',
  capabilities: [],
});
const needs = (patch: Partial<DiscoveryRequirements> = {}): DiscoveryRequirements => ({
  needsAI: true,
  minQuota: 0,
  preferredModels: [],
  ...patch,
});
const withModels = (...models: string[]): Capabilities => ({ hasAI: true, models });

describe('peerMatches', () => {
  const cases: [string, Capabilities, DiscoveryRequirements, boolean][] = [
    ['a peer without AI, when AI is needed', { hasAI: false, models: [] }, needs(), false],
    ['a peer that has AI but no model, when AI is needed', withModels(), needs(), false],
    [
      'a peer without AI, when AI is not needed',
      { hasAI: false, models: [] },
      needs({ needsAI: false }),
      true,
    ],
    [
      'a peer below the minimum quota',
      { ...withModels('llama'), quota: quota(49) },
      needs({ minQuota: 50 }),
      false,
    ],
    [
      'a peer exactly at the minimum quota',
      { ...withModels('llama'), quota: quota(50) },
      needs({ minQuota: 50 }),
      true,
    ],
    [
      'an AI peer announcing no quota (unmetered), for any minimum',
      withModels('llama'),
      needs({ minQuota: 1e12 }),
      true,
    ],
    [
      'a peer with neither AI nor quota, when some quota is required',
      { hasAI: false, models: [] },
      needs({ needsAI: false, minQuota: 1 }),
      false,
    ],
    [
      'a peer without a required model',
      withModels('llama'),
      needs({ preferredModels: ['phi'], requireModel: true }),
      false,
    ],
    [
      'a peer with one of the required models',
      withModels('llama', 'phi'),
      needs({ preferredModels: ['gpt', 'phi'], requireModel: true }),
      true,
    ],
    [
      'any AI peer when a model is required but none is named',
      withModels('llama'),
      needs({ requireModel: true }),
      true,
    ],
    [
      'a peer without a merely preferred model',
      withModels('llama'),
      needs({ preferredModels: ['phi'] }),
      true,
    ],
  ];
  const table = cases.map(([scenario, capabilities, requirements, expected]) => {
    const verdict = expected ? 'matches' : 'does not match';
    return [scenario, verdict, capabilities, requirements, expected] as const;
  });
  it.each(table)('%s: %s', (_, _verdict, capabilities, requirements, expected) => {
    expect(peerMatches(capabilities, requirements)).toBe(expected);
  });
});

describe('availableQuota', () => {
  it('is the announced available quota when there is one', () => {
    expect(availableQuota({ ...withModels('llama'), quota: quota(123) })).toBe(123);
  });
  it('is unlimited for an AI peer that announces no quota, and zero for a peer without AI', () => {
    expect(availableQuota(withModels('llama'))).toBe(Number.POSITIVE_INFINITY);
    expect(availableQuota({ hasAI: false, models: [] })).toBe(0);
  });
});

/*
 * Expected scores worked out by hand from the formula in ranking.ts:
 *   40 · quota + 30 · model + 20 · speed + 10 · trust, rounded to 2 decimals, where
 *   quota = available / (available + max(minQuota, 10)), 1 when unmetered;
 *   model = 1 − 0.5 · index / (preferred − 1) for the first preferred model offered, 0 for none,
 *           1 with no preference or a single preferred model;
 *   speed = 1 / (1 + latency / 250), 0.5 when unknown; trust clamped to 0..1, 0.5 when unknown.
 */
describe('scorePeer', () => {
  it('scores 70.5 for quota 30/(30+10), the 2nd of 3 preferred models, 250 ms RTT and trust 0.8', () => {
    // 40·0.75 + 30·0.75 + 20·0.5 + 10·0.8 = 30 + 22.5 + 10 + 8
    const capabilities = { ...withModels('llama', 'mistral'), quota: quota(30) };
    const requirements = needs({ preferredModels: ['gpt-4', 'mistral', 'phi'] });
    expect(scorePeer(capabilities, requirements, { rttMs: 250, trust: 0.8 })).toBe(70.5);
  });

  it('scores 80 for an unmetered peer with no model preference and a 750 ms time to first token', () => {
    // 40·1 + 30·1 + 20·0.25 + 10·0.5 = 40 + 30 + 5 + 5
    const capabilities = { ...withModels('llama'), performance: { latency: 750 } };
    expect(scorePeer(capabilities, needs({ minQuota: 1000 }))).toBe(80);
  });

  it('rounds to two decimals: quota 1/(1+10) gives 48.64', () => {
    // 40·(1/11) + 30·1 + 20·0.5 + 10·0.5 = 3.6363… + 30 + 10 + 5 = 48.6363…
    const capabilities = { ...withModels('llama'), quota: quota(1) };
    expect(scorePeer(capabilities, needs({ preferredModels: ['llama'] }))).toBe(48.64);
  });

  it('prefers the caller-measured RTT over the peer-reported latency, and the last preferred model counts half', () => {
    // minQuota 10 → K = 10: 40·(10/20) + 30·0.5 + 20·(1/(1+0)) + 10·1 = 20 + 15 + 20 + 10
    const capabilities = { ...withModels('c'), quota: quota(10), performance: { latency: 1000 } };
    const requirements = needs({ minQuota: 10, preferredModels: ['a', 'b', 'c'] });
    expect(scorePeer(capabilities, requirements, { rttMs: 0, trust: 1 })).toBe(65);
  });

  it('a higher minimum quota raises K, so the same quota scores lower', () => {
    const capabilities = { ...withModels('llama'), quota: quota(40) };
    // K = 10: 40·(40/50) = 32 → 32 + 30 + 10 + 5; K = 40: 40·(40/80) = 20 → 20 + 30 + 10 + 5
    expect(scorePeer(capabilities, needs())).toBe(77);
    expect(scorePeer(capabilities, needs({ minQuota: 40 }))).toBe(65);
  });

  it('offering none of the preferred models scores 0 for the model term', () => {
    // 40·1 + 30·0 + 20·0.5 + 10·0.5
    expect(scorePeer(withModels('llama'), needs({ preferredModels: ['phi', 'gpt'] }))).toBe(55);
  });

  it('clamps trust to 0..1', () => {
    // A peer without AI or quota: 40·0 + 30·1 + 20·0.5 + 10·trust
    const none: Capabilities = { hasAI: false, models: [] };
    expect(scorePeer(none, needs({ needsAI: false }), { trust: 7 })).toBe(50);
    expect(scorePeer(none, needs({ needsAI: false }), { trust: -3 })).toBe(40);
  });

  it('the best possible peer scores exactly 100', () => {
    expect(
      scorePeer(withModels('llama'), needs({ preferredModels: ['llama', 'phi'] }), { rttMs: 0, trust: 1 }),
    ).toBe(100);
  });
});

describe('compareRanked', () => {
  const peer = (peerId: string, score: number, tokensPerSecond?: number) => ({
    peerId,
    score,
    capabilities: {
      ...withModels('llama'),
      ...(tokensPerSecond === undefined ? {} : { performance: { tokensPerSecond } }),
    },
  });

  it('orders by score, then by throughput, then by peer id', () => {
    const peers = [peer('b', 80, 10), peer('z', 90, 0), peer('y', 80, 50), peer('a', 80, 10), peer('c', 80)];
    expect(peers.sort(compareRanked).map((p) => p.peerId)).toEqual(['z', 'y', 'a', 'b', 'c']);
  });

  it('calls two identical entries equal and is antisymmetric', () => {
    expect(compareRanked(peer('a', 80, 10), peer('a', 80, 10))).toBe(0);
    expect(Math.sign(compareRanked(peer('a', 80), peer('b', 80)))).toBe(-1);
    expect(Math.sign(compareRanked(peer('b', 80), peer('a', 80)))).toBe(1);
  });
});
