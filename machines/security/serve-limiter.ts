/**
 * The serving peer's capacity: how much of its owner's AI other peers may use, and when.
 *
 * - a token bucket per requesting peer (requests per minute, with a burst);
 * - at most `maxPerPeer` tasks per peer, running or queued, so one peer cannot take every place;
 * - the owner's daily budget, in requests and/or tokens, reset at a daily boundary;
 * - `maxConcurrent` slots, then a bounded FIFO queue whose positions move up as tasks finish.
 *
 * Only an admission takes anything (a rate token, a request from the budget): a refusal costs the
 * requester nothing, so a peer that waits the `retryAfterMs` it was told and asks again gets in
 * unless something else changed. Tasks are identified by (peerId, taskId) because requesters pick
 * task ids and two peers may pick the same one. Pure: time comes from `now`, no timers.
 */

/** Largest `retryAfterMs` the wire accepts (`TaskRejected` in protocol/task.ts). */
export const MAX_RETRY_AFTER_MS = 86_400_000;

const DAY_MS = 86_400_000;

export interface TaskRef {
  peerId: string;
  taskId: string;
}

export interface ServeLimiterOptions {
  now: () => number;
  /** Sustained requests per minute admitted from one peer. Default 10. */
  ratePerMinute?: number;
  /** Requests one peer may make at once before the rate applies (bucket capacity). Default 3. */
  burst?: number;
  /** Tasks running at once. Default 2 (the root machine's `maxConcurrentServes`). */
  maxConcurrent?: number;
  /** Tasks waiting for a slot. 0 means no queue. Default 8. */
  maxQueue?: number;
  /** Tasks one peer may hold, running or queued. Default 4. */
  maxPerPeer?: number;
  /** Admissions per day; `Infinity` for no bound. Default 200. */
  dailyRequests?: number;
  /** Provider tokens (input + output) per day; `Infinity` for no bound. Default Infinity. */
  dailyTokens?: number;
  /**
   * The next daily boundary strictly after `now` (ms since the epoch). Default: UTC midnight.
   * Use `dailyResetAt({ utcOffsetMinutes: -new Date().getTimezoneOffset() })` for local midnight.
   */
  resetAt?: (now: number) => number;
  /** Assumed slot time when no task has finished yet. Default 30 s. */
  defaultTaskMs?: number;
  /** Finished tasks whose slot times make the estimate. Default 20. */
  durationSamples?: number;
  /** Floor for estimated waits, so an overdue estimate does not invite an immediate retry. Default 1 s. */
  minRetryMs?: number;
  /** Rate buckets kept; beyond it, full buckets go first, then the least recently used. Default 1000. */
  maxTrackedPeers?: number;
}

export type LimiterAdmission =
  | { admitted: true; queuePosition: number }
  | {
      admitted: false;
      reason: 'rate-limited' | 'quota-exhausted' | 'busy';
      message: string;
      retryAfterMs: number;
    };

export interface ServeLimiterSnapshot {
  running: (TaskRef & { since: number; startedAt: number | undefined })[];
  queue: (TaskRef & { position: number; since: number })[];
  maxConcurrent: number;
  maxQueue: number;
  day: { requests: number; tokens: number; maxRequests: number; maxTokens: number; resetsAt: number };
  estimatedTaskMs: number;
  trackedPeers: number;
}

/**
 * A `resetAt` for a fixed local hour: the next instant the clock at `utcOffsetMinutes` from UTC
 * shows `hour`:00. A fixed offset does not follow daylight-saving changes; pass your own `resetAt`
 * (e.g. built on Intl) if that matters.
 */
export function dailyResetAt(options: { hour?: number; utcOffsetMinutes?: number } = {}) {
  const hour = options.hour ?? 0;
  const offsetMs = (options.utcOffsetMinutes ?? 0) * 60_000;
  if (!Number.isInteger(hour) || hour < 0 || hour > 23)
    throw new RangeError(`hour must be 0..23, got ${hour}`);
  return (now: number): number => {
    const local = now + offsetMs;
    let boundary = Math.floor(local / DAY_MS) * DAY_MS + hour * 3_600_000;
    if (boundary <= local) boundary += DAY_MS;
    return boundary - offsetMs;
  };
}

interface Queued extends TaskRef {
  since: number;
  /** The budget period it was charged to (its end), so a refund never crosses a reset. */
  period: number;
}
interface Running extends Queued {
  startedAt: number | undefined;
}
interface Bucket {
  tokens: number;
  at: number;
}

const keyOf = (peerId: string, taskId: string) => JSON.stringify([peerId, taskId]);

function positiveInteger(name: string, value: number, min = 1): number {
  if (!Number.isInteger(value) || value < min) throw new RangeError(`${name} must be an integer ≥ ${min}`);
  return value;
}
function budget(name: string, value: number): number {
  if (value !== Number.POSITIVE_INFINITY) positiveInteger(name, value, 0);
  return value;
}

export class ServeLimiter {
  readonly ratePerMinute: number;
  readonly burst: number;
  readonly maxConcurrent: number;
  readonly maxQueue: number;
  readonly maxPerPeer: number;
  readonly dailyRequests: number;
  readonly dailyTokens: number;
  readonly defaultTaskMs: number;
  readonly minRetryMs: number;
  #now: () => number;
  #resetAt: (now: number) => number;
  #durationSamples: number;
  #maxTrackedPeers: number;
  #running = new Map<string, Running>();
  #queue: Queued[] = [];
  #buckets = new Map<string, Bucket>();
  #durations: number[] = [];
  #periodEnd: number;
  #requests = 0;
  #tokens = 0;

  constructor(options: ServeLimiterOptions) {
    this.#now = options.now;
    this.ratePerMinute = options.ratePerMinute ?? 10;
    if (!(this.ratePerMinute > 0 && Number.isFinite(this.ratePerMinute))) {
      throw new RangeError('ratePerMinute must be a positive number');
    }
    this.burst = positiveInteger('burst', options.burst ?? 3);
    this.maxConcurrent = positiveInteger('maxConcurrent', options.maxConcurrent ?? 2);
    this.maxQueue = positiveInteger('maxQueue', options.maxQueue ?? 8, 0);
    this.maxPerPeer = positiveInteger('maxPerPeer', options.maxPerPeer ?? 4);
    this.dailyRequests = budget('dailyRequests', options.dailyRequests ?? 200);
    this.dailyTokens = budget('dailyTokens', options.dailyTokens ?? Number.POSITIVE_INFINITY);
    this.defaultTaskMs = positiveInteger('defaultTaskMs', options.defaultTaskMs ?? 30_000);
    this.minRetryMs = positiveInteger('minRetryMs', options.minRetryMs ?? 1_000, 0);
    this.#durationSamples = positiveInteger('durationSamples', options.durationSamples ?? 20);
    this.#maxTrackedPeers = positiveInteger('maxTrackedPeers', options.maxTrackedPeers ?? 1_000);
    this.#resetAt = options.resetAt ?? dailyResetAt();
    this.#periodEnd = this.#nextReset(this.#now());
  }

  /**
   * Admits a task into a slot (`queuePosition` 0: start it now) or the queue (1 = next to start),
   * or refuses it. Checks, in order: the daily budget, the peer's rate, the peer's share, capacity.
   * Asking again about a task already admitted returns its current position and charges nothing.
   */
  admit(peerId: string, taskId: string): LimiterAdmission {
    const now = this.#roll();
    const key = keyOf(peerId, taskId);
    if (this.#running.has(key)) return { admitted: true, queuePosition: 0 };
    const queued = this.#queue.findIndex((task) => keyOf(task.peerId, task.taskId) === key);
    if (queued >= 0) return { admitted: true, queuePosition: queued + 1 };

    if (this.#requests >= this.dailyRequests || this.#tokens >= this.dailyTokens) {
      const what =
        this.#requests >= this.dailyRequests
          ? `${this.dailyRequests} requests`
          : `${this.dailyTokens} tokens`;
      return this.#refuse(
        'quota-exhausted',
        `this peer's owner has used today's budget of ${what}`,
        this.#periodEnd - now,
      );
    }
    const tokens = this.#tokensAt(peerId, now);
    if (tokens < 1) {
      const perMs = this.ratePerMinute / 60_000;
      return this.#refuse(
        'rate-limited',
        `more than ${this.ratePerMinute} requests per minute`,
        Math.ceil((1 - tokens) / perMs),
      );
    }
    const held = this.#held(peerId);
    if (held.length >= this.maxPerPeer) {
      const soonest = Math.min(...held.map((task) => this.#estimatedFinish(task, now)));
      return this.#refuse(
        'rate-limited',
        `${held.length} tasks from this peer are already running or queued`,
        soonest - now,
      );
    }
    const queueFull = this.#running.size >= this.maxConcurrent && this.#queue.length >= this.maxQueue;
    if (queueFull) {
      const soonest = Math.min(...[...this.#running.values()].map((task) => this.#finishOf(task)));
      return this.#refuse(
        'busy',
        `serving ${this.#running.size} tasks with ${this.#queue.length} waiting`,
        soonest - now,
      );
    }

    this.#take(peerId, tokens, now);
    this.#requests += 1;
    if (this.#running.size < this.maxConcurrent) {
      this.#running.set(key, { peerId, taskId, since: now, period: this.#periodEnd, startedAt: undefined });
      return { admitted: true, queuePosition: 0 };
    }
    this.#queue.push({ peerId, taskId, since: now, period: this.#periodEnd });
    return { admitted: true, queuePosition: this.#queue.length };
  }

  /**
   * Optional: the task's work began (slot times are measured from here rather than from the
   * slot's grant). False if the task is unknown, still queued, or already started.
   */
  started(peerId: string, taskId: string): boolean {
    const task = this.#running.get(keyOf(peerId, taskId));
    if (!task || task.startedAt !== undefined) return false;
    task.startedAt = this.#now();
    return true;
  }

  /**
   * The task is over, however it ended. A running task frees its slot (its slot time joins the
   * estimate) and the head of the queue takes it: `promoted` lists the tasks to start now. A task
   * that leaves the queue before it ran gives its request back to today's budget. `usage` counts
   * against the daily token budget. Unknown or repeated calls change nothing.
   */
  finished(
    peerId: string,
    taskId: string,
    usage?: { inputTokens: number; outputTokens: number },
  ): { promoted: TaskRef[] } {
    const now = this.#roll();
    const result = this.#release(keyOf(peerId, taskId), now, true);
    if (result.known && usage) {
      this.#tokens += Math.max(0, usage.inputTokens) + Math.max(0, usage.outputTokens);
    }
    return { promoted: result.promoted };
  }

  /**
   * Takes back an admission that never turned into work (something after the limiter refused the
   * task): it gives its request back to today's budget and adds no slot time to the estimate. The
   * rate token stays spent. A freed slot goes to the head of the queue, as in `finished`.
   */
  withdraw(peerId: string, taskId: string): { promoted: TaskRef[] } {
    const now = this.#roll();
    return { promoted: this.#release(keyOf(peerId, taskId), now, false).promoted };
  }

  /** 0 while running, 1.. while queued, undefined when unknown. */
  positionOf(peerId: string, taskId: string): number | undefined {
    const key = keyOf(peerId, taskId);
    if (this.#running.has(key)) return 0;
    const index = this.#queue.findIndex((task) => keyOf(task.peerId, task.taskId) === key);
    return index >= 0 ? index + 1 : undefined;
  }

  /** Queued tasks in order, position 1 first. */
  queuePositions(): (TaskRef & { position: number })[] {
    return this.#queue.map((task, index) => ({
      peerId: task.peerId,
      taskId: task.taskId,
      position: index + 1,
    }));
  }

  /** Mean slot time of the most recent finished tasks, or `defaultTaskMs` before any finished. */
  estimatedTaskMs(): number {
    if (this.#durations.length === 0) return this.defaultTaskMs;
    return this.#durations.reduce((sum, ms) => sum + ms, 0) / this.#durations.length;
  }

  snapshot(): ServeLimiterSnapshot {
    this.#roll();
    return {
      running: [...this.#running.values()].map(({ peerId, taskId, since, startedAt }) => ({
        peerId,
        taskId,
        since,
        startedAt,
      })),
      queue: this.#queue.map((task, index) => ({
        peerId: task.peerId,
        taskId: task.taskId,
        position: index + 1,
        since: task.since,
      })),
      maxConcurrent: this.maxConcurrent,
      maxQueue: this.maxQueue,
      day: {
        requests: this.#requests,
        tokens: this.#tokens,
        maxRequests: this.dailyRequests,
        maxTokens: this.dailyTokens,
        resetsAt: this.#periodEnd,
      },
      estimatedTaskMs: this.estimatedTaskMs(),
      trackedPeers: this.#buckets.size,
    };
  }

  #release(key: string, now: number, ran: boolean): { known: boolean; promoted: TaskRef[] } {
    const promoted: TaskRef[] = [];
    const running = this.#running.get(key);
    if (running) {
      this.#running.delete(key);
      if (ran) {
        this.#durations.push(now - (running.startedAt ?? running.since));
        if (this.#durations.length > this.#durationSamples) this.#durations.shift();
      } else if (running.period === this.#periodEnd) {
        this.#requests = Math.max(0, this.#requests - 1);
      }
      const next = this.#queue.shift();
      if (next) {
        const { peerId, taskId } = next;
        this.#running.set(keyOf(peerId, taskId), {
          peerId,
          taskId,
          since: now,
          startedAt: undefined,
          period: next.period,
        });
        promoted.push({ peerId, taskId });
      }
      return { known: true, promoted };
    }
    const index = this.#queue.findIndex((task) => keyOf(task.peerId, task.taskId) === key);
    if (index < 0) return { known: false, promoted };
    const [task] = this.#queue.splice(index, 1);
    if (task && task.period === this.#periodEnd) this.#requests = Math.max(0, this.#requests - 1);
    return { known: true, promoted };
  }

  #refuse(reason: 'rate-limited' | 'quota-exhausted' | 'busy', message: string, waitMs: number) {
    const retryAfterMs = Math.min(MAX_RETRY_AFTER_MS, Math.max(this.minRetryMs, Math.ceil(waitMs)));
    return { admitted: false as const, reason, message, retryAfterMs };
  }

  /** Starts a new budget period when the boundary has passed; returns the time it read. */
  #roll(): number {
    const now = this.#now();
    if (now >= this.#periodEnd) {
      this.#requests = 0;
      this.#tokens = 0;
      this.#periodEnd = this.#nextReset(now);
    }
    return now;
  }

  #nextReset(now: number): number {
    const next = this.#resetAt(now);
    if (!(Number.isFinite(next) && next > now)) {
      throw new RangeError(`resetAt(${now}) returned ${next}: it must be a finite time after now`);
    }
    return next;
  }

  #tokensAt(peerId: string, now: number): number {
    const bucket = this.#buckets.get(peerId);
    if (!bucket) return this.burst;
    const refilled = bucket.tokens + (Math.max(0, now - bucket.at) * this.ratePerMinute) / 60_000;
    return Math.min(this.burst, refilled);
  }

  #take(peerId: string, tokens: number, now: number) {
    this.#buckets.delete(peerId);
    this.#buckets.set(peerId, { tokens: tokens - 1, at: now });
    if (this.#buckets.size <= this.#maxTrackedPeers) return;
    // A full bucket is the same as no bucket: forget those first, then the least recently used.
    for (const [id] of this.#buckets) {
      if (this.#tokensAt(id, now) >= this.burst) this.#buckets.delete(id);
    }
    for (const [id] of this.#buckets) {
      if (this.#buckets.size <= this.#maxTrackedPeers) break;
      this.#buckets.delete(id);
    }
  }

  #held(peerId: string): (Running | Queued)[] {
    const running = [...this.#running.values()].filter((task) => task.peerId === peerId);
    return [...running, ...this.#queue.filter((task) => task.peerId === peerId)];
  }

  #finishOf(task: Running): number {
    return (task.startedAt ?? task.since) + this.estimatedTaskMs();
  }

  /** When a held task should end: a running one after its slot time; a queued one after the tasks ahead. */
  #estimatedFinish(task: Running | Queued, now: number): number {
    if ('startedAt' in task) return this.#finishOf(task);
    const position = this.#queue.indexOf(task) + 1;
    const firstFree = Math.max(now, Math.min(...[...this.#running.values()].map((t) => this.#finishOf(t))));
    const rounds = Math.ceil(position / this.maxConcurrent);
    return firstFree + rounds * this.estimatedTaskMs();
  }
}
