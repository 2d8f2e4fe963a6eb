import { availableQuota, type Capabilities, type QuotaStatus } from '../protocol/index.ts';

/** Where a prompt goes, decided before anything leaves this peer. */
export type RoutePlan =
  | { route: 'local'; reason: string }
  | { route: 'delegate'; candidates: string[]; reason: string }
  | { route: 'none'; cause: 'not-connected' | 'no-peers' | 'no-model' | 'no-quota'; reason: string };

export interface RouteInput {
  /** The model the prompt asks for, if any. */
  model?: string;
  /** This peer's own AI: its models and quota (no models = no AI here). */
  local: { models: string[]; quota?: QuotaStatus };
  /** Known peers, best first (discovery's ranking), without this peer. */
  peers: { peerId: string; capabilities: Capabilities }[];
  connected: boolean;
  now: number;
}

const when = (time: number, now: number) =>
  time > now ? `in ${Math.max(1, Math.round((time - now) / 60_000))} min` : 'now';

/**
 * The design's quota-aware routing: run locally when quota and model allow, otherwise delegate to
 * the best peer that has the model and quota; when no peer can serve, say exactly why.
 */
export function planRoute(input: RouteInput): RoutePlan {
  const { model, local, now } = input;
  const localHasModel = local.models.length > 0 && (!model || local.models.includes(model));
  const localHasQuota = !local.quota || local.quota.availableQuota >= 1;
  if (localHasModel && localHasQuota) return { route: 'local', reason: 'this peer has the model and quota' };
  const whyNotLocal =
    local.models.length === 0
      ? 'this peer has no AI'
      : !localHasModel
        ? `this peer does not have model ${model}`
        : `this peer's quota is used up (resets ${when((local.quota as QuotaStatus).resetTime, now)})`;

  const withAI = input.peers.filter((peer) => peer.capabilities.hasAI && peer.capabilities.models.length > 0);
  const withModel = model ? withAI.filter((peer) => peer.capabilities.models.includes(model)) : withAI;
  const serving = withModel.filter((peer) => availableQuota(peer.capabilities) >= 1);
  if (serving.length > 0) {
    return {
      route: 'delegate',
      candidates: serving.map((peer) => peer.peerId),
      reason: `${whyNotLocal}; delegating`,
    };
  }
  if (!input.connected) {
    return {
      route: 'none',
      cause: 'not-connected',
      reason: `${whyNotLocal}, and this peer is not connected to any other`,
    };
  }
  if (withAI.length === 0)
    return { route: 'none', cause: 'no-peers', reason: `${whyNotLocal}, and no connected peer offers AI` };
  if (withModel.length === 0) {
    const offered = [...new Set(withAI.flatMap((peer) => peer.capabilities.models))].slice(0, 5).join(', ');
    return {
      route: 'none',
      cause: 'no-model',
      reason: `${whyNotLocal}, and no peer has model ${model} (offered: ${offered})`,
    };
  }
  const resets = withModel
    .map((peer) => peer.capabilities.quota?.resetTime)
    .filter((time): time is number => time !== undefined)
    .sort((a, b) => a - b)[0];
  return {
    route: 'none',
    cause: 'no-quota',
    reason: `${whyNotLocal}, and every peer with ${model ? `model ${model}` : 'AI'} is out of quota${
      resets ? ` (the first resets ${when(resets, now)})` : ''
    }`,
  };
}
