import { describe, expect, it } from 'vitest';
import { DEFAULT_OUTCOME_WEIGHTS, TrustLedger, type TrustOptions } from '../../machines/security/trust.ts';

const T0 = Date.UTC(2026, 0, 1, 12);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

function ledger(options: Partial<TrustOptions> = {}) {
  const clock = { t: T0 };
  return { trust: new TrustLedger({ now: () => clock.t, ...options }), clock };
}

describe('TrustLedger: score', () => {
  it('starts an unknown peer at the neutral prior, without remembering it for asking', () => {
    const { trust } = ledger();
    expect(trust.score('stranger')).toBe(0.5);
    expect(trust.isBanned('stranger')).toBe(false);
    expect(trust.banRemainingMs('stranger')).toBe(0);
    expect(trust.snapshot()).toEqual([]);
  });

  it('rises with completions, decays toward the prior by half-lives, and falls with a failure', () => {
    const { trust, clock } = ledger();
    for (let i = 0; i < 3; i++) trust.recordOutcome('p', 'completed');
    expect(trust.score('p')).toBeCloseTo(0.8, 10); // (3 + 1) / (3 + 2)
    clock.t = T0 + HOUR;
    expect(trust.score('p')).toBeCloseTo(2.5 / 3.5, 10); // evidence halved: 1.5 positive
    expect(trust.recordOutcome('p', 'failed').score).toBeCloseTo(2.5 / 4.5, 10);
    clock.t = T0 + 3 * HOUR;
    expect(trust.score('p')).toBeCloseTo(1.375 / 2.625, 10); // 0.375 positive, 0.25 negative
  });

  it.each([
    ['failed', 1 / 3],
    ['timedOut', 1 / 3.5],
    ['aborted', 1 / 2.5],
    ['cancelled', 0.5],
    ['rejected', 0.5],
    ['completed', 2 / 3],
  ] as const)('scores a fresh peer after one %s outcome at %f', (outcome, expected) => {
    const { trust } = ledger();
    expect(trust.recordOutcome('p', outcome).score).toBeCloseTo(expected, 10);
    expect(trust.score('p')).toBeCloseTo(expected, 10);
  });

  it('remembers a peer seen only through neutral outcomes, at the prior', () => {
    const { trust } = ledger();
    trust.recordOutcome('p', 'cancelled');
    expect(trust.snapshot()).toMatchObject([{ peerId: 'p', score: 0.5, positive: 0, negative: 0 }]);
  });

  it('drifts back to the prior after a violation as the evidence decays', () => {
    const { trust, clock } = ledger();
    expect(trust.recordViolation('p', 'bad-frame').score).toBeCloseTo(1 / 6, 10);
    clock.t = T0 + 10 * HOUR;
    expect(trust.score('p')).toBeCloseTo(1 / (4 / 1024 + 2), 10);
  });

  it('uses a configured prior, prior weight, half-life and weights', () => {
    const { trust, clock } = ledger({
      prior: 0.3,
      priorWeight: 4,
      halfLifeMs: 10 * MINUTE,
      weights: { completed: 2 },
    });
    expect(trust.score('p')).toBe(0.3);
    trust.recordOutcome('p', 'completed'); // 2 positive
    expect(trust.score('p')).toBeCloseTo((2 + 1.2) / 6, 10);
    clock.t = T0 + 10 * MINUTE;
    expect(trust.score('p')).toBeCloseTo((1 + 1.2) / 5, 10);
    expect(trust.weights.failed).toBe(DEFAULT_OUTCOME_WEIGHTS.failed);
  });

  it('ranks a reliable peer above an unknown one above a failing one', () => {
    const { trust } = ledger();
    trust.recordOutcome('good', 'completed');
    trust.recordOutcome('bad', 'timedOut');
    const ranked = ['bad', 'unknown', 'good'].sort((a, b) => trust.score(b) - trust.score(a));
    expect(ranked).toEqual(['good', 'unknown', 'bad']);
  });
});

describe('TrustLedger: bans', () => {
  it('bans on a violation for the base time: banned a millisecond before it ends, free at the end', () => {
    const { trust, clock } = ledger();
    expect(trust.recordViolation('p', 'invalid-message').bannedForMs).toBe(MINUTE);
    expect(trust.isBanned('p')).toBe(true);
    expect(trust.banRemainingMs('p')).toBe(MINUTE);
    clock.t = T0 + MINUTE - 1;
    expect(trust.banRemainingMs('p')).toBe(1);
    clock.t = T0 + MINUTE;
    expect(trust.isBanned('p')).toBe(false);
    expect(trust.banRemainingMs('p')).toBe(0);
  });

  it('doubles each repeat ban, 1×, 2×, 4× … up to the maximum', () => {
    const { trust, clock } = ledger();
    const lengths: (number | undefined)[] = [];
    for (let i = 0; i < 8; i++) {
      const ban = trust.recordViolation('p', 'invalid-message').bannedForMs;
      lengths.push(ban);
      clock.t += ban ?? 0;
    }
    expect(lengths).toEqual([
      MINUTE,
      2 * MINUTE,
      4 * MINUTE,
      8 * MINUTE,
      16 * MINUTE,
      32 * MINUTE,
      HOUR,
      HOUR,
    ]);
  });

  it('does not lengthen a ban for violations during it, but they still lower the score', () => {
    const { trust, clock } = ledger();
    trust.recordViolation('p', 'invalid-message');
    clock.t = T0 + 10_000;
    const during = trust.recordViolation('p', 'invalid-message');
    expect(during.bannedForMs).toBeUndefined();
    expect(during.score).toBeLessThan(1 / 6);
    expect(trust.banRemainingMs('p')).toBe(50_000);
    clock.t = T0 + MINUTE;
    expect(trust.recordViolation('p', 'invalid-message').bannedForMs).toBe(2 * MINUTE);
  });

  it('forgets past bans after a clean day: the next ban is a first one again', () => {
    const { trust, clock } = ledger();
    trust.recordViolation('p', 'x'); // banned until T0 + 1 min
    clock.t = T0 + MINUTE + DAY - 1;
    expect(trust.recordViolation('p', 'x').bannedForMs).toBe(2 * MINUTE);

    const other = ledger();
    other.trust.recordViolation('q', 'x');
    other.clock.t = T0 + MINUTE + DAY;
    expect(other.trust.recordViolation('q', 'x').bannedForMs).toBe(MINUTE);
    expect(other.trust.snapshot()[0]?.bans).toBe(1);
  });

  it('bans a peer whose outcomes drive its score below the threshold, and doubles a repeat', () => {
    const { trust, clock } = ledger();
    for (let i = 0; i < 8; i++) expect(trust.recordOutcome('p', 'failed').bannedForMs).toBeUndefined();
    expect(trust.score('p')).toBeCloseTo(0.1, 10); // 1 / 10: not below
    const ninth = trust.recordOutcome('p', 'failed');
    expect(ninth.score).toBeCloseTo(1 / 11, 10);
    expect(ninth.bannedForMs).toBe(MINUTE);
    expect(trust.recordOutcome('p', 'failed').bannedForMs).toBeUndefined(); // already banned
    clock.t = T0 + MINUTE;
    expect(trust.recordOutcome('p', 'failed').bannedForMs).toBe(2 * MINUTE);
  });

  it('never bans for good or neutral outcomes, even at a low score', () => {
    const { trust } = ledger({ banBelow: 0.9 });
    expect(trust.recordOutcome('p', 'completed').bannedForMs).toBeUndefined();
    expect(trust.recordOutcome('p', 'cancelled').bannedForMs).toBeUndefined();
    expect(trust.isBanned('p')).toBe(false);
  });

  it('lifts a ban by hand; the evidence and the ban count stay', () => {
    const { trust } = ledger();
    const { score } = trust.recordViolation('p', 'x');
    trust.unban('p');
    expect(trust.isBanned('p')).toBe(false);
    expect(trust.score('p')).toBeCloseTo(score, 10);
    expect(trust.recordViolation('p', 'x').bannedForMs).toBe(2 * MINUTE);
    trust.unban('never-seen');
    expect(trust.snapshot().map((peer) => peer.peerId)).toEqual(['p']);
  });
});

describe('TrustLedger: refusals', () => {
  it("records a policy refusal without touching the requester's score", () => {
    const { trust } = ledger();
    trust.recordOutcome('p', 'completed');
    trust.recordOutcome('p', 'completed');
    for (let i = 0; i < 3; i++) expect(trust.recordRefusal('p').score).toBeCloseTo(0.75, 10);
    expect(trust.score('p')).toBeCloseTo(0.75, 10);
    expect(trust.snapshot()[0]).toMatchObject({ peerId: 'p', refusals: 3, positive: 2, negative: 0 });
  });

  it('never bans a peer for refusals, however many', () => {
    const { trust } = ledger();
    for (let i = 0; i < 100; i++) expect(trust.recordRefusal('p').bannedForMs).toBeUndefined();
    expect(trust.isBanned('p')).toBe(false);
    expect(trust.score('p')).toBe(0.5);
  });
});

describe('TrustLedger: memory', () => {
  it('forgets the least recently seen peer beyond maxPeers', () => {
    const { trust, clock } = ledger({ maxPeers: 3 });
    for (const peer of ['a', 'b', 'c']) {
      trust.recordOutcome(peer, 'completed');
      clock.t += 1_000;
    }
    trust.recordOutcome('a', 'completed'); // a is recent again
    trust.recordOutcome('d', 'completed');
    expect(trust.snapshot().map((peer) => peer.peerId)).toEqual(['d', 'a', 'c']);
    expect(trust.score('b')).toBe(0.5);
  });

  it('keeps banned peers over others, so filling the table does not lift a ban', () => {
    const { trust } = ledger({ maxPeers: 2 });
    trust.recordViolation('bad', 'x');
    trust.recordOutcome('b', 'completed');
    trust.recordOutcome('c', 'completed');
    expect(trust.snapshot().map((peer) => peer.peerId)).toEqual(['c', 'bad']);
    expect(trust.isBanned('bad')).toBe(true);
  });

  it('forgets the oldest banned peer when every remembered peer is banned', () => {
    const { trust } = ledger({ maxPeers: 2 });
    trust.recordViolation('x', 'v');
    trust.recordViolation('y', 'v');
    trust.recordViolation('z', 'v');
    expect(trust.snapshot().map((peer) => peer.peerId)).toEqual(['z', 'y']);
  });

  it('does not count reading a score as seeing the peer', () => {
    const { trust } = ledger({ maxPeers: 2 });
    trust.recordOutcome('a', 'completed');
    trust.recordOutcome('b', 'completed');
    trust.score('a');
    trust.isBanned('a');
    trust.recordOutcome('c', 'completed');
    expect(trust.snapshot().map((peer) => peer.peerId)).toEqual(['c', 'b']);
  });
});

describe('TrustLedger: snapshot and options', () => {
  it('shows each peer decayed to now, most recently seen first', () => {
    const { trust, clock } = ledger();
    trust.recordOutcome('a', 'completed');
    trust.recordOutcome('a', 'completed');
    clock.t = T0 + 30_000;
    trust.recordViolation('b', 'oversized-frame');
    clock.t = T0 + HOUR;
    expect(trust.snapshot()).toEqual([
      {
        peerId: 'b',
        score: expect.closeTo(1 / (2 + 4 * 2 ** (-(HOUR - 30_000) / HOUR)), 10),
        positive: 0,
        negative: expect.closeTo(4 * 2 ** (-(HOUR - 30_000) / HOUR), 10),
        banned: false,
        banRemainingMs: 0,
        bans: 1,
        refusals: 0,
        lastViolation: 'oversized-frame',
        lastSeen: T0 + 30_000,
      },
      {
        peerId: 'a',
        score: expect.closeTo(2 / 3, 10),
        positive: 1,
        negative: 0,
        banned: false,
        banRemainingMs: 0,
        bans: 0,
        refusals: 0,
        lastViolation: undefined,
        lastSeen: T0,
      },
    ]);
  });

  it.each([
    { prior: 1.5 },
    { prior: -0.1 },
    { priorWeight: 0 },
    { halfLifeMs: 0 },
    { baseBanMs: 10_000, maxBanMs: 5_000 },
    { banBelow: 2 },
    { maxPeers: 0 },
    { weights: { failed: Number.NaN } },
  ])('refuses the option %j', (options) => {
    expect(() => ledger(options)).toThrow(RangeError);
  });

  it('defaults to a 0.5 prior worth 2 outcomes, a 1 h half-life, bans of 1 min to 1 h', () => {
    const { trust } = ledger();
    expect([trust.prior, trust.priorWeight, trust.halfLifeMs, trust.baseBanMs, trust.maxBanMs]).toEqual([
      0.5,
      2,
      HOUR,
      MINUTE,
      HOUR,
    ]);
    expect([trust.violationWeight, trust.banBelow, trust.banMemoryMs, trust.maxPeers]).toEqual([
      4,
      0.1,
      DAY,
      1000,
    ]);
  });
});
