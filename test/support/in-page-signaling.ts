import type { HandoffEnvironment, WebSocketLike } from '../../machines/environment.ts';
import {
  type Capabilities,
  type ClientMessage,
  compareRanked,
  type DiscoveredPeer,
  decodeClientMessage,
  encodeMessage,
  PROTOCOL_VERSION,
  peerMatches,
  type ServerMessage,
  scorePeer,
} from '../../protocol/index.ts';

/*
 * A signaling server that lives in the test page, for browser tests of the elements against the
 * real client (createHandoff, every real machine, real WebRTC in Chromium). Browser tests cannot
 * start the Node server, so this stands in for it at the WebSocket boundary: it speaks the
 * protocol's messages (validated with the protocol's own codec both ways) and does what the real
 * hub does for a handful of peers: assigns ids, keeps announcements, answers discover with the
 * shared ranking, and forwards offers, answers, candidates and relay frames with `fromPeerId`.
 * It has none of the real server's limits, resume or heartbeats (it never sends one, and says its
 * heartbeat interval is an hour, so clients never time it out).
 */

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

interface Session {
  readonly peerId: string;
  readonly socket: InPageSocket;
  capabilities: Capabilities | undefined;
  publicKey: string | undefined;
}

/** The client's side of one in-page socket. */
class InPageSocket implements WebSocketLike {
  readyState = CONNECTING;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly url: string;
  readonly #server: InPageSignaling;

  constructor(server: InPageSignaling, url: string) {
    this.#server = server;
    this.url = url;
    // Like a real socket, it opens after the constructor returns.
    setTimeout(() => server.accept(this), 0);
  }

  send(data: string): void {
    if (this.readyState !== OPEN) throw new Error('InvalidStateError: socket is not open');
    this.#server.receive(this, data);
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState === CLOSED) return;
    this.#server.hangUp(this, code, reason);
  }

  /** Server side: delivers a frame to the client, after the current task (as the network would). */
  deliver(message: ServerMessage): void {
    const text = encodeMessage(message);
    setTimeout(() => {
      if (this.readyState === OPEN) this.onmessage?.({ data: text });
    }, 0);
  }

  /** Server side: the socket is closed; the client hears of it after the current task. */
  closed(code: number, reason: string): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }

  opened(): void {
    this.readyState = OPEN;
    this.onopen?.({});
  }
}

export class InPageSignaling {
  readonly #sessions = new Map<InPageSocket, Session>();
  #nextId = 1;
  /** While false, new sockets are closed at once (the server is down). */
  accepting = true;
  /**
   * While false, offers, answers and ICE candidates are dropped, as on a network where no direct
   * path can be made: peer links fall back to the relay (task traffic through this server).
   */
  forwardRtcSignals = true;
  /** Every client message the server accepted, in order, with the sender. */
  readonly log: { from: string; message: ClientMessage }[] = [];
  /** Frames that failed the protocol's client-message schema. */
  readonly invalid: string[] = [];

  /** A WebSocket constructor whose sockets connect to this server (whatever URL they are given). */
  readonly WebSocket = (() => {
    const server = this;
    return class extends InPageSocket {
      constructor(url: string) {
        super(server, url);
      }
    };
  })();

  /** A client environment: this server's sockets and Chromium's real RTCPeerConnection. */
  environment(): HandoffEnvironment {
    return { WebSocket: this.WebSocket, RTCPeerConnection: globalThis.RTCPeerConnection };
  }

  get peerIds(): string[] {
    return [...this.#sessions.values()].map((session) => session.peerId);
  }

  accept(socket: InPageSocket): void {
    if (socket.readyState !== CONNECTING) return;
    if (!this.accepting) {
      socket.closed(1006, 'connection refused');
      return;
    }
    const peerId = `peer-${this.#nextId++}`;
    this.#sessions.set(socket, { peerId, socket, capabilities: undefined, publicKey: undefined });
    socket.opened();
    socket.deliver({
      type: 'peer-id',
      peerId,
      resumeToken: `resume-${peerId}`,
      resumed: false,
      protocolVersion: PROTOCOL_VERSION,
      iceServers: [],
      heartbeatIntervalMs: 3_600_000,
      resumeGraceMs: 1_000,
    });
  }

  receive(socket: InPageSocket, text: string): void {
    const session = this.#sessions.get(socket);
    if (!session) return;
    const decoded = decodeClientMessage(text);
    if (!decoded.ok) {
      this.invalid.push(decoded.message);
      socket.deliver({ type: 'error', code: 'invalid-message', message: decoded.message.slice(0, 200) });
      return;
    }
    const message = decoded.value;
    this.log.push({ from: session.peerId, message });
    switch (message.type) {
      case 'capability-announce': {
        session.capabilities = message.capabilities;
        session.publicKey ??= message.publicKey;
        for (const other of this.#others(session)) other.socket.deliver(this.#update(session));
        return;
      }
      case 'discover': {
        const peers: DiscoveredPeer[] = [];
        for (const other of this.#others(session)) {
          if (!other.capabilities || !peerMatches(other.capabilities, message.requirements)) continue;
          peers.push({
            peerId: other.peerId,
            capabilities: other.capabilities,
            ...(other.publicKey ? { publicKey: other.publicKey } : {}),
            score: scorePeer(other.capabilities, message.requirements),
          });
        }
        peers.sort(compareRanked);
        socket.deliver({
          type: 'peers-discovered',
          peers,
          ...(message.requestId ? { requestId: message.requestId } : {}),
        });
        return;
      }
      case 'peer-lookup': {
        const other = this.#byPeerId(message.peerId);
        if (other?.capabilities) socket.deliver(this.#update(other));
        return;
      }
      case 'offer':
      case 'answer':
      case 'ice-candidate':
      case 'relay': {
        if (message.type !== 'relay' && !this.forwardRtcSignals) return;
        const target = this.#byPeerId(message.targetPeerId);
        if (!target) {
          socket.deliver({
            type: 'error',
            code: 'unknown-target',
            message: 'peer is not connected',
            inReplyTo: message.type,
            targetPeerId: message.targetPeerId,
          });
          return;
        }
        target.socket.deliver({ ...message, fromPeerId: session.peerId } as ServerMessage);
        return;
      }
      case 'ice-servers-request':
        socket.deliver({ type: 'ice-servers', iceServers: [], expiresAt: 0 });
        return;
      case 'leave':
        this.hangUp(socket, 1000, 'left');
        return;
      case 'heartbeat':
        return;
    }
  }

  /** The client closed its socket (or left): the others hear `peer-left`. */
  hangUp(socket: InPageSocket, code: number, reason: string): void {
    const session = this.#sessions.get(socket);
    this.#sessions.delete(socket);
    socket.closed(code, reason);
    if (!session) return;
    for (const other of this.#sessions.values()) {
      other.socket.deliver({ type: 'peer-left', peerId: session.peerId, reason: 'left' });
    }
  }

  /** The server drops every socket (a crash): clients see an abnormal close and reconnect. */
  dropAll(): void {
    for (const socket of [...this.#sessions.keys()]) this.hangUp(socket, 1006, 'server gone');
  }

  #others(session: Session): Session[] {
    return [...this.#sessions.values()].filter((other) => other !== session);
  }

  #byPeerId(peerId: string): Session | undefined {
    return [...this.#sessions.values()].find((session) => session.peerId === peerId);
  }

  #update(session: Session): ServerMessage {
    return {
      type: 'peer-capability-update',
      peerId: session.peerId,
      capabilities: session.capabilities as Capabilities,
      ...(session.publicKey ? { publicKey: session.publicKey } : {}),
    };
  }
}
