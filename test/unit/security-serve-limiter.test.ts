import { describe, expect, it } from 'vitest';
import {
  dailyResetAt,
  MAX_RETRY_AFTER_MS,
  ServeLimiter,
  type ServeLimiterOptions,
} from '../../machines/security/serve-limiter.ts';

/** 2026-01-01 12:00:00 UTC. */
const T0 = Date.UTC(2026, 0, 1, 12);
const HOUR = 3_600_000;

/** A limiter on a hand-driven clock; by default rate, share and budget are out of the way. */
function limiter(options: Partial<ServeLimiterOptions> = {}) {
  const clock = { t: T0 };
  const instance = new ServeLimiter({
    now: () => clock.t,
    ratePerMinute: 600,
    burst: 100,
    maxPerPeer: 100,
    dailyRequests: Number.POSITIVE_INFINITY,
    ...options,
  });
  return { limiter: instance, clock };
}

describe('ServeLimiter: slots and queue', () => {
  it('runs tasks in free slots at position 0, queues the rest at 1, 2, 3, and is busy when the queue is full', () => {
    const { limiter: l } = limiter({ maxConcurrent: 2, maxQueue: 3 });
    expect(l.admit('a', 't1')).toEqual({ admitted: true, queuePosition: 0 });
    expect(l.admit('b', 't1')).toEqual({ admitted: true, queuePosition: 0 });
    expect(l.admit('c', 't1')).toEqual({ admitted: true, queuePosition: 1 });
    expect(l.admit('d', 't1')).toEqual({ admitted: true, queuePosition: 2 });
    expect(l.admit('e', 't1')).toEqual({ admitted: true, queuePosition: 3 });
    expect(l.admit('f', 't1')).toMatchObject({ admitted: false, reason: 'busy' });
    expect(l.queuePositions()).toEqual([
      { peerId: 'c', taskId: 't1', position: 1 },
      { peerId: 'd', taskId: 't1', position: 2 },
      { peerId: 'e', taskId: 't1', position: 3 },
    ]);
  });

  it('moves queued tasks up as tasks finish and promotes the head into the freed slot', () => {
    const { limiter: l, clock } = limiter({ maxConcurrent: 2, maxQueue: 3 });
    for (const peer of ['a', 'b', 'c', 'd', 'e']) l.admit(peer, 't1');
    clock.t += 5_000;
    expect(l.finished('a', 't1')).toEqual({ promoted: [{ peerId: 'c', taskId: 't1' }] });
    expect(l.positionOf('c', 't1')).toBe(0);
    expect(l.queuePositions()).toEqual([
      { peerId: 'd', taskId: 't1', position: 1 },
      { peerId: 'e', taskId: 't1', position: 2 },
    ]);
    expect(l.admit('f', 't1')).toEqual({ admitted: true, queuePosition: 3 });
    expect(l.finished('b', 't1')).toEqual({ promoted: [{ peerId: 'd', taskId: 't1' }] });
    expect(l.finished('c', 't1')).toEqual({ promoted: [{ peerId: 'e', taskId: 't1' }] });
    expect(l.positionOf('f', 't1')).toBe(1);
    expect(l.positionOf('a', 't1')).toBeUndefined();
  });

  it('lets a queued task leave without freeing a slot; the tasks behind it move up', () => {
    const { limiter: l } = limiter({ maxConcurrent: 1, maxQueue: 3 });
    for (const peer of ['a', 'b', 'c', 'd']) l.admit(peer, 't1');
    expect(l.finished('c', 't1')).toEqual({ promoted: [] });
    expect(l.positionOf('a', 't1')).toBe(0);
    expect(l.queuePositions().map((task) => [task.peerId, task.position])).toEqual([
      ['b', 1],
      ['d', 2],
    ]);
  });

  it('gives no queue at all with maxQueue 0', () => {
    const { limiter: l } = limiter({ maxConcurrent: 1, maxQueue: 0 });
    expect(l.admit('a', 't1')).toEqual({ admitted: true, queuePosition: 0 });
    expect(l.admit('b', 't1')).toMatchObject({ admitted: false, reason: 'busy' });
  });

  it('answers a repeated admission with the current position and charges it once', () => {
    const { limiter: l } = limiter({ maxConcurrent: 1, burst: 2, ratePerMinute: 1 });
    expect(l.admit('a', 't1')).toEqual({ admitted: true, queuePosition: 0 });
    expect(l.admit('a', 't2')).toEqual({ admitted: true, queuePosition: 1 });
    expect(l.admit('a', 't2')).toEqual({ admitted: true, queuePosition: 1 });
    expect(l.admit('a', 't1')).toEqual({ admitted: true, queuePosition: 0 });
    expect(l.snapshot().day.requests).toBe(2);
    expect(l.admit('a', 't3')).toMatchObject({ admitted: false, reason: 'rate-limited' });
  });

  it('keeps the same task id from two peers apart', () => {
    const { limiter: l } = limiter({ maxConcurrent: 1 });
    expect(l.admit('a', 'same')).toEqual({ admitted: true, queuePosition: 0 });
    expect(l.admit('b', 'same')).toEqual({ admitted: true, queuePosition: 1 });
    expect(l.finished('b', 'same')).toEqual({ promoted: [] });
    expect(l.positionOf('a', 'same')).toBe(0);
  });

  it('ignores an unknown or repeated finish', () => {
    const { limiter: l } = limiter({ maxConcurrent: 1 });
    l.admit('a', 't1');
    l.admit('b', 't1');
    expect(l.finished('zz', 't1')).toEqual({ promoted: [] });
    expect(l.finished('a', 't1')).toEqual({ promoted: [{ peerId: 'b', taskId: 't1' }] });
    expect(l.finished('a', 't1')).toEqual({ promoted: [] });
    expect(l.positionOf('b', 't1')).toBe(0);
    expect(l.snapshot().running.map((task) => task.peerId)).toEqual(['b']);
  });
});

describe('ServeLimiter: retryAfter estimates', () => {
  it('estimates a busy wait from the default task time before any task finished', () => {
    const { limiter: l, clock } = limiter({ maxConcurrent: 2, maxQueue: 0 });
    l.admit('a', 't1');
    clock.t = T0 + 5_000;
    l.admit('b', 't1');
    clock.t = T0 + 10_000;
    // The first slot frees when a's task (from T0) reaches the default 30 s.
    expect(l.admit('c', 't1')).toEqual({
      admitted: false,
      reason: 'busy',
      message: 'serving 2 tasks with 0 waiting',
      retryAfterMs: 20_000,
    });
  });

  it('estimates from the mean slot time of recent tasks, measured from `started` when given', () => {
    const { limiter: l, clock } = limiter({ maxConcurrent: 1, maxQueue: 0 });
    l.admit('a', 't1');
    clock.t = T0 + 10_000;
    l.finished('a', 't1'); // 10 s
    l.admit('b', 't1');
    clock.t = T0 + 30_000;
    l.finished('b', 't1'); // 20 s
    expect(l.estimatedTaskMs()).toBe(15_000);
    l.admit('c', 't1');
    clock.t = T0 + 34_000;
    expect(l.admit('d', 't1')).toMatchObject({ reason: 'busy', retryAfterMs: 11_000 });
    clock.t = T0 + 32_000;
    expect(l.started('c', 't1')).toBe(true);
    clock.t = T0 + 34_000;
    expect(l.admit('d', 't1')).toMatchObject({ reason: 'busy', retryAfterMs: 13_000 });
  });

  it('stamps `started` once, and only for a task holding a slot', () => {
    const { limiter: l } = limiter({ maxConcurrent: 1 });
    l.admit('a', 't1');
    l.admit('b', 't1');
    expect(l.started('a', 't1')).toBe(true);
    expect(l.started('a', 't1')).toBe(false);
    expect(l.started('b', 't1')).toBe(false);
    expect(l.started('zz', 't1')).toBe(false);
  });

  it('never tells a requester to retry sooner than minRetryMs, even when a task is overdue', () => {
    const { limiter: l, clock } = limiter({ maxConcurrent: 1, maxQueue: 0, minRetryMs: 2_500 });
    l.admit('a', 't1');
    clock.t = T0 + 10 * 60_000;
    expect(l.admit('b', 't1')).toMatchObject({ reason: 'busy', retryAfterMs: 2_500 });
  });

  it('keeps only the latest durationSamples slot times in the estimate', () => {
    const { limiter: l, clock } = limiter({ maxConcurrent: 1, durationSamples: 2 });
    for (const [peer, ms] of [
      ['a', 10_000],
      ['b', 20_000],
      ['c', 60_000],
    ] as const) {
      l.admit(peer, 't1');
      clock.t += ms;
      l.finished(peer, 't1');
    }
    expect(l.estimatedTaskMs()).toBe(40_000);
  });

  it('measures a promoted task from its promotion, not from when it was queued', () => {
    const { limiter: l, clock } = limiter({ maxConcurrent: 1 });
    l.admit('a', 't1');
    l.admit('b', 't1');
    clock.t = T0 + 10_000;
    l.finished('a', 't1');
    clock.t = T0 + 14_000;
    l.finished('b', 't1');
    expect(l.estimatedTaskMs()).toBe(7_000); // (10 s + 4 s) / 2
  });
});

describe('ServeLimiter: per-peer rate', () => {
  it('admits a burst, then refuses with the exact wait for the next token', () => {
    const { limiter: l, clock } = limiter({ ratePerMinute: 6, burst: 2, minRetryMs: 0, maxConcurrent: 10 });
    expect(l.admit('a', 't1').admitted).toBe(true);
    expect(l.admit('a', 't2').admitted).toBe(true);
    expect(l.admit('a', 't3')).toEqual({
      admitted: false,
      reason: 'rate-limited',
      message: 'more than 6 requests per minute',
      retryAfterMs: 10_000,
    });
    clock.t = T0 + 5_000;
    expect(l.admit('a', 't3')).toMatchObject({ reason: 'rate-limited', retryAfterMs: 5_000 });
    clock.t = T0 + 10_000;
    expect(l.admit('a', 't3')).toEqual({ admitted: true, queuePosition: 0 });
    expect(l.admit('a', 't4')).toMatchObject({ reason: 'rate-limited', retryAfterMs: 10_000 });
  });

  it('takes nothing for a refusal: a peer that asked ten times too early gets in once a token is back', () => {
    const { limiter: l, clock } = limiter({ ratePerMinute: 6, burst: 1 });
    l.admit('a', 't1');
    for (let i = 0; i < 10; i++) expect(l.admit('a', `x${i}`).admitted).toBe(false);
    clock.t = T0 + 10_000;
    expect(l.admit('a', 't2').admitted).toBe(true);
  });

  it('limits each peer on its own', () => {
    const { limiter: l } = limiter({ ratePerMinute: 1, burst: 1 });
    expect(l.admit('a', 't1').admitted).toBe(true);
    expect(l.admit('a', 't2').admitted).toBe(false);
    expect(l.admit('b', 't1').admitted).toBe(true);
  });

  it('never refills past the burst, however long the peer was idle', () => {
    const { limiter: l, clock } = limiter({ ratePerMinute: 60, burst: 3 });
    l.admit('a', 't0');
    clock.t = T0 + 24 * HOUR;
    const results = ['t1', 't2', 't3', 't4'].map((task) => l.admit('a', task).admitted);
    expect(results).toEqual([true, true, true, false]);
  });

  it("refuses a peer's task beyond its share, with the wait until its earliest task should end", () => {
    const { limiter: l, clock } = limiter({ maxPerPeer: 2, maxConcurrent: 4 });
    l.admit('a', 't1');
    clock.t = T0 + 2_000;
    l.admit('a', 't2');
    clock.t = T0 + 4_000;
    expect(l.admit('a', 't3')).toEqual({
      admitted: false,
      reason: 'rate-limited',
      message: '2 tasks from this peer are already running or queued',
      retryAfterMs: 26_000,
    });
    expect(l.admit('b', 't1').admitted).toBe(true);
    l.finished('a', 't1');
    expect(l.admit('a', 't3').admitted).toBe(true);
  });

  it("estimates a queued peer's wait from the tasks ahead of it", () => {
    const { limiter: l } = limiter({ maxPerPeer: 2, maxConcurrent: 1, maxQueue: 5 });
    l.admit('x', 't1'); // runs from T0; frees its slot at T0 + 30 s
    l.admit('a', 't1'); // position 1: runs T0 + 30 s .. T0 + 60 s
    l.admit('a', 't2'); // position 2
    expect(l.admit('a', 't3')).toMatchObject({ reason: 'rate-limited', retryAfterMs: 60_000 });

    const { limiter: deeper } = limiter({ maxPerPeer: 2, maxConcurrent: 1, maxQueue: 5 });
    deeper.admit('x', 't1'); // runs T0 .. T0 + 30 s
    deeper.admit('y', 't1'); // position 1: runs T0 + 30 s .. T0 + 60 s
    deeper.admit('a', 't1'); // position 2: runs T0 + 60 s .. T0 + 90 s
    deeper.admit('a', 't2');
    expect(deeper.admit('a', 't3')).toMatchObject({ reason: 'rate-limited', retryAfterMs: 90_000 });

    const { limiter: wide } = limiter({ maxPerPeer: 2, maxConcurrent: 2, maxQueue: 5 });
    for (const peer of ['x1', 'x2', 'y1', 'y2']) wide.admit(peer, 't1'); // y1, y2 run T0 + 30 s .. 60 s
    wide.admit('a', 't1'); // position 3: runs T0 + 60 s .. T0 + 90 s
    wide.admit('a', 't2');
    expect(wide.admit('a', 't3')).toMatchObject({ reason: 'rate-limited', retryAfterMs: 90_000 });
  });

  it('forgets idle peers first when it tracks too many, then the least recently used', () => {
    const { limiter: l, clock } = limiter({ ratePerMinute: 60, burst: 2, maxTrackedPeers: 2 });
    l.admit('a', 't1');
    l.admit('a', 't2'); // a: 0 tokens
    l.admit('b', 't1'); // b: 1 token
    clock.t = T0 + 1_000; // a: 1 token, b: full again
    l.admit('c', 't1'); // over the bound: b (full) goes, a (older but not full) stays
    expect(l.snapshot().trackedPeers).toBe(2);
    expect(l.admit('a', 't3').admitted).toBe(true);
    expect(l.admit('a', 't4').admitted).toBe(false);

    const { limiter: lru } = limiter({ ratePerMinute: 1, burst: 1, maxTrackedPeers: 2 });
    lru.admit('a', 't1');
    lru.admit('b', 't1');
    lru.admit('c', 't1'); // nothing is full: a, the least recently used, goes
    expect(lru.admit('c', 't2').admitted).toBe(false);
    expect(lru.admit('a', 't2').admitted).toBe(true);
  });
});

describe('ServeLimiter: daily budget', () => {
  /** 21:00 UTC = 23:00 at UTC+2; the day ends at 22:00 UTC. */
  const EVENING = Date.UTC(2026, 0, 1, 21);

  it("refuses once the day's requests are used, until the local midnight it computes", () => {
    const { limiter: l, clock } = limiter({
      dailyRequests: 3,
      minRetryMs: 0,
      maxConcurrent: 10,
      resetAt: dailyResetAt({ utcOffsetMinutes: 120 }),
    });
    clock.t = EVENING;
    for (const peer of ['a', 'b', 'c']) expect(l.admit(peer, 't1').admitted).toBe(true);
    expect(l.admit('d', 't1')).toEqual({
      admitted: false,
      reason: 'quota-exhausted',
      message: "this peer's owner has used today's budget of 3 requests",
      retryAfterMs: HOUR,
    });
    clock.t = Date.UTC(2026, 0, 1, 22) - 1;
    expect(l.admit('d', 't1')).toMatchObject({ reason: 'quota-exhausted', retryAfterMs: 1 });
    clock.t = Date.UTC(2026, 0, 1, 22);
    expect(l.admit('d', 't1')).toEqual({ admitted: true, queuePosition: 0 });
    expect(l.snapshot().day).toEqual({
      requests: 1,
      tokens: 0,
      maxRequests: 3,
      maxTokens: Number.POSITIVE_INFINITY,
      resetsAt: Date.UTC(2026, 0, 2, 22),
    });
  });

  it("refuses once the day's tokens are used; only tokens of tasks it admitted count", () => {
    const { limiter: l } = limiter({ dailyTokens: 1_000 });
    l.admit('a', 't1');
    l.finished('zz', 't9', { inputTokens: 5_000, outputTokens: 5_000 });
    expect(l.admit('b', 't1').admitted).toBe(true);
    l.finished('a', 't1', { inputTokens: 600, outputTokens: 399 });
    expect(l.snapshot().day.tokens).toBe(999);
    expect(l.admit('c', 't1').admitted).toBe(true);
    l.finished('b', 't1', { inputTokens: 0, outputTokens: 1 });
    expect(l.admit('d', 't1')).toMatchObject({
      reason: 'quota-exhausted',
      message: "this peer's owner has used today's budget of 1000 tokens",
    });
  });

  it("gives a queued task's request back to the day when it leaves before it ran", () => {
    const { limiter: l } = limiter({ dailyRequests: 2, maxConcurrent: 1 });
    l.admit('a', 't1');
    l.admit('b', 't1');
    expect(l.admit('c', 't1')).toMatchObject({ reason: 'quota-exhausted' });
    l.finished('b', 't1');
    expect(l.snapshot().day.requests).toBe(1);
    expect(l.admit('c', 't1')).toEqual({ admitted: true, queuePosition: 1 });
  });

  it('does not carry a refund across the daily reset', () => {
    const { limiter: l, clock } = limiter({ maxConcurrent: 1, resetAt: dailyResetAt() });
    l.admit('a', 't1');
    l.admit('b', 't1'); // queued, charged to January 1st
    clock.t = Date.UTC(2026, 0, 2, 0, 0, 1);
    l.admit('c', 't1'); // charged to January 2nd
    l.finished('b', 't1');
    expect(l.snapshot().day.requests).toBe(1);
  });

  it('takes an admission back without a slot-time sample and gives its request back', () => {
    const { limiter: l, clock } = limiter({ maxConcurrent: 1, defaultTaskMs: 30_000 });
    l.admit('a', 't1');
    l.admit('b', 't1');
    clock.t = T0 + 1;
    expect(l.withdraw('a', 't1')).toEqual({ promoted: [{ peerId: 'b', taskId: 't1' }] });
    expect(l.estimatedTaskMs()).toBe(30_000);
    expect(l.snapshot().day.requests).toBe(1);
    expect(l.withdraw('a', 't1')).toEqual({ promoted: [] });
  });

  it('serves nothing with a budget of 0, and caps the wait at the largest the wire accepts', () => {
    const { limiter: l, clock } = limiter({ dailyRequests: 0, resetAt: (now) => now + 3 * 24 * HOUR });
    expect(l.admit('a', 't1')).toMatchObject({ reason: 'quota-exhausted', retryAfterMs: MAX_RETRY_AFTER_MS });
    clock.t += HOUR;
    expect(l.admit('a', 't1')).toMatchObject({ reason: 'quota-exhausted', retryAfterMs: MAX_RETRY_AFTER_MS });
  });

  it('checks the budget before the rate, and the rate before capacity', () => {
    const { limiter: l } = limiter({
      dailyRequests: 1,
      ratePerMinute: 1,
      burst: 1,
      maxConcurrent: 1,
      maxQueue: 0,
    });
    l.admit('a', 't1');
    expect(l.admit('a', 't2')).toMatchObject({ reason: 'quota-exhausted' });
    const { limiter: l2 } = limiter({ ratePerMinute: 1, burst: 1, maxConcurrent: 1, maxQueue: 0 });
    l2.admit('a', 't1');
    expect(l2.admit('a', 't2')).toMatchObject({ reason: 'rate-limited' });
    expect(l2.admit('b', 't1')).toMatchObject({ reason: 'busy' });
  });
});

describe('dailyResetAt', () => {
  it('finds the next local midnight for a UTC offset, strictly after now', () => {
    const plusTwo = dailyResetAt({ utcOffsetMinutes: 120 });
    expect(plusTwo(Date.UTC(2026, 0, 1, 21, 59, 59, 999))).toBe(Date.UTC(2026, 0, 1, 22));
    expect(plusTwo(Date.UTC(2026, 0, 1, 22))).toBe(Date.UTC(2026, 0, 2, 22));
    const minusFive = dailyResetAt({ utcOffsetMinutes: -300 });
    expect(minusFive(Date.UTC(2026, 0, 1, 4, 59))).toBe(Date.UTC(2026, 0, 1, 5));
    expect(minusFive(Date.UTC(2026, 0, 1, 5, 1))).toBe(Date.UTC(2026, 0, 2, 5));
  });

  it('resets at a chosen local hour', () => {
    const fourAm = dailyResetAt({ hour: 4 });
    expect(fourAm(Date.UTC(2026, 0, 1, 3))).toBe(Date.UTC(2026, 0, 1, 4));
    expect(fourAm(Date.UTC(2026, 0, 1, 4))).toBe(Date.UTC(2026, 0, 2, 4));
    expect(() => dailyResetAt({ hour: 24 })).toThrow(RangeError);
  });

  it('rejects a resetAt that does not move forward', () => {
    expect(() => limiter({ resetAt: (now) => now })).toThrow(RangeError);
    expect(() => limiter({ resetAt: () => Number.NaN })).toThrow(RangeError);
  });
});

describe('ServeLimiter: options and snapshot', () => {
  it.each([
    { maxConcurrent: 0 },
    { maxQueue: -1 },
    { burst: 0 },
    { ratePerMinute: 0 },
    { ratePerMinute: Number.POSITIVE_INFINITY },
    { dailyRequests: -1 },
    { dailyTokens: 1.5 },
    { maxPerPeer: 0 },
  ])('refuses the option %j', (options) => {
    expect(() => limiter(options)).toThrow(RangeError);
  });

  it('shows running and queued tasks with their times for a UI', () => {
    const { limiter: l, clock } = limiter({ maxConcurrent: 1, dailyRequests: 10 });
    l.admit('a', 't1');
    clock.t = T0 + 1_000;
    l.started('a', 't1');
    l.admit('b', 't2');
    expect(l.snapshot()).toEqual({
      running: [{ peerId: 'a', taskId: 't1', since: T0, startedAt: T0 + 1_000 }],
      queue: [{ peerId: 'b', taskId: 't2', position: 1, since: T0 + 1_000 }],
      maxConcurrent: 1,
      maxQueue: 8,
      day: {
        requests: 2,
        tokens: 0,
        maxRequests: 10,
        maxTokens: Number.POSITIVE_INFINITY,
        resetsAt: Date.UTC(2026, 0, 2),
      },
      estimatedTaskMs: 30_000,
      trackedPeers: 2,
    });
  });

  it('defaults to 10 requests a minute with a burst of 3, 2 slots, 8 queued, 4 per peer, 200 a day', () => {
    const l = new ServeLimiter({ now: () => T0 });
    expect([l.ratePerMinute, l.burst, l.maxConcurrent, l.maxQueue, l.maxPerPeer, l.dailyRequests]).toEqual([
      10, 3, 2, 8, 4, 200,
    ]);
    expect(l.dailyTokens).toBe(Number.POSITIVE_INFINITY);
  });
});
