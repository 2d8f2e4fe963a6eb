import type { AnyActorRef, SnapshotFrom } from 'xstate';
import type { handoffMachine } from './handoff.machine.ts';

/** The design's connection states, derived from the actor tree (never stored). */
export type DesignState =
  | 'Disconnected'
  | 'Signaling'
  | 'Connected'
  | 'Discovering'
  | 'PeerFound'
  | 'Connecting'
  | 'P2PConnected'
  | 'Transferring'
  | 'Failed';

type ChildSnapshot = {
  status: string;
  value: unknown;
  hasTag?(tag: string): boolean;
  matches?(value: unknown): boolean;
};
const snapshotOf = (ref: AnyActorRef | undefined) => ref?.getSnapshot() as ChildSnapshot | undefined;

/**
 * Maps the root actor's tree onto the design's state diagram: the connection machine gives
 * Disconnected / Signaling / Connected / Failed, discovery adds Discovering / PeerFound, links add
 * Connecting / P2PConnected, and a running request makes it Transferring.
 */
export function designState(snapshot: SnapshotFrom<typeof handoffMachine>): DesignState {
  const children = snapshot.children as Record<string, AnyActorRef | undefined>;
  const connection = snapshotOf(children.connection);
  if (!connection) return 'Disconnected';
  if (connection.value === 'disconnected') return 'Disconnected';
  if (connection.value === 'failed') return 'Failed';
  if (!connection.hasTag?.('online')) return 'Signaling';
  let linkOpen = false;
  let linkConnecting = false;
  for (const [id, child] of Object.entries(children)) {
    const state = snapshotOf(child);
    if (state?.status !== 'active') continue;
    if (id.startsWith('request-') && (state.hasTag?.('busy') ?? false)) return 'Transferring';
    if (id.startsWith('link-')) {
      if (state.hasTag?.('direct') || state.hasTag?.('relayed')) linkOpen = true;
      else linkConnecting = true;
    }
  }
  if (linkOpen) return 'P2PConnected';
  if (linkConnecting) return 'Connecting';
  const discovery = snapshotOf(children.discovery);
  if (discovery?.hasTag?.('busy')) return 'Discovering';
  if (discovery?.matches?.({ ready: 'peerFound' })) return 'PeerFound';
  return 'Connected';
}
