import type { AnyActorRef } from 'xstate';
import { decodeServerMessage, encodeMessage, type ServerMessage } from '../../protocol/index.ts';
import { SendStatus, type SocketPort } from '../../signaling/socket-port.ts';

type Of<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

/**
 * A SocketPort that keeps everything in memory, for unit and model tests of one machine.
 * Every frame is decoded with the protocol's own schema, so a message the server could not legally
 * send lands in `malformed` instead of `sent`. `end` and `terminate` are recorded, not acted on: the
 * test plays the client and decides when the socket really closes (`closeFromClient`).
 */
export class MemorySocketPort implements SocketPort {
  /** Every frame sent, decoded, in order. */
  readonly sent: ServerMessage[] = [];
  /** Frames that failed `decodeServerMessage`, with the reason. */
  readonly malformed: string[] = [];
  /** Every `end(code, reason)` call, in order. */
  readonly ends: { code: number; reason: string }[] = [];
  terminations = 0;
  corks = 0;
  /** What `bufferedAmount()` reports; tests set it to stage backpressure. */
  buffered = 0;
  open = true;
  /** When the "client" last sent a frame; tests stamp it as the transport would (`heard`). */
  lastHeardAt = 0;
  /** Set by the socket actor while it is active (the transport's fast path). */
  routing = false;
  /** The socket actor the hub bound to this port (`socket.open`'s `bind`). */
  actor: AnyActorRef | undefined;

  /** Records that a frame arrived at `now`, as the uWS transport does for every frame. */
  heard(now: number): void {
    this.lastHeardAt = now;
  }

  send(message: ServerMessage): SendStatus {
    return this.sendText(encodeMessage(message));
  }

  sendText(text: string): SendStatus {
    if (!this.open) return SendStatus.dropped;
    const decoded = decodeServerMessage(text);
    if (decoded.ok) this.sent.push(decoded.value);
    else this.malformed.push(`${decoded.message}: ${text.slice(0, 200)}`);
    return SendStatus.sent;
  }

  cork(fn: () => void): void {
    this.corks++;
    fn();
  }

  end(code: number, reason: string): void {
    this.ends.push({ code, reason });
  }

  terminate(): void {
    this.terminations++;
    this.open = false;
  }

  bufferedAmount(): number {
    return this.open ? this.buffered : 0;
  }

  /** Binds the actor that owns this port, as the uWS transport does. */
  readonly bind = (actor: AnyActorRef): void => {
    this.actor = actor;
  };

  /** The client (or the network) closed the socket: the port stops sending and the actor hears of it. */
  closeFromClient(code: number, reason = ''): void {
    this.open = false;
    this.actor?.send({ type: 'socket.closed', code, reason });
  }

  /** The messages of one type, in order. */
  ofType<T extends ServerMessage['type']>(type: T): Of<T>[] {
    return this.sent.filter((message): message is Of<T> => message.type === type);
  }

  /** The only message of one type; throws if there is not exactly one. */
  only<T extends ServerMessage['type']>(type: T): Of<T> {
    const found = this.ofType(type);
    if (found.length !== 1) throw new Error(`expected one ${type}, got ${found.length}`);
    return found[0] as Of<T>;
  }
}
