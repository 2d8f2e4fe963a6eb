import type { ServerMessage } from '../protocol/index.ts';

/** What `send` did with a frame: uWS's own codes. */
export const SendStatus = { sent: 1, buffered: 0, dropped: 2 } as const;
export type SendStatus = (typeof SendStatus)[keyof typeof SendStatus];

/**
 * The only surface a socket actor touches. The uWS wiring implements it in `uws-transport.ts`;
 * unit and model tests use an in-memory one, so socket actors run without a network.
 */
export interface SocketPort {
  /**
   * Encodes and sends one message, in order with every other frame to this client. The uWS port
   * writes a turn's frames together at the end of the turn (`buffered`). Never throws; a closed
   * port reports `dropped`.
   */
  send(message: ServerMessage): SendStatus;
  /** Sends an already-encoded frame (broadcasts encode once for many sockets). */
  sendText(text: string): SendStatus;
  /** Sends several frames in one syscall where the transport can (the uWS port always batches). */
  cork(fn: () => void): void;
  /** Closes with a code the client sees. Idempotent. */
  end(code: number, reason: string): void;
  /** Drops the connection without a close frame (client sees 1006). Idempotent. */
  terminate(): void;
  /** Bytes written for the client that it has not taken yet (its backlog). */
  bufferedAmount(): number;
  readonly open: boolean;
  /** When the client last sent any frame (ms): liveness reads it instead of handling every frame. */
  readonly lastHeardAt: number;
  /**
   * While true, the transport hands offers, answers, ICE candidates and relay frames straight to
   * the router (they change no socket state); the socket actor turns it on only while active.
   */
  routing: boolean;
}
