import { describe, expect, it } from 'vitest';
import { createActor, createMachine, SimulatedClock, sendTo } from 'xstate';
import { quotaMachine } from '../../machines/quota.machine.ts';
import type { QuotaStatus } from '../../protocol/index.ts';

const DAY = 24 * 60 * 60 * 1000;

function start(unit: 'requests' | 'tokens' = 'requests') {
  const clock = new SimulatedClock();
  clock.set(1_000_000);
  const announced: QuotaStatus[] = [];
  // A parent receives the throttled announcements.
  const parent = createMachine({
    invoke: {
      id: 'quota',
      src: quotaMachine,
      input: {
        totalQuota: 10,
        unit,
        provider: 'demo',
        periodMs: DAY,
        announceEveryMs: 2_000,
        now: () => clock.now(),
      },
    },
    on: {
      'quota.changed': {
        actions: ({ event }) => announced.push((event as unknown as { quota: QuotaStatus }).quota),
      },
      '*': { actions: sendTo('quota', ({ event }) => event) },
    },
  });
  const actor = createActor(parent, { clock }).start();
  const quota = (): QuotaStatus => {
    const child = actor.getSnapshot().children.quota;
    if (!child) throw new Error('the quota monitor is not running');
    return (child.getSnapshot() as { context: { quota: QuotaStatus } }).context.quota;
  };
  return { clock, actor, announced, quota };
}

describe('quota monitor', () => {
  it('counts one per request and keeps the design’s Quota Data Model consistent', () => {
    const q = start();
    expect(q.quota()).toMatchObject({
      totalQuota: 10,
      usedQuota: 0,
      availableQuota: 10,
      resetTime: 1_000_000 + DAY,
      provider: 'demo',
    });
    q.actor.send({ type: 'quota.consume', usage: { inputTokens: 50, outputTokens: 70 } });
    q.actor.send({ type: 'quota.consume', usage: undefined });
    expect(q.quota()).toMatchObject({ usedQuota: 2, availableQuota: 8 });
  });

  it('counts reported tokens when the unit is tokens, and never goes below zero available', () => {
    const q = start('tokens');
    q.actor.send({ type: 'quota.consume', usage: { inputTokens: 3, outputTokens: 4 } });
    expect(q.quota()).toMatchObject({ usedQuota: 7, availableQuota: 3 });
    q.actor.send({ type: 'quota.consume', usage: { inputTokens: 30, outputTokens: 0 } });
    expect(q.quota()).toMatchObject({ usedQuota: 37, availableQuota: 0 });
  });

  it('resets on schedule, to the next period boundary', () => {
    const q = start();
    for (let i = 0; i < 4; i++) q.actor.send({ type: 'quota.consume', usage: undefined });
    q.clock.increment(DAY - 1);
    expect(q.quota().usedQuota).toBe(4);
    q.clock.increment(1);
    expect(q.quota()).toMatchObject({ usedQuota: 0, availableQuota: 10, resetTime: 1_000_000 + 2 * DAY });
  });

  it('announces a change at once, then at most once per window with the latest figures', () => {
    const q = start();
    q.actor.send({ type: 'quota.consume', usage: undefined });
    expect(q.announced.map((quota) => quota.usedQuota)).toEqual([1]);
    q.actor.send({ type: 'quota.consume', usage: undefined });
    q.actor.send({ type: 'quota.consume', usage: undefined });
    expect(q.announced).toHaveLength(1);
    q.clock.increment(2_000);
    q.clock.increment(2_000);
    expect(q.announced.map((quota) => quota.usedQuota)).toEqual([1, 3]);
    q.actor.send({ type: 'quota.set', totalQuota: 50 });
    q.clock.increment(2_000);
    expect(q.announced.at(-1)).toMatchObject({ totalQuota: 50, availableQuota: 47 });
  });
});
