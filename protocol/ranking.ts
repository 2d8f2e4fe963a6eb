import type { Capabilities } from './primitives.ts';
import type { DiscoveryRequirements } from './signaling.ts';

/**
 * The design's PeerSelector, made sensible. Shared by the server (discover) and clients (which
 * add what only they know: the RTT they measured and the trust they have earned).
 *
 * score (0..100) = 40 · quota + 30 · model match + 20 · speed + 10 · trust
 *  - quota: available / (available + K), K = max(minQuota, 10): saturating, so a huge quota
 *    does not drown every other signal;
 *  - model match: 1 for the first preferred model, falling to 0.5 for the last, 0 for none
 *    (1 when no preference is given);
 *  - speed: 1 / (1 + latency/250 ms), latency being the measured RTT when known, else the
 *    peer's own time to first token; unknown counts 0.5;
 *  - trust: 0..1 when known, 0.5 when not.
 */
export interface PeerObservations {
  /** Round-trip time to the peer, measured by the caller, in ms. */
  rttMs?: number;
  /** 0..1 from the caller's history with this peer. */
  trust?: number;
}

export const SCORE_WEIGHTS = { quota: 40, model: 30, speed: 20, trust: 10 } as const;

/** Does the peer meet the hard requirements at all? */
export function peerMatches(capabilities: Capabilities, requirements: DiscoveryRequirements): boolean {
  if (requirements.needsAI && (!capabilities.hasAI || capabilities.models.length === 0)) return false;
  if (requirements.minQuota > 0 && availableQuota(capabilities) < requirements.minQuota) return false;
  if (requirements.requireModel && requirements.preferredModels.length > 0) {
    return modelMatch(capabilities, requirements.preferredModels) > 0;
  }
  return true;
}

/** The quota a peer offers; a peer that announces no quota but has AI is treated as unmetered. */
export function availableQuota(capabilities: Capabilities): number {
  if (capabilities.quota) return capabilities.quota.availableQuota;
  return capabilities.hasAI ? Number.POSITIVE_INFINITY : 0;
}

function modelMatch(capabilities: Capabilities, preferred: readonly string[]): number {
  if (preferred.length === 0) return 1;
  for (let index = 0; index < preferred.length; index++) {
    if (capabilities.models.includes(preferred[index] as string)) {
      return preferred.length === 1 ? 1 : 1 - (0.5 * index) / (preferred.length - 1);
    }
  }
  return 0;
}

/** Scores one peer from 0 to 100. Call `peerMatches` first. */
export function scorePeer(
  capabilities: Capabilities,
  requirements: DiscoveryRequirements,
  observations: PeerObservations = {},
): number {
  const available = availableQuota(capabilities);
  const k = Math.max(requirements.minQuota, 10);
  const quota = available === Number.POSITIVE_INFINITY ? 1 : available / (available + k);
  const model = modelMatch(capabilities, requirements.preferredModels);
  const latency = observations.rttMs ?? capabilities.performance?.latency;
  const speed = latency === undefined ? 0.5 : 1 / (1 + latency / 250);
  const trust = observations.trust ?? 0.5;
  const score =
    SCORE_WEIGHTS.quota * quota +
    SCORE_WEIGHTS.model * model +
    SCORE_WEIGHTS.speed * speed +
    SCORE_WEIGHTS.trust * Math.min(1, Math.max(0, trust));
  return Math.round(score * 100) / 100;
}

/** Orders scored peers best first; ties go to the faster, then to the lower peer id (stable output). */
export function compareRanked(
  a: { peerId: string; score: number; capabilities: Capabilities },
  b: { peerId: string; score: number; capabilities: Capabilities },
): number {
  if (b.score !== a.score) return b.score - a.score;
  const speedA = a.capabilities.performance?.tokensPerSecond ?? 0;
  const speedB = b.capabilities.performance?.tokensPerSecond ?? 0;
  if (speedB !== speedA) return speedB - speedA;
  return a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0;
}
