import type { DesignState } from '../machines/design-state.ts';
import type { LinkTransport } from '../machines/peer-link.machine.ts';
import type { TaskPhase } from './snapshots.ts';

/** What each of the design's connection states says to a person. */
export const STATE_TEXT: Record<DesignState, string> = {
  Disconnected: 'Not connected',
  Signaling: 'Connecting to the signaling server…',
  Connected: 'Connected, no peers asked for yet',
  Discovering: 'Looking for peers…',
  PeerFound: 'Peers found',
  Connecting: 'Opening a link to a peer…',
  P2PConnected: 'Linked to a peer',
  Transferring: 'Transferring a prompt',
  Failed: 'Connection failed',
};

export const TRANSPORT_TEXT: Record<LinkTransport, string> = {
  direct: 'direct',
  relayed: 'relayed',
  none: 'no link',
};

export const PHASE_TEXT: Record<TaskPhase, string> = {
  waiting: 'Waiting for a peer to accept…',
  queued: 'Queued',
  streaming: 'Streaming…',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Cancelled',
  timedOut: 'Timed out',
};

export const plural = (count: number, one: string, many = `${one}s`) =>
  `${count} ${count === 1 ? one : many}`;

/** A local clock time; with the date when it is not today. */
export function localTime(epochMs: number, now = Date.now()): string {
  const date = new Date(epochMs);
  const today = new Date(now).toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

export function rate(bytesPerSecond: number): string {
  if (bytesPerSecond >= 1_048_576) return `${(bytesPerSecond / 1_048_576).toFixed(1)} MiB/s`;
  if (bytesPerSecond >= 1024) return `${(bytesPerSecond / 1024).toFixed(1)} KiB/s`;
  return `${Math.round(bytesPerSecond)} B/s`;
}

export const ms = (value: number | undefined) =>
  value === undefined ? 'unknown' : `${Math.round(value)} ms`;

/** The quota a peer announced: "available / total", or unmetered. */
export function quotaText(quota: { availableQuota: number; totalQuota: number } | undefined): string {
  return quota ? `${quota.availableQuota} / ${quota.totalQuota}` : 'unmetered';
}
