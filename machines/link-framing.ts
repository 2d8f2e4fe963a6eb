import {
  decodeTaskMessage,
  encodeMessage,
  type LinkFragment,
  MAX_FRAGMENT_CHARS,
  MAX_LINK_MESSAGE_BYTES,
  type TaskMessage,
  utf8Length,
} from '../protocol/index.ts';

/** Application messages: everything but the framing itself. */
export type LinkMessage = Exclude<TaskMessage, LinkFragment>;

/**
 * Splits a message into frames for a link: one frame if it encodes to at most 16 KiB, else
 * `link-fragment`s. Used for data channels and for the signaling relay alike.
 */
export class LinkFramer {
  #nextId = 0;

  frames(message: LinkMessage): TaskMessage[] {
    const text = encodeMessage(message);
    if (utf8Length(text) <= MAX_LINK_MESSAGE_BYTES) return [message];
    const id = this.#nextId++;
    const count = Math.ceil(text.length / MAX_FRAGMENT_CHARS);
    const fragments: LinkFragment[] = [];
    for (let index = 0; index < count; index++) {
      const data = text.slice(index * MAX_FRAGMENT_CHARS, (index + 1) * MAX_FRAGMENT_CHARS);
      fragments.push({ type: 'link-fragment', id, index, count, data });
    }
    return fragments;
  }
}

/** At most this many messages may be half-assembled at once; the oldest is dropped past it. */
const MAX_PENDING = 8;

/** `bytes`: the whole message's size on the wire, all its fragments counted. */
export type AssembleResult =
  | { ok: true; message: LinkMessage; bytes: number }
  | { ok: true; message: undefined }
  | { ok: false; error: string };

/** Reassembles fragments (in order, per id) and validates the whole message with the protocol schemas. */
export class LinkAssembler {
  readonly #pending = new Map<number, { count: number; parts: string[]; bytes: number }>();

  /** `frameBytes`: this frame's size as received (for traffic accounting). */
  push(frame: TaskMessage, frameBytes: number): AssembleResult {
    if (frame.type !== 'link-fragment') return { ok: true, message: frame, bytes: frameBytes };
    let entry = this.#pending.get(frame.id);
    if (!entry) {
      if (frame.index !== 0)
        return { ok: false, error: `fragment ${frame.index} of unknown message ${frame.id}` };
      if (this.#pending.size >= MAX_PENDING)
        this.#pending.delete(this.#pending.keys().next().value as number);
      entry = { count: frame.count, parts: [], bytes: 0 };
      this.#pending.set(frame.id, entry);
    }
    if (frame.count !== entry.count || frame.index !== entry.parts.length) {
      this.#pending.delete(frame.id);
      return {
        ok: false,
        error: `fragment ${frame.index}/${frame.count} of message ${frame.id} out of order`,
      };
    }
    entry.parts.push(frame.data);
    entry.bytes += frameBytes;
    if (entry.parts.length < entry.count) return { ok: true, message: undefined };
    this.#pending.delete(frame.id);
    const decoded = decodeTaskMessage(entry.parts.join(''));
    if (!decoded.ok) return { ok: false, error: decoded.message };
    if (decoded.value.type === 'link-fragment') return { ok: false, error: 'nested fragment' };
    return { ok: true, message: decoded.value, bytes: entry.bytes };
  }
}
