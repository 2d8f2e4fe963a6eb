import type { ErrorCode, RoutedClientMessage } from '../protocol/index.ts';
import type { SignalingMetrics } from './metrics.ts';
import type { PeerRegistry } from './peer-registry.ts';
import type { SocketPort } from './socket-port.ts';

export interface RouterDeps {
  registry: PeerRegistry;
  metrics: SignalingMetrics;
  congestionHighWaterBytes: number;
}

/**
 * Stamps the sender on a validated frame without re-encoding it: `fromPeerId` is appended as the
 * object's last key, and JSON's last-key-wins makes it authoritative over anything the client
 * wrote. (Peer ids are base64url: nothing to escape.)
 */
export function stampSender(frame: string, fromPeerId: string): string {
  const end = frame.lastIndexOf('}');
  return `${frame.slice(0, end)},"fromPeerId":"${fromPeerId}"}`;
}

/**
 * Forwards an offer, answer, ICE candidate or relay frame to its target. This is the hot path: the
 * transport calls it directly while the sender's socket actor is active (it changes no socket
 * state), instead of paying an actor transition per message. Errors go back to the sender.
 */
export function routeMessage(
  deps: RouterDeps,
  from: { peerId: string; port: SocketPort },
  message: RoutedClientMessage,
  frame: string,
  frameBytes: number,
): void {
  const target = deps.registry.get(message.targetPeerId);
  const refuse = (code: ErrorCode, text: string, retryAfterMs?: number) => {
    deps.metrics.rejected(code);
    from.port.send({
      type: 'error',
      code,
      message: text,
      inReplyTo: message.type,
      targetPeerId: message.targetPeerId,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  };
  if (!target || target.peerId === from.peerId) {
    refuse('unknown-target', `peer ${message.targetPeerId} is not connected`);
    return;
  }
  if (!target.port) {
    refuse('unknown-target', `peer ${message.targetPeerId} is reconnecting; retry shortly`, 1000);
    return;
  }
  if (target.port.bufferedAmount() > deps.congestionHighWaterBytes) {
    refuse('target-congested', `peer ${message.targetPeerId} is not reading fast enough`, 250);
    return;
  }
  const sender = deps.registry.get(from.peerId);
  if (sender) deps.registry.link(sender, target);
  const stamped = stampSender(frame, from.peerId);
  target.port.sendText(stamped);
  // The stamp is ASCII: its length in characters is its length in bytes.
  deps.metrics.routed(message.type, frameBytes + stamped.length - frame.length);
}
