/**
 * Exponential backoff with full jitter: a uniformly random delay in [0, min(cap, base · 2^attempt)).
 * Full jitter spreads a crowd of reconnecting clients evenly instead of in synchronized waves.
 */
export function fullJitterBackoff(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
