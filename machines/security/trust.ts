/**
 * Trust in other peers, 0..1, from what they did: a beta-reputation score with forgetting.
 *
 * Each peer has positive and negative evidence (weighted counts of outcomes). Its score is
 * `(positive + w·prior) / (positive + negative + w)`: an unknown peer sits at `prior`, evidence
 * pulls it toward 1 or 0, and the prior's weight `w` keeps one outcome from deciding everything.
 * Evidence halves every `halfLifeMs`, so an idle peer drifts back to the prior: a bad hour is
 * forgiven, a good reputation has to be kept up.
 *
 * Bans are separate from the score and time-bound: a protocol violation bans at once, and so does
 * an outcome that drops the score below `banBelow`. Each ban doubles the previous one (capped);
 * the count starts over once a peer has stayed clean for `banMemoryMs` after its last ban.
 *
 * A policy refusal (the owner's content rules said no) is not evidence: `recordRefusal` notes it
 * for the owner's view and leaves the score alone. Memory is bounded: past `maxPeers`, the least
 * recently seen peer that is not banned is forgotten (banned ones only if all are banned).
 */

/** Outcomes of tasks a peer took part in, as the root machine reports them. */
export type TrustOutcome = 'completed' | 'failed' | 'timedOut' | 'aborted' | 'cancelled' | 'rejected';

/** Signed evidence per outcome: positive raises trust, negative lowers it, 0 is neutral. */
export const DEFAULT_OUTCOME_WEIGHTS: Readonly<Record<TrustOutcome, number>> = Object.freeze({
  completed: 1,
  failed: -1,
  timedOut: -1.5,
  aborted: -0.5,
  cancelled: 0,
  rejected: 0,
});

export interface TrustOptions {
  now: () => number;
  /** Score of a peer with no evidence, and what evidence decays toward. Default 0.5. */
  prior?: number;
  /** How many outcomes the prior is worth. Default 2. */
  priorWeight?: number;
  /** Evidence halves after this long. Default 1 hour. */
  halfLifeMs?: number;
  weights?: Partial<Record<TrustOutcome, number>>;
  /** Negative evidence of one protocol violation. Default 4. */
  violationWeight?: number;
  /** An outcome that leaves the score below this bans the peer. Default 0.1. */
  banBelow?: number;
  /** First ban. Default 1 minute. */
  baseBanMs?: number;
  /** Longest ban. Default 1 hour. */
  maxBanMs?: number;
  /** Clean time after a ban ends before the next ban is a first one again. Default 24 hours. */
  banMemoryMs?: number;
  /** Peers remembered at most. Default 1000. */
  maxPeers?: number;
}

export interface TrustChange {
  score: number;
  /** Set when this record started a ban: its length. */
  bannedForMs: number | undefined;
}

export interface TrustPeerSnapshot {
  peerId: string;
  score: number;
  positive: number;
  negative: number;
  banned: boolean;
  banRemainingMs: number;
  /** Bans that count toward the next ban's length. */
  bans: number;
  refusals: number;
  lastViolation: string | undefined;
  lastSeen: number;
}

interface PeerRecord {
  positive: number;
  negative: number;
  /** When `positive`/`negative` were last decayed. */
  at: number;
  bannedUntil: number;
  bans: number;
  refusals: number;
  lastViolation: string | undefined;
  lastSeen: number;
}

function inRange(name: string, value: number, min: number, max = Number.POSITIVE_INFINITY): number {
  if (!(Number.isFinite(value) && value >= min && value <= max)) {
    throw new RangeError(`${name} must be in ${min}..${max}, got ${value}`);
  }
  return value;
}

export class TrustLedger {
  readonly prior: number;
  readonly priorWeight: number;
  readonly halfLifeMs: number;
  readonly weights: Readonly<Record<TrustOutcome, number>>;
  readonly violationWeight: number;
  readonly banBelow: number;
  readonly baseBanMs: number;
  readonly maxBanMs: number;
  readonly banMemoryMs: number;
  readonly maxPeers: number;
  #now: () => number;
  /** Insertion order is recency: a peer is moved to the end whenever it is seen. */
  #peers = new Map<string, PeerRecord>();

  constructor(options: TrustOptions) {
    this.#now = options.now;
    this.prior = inRange('prior', options.prior ?? 0.5, 0, 1);
    this.priorWeight = inRange('priorWeight', options.priorWeight ?? 2, Number.MIN_VALUE);
    this.halfLifeMs = inRange('halfLifeMs', options.halfLifeMs ?? 3_600_000, 1);
    this.weights = Object.freeze({ ...DEFAULT_OUTCOME_WEIGHTS, ...options.weights });
    for (const [outcome, weight] of Object.entries(this.weights))
      inRange(`weights.${outcome}`, weight, -1e6, 1e6);
    this.violationWeight = inRange('violationWeight', options.violationWeight ?? 4, 0);
    this.banBelow = inRange('banBelow', options.banBelow ?? 0.1, 0, 1);
    this.baseBanMs = inRange('baseBanMs', options.baseBanMs ?? 60_000, 1);
    this.maxBanMs = inRange('maxBanMs', options.maxBanMs ?? 3_600_000, this.baseBanMs);
    this.banMemoryMs = inRange('banMemoryMs', options.banMemoryMs ?? 86_400_000, 0);
    this.maxPeers = inRange('maxPeers', options.maxPeers ?? 1_000, 1);
  }

  /** 0..1, for ranking; `prior` for a peer never seen (or forgotten). Reading does not touch recency. */
  score(peerId: string): number {
    const peer = this.#peers.get(peerId);
    if (!peer) return this.prior;
    const { positive, negative } = this.#decayed(peer, this.#now());
    return this.#scoreOf(positive, negative);
  }

  isBanned(peerId: string): boolean {
    return this.banRemainingMs(peerId) > 0;
  }

  banRemainingMs(peerId: string): number {
    const peer = this.#peers.get(peerId);
    return peer ? Math.max(0, peer.bannedUntil - this.#now()) : 0;
  }

  /** A task with this peer ended. Neutral outcomes only refresh recency. */
  recordOutcome(peerId: string, outcome: TrustOutcome): TrustChange {
    const weight = this.weights[outcome];
    const now = this.#now();
    const peer = this.#touch(peerId, now);
    if (weight > 0) peer.positive += weight;
    if (weight < 0) peer.negative -= weight;
    const score = this.#scoreOf(peer.positive, peer.negative);
    const bannedForMs =
      weight < 0 && score < this.banBelow && peer.bannedUntil <= now ? this.#ban(peer, now) : undefined;
    return { score, bannedForMs };
  }

  /**
   * The peer broke the protocol (malformed or out-of-state message, flooding...): strong negative
   * evidence and a ban. A violation during a ban lowers the score but does not lengthen the ban:
   * a burst of bad messages is one incident, and the peer is already shut out.
   */
  recordViolation(peerId: string, kind: string): TrustChange {
    const now = this.#now();
    const peer = this.#touch(peerId, now);
    peer.negative += this.violationWeight;
    peer.lastViolation = kind.slice(0, 64);
    const bannedForMs = peer.bannedUntil <= now ? this.#ban(peer, now) : undefined;
    return { score: this.#scoreOf(peer.positive, peer.negative), bannedForMs };
  }

  /** The owner's policy refused one of this peer's prompts. Counted for the owner; trust unchanged. */
  recordRefusal(peerId: string): TrustChange {
    const peer = this.#touch(peerId, this.#now());
    peer.refusals += 1;
    return { score: this.#scoreOf(peer.positive, peer.negative), bannedForMs: undefined };
  }

  /** The owner lifts a ban by hand; the evidence stays. */
  unban(peerId: string): void {
    const peer = this.#peers.get(peerId);
    if (peer) peer.bannedUntil = Math.min(peer.bannedUntil, this.#now());
  }

  /** Every remembered peer, most recently seen first. */
  snapshot(): TrustPeerSnapshot[] {
    const now = this.#now();
    return [...this.#peers].reverse().map(([peerId, peer]) => {
      const { positive, negative } = this.#decayed(peer, now);
      const banRemainingMs = Math.max(0, peer.bannedUntil - now);
      return {
        peerId,
        score: this.#scoreOf(positive, negative),
        positive,
        negative,
        banned: banRemainingMs > 0,
        banRemainingMs,
        bans: this.#activeBans(peer, now),
        refusals: peer.refusals,
        lastViolation: peer.lastViolation,
        lastSeen: peer.lastSeen,
      };
    });
  }

  #scoreOf(positive: number, negative: number): number {
    return (positive + this.priorWeight * this.prior) / (positive + negative + this.priorWeight);
  }

  #decayed(peer: PeerRecord, now: number) {
    const factor = 2 ** (-Math.max(0, now - peer.at) / this.halfLifeMs);
    return { positive: peer.positive * factor, negative: peer.negative * factor };
  }

  /** Bans that still count: forgotten once the last one ended `banMemoryMs` ago. */
  #activeBans(peer: PeerRecord, now: number): number {
    return peer.bans > 0 && now - peer.bannedUntil >= this.banMemoryMs ? 0 : peer.bans;
  }

  #ban(peer: PeerRecord, now: number): number {
    peer.bans = this.#activeBans(peer, now) + 1;
    const ms = Math.min(this.maxBanMs, this.baseBanMs * 2 ** Math.min(peer.bans - 1, 52));
    peer.bannedUntil = now + ms;
    return ms;
  }

  /** The peer's record, decayed to `now` and moved to most recent; creates it (evicting) if new. */
  #touch(peerId: string, now: number): PeerRecord {
    let peer = this.#peers.get(peerId);
    if (peer) {
      Object.assign(peer, this.#decayed(peer, now), { at: now, lastSeen: now });
      this.#peers.delete(peerId);
    } else {
      peer = {
        positive: 0,
        negative: 0,
        at: now,
        bannedUntil: 0,
        bans: 0,
        refusals: 0,
        lastViolation: undefined,
        lastSeen: now,
      };
      this.#evictFor(now);
    }
    this.#peers.set(peerId, peer);
    return peer;
  }

  #evictFor(now: number) {
    while (this.#peers.size >= this.maxPeers) {
      let victim: string | undefined;
      for (const [id, peer] of this.#peers) {
        if (peer.bannedUntil <= now) {
          victim = id;
          break;
        }
      }
      victim ??= this.#peers.keys().next().value;
      if (victim === undefined) return;
      this.#peers.delete(victim);
    }
  }
}
