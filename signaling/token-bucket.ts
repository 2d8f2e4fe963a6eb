/**
 * A token bucket that refills lazily from timestamps, so it needs no timer. `take` is the one
 * mutation on the message hot path; it is kept out of machine context on purpose.
 */
export class TokenBucket {
  readonly capacity: number;
  readonly refillPerSecond: number;
  #tokens: number;
  #last: number;

  constructor(capacity: number, refillPerSecond: number, now: number) {
    this.capacity = capacity;
    this.refillPerSecond = refillPerSecond;
    this.#tokens = capacity;
    this.#last = now;
  }

  /** Takes `amount` tokens if there are that many; otherwise takes none and returns false. */
  take(now: number, amount = 1): boolean {
    if (now > this.#last) {
      this.#tokens = Math.min(
        this.capacity,
        this.#tokens + ((now - this.#last) / 1000) * this.refillPerSecond,
      );
      this.#last = now;
    }
    if (this.#tokens < amount) return false;
    this.#tokens -= amount;
    return true;
  }

  /** Milliseconds until `amount` tokens are available. */
  waitMs(amount = 1): number {
    const missing = amount - this.#tokens;
    return missing <= 0 ? 0 : Math.ceil((missing / this.refillPerSecond) * 1000);
  }
}
