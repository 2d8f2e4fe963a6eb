import { describe, expect, it } from 'vitest';
import { planRoute } from '../../machines/route-planner.ts';
import type { Capabilities, QuotaStatus } from '../../protocol/index.ts';

const NOW = 1_800_000_000_000;
const quota = (available: number, resetInMin = 30): QuotaStatus => ({
  totalQuota: 100,
  usedQuota: 100 - available,
  availableQuota: available,
  resetTime: NOW + resetInMin * 60_000,
  provider: 'demo',
  capabilities: ['text'],
});
const peer = (
  peerId: string,
  models: string[],
  available?: number,
): { peerId: string; capabilities: Capabilities } => ({
  peerId,
  capabilities: {
    hasAI: models.length > 0,
    models,
    ...(available !== undefined ? { quota: quota(available, 10) } : {}),
  },
});

describe('route planner', () => {
  it('runs locally when this peer has the model and quota', () => {
    expect(
      planRoute({
        local: { models: ['m'], quota: quota(5) },
        peers: [peer('a', ['m'], 50)],
        connected: true,
        now: NOW,
      }),
    ).toEqual({
      route: 'local',
      reason: 'this peer has the model and quota',
    });
    expect(
      planRoute({ model: 'm', local: { models: ['m'] }, peers: [], connected: false, now: NOW }).route,
    ).toBe('local');
  });

  it('delegates to capable peers, best first, when the local quota is spent', () => {
    const plan = planRoute({
      model: 'm',
      local: { models: ['m'], quota: quota(0, 30) },
      peers: [peer('a', ['m'], 40), peer('b', ['x'], 40), peer('c', ['m'], 0), peer('d', ['m'])],
      connected: true,
      now: NOW,
    });
    expect(plan).toEqual({
      route: 'delegate',
      candidates: ['a', 'd'],
      reason: "this peer's quota is used up (resets in 30 min); delegating",
    });
  });

  it('explains a missing model before anything leaves the peer', () => {
    expect(
      planRoute({
        model: 'big',
        local: { models: [] },
        peers: [peer('a', ['small'], 9), peer('b', ['tiny'], 9)],
        connected: true,
        now: NOW,
      }),
    ).toEqual({
      route: 'none',
      cause: 'no-model',
      reason: 'this peer has no AI, and no peer has model big (offered: small, tiny)',
    });
  });

  it('explains that every capable peer is out of quota, and when the first resets', () => {
    expect(
      planRoute({
        model: 'm',
        local: { models: ['other'] },
        peers: [peer('a', ['m'], 0)],
        connected: true,
        now: NOW,
      }),
    ).toEqual({
      route: 'none',
      cause: 'no-quota',
      reason:
        'this peer does not have model m, and every peer with model m is out of quota (the first resets in 10 min)',
    });
  });

  it('explains that no peer offers AI, or that this peer is not connected', () => {
    expect(planRoute({ local: { models: [] }, peers: [peer('a', [])], connected: true, now: NOW })).toEqual({
      route: 'none',
      cause: 'no-peers',
      reason: 'this peer has no AI, and no connected peer offers AI',
    });
    expect(planRoute({ local: { models: [] }, peers: [], connected: false, now: NOW })).toMatchObject({
      route: 'none',
      cause: 'not-connected',
    });
  });
});
