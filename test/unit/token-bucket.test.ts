import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../signaling/token-bucket.ts';

const T0 = 1_767_225_600_000;

/** Takes one token at a time until the bucket refuses; returns how many it gave. */
function drain(bucket: TokenBucket, now: number): number {
  let taken = 0;
  while (bucket.take(now)) taken++;
  return taken;
}

describe('TokenBucket', () => {
  it('starts full: a burst of `capacity` messages passes, the next one does not', () => {
    const bucket = new TokenBucket(5, 1, T0);
    expect(drain(bucket, T0)).toBe(5);
    expect(bucket.take(T0)).toBe(false);
  });

  it('refills at the configured rate, in proportion to the time that passed', () => {
    const bucket = new TokenBucket(20, 10, T0);
    drain(bucket, T0);
    expect(drain(bucket, T0 + 500)).toBe(5);
    expect(drain(bucket, T0 + 500 + 1_200)).toBe(12);
  });

  it('never holds more than its capacity, however long it sat idle', () => {
    const bucket = new TokenBucket(3, 100, T0);
    drain(bucket, T0);
    expect(drain(bucket, T0 + 3_600_000)).toBe(3);
  });

  it('takes a multi-token amount all or nothing', () => {
    const bucket = new TokenBucket(10, 1, T0);
    expect(bucket.take(T0, 7)).toBe(true);
    expect(bucket.take(T0, 4)).toBe(false);
    expect(bucket.take(T0, 3)).toBe(true);
    expect(bucket.take(T0)).toBe(false);
  });

  it('says how long until an amount is available, rounding up to the millisecond', () => {
    const bucket = new TokenBucket(10, 10, T0);
    expect(bucket.waitMs()).toBe(0);
    drain(bucket, T0);
    expect(bucket.waitMs()).toBe(100);
    expect(bucket.waitMs(3)).toBe(300);
    bucket.take(T0 + 50); // half a token has refilled: not enough
    expect(bucket.waitMs()).toBe(50);
    expect(bucket.waitMs(2)).toBe(150);
  });

  it('the wait it announces is enough: a retry after waitMs succeeds, one a millisecond earlier does not', () => {
    const bucket = new TokenBucket(4, 3, T0);
    drain(bucket, T0);
    const wait = bucket.waitMs(2); // 2 / 3 per second = 666.67 ms, rounded up
    expect(wait).toBe(667);
    expect(bucket.take(T0 + wait - 1, 2)).toBe(false);
    expect(bucket.take(T0 + wait, 2)).toBe(true);
  });

  it('a clock that steps backwards neither refills the bucket nor loses the refill owed later', () => {
    const bucket = new TokenBucket(10, 10, T0);
    drain(bucket, T0);
    expect(bucket.take(T0 - 60_000)).toBe(false);
    expect(drain(bucket, T0 + 300)).toBe(3);
  });
});
