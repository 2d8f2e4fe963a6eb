import { describe, expect, it } from 'vitest';
import { readSseEvents, type SseEvent, SseParser } from '../../machines/providers/sse.ts';

const encoder = new TextEncoder();

/** A byte stream that hands out `pieces` one read at a time and records whether it was cancelled. */
function byteStream(pieces: Uint8Array[]): { body: ReadableStream<Uint8Array>; cancelled: () => boolean } {
  let index = 0;
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const piece = pieces[index++];
      if (piece) controller.enqueue(piece);
      else controller.close();
    },
    cancel() {
      cancelled = true;
    },
  });
  return { body, cancelled: () => cancelled };
}

/** Splits the UTF-8 bytes of `text` into pieces of `size` bytes (so characters get cut). */
function bytePieces(text: string, size: number): Uint8Array[] {
  const bytes = encoder.encode(text);
  const pieces: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) pieces.push(bytes.slice(offset, offset + size));
  return pieces;
}

async function collect(body: ReadableStream<Uint8Array>): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of readSseEvents(body)) events.push(event);
  return events;
}

const data = (events: SseEvent[]) => events.map((event) => event.data);

describe('SseParser', () => {
  it('dispatches an event at each blank line and joins multi-line data with newlines', () => {
    const parser = new SseParser();
    const events = parser.push('data: first\ndata: second\n\ndata: third\n\n');
    expect(data(events)).toEqual(['first\nsecond', 'third']);
    expect(events[0]?.type).toBe('message');
  });

  it('accepts CRLF, LF and lone CR line endings, even mixed in one stream', () => {
    const parser = new SseParser();
    expect(data(parser.push('data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\r\n\n'))).toEqual([
      'a',
      'b',
      'c',
      'd',
    ]);
  });

  it('treats a CRLF split between two reads as one line break, not two', () => {
    const parser = new SseParser();
    expect(data(parser.push('data: one\r'))).toEqual([]);
    expect(data(parser.push('\ndata: two\r'))).toEqual([]);
    expect(data(parser.push(''))).toEqual([]);
    expect(data(parser.push('\n\r\n'))).toEqual(['one\ntwo']);
  });

  it('ignores comment lines such as keep-alives, also between the lines of one event', () => {
    const parser = new SseParser();
    expect(data(parser.push(': keep-alive\n\ndata: x\n: ping\ndata: y\n\n:\n\n'))).toEqual(['x\ny']);
  });

  it('drops exactly one space after the colon and keeps the rest of the value verbatim', () => {
    const parser = new SseParser();
    expect(data(parser.push('data:no-space\n\ndata:  two spaces \n\ndata\n\ndata: a: b\n\n'))).toEqual([
      'no-space',
      ' two spaces ',
      '',
      'a: b',
    ]);
  });

  it('names events by their event field, resets the name after each event and keeps the last id', () => {
    const parser = new SseParser();
    const events = parser.push('event: error\nid: 7\ndata: bad\n\ndata: next\n\nid: 8\0x\ndata: z\n\n');
    expect(events).toEqual([
      { type: 'error', data: 'bad', lastEventId: '7' },
      { type: 'message', data: 'next', lastEventId: '7' },
      { type: 'message', data: 'z', lastEventId: '7' },
    ]);
  });

  it('does not dispatch an event that has no data lines', () => {
    const parser = new SseParser();
    expect(parser.push('event: ping\n\nretry: 100\n\nunknown: field\n\n')).toEqual([]);
  });

  it('yields the same events whatever the split points between reads', () => {
    const stream = ': hi\r\ndata: {"a":1}\r\n\r\nevent: x\ndata: two\ndata: lines\n\ndata: [DONE]\r\r';
    const whole = new SseParser().push(stream);
    expect(data(whole)).toEqual(['{"a":1}', 'two\nlines', '[DONE]']);
    for (let cut = 0; cut <= stream.length; cut++) {
      const parser = new SseParser();
      const events = [...parser.push(stream.slice(0, cut)), ...parser.push(stream.slice(cut))];
      expect(events, `split at ${cut}`).toEqual(whole);
    }
    const oneByOne = new SseParser();
    expect([...stream].flatMap((char) => oneByOne.push(char))).toEqual(whole);
  });

  it('discards an event the stream ends in the middle of, and says so', () => {
    const parser = new SseParser();
    expect(data(parser.push('data: done\n\ndata: cut sho'))).toEqual(['done']);
    expect(parser.end()).toEqual({ discardedPartialEvent: true });
    const clean = new SseParser();
    clean.push('data: done\n\n');
    expect(clean.end()).toEqual({ discardedPartialEvent: false });
  });

  it('refuses an event larger than its bound instead of buffering without limit', () => {
    const parser = new SseParser({ maxEventChars: 100 });
    expect(() => parser.push(`data: ${'x'.repeat(200)}`)).toThrow(/larger than 100 characters/);
    const multiLine = new SseParser({ maxEventChars: 100 });
    expect(() => {
      for (let i = 0; i < 20; i++) multiLine.push('data: 0123456789\n');
    }).toThrow(/larger than 100 characters/);
  });
});

describe('readSseEvents', () => {
  it('reassembles multi-byte UTF-8 characters cut between reads (é, 中, an emoji)', async () => {
    const text = 'data: {"content":"café 中文 🚀 done"}\n\ndata: é🚀\n\n';
    for (const size of [1, 2, 3, 5, 7]) {
      const { body } = byteStream(bytePieces(text, size));
      expect(data(await collect(body)), `pieces of ${size} bytes`).toEqual([
        '{"content":"café 中文 🚀 done"}',
        'é🚀',
      ]);
    }
  });

  it('drops a leading byte order mark', async () => {
    const { body } = byteStream([new Uint8Array([0xef, 0xbb, 0xbf]), encoder.encode('data: x\n\n')]);
    expect(data(await collect(body))).toEqual(['x']);
  });

  it('returns whether the stream ended inside an event', async () => {
    const { body } = byteStream([encoder.encode('data: a\n\ndata: b')]);
    const iterator = readSseEvents(body);
    expect((await iterator.next()).value).toMatchObject({ data: 'a' });
    expect(await iterator.next()).toEqual({ done: true, value: { discardedPartialEvent: true } });
  });

  it('cancels the body when the reader stops early', async () => {
    const { body, cancelled } = byteStream([encoder.encode('data: a\n\n'), encoder.encode('data: b\n\n')]);
    for await (const event of readSseEvents(body)) {
      expect(event.data).toBe('a');
      break;
    }
    expect(cancelled()).toBe(true);
  });

  it('does not cancel a body it read to the end', async () => {
    const { body, cancelled } = byteStream([encoder.encode('data: a\n\n')]);
    expect(data(await collect(body))).toEqual(['a']);
    expect(cancelled()).toBe(false);
  });
});
