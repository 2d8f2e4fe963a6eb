import {
  type Capabilities,
  compareRanked,
  type DiscoveredPeer,
  type DiscoveryRequirements,
  MAX_DISCOVERED_PEERS,
  peerMatches,
  scorePeer,
} from '../protocol/index.ts';
import type { SocketPort } from './socket-port.ts';

/** One peer's session as the server knows it; it outlives its socket during the resume grace. */
export interface PeerEntry {
  readonly peerId: string;
  /** The live socket, or null while the session waits for a resume. */
  socketId: string | null;
  port: SocketPort | null;
  capabilities: Capabilities | null;
  /** The Ed25519 key registered with this peer id (the first one announced sticks). */
  publicKey: string | null;
  /** Peers this one exchanged routed messages with; they hear of its leave even if it never announced. */
  contacts: Set<string> | null;
  /** When a session without a socket is forgotten (ms since epoch); 0 while connected. */
  graceUntil: number;
  /** `issuedAt` of the newest resume token; older tokens no longer resume this session. */
  tokenIssuedAt: number;
  /** What the others are told if the grace ends without a resume. */
  leaveReason: 'closed' | 'timeout';
}

/** A session that has no socket, capabilities or contacts yet. */
export function newPeerEntry(peerId: string): PeerEntry {
  return {
    peerId,
    socketId: null,
    port: null,
    capabilities: null,
    publicKey: null,
    contacts: null,
    graceUntil: 0,
    tokenIssuedAt: 0,
    leaveReason: 'closed',
  };
}

/**
 * Every session by peer id. The hub actor is the only writer of membership; socket actors read it
 * to route and to answer `discover`.
 */
export class PeerRegistry {
  readonly #entries = new Map<string, PeerEntry>();
  /** Announced peers with a live socket: the discovery candidates. */
  readonly #announced = new Set<PeerEntry>();

  get size(): number {
    return this.#entries.size;
  }

  get(peerId: string): PeerEntry | undefined {
    return this.#entries.get(peerId);
  }

  /** The live port of a connected peer, or undefined. */
  portOf(peerId: string): SocketPort | undefined {
    return this.#entries.get(peerId)?.port ?? undefined;
  }

  add(entry: PeerEntry): void {
    this.#entries.set(entry.peerId, entry);
    this.#sync(entry);
  }

  delete(peerId: string): PeerEntry | undefined {
    const entry = this.#entries.get(peerId);
    if (!entry) return undefined;
    this.#entries.delete(peerId);
    this.#announced.delete(entry);
    if (entry.contacts)
      for (const other of entry.contacts) this.#entries.get(other)?.contacts?.delete(peerId);
    return entry;
  }

  /** Attaches a (new) socket to a session. */
  connect(entry: PeerEntry, socketId: string, port: SocketPort): void {
    entry.socketId = socketId;
    entry.port = port;
    entry.graceUntil = 0;
    this.#sync(entry);
  }

  /** Detaches the socket; the session waits for a resume until `graceUntil`. */
  disconnect(entry: PeerEntry, graceUntil: number): void {
    entry.socketId = null;
    entry.port = null;
    entry.graceUntil = graceUntil;
    this.#sync(entry);
  }

  announce(entry: PeerEntry, capabilities: Capabilities, publicKey?: string): void {
    entry.capabilities = capabilities;
    if (publicKey && !entry.publicKey) entry.publicKey = publicKey;
    this.#sync(entry);
  }

  /** Records that two peers talked, so each hears of the other's leave. */
  link(a: PeerEntry, b: PeerEntry): void {
    if (a.contacts?.has(b.peerId) && b.contacts?.has(a.peerId)) return;
    a.contacts ??= new Set();
    b.contacts ??= new Set();
    a.contacts.add(b.peerId);
    b.contacts.add(a.peerId);
  }

  /** Every connected peer. */
  *live(): IterableIterator<PeerEntry> {
    for (const entry of this.#entries.values()) if (entry.port) yield entry;
  }

  /** Sessions whose grace ended at or before `now`. */
  *expired(now: number): IterableIterator<PeerEntry> {
    for (const entry of this.#entries.values()) if (!entry.port && entry.graceUntil <= now) yield entry;
  }

  get liveCount(): number {
    let count = 0;
    for (const entry of this.#entries.values()) if (entry.port) count++;
    return count;
  }

  get announcedCount(): number {
    return this.#announced.size;
  }

  /** Ranked peers that meet `requirements`, best first, never `requesterId`. */
  discover(requirements: DiscoveryRequirements, requesterId: string): DiscoveredPeer[] {
    const limit = Math.min(requirements.limit ?? MAX_DISCOVERED_PEERS, MAX_DISCOVERED_PEERS);
    const best: DiscoveredPeer[] = [];
    for (const entry of this.#announced) {
      const capabilities = entry.capabilities as Capabilities;
      if (entry.peerId === requesterId || !peerMatches(capabilities, requirements)) continue;
      const candidate: DiscoveredPeer = {
        peerId: entry.peerId,
        capabilities,
        score: scorePeer(capabilities, requirements),
        ...(entry.publicKey ? { publicKey: entry.publicKey } : {}),
      };
      if (best.length === limit && compareRanked(candidate, best[limit - 1] as DiscoveredPeer) >= 0) continue;
      insertSorted(best, candidate, limit);
    }
    return best;
  }

  #sync(entry: PeerEntry): void {
    if (entry.port && entry.capabilities && this.#entries.get(entry.peerId) === entry)
      this.#announced.add(entry);
    else this.#announced.delete(entry);
  }
}

/** Keeps `list` sorted best first and at most `limit` long. */
function insertSorted(list: DiscoveredPeer[], item: DiscoveredPeer, limit: number): void {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (compareRanked(list[mid] as DiscoveredPeer, item) <= 0) low = mid + 1;
    else high = mid;
  }
  list.splice(low, 0, item);
  if (list.length > limit) list.pop();
}
