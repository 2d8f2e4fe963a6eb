/** Something with frames waiting to be written. */
export interface Flushable {
  flush(): void;
}

/**
 * Holds outgoing frames until the end of the current event-loop turn, then writes each socket's
 * frames in one corked batch. uWS corks only the socket whose event is being handled: a frame routed
 * to another socket was one `send()` syscall each, the largest single cost of relaying. One poll
 * turn delivers many frames; queued, they leave as one write per socket (setImmediate runs right
 * after the poll phase, so the wait is the rest of that turn's events, not a timer).
 */
export class Outbox {
  #pending = new Set<Flushable>();
  #scheduled = false;
  readonly #onError: (error: unknown) => void;

  constructor(onError: (error: unknown) => void) {
    this.#onError = onError;
  }

  /** Marks a socket as having queued frames; the flush is scheduled once per turn. */
  schedule(socket: Flushable): void {
    this.#pending.add(socket);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const sockets = this.#pending;
    this.#pending = new Set();
    for (const socket of sockets) {
      // Not a uWS callback, but an exception here would still end the process: contain it per socket.
      try {
        socket.flush();
      } catch (error) {
        this.#onError(error);
      }
    }
  };
}
