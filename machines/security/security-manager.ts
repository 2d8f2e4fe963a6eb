import * as v from 'valibot';
import { MAX_ERROR_MESSAGE_LENGTH, MAX_PROMPT_LENGTH, MAX_TASK_TIMEOUT_MS } from '../../protocol/limits.ts';
import { PromptDelegation } from '../../protocol/task.ts';
import type { Usage } from '../providers/provider.ts';
import type { Admission, TaskServeOutcome } from '../task-serve.machine.ts';
import { PromptPolicy, type PromptPolicyOptions } from './prompt-policy.ts';
import {
  MAX_RETRY_AFTER_MS,
  ServeLimiter,
  type ServeLimiterOptions,
  type ServeLimiterSnapshot,
  type TaskRef,
} from './serve-limiter.ts';
import {
  type TrustChange,
  TrustLedger,
  type TrustOptions,
  type TrustOutcome,
  type TrustPeerSnapshot,
} from './trust.ts';

/**
 * The design's Security Manager for a serving peer: one `admit` that decides whether to run a
 * delegated prompt, and `record` hooks that feed what happened back into trust and capacity.
 *
 * `admit` checks, in order, and answers with the first refusal:
 *   1. banned        the requester is serving a temporary ban            → 'banned'
 *   2. payload       the delegation fails the wire schema                → 'invalid'
 *                    it exceeds this owner's payload limits              → 'policy'
 *   3. content       the prompt (or continuation) matches a pattern      → 'policy'
 *   4. budget, rate  the owner's daily budget; the peer's rate and share → 'quota-exhausted' | 'rate-limited'
 *   5. capacity      every slot taken and the queue full                 → 'busy'
 * A banned peer learns only that it is banned. Refusals 2–3 never lower trust (they are about the
 * owner's rules or our own bugs, not the requester's conduct); a peer that keeps asking while
 * rate-limited (`floodAfter` refusals in a row) commits a 'flood' violation and is banned.
 *
 * It checks the model and the provider not at all: compose it after a check like
 * `defaultServePolicy`'s for those. Pure and isomorphic: time comes from `now`.
 */

/** Bounds this owner puts on a delegation, each no looser than the protocol's. */
export interface PayloadLimits {
  /** Characters of prompt. Default and maximum MAX_PROMPT_LENGTH. */
  maxPromptLength: number;
  /** Characters of `continueFrom` (text a vanished peer already produced). Default and maximum MAX_PROMPT_LENGTH. */
  maxContinueFromLength: number;
  /** The requester's `timeout`: how long one task may hold a slot. Default 5 min; maximum MAX_TASK_TIMEOUT_MS. */
  maxTimeoutMs: number;
}

export const PROTOCOL_PAYLOAD_LIMITS: Readonly<PayloadLimits> = Object.freeze({
  maxPromptLength: MAX_PROMPT_LENGTH,
  maxContinueFromLength: MAX_PROMPT_LENGTH,
  maxTimeoutMs: MAX_TASK_TIMEOUT_MS,
});

export const DEFAULT_PAYLOAD_LIMITS: Readonly<PayloadLimits> = Object.freeze({
  ...PROTOCOL_PAYLOAD_LIMITS,
  maxTimeoutMs: 300_000,
});

export interface SecurityManagerOptions {
  now: () => number;
  limits?: Partial<PayloadLimits>;
  /** Content patterns; default DEFAULT_PROMPT_PATTERNS. */
  patterns?: PromptPolicyOptions['patterns'];
  normalizePrompts?: boolean;
  limiter?: Omit<ServeLimiterOptions, 'now'>;
  trust?: Omit<TrustOptions, 'now'>;
  /** Rate-limited refusals in a row that make a 'flood' violation. 0 turns it off. Default 5. */
  floodAfter?: number;
  /** Peers whose rate-limited streak is remembered. Default 1000. */
  maxTrackedPeers?: number;
}

/** What a task we requested from a peer came to (the requester machine's attempt outcomes). */
export type RequestOutcome =
  | 'completed'
  | 'failed'
  | 'timedOut'
  | 'unanswered'
  | 'lost'
  | 'rejected'
  | 'cancelled';

export type SecurityRecord =
  /**
   * A task we served for `peerId` ended (the serve machine's output). `rejected` withdraws the
   * admission of (peerId, taskId) if this manager gave one (a later check refused the task).
   */
  | { type: 'served'; peerId: string; taskId: string; outcome: TaskServeOutcome; usage?: Usage | undefined }
  /** A task `peerId` served for us ended. */
  | { type: 'requested'; peerId: string; outcome: RequestOutcome }
  /** `peerId` broke the protocol (malformed message, message out of state, oversized frame...). */
  | { type: 'violation'; peerId: string; kind: string };

export interface RecordResult {
  /** Queued tasks that now hold a slot: start them. */
  promoted: TaskRef[];
  trust: TrustChange | undefined;
}

export interface SecuritySnapshot {
  limits: Readonly<PayloadLimits>;
  limiter: ServeLimiterSnapshot;
  trust: TrustPeerSnapshot[];
}

/**
 * How a served task reflects on its requester: it stayed to the end (good) or vanished mid-stream
 * (weakly bad). Our provider failing, the requester's deadline passing (our provider may be slow),
 * a cancel and our own refusal say nothing about the requester.
 */
const SERVED_EVIDENCE: Record<TaskServeOutcome, TrustOutcome | undefined> = {
  completed: 'completed',
  aborted: 'aborted',
  failed: undefined,
  timedOut: undefined,
  cancelled: undefined,
  rejected: undefined,
};

/** How a task a peer served for us reflects on that peer. */
const REQUESTED_EVIDENCE: Record<RequestOutcome, TrustOutcome> = {
  completed: 'completed',
  failed: 'failed',
  timedOut: 'timedOut',
  unanswered: 'timedOut',
  lost: 'aborted',
  rejected: 'rejected',
  cancelled: 'cancelled',
};

function limitsFrom(partial: Partial<PayloadLimits> = {}): Readonly<PayloadLimits> {
  const limits = { ...DEFAULT_PAYLOAD_LIMITS, ...partial };
  for (const key of Object.keys(PROTOCOL_PAYLOAD_LIMITS) as (keyof PayloadLimits)[]) {
    const value = limits[key];
    if (!Number.isInteger(value) || value < 1 || value > PROTOCOL_PAYLOAD_LIMITS[key]) {
      throw new RangeError(`${key} must be an integer in 1..${PROTOCOL_PAYLOAD_LIMITS[key]}, got ${value}`);
    }
  }
  return Object.freeze(limits);
}

const refusal = (
  reason: Extract<Admission, { admitted: false }>['reason'],
  message: string,
  retryAfterMs?: number,
): Admission => ({
  admitted: false,
  reason,
  message: message.slice(0, MAX_ERROR_MESSAGE_LENGTH),
  ...(retryAfterMs === undefined ? {} : { retryAfterMs: Math.min(MAX_RETRY_AFTER_MS, retryAfterMs) }),
});

export class SecurityManager {
  readonly limits: Readonly<PayloadLimits>;
  readonly policy: PromptPolicy;
  readonly limiter: ServeLimiter;
  readonly trust: TrustLedger;
  readonly floodAfter: number;
  #maxTrackedPeers: number;
  /** Rate-limited refusals in a row, per peer; insertion order is recency. */
  #streaks = new Map<string, number>();

  constructor(options: SecurityManagerOptions) {
    this.limits = limitsFrom(options.limits);
    this.policy = new PromptPolicy({
      maxPromptLength: this.limits.maxPromptLength,
      ...(options.patterns ? { patterns: options.patterns } : {}),
      ...(options.normalizePrompts === undefined ? {} : { normalize: options.normalizePrompts }),
    });
    this.limiter = new ServeLimiter({ ...options.limiter, now: options.now });
    this.trust = new TrustLedger({ ...options.trust, now: options.now });
    this.floodAfter = options.floodAfter ?? 5;
    if (!Number.isInteger(this.floodAfter) || this.floodAfter < 0) {
      throw new RangeError('floodAfter must be an integer ≥ 0');
    }
    this.#maxTrackedPeers = options.maxTrackedPeers ?? 1_000;
  }

  /** Decides on one delegation from `fromPeerId`. An admitted task holds its place until `record`. */
  admit(delegation: PromptDelegation, fromPeerId: string): Admission {
    const banned = this.#bannedRefusal(fromPeerId);
    if (banned) return banned;

    const parsed = v.safeParse(PromptDelegation, delegation);
    if (!parsed.success) {
      const issue = parsed.issues[0];
      const path = issue ? v.getDotPath(issue) : null;
      return refusal(
        'invalid',
        `invalid delegation: ${path ? `${path}: ` : ''}${issue?.message ?? 'rejected'}`,
      );
    }
    const payload = this.#payloadRefusal(delegation);
    if (payload) return payload;
    const content = this.#contentRefusal(delegation);
    if (content) {
      this.trust.recordRefusal(fromPeerId);
      return content;
    }

    const verdict = this.limiter.admit(fromPeerId, delegation.taskId);
    if (verdict.admitted) {
      this.#streaks.delete(fromPeerId);
      return { admitted: true, queuePosition: verdict.queuePosition };
    }
    if (verdict.reason === 'rate-limited' && this.#flooded(fromPeerId)) {
      this.trust.recordViolation(fromPeerId, 'flood');
      return (
        this.#bannedRefusal(fromPeerId) ?? refusal(verdict.reason, verdict.message, verdict.retryAfterMs)
      );
    }
    return refusal(verdict.reason, verdict.message, verdict.retryAfterMs);
  }

  /**
   * `admit` in the shape of the root machine's `ServePolicy`. Any other fields of the request
   * (`running`, `now`, `quota`) are ignored: the manager counts its own slots and reads its own clock.
   */
  readonly servePolicy = (request: { delegation: PromptDelegation; fromPeerId: string }): Admission =>
    this.admit(request.delegation, request.fromPeerId);

  /** The admitted task's provider began (optional; see `ServeLimiter.started`). */
  started(peerId: string, taskId: string): boolean {
    return this.limiter.started(peerId, taskId);
  }

  /** Feeds an ending or a violation back: frees capacity, updates trust, bans on violations. */
  record(event: SecurityRecord): RecordResult {
    switch (event.type) {
      case 'served': {
        const { promoted } =
          event.outcome === 'rejected'
            ? this.limiter.withdraw(event.peerId, event.taskId)
            : this.limiter.finished(event.peerId, event.taskId, event.usage);
        const evidence = SERVED_EVIDENCE[event.outcome];
        return { promoted, trust: evidence ? this.trust.recordOutcome(event.peerId, evidence) : undefined };
      }
      case 'requested':
        return {
          promoted: [],
          trust: this.trust.recordOutcome(event.peerId, REQUESTED_EVIDENCE[event.outcome]),
        };
      case 'violation':
        return { promoted: [], trust: this.trust.recordViolation(event.peerId, event.kind) };
    }
  }

  snapshot(): SecuritySnapshot {
    return { limits: this.limits, limiter: this.limiter.snapshot(), trust: this.trust.snapshot() };
  }

  #bannedRefusal(peerId: string): Admission | undefined {
    const remaining = this.trust.banRemainingMs(peerId);
    if (remaining <= 0) return undefined;
    return refusal('banned', 'this peer is not serving you for a while', remaining);
  }

  #payloadRefusal(delegation: PromptDelegation): Admission | undefined {
    const { maxTimeoutMs, maxContinueFromLength } = this.limits;
    if (delegation.timeout > maxTimeoutMs) {
      return refusal(
        'policy',
        `the task asks for ${delegation.timeout} ms; this peer serves tasks of at most ${maxTimeoutMs} ms`,
      );
    }
    const continued = delegation.continueFrom?.length ?? 0;
    if (continued > maxContinueFromLength) {
      return refusal(
        'policy',
        `the continuation is ${continued} characters; this peer continues from at most ${maxContinueFromLength}`,
      );
    }
    return undefined;
  }

  #contentRefusal(delegation: PromptDelegation): Admission | undefined {
    const verdict = this.policy.check(delegation.prompt);
    if (!verdict.allowed) return refusal('policy', verdict.message);
    // The continuation is fed to our provider too, so it gets the same patterns.
    if (delegation.continueFrom && this.policy.match(delegation.continueFrom) !== undefined) {
      return refusal('policy', "the continuation matches this peer's content policy");
    }
    return undefined;
  }

  /** Counts one more rate-limited refusal; true (and the count restarts) when it reaches `floodAfter`. */
  #flooded(peerId: string): boolean {
    if (this.floodAfter === 0) return false;
    const streak = (this.#streaks.get(peerId) ?? 0) + 1;
    this.#streaks.delete(peerId);
    if (streak >= this.floodAfter) return true;
    this.#streaks.set(peerId, streak);
    if (this.#streaks.size > this.#maxTrackedPeers) {
      const oldest = this.#streaks.keys().next().value;
      if (oldest !== undefined) this.#streaks.delete(oldest);
    }
    return false;
  }
}
