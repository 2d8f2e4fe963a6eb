/**
 * Server-sent events (the WHATWG `text/event-stream` format), parsed incrementally and isomorphically:
 * it needs only `ReadableStream` and `TextDecoder`, so it runs in browsers and in Node alike.
 *
 * What it follows from the spec: lines end in `\r\n`, `\n` or `\r` (a `\r\n` pair may be split
 * across reads); a blank line dispatches the event; `data:` lines are joined with `\n`; one space
 * after the colon is dropped; lines starting with `:` are comments (keep-alives) and ignored; an
 * event with no data is not dispatched; an unterminated event at the end of the stream is discarded;
 * a leading byte order mark is dropped (by `TextDecoder`). Bytes are decoded with a streaming
 * `TextDecoder`, so a multi-byte UTF-8 character split between reads arrives whole.
 */

export interface SseEvent {
  /** The `event:` field, or `'message'` when the event named none. */
  type: string;
  /** The `data:` lines of the event, joined with `\n`. */
  data: string;
  /** The last `id:` seen on the stream so far ('' if none). */
  lastEventId: string;
}

export interface SseParserOptions {
  /**
   * Longest event (data plus the line being read) in characters, default 1,000,000. A server that
   * sends more without a blank line gets an Error rather than unbounded memory.
   */
  maxEventChars?: number;
}

const LF = 10;
const CR = 13;

/** Feed it decoded text in pieces of any size; it returns the events each piece completes. */
export class SseParser {
  readonly #maxEventChars: number;
  /** The current line so far (its terminator not yet seen). */
  #line = '';
  /** A piece ended in `\r`: a `\n` starting the next piece belongs to the same line break. */
  #skipLineFeed = false;
  #data = '';
  #hasData = false;
  #type = '';
  #lastEventId = '';

  constructor(options: SseParserOptions = {}) {
    this.#maxEventChars = options.maxEventChars ?? 1_000_000;
  }

  /** Parses `text` (the next decoded piece of the stream) and returns the events it completes. */
  push(text: string): SseEvent[] {
    const events: SseEvent[] = [];
    if (text.length === 0) return events;
    let start = 0;
    if (this.#skipLineFeed && text.charCodeAt(0) === LF) start = 1;
    this.#skipLineFeed = false;
    for (let i = start; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code !== LF && code !== CR) continue;
      const line = this.#line + text.slice(start, i);
      this.#line = '';
      if (code === CR) {
        if (i + 1 === text.length) this.#skipLineFeed = true;
        else if (text.charCodeAt(i + 1) === LF) i++;
      }
      start = i + 1;
      this.#processLine(line, events);
    }
    this.#line += text.slice(start);
    this.#checkSize();
    return events;
  }

  /**
   * The stream ended. Per the spec an event not yet terminated by a blank line is discarded; this
   * says whether one was (a hint that the stream was cut short).
   */
  end(): { discardedPartialEvent: boolean } {
    const discardedPartialEvent = this.#line.length > 0 || this.#hasData;
    this.#line = '';
    this.#data = '';
    this.#hasData = false;
    this.#type = '';
    return { discardedPartialEvent };
  }

  #processLine(line: string, events: SseEvent[]): void {
    if (line.length === 0) {
      this.#dispatch(events);
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' */) return; // a comment, e.g. `: keep-alive`
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.#data = this.#hasData ? `${this.#data}\n${value}` : value;
        this.#hasData = true;
        this.#checkSize();
        break;
      case 'event':
        this.#type = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.#lastEventId = value;
        break;
      default:
        // `retry:` and unknown fields: nothing a fetch-based reader acts on.
        break;
    }
  }

  #dispatch(events: SseEvent[]): void {
    if (this.#hasData) {
      events.push({ type: this.#type || 'message', data: this.#data, lastEventId: this.#lastEventId });
    }
    this.#data = '';
    this.#hasData = false;
    this.#type = '';
  }

  #checkSize(): void {
    if (this.#data.length + this.#line.length > this.#maxEventChars) {
      throw new Error(`server-sent event larger than ${this.#maxEventChars} characters`);
    }
  }
}

/**
 * Reads `body` to its end and yields its events. Stopping the iteration early (break, return, a
 * thrown error) cancels the body, which for a `fetch` response closes the HTTP request.
 */
export async function* readSseEvents(
  body: ReadableStream<Uint8Array>,
  options: SseParserOptions = {},
): AsyncGenerator<SseEvent, { discardedPartialEvent: boolean }> {
  const reader = body.getReader();
  const decoder = new TextDecoder('utf-8');
  const parser = new SseParser(options);
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    finished = true;
    // An incomplete character at the very end becomes U+FFFD, as the spec's decoder does.
    yield* parser.push(decoder.decode());
    return parser.end();
  } finally {
    if (!finished) reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
