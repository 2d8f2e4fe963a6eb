import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import { capabilitiesOf, withPerformance } from '../../machines/providers/performance.ts';
import type { AIProvider, ProviderEvent, ProviderRequest } from '../../machines/providers/provider.ts';
import { Capabilities, MAX_MODELS, type QuotaStatus } from '../../protocol/index.ts';

/** A manual clock: time moves only when a test or the scripted provider says so. */
function manualClock() {
  let time = 1_000;
  return {
    now: () => time,
    advance: (ms: number) => {
      time += ms;
    },
  };
}

/** One scripted step: the provider "works" for `after` ms, then emits `event` (or fails). */
type Step = { after: number; event: ProviderEvent } | { after: number; fail: string };

/** A provider whose every run replays `script` against the clock, recording when runs are released. */
function scriptedProvider(clock: ReturnType<typeof manualClock>, scripts: Step[][]) {
  let run = 0;
  const released: number[] = [];
  const provider: AIProvider = {
    id: 'scripted',
    label: 'Scripted',
    isDemo: false,
    models: async () => ['scripted-1'],
    async *stream(_request: ProviderRequest) {
      const index = run++;
      try {
        for (const step of scripts[index] ?? []) {
          clock.advance(step.after);
          if ('fail' in step) throw new Error(step.fail);
          yield step.event;
        }
      } finally {
        released.push(index);
      }
    },
  };
  return { provider, released };
}

const text = (after: number, value: string): Step => ({ after, event: { type: 'text', text: value } });
const usage = (after: number, outputTokens: number): Step => ({
  after,
  event: { type: 'usage', usage: { inputTokens: 5, outputTokens } },
});
const request = () => ({ prompt: 'p', signal: new AbortController().signal });

async function drain(events: AsyncIterable<ProviderEvent>, limit = 100): Promise<ProviderEvent[]> {
  const seen: ProviderEvent[] = [];
  for await (const event of events) {
    seen.push(event);
    if (seen.length > limit) throw new Error('stream did not end');
  }
  return seen;
}

describe('withPerformance', () => {
  it('reports no figures before any run has been measured', () => {
    const clock = manualClock();
    const measured = withPerformance(scriptedProvider(clock, []).provider, { now: clock.now });
    expect(measured.performance()).toEqual({});
  });

  it('measures time to first token and output tokens per second of generation from the usage event', async () => {
    const clock = manualClock();
    const { provider } = scriptedProvider(clock, [
      [text(250, 'a'), text(500, 'b'), text(400, 'c'), usage(100, 30)],
    ]);
    const measured = withPerformance(provider, { now: clock.now });
    const events = await drain(measured.stream(request()));
    expect(events.map((event) => event.type)).toEqual(['text', 'text', 'text', 'usage']);
    // First token after 250 ms; 30 tokens over the 1000 ms from first token to end of stream.
    expect(measured.performance()).toEqual({ latency: 250, tokensPerSecond: 30 });
  });

  it('does not charge the model for time the consumer holds the stream (backpressure)', async () => {
    const clock = manualClock();
    const { provider } = scriptedProvider(clock, [[text(250, 'a'), text(500, 'b'), usage(500, 20)]]);
    const measured = withPerformance(provider, { now: clock.now });
    for await (const _event of measured.stream(request())) clock.advance(10_000);
    expect(measured.performance()).toEqual({ latency: 250, tokensPerSecond: 20 });
  });

  it('estimates output tokens from the text when the provider reports no usage', async () => {
    const clock = manualClock();
    const { provider } = scriptedProvider(clock, [[text(100, 'x'.repeat(20)), text(500, 'y'.repeat(20))]]);
    const measured = withPerformance(provider, { now: clock.now });
    await drain(measured.stream(request()));
    // 40 characters ≈ 10 tokens over 0.5 s.
    expect(measured.performance()).toEqual({ latency: 100, tokensPerSecond: 20 });
  });

  it('averages over the most recent runs only', async () => {
    const clock = manualClock();
    const { provider } = scriptedProvider(clock, [
      [text(100, 'a'), usage(1000, 10)],
      [text(200, 'a'), usage(1000, 20)],
      [text(400, 'a'), usage(1000, 40)],
    ]);
    const measured = withPerformance(provider, { now: clock.now, recentRuns: 2 });
    await drain(measured.stream(request()));
    expect(measured.performance()).toEqual({ latency: 100, tokensPerSecond: 10 });
    await drain(measured.stream(request()));
    expect(measured.performance()).toEqual({ latency: 150, tokensPerSecond: 15 });
    await drain(measured.stream(request()));
    expect(measured.performance()).toEqual({ latency: 300, tokensPerSecond: 30 });
  });

  it('counts the latency of a run that fails after its first token, but not its throughput', async () => {
    const clock = manualClock();
    const { provider } = scriptedProvider(clock, [
      [text(120, 'a'), text(500, 'b'), { after: 10, fail: 'boom' }],
    ]);
    const measured = withPerformance(provider, { now: clock.now });
    await expect(drain(measured.stream(request()))).rejects.toThrow('boom');
    expect(measured.performance()).toEqual({ latency: 120 });
  });

  it('a consumer that stops early releases the wrapped provider and records no throughput', async () => {
    const clock = manualClock();
    const { provider, released } = scriptedProvider(clock, [[text(80, 'a'), text(500, 'b'), usage(500, 99)]]);
    const measured = withPerformance(provider, { now: clock.now });
    for await (const event of measured.stream(request())) {
      expect(event).toEqual({ type: 'text', text: 'a' });
      break;
    }
    expect(released).toEqual([0]);
    expect(measured.performance()).toEqual({ latency: 80 });
  });

  it('a one-piece answer gives a latency but no throughput (no generation time to divide by)', async () => {
    const clock = manualClock();
    const { provider } = scriptedProvider(clock, [[text(5_000_000, 'all at once')]]);
    const measured = withPerformance(provider, { now: clock.now });
    await drain(measured.stream(request()));
    // Capped at the protocol's bound of one hour.
    expect(measured.performance()).toEqual({ latency: 3_600_000 });
  });

  it('passes events through unchanged and keeps the wrapped provider reachable', async () => {
    const demo = createDemoProvider({ wordsPerSecond: 0, answerWords: 5 });
    const measured = withPerformance(demo);
    const direct = await drain(demo.stream(request()));
    const wrapped = await drain(measured.stream(request()));
    expect(wrapped).toEqual(direct);
    expect(measured).toMatchObject({ id: 'demo', label: demo.label, isDemo: true, provider: demo });
    expect(await measured.models()).toEqual(['demo-1']);
  });
});

describe('capabilitiesOf', () => {
  const quota: QuotaStatus = {
    totalQuota: 100,
    usedQuota: 40,
    availableQuota: 60,
    resetTime: 1_767_225_600_000,
    provider: 'openai',
    capabilities: ['chat'],
  };

  it('a peer without a provider announces no AI and no models', () => {
    const capabilities = capabilitiesOf(undefined, ['ignored'], quota, { latency: 5 });
    expect(capabilities).toEqual({ hasAI: false, models: [] });
    expect(v.is(Capabilities, capabilities)).toBe(true);
  });

  it('a provider that offers no model (Chrome AI unavailable) announces no AI', () => {
    expect(capabilitiesOf(createDemoProvider(), [])).toEqual({ hasAI: false, models: [] });
  });

  it('announces the models, the quota and the given performance', () => {
    const capabilities = capabilitiesOf(createDemoProvider(), ['demo-1'], quota, {
      latency: 42,
      tokensPerSecond: 12.5,
    });
    expect(capabilities).toEqual({
      hasAI: true,
      models: ['demo-1'],
      quota,
      performance: { latency: 42, tokensPerSecond: 12.5 },
    });
    expect(v.is(Capabilities, capabilities)).toBe(true);
  });

  it("takes a measured provider's own figures, and leaves performance out while none exist", async () => {
    const clock = manualClock();
    const { provider } = scriptedProvider(clock, [[text(300, 'a'), usage(500, 5)]]);
    const measured = withPerformance(provider, { now: clock.now });
    expect(capabilitiesOf(measured, ['scripted-1'])).toEqual({ hasAI: true, models: ['scripted-1'] });
    await drain(measured.stream(request()));
    expect(capabilitiesOf(measured, ['scripted-1']).performance).toEqual({
      latency: 300,
      tokensPerSecond: 10,
    });
  });

  it('drops model names the protocol would reject, duplicates and figures out of bounds', () => {
    const many = Array.from({ length: MAX_MODELS + 5 }, (_, i) => `model-${i}`);
    const capabilities = capabilitiesOf(
      createDemoProvider(),
      ['', 'x'.repeat(500), 'model-0', ...many],
      undefined,
      { latency: Number.NaN, tokensPerSecond: -1 },
    );
    expect(capabilities.models).toEqual(many.slice(0, MAX_MODELS));
    expect(capabilities.performance).toBeUndefined();
    expect(v.is(Capabilities, capabilities)).toBe(true);
  });
});
