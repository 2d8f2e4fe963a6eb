import {
  type Capabilities,
  MAX_MODEL_NAME_LENGTH,
  MAX_MODELS,
  type PerformanceMetrics,
  type QuotaStatus,
} from '../../protocol/index.ts';
import { estimateTokensForLength } from './continuation.ts';
import type { AIProvider, ProviderEvent, ProviderRequest } from './provider.ts';

export interface PerformanceOptions {
  /** A millisecond clock; defaults to `performance.now()`. Tests inject a fake one. */
  now?: () => number;
  /** How many recent runs the reported figures average over (default 10). */
  recentRuns?: number;
}

/** A provider whose runs are timed; `provider` is the wrapped one (for its own extra methods). */
export interface MeasuredProvider<P extends AIProvider = AIProvider> extends AIProvider {
  readonly provider: P;
  /** Smoothed figures from recent runs; a figure no run has measured yet is absent. */
  performance(): PerformanceMetrics;
}

/** The protocol's upper bounds (see `PerformanceMetrics` in protocol/primitives.ts). */
const MAX_LATENCY_MS = 3_600_000;
const MAX_TOKENS_PER_SECOND = 1_000_000;

/**
 * Wraps `provider` so that every real run is measured:
 *  - latency: time to first token, in ms, from the start of the request to the first text;
 *  - tokensPerSecond: output tokens over generation time (first token to end of stream), counted
 *    only for runs that complete. Output tokens come from the provider's usage event, or are
 *    estimated from the text (about four characters per token) when it reports none.
 *
 * Only time spent waiting on the provider counts: while the consumer holds the stream (the serving
 * side pauses reading when the requester's window is full), the clock is not charged to the model.
 * Each figure is the mean of the last `recentRuns` samples.
 */
export function withPerformance<P extends AIProvider>(
  provider: P,
  options: PerformanceOptions = {},
): MeasuredProvider<P> {
  const now = options.now ?? (() => globalThis.performance.now());
  const recentRuns = Math.max(1, options.recentRuns ?? 10);
  const latencies: number[] = [];
  const rates: number[] = [];
  const record = (samples: number[], value: number) => {
    samples.push(value);
    if (samples.length > recentRuns) samples.shift();
  };

  async function* stream(request: ProviderRequest): AsyncGenerator<ProviderEvent> {
    const iterator = provider.stream(request)[Symbol.asyncIterator]();
    let waited = 0; // ms spent waiting on the provider so far
    let firstTokenAt: number | undefined; // `waited` when the first text arrived
    let outputTokens: number | undefined;
    let outputChars = 0;
    let finished = false;
    try {
      for (;;) {
        const before = now();
        const step = await iterator.next();
        waited += Math.max(0, now() - before);
        if (step.done) {
          finished = true;
          break;
        }
        const event = step.value;
        if (event.type === 'usage') {
          outputTokens = event.usage.outputTokens;
        } else if (event.text.length > 0) {
          outputChars += event.text.length;
          if (firstTokenAt === undefined) {
            firstTokenAt = waited;
            record(latencies, waited);
          }
        }
        yield event;
      }
    } finally {
      // Stopped early (abort, error, consumer gone): let the provider release what it holds.
      if (!finished) await iterator.return?.();
    }
    if (firstTokenAt !== undefined) {
      const tokens = outputTokens ?? estimateTokensForLength(outputChars);
      const seconds = (waited - firstTokenAt) / 1000;
      if (seconds > 0 && tokens > 0) record(rates, tokens / seconds);
    }
  }

  return {
    id: provider.id,
    label: provider.label,
    isDemo: provider.isDemo,
    models: () => provider.models(),
    stream,
    provider,
    performance() {
      const metrics: PerformanceMetrics = {};
      if (latencies.length > 0) metrics.latency = Math.min(MAX_LATENCY_MS, Math.round(mean(latencies)));
      if (rates.length > 0) {
        metrics.tokensPerSecond = Math.min(MAX_TOKENS_PER_SECOND, Math.round(mean(rates) * 10) / 10);
      }
      return metrics;
    },
  };
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

function isMeasured(provider: AIProvider): provider is MeasuredProvider {
  return typeof (provider as Partial<MeasuredProvider>).performance === 'function';
}

/**
 * The protocol's Capabilities for a peer serving with `provider` (or none). Model names that break
 * the protocol's bounds are dropped and the list is capped at `MAX_MODELS`, so the result always
 * passes the `Capabilities` schema. A peer with no provider, or whose provider offers no model,
 * announces `hasAI: false` and nothing else. Performance defaults to the provider's own measurements
 * when it was wrapped with `withPerformance`.
 */
export function capabilitiesOf(
  provider: AIProvider | undefined,
  models: readonly string[],
  quota?: QuotaStatus,
  performance?: PerformanceMetrics,
): Capabilities {
  const names = [
    ...new Set(models.filter((name) => name.length > 0 && name.length <= MAX_MODEL_NAME_LENGTH)),
  ].slice(0, MAX_MODELS);
  if (!provider || names.length === 0) return { hasAI: false, models: [] };
  const capabilities: Capabilities = { hasAI: true, models: names };
  if (quota) capabilities.quota = quota;
  const measured = performance ?? (isMeasured(provider) ? provider.performance() : undefined);
  const metrics = measured ? definedMetrics(measured) : undefined;
  if (metrics) capabilities.performance = metrics;
  return capabilities;
}

/** Only finite, in-bounds figures; undefined when none is left. */
function definedMetrics(metrics: PerformanceMetrics): PerformanceMetrics | undefined {
  const result: PerformanceMetrics = {};
  const ok = (value: number | undefined, max: number): value is number =>
    value !== undefined && Number.isFinite(value) && value >= 0 && value <= max;
  if (ok(metrics.latency, MAX_LATENCY_MS)) result.latency = metrics.latency;
  if (ok(metrics.tokensPerSecond, MAX_TOKENS_PER_SECOND)) result.tokensPerSecond = metrics.tokensPerSecond;
  return result.latency === undefined && result.tokensPerSecond === undefined ? undefined : result;
}
