import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CONTINUE_INSTRUCTION } from '../../machines/providers/continuation.ts';
import { createOpenAICompatibleProvider } from '../../machines/providers/openai-compatible.ts';
import { AbortError, type ProviderEvent } from '../../machines/providers/provider.ts';
import { sleep, waitUntil } from '../support/wait.ts';

/** One request as the fake server saw it. */
interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: unknown;
}

interface FakeServer {
  baseUrl: string;
  requests: SeenRequest[];
  /** How many responses the client closed before the server finished them. */
  clientClosed: () => number;
}

type Handler = (request: SeenRequest, res: ServerResponse) => void | Promise<void>;

const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** A real HTTP server on 127.0.0.1 (an ephemeral port) that records requests and runs `handler`. */
async function startServer(handler: Handler): Promise<FakeServer> {
  const requests: SeenRequest[] = [];
  let clientClosed = 0;
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      const seen: SeenRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: text ? JSON.parse(text) : undefined,
      };
      requests.push(seen);
      res.on('close', () => {
        if (!res.writableFinished) clientClosed++;
      });
      Promise.resolve(handler(seen, res)).catch(() => res.destroy());
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { baseUrl: `http://127.0.0.1:${port}/v1`, requests, clientClosed: () => clientClosed };
}

/** A `chat.completion.chunk` as OpenAI streams it. */
function chunk(delta: Record<string, unknown>, finishReason: string | null = null): string {
  return JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1_767_225_600,
    model: 'test-model',
    system_fingerprint: 'fp_1',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    usage: null,
  });
}

function usageChunk(promptTokens: number, completionTokens: number): string {
  return JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1_767_225_600,
    model: 'test-model',
    choices: [],
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
  });
}

function startEventStream(res: ServerResponse): void {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
  });
  res.flushHeaders();
}

/**
 * `fetch` that counts the response bytes the client has read, and records where each read ended, so a
 * server can wait until the client has read one piece before writing the next: then every cut the
 * server makes is a read boundary on the client, however the OS would otherwise coalesce writes.
 */
function countingFetch() {
  const state = { received: 0, readEnds: [] as number[] };
  const countingFetch: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (!response.body) return response;
    const counted = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(piece, controller) {
          state.received += piece.byteLength;
          state.readEnds.push(state.received);
          controller.enqueue(piece);
        },
      }),
    );
    return new Response(counted, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
  return { fetch: countingFetch, state };
}

/** Writes `bytes` in pieces cut at `cuts` (byte offsets), each after the client has read the one before. */
async function writeInPieces(
  res: ServerResponse,
  bytes: Buffer,
  cuts: number[],
  clientReceived: () => number,
): Promise<void> {
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    res.write(bytes.subarray(start, cut));
    await waitUntil(() => clientReceived() >= cut, `the client read up to byte ${cut}`, 5_000, 2);
    start = cut;
  }
}

async function drain(events: AsyncIterable<ProviderEvent>, limit = 1000): Promise<ProviderEvent[]> {
  const seen: ProviderEvent[] = [];
  for await (const event of events) {
    seen.push(event);
    if (seen.length > limit) throw new Error('stream did not end');
  }
  return seen;
}

/** `promise`, or a failure naming `what` if it has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const texts = (events: ProviderEvent[]) =>
  events.flatMap((event) => (event.type === 'text' ? [event.text] : []));
const signal = () => new AbortController().signal;

describe('OpenAI-compatible provider against a real local HTTP server', () => {
  it('streams an answer written in awkward pieces: split mid-line, mid-JSON and mid-UTF-8 character', async () => {
    const stream = [
      ': keep-alive\n\n',
      `data: ${chunk({ role: 'assistant', content: '' })}\n\n`,
      `data: ${chunk({ content: 'Café ' })}\n\n`,
      ': keep-alive\r\n\r\n',
      `data: ${chunk({ content: '🚀 ready' })}\r\n\r\n`,
      // One event whose JSON spans two data lines (joined with a newline, still valid JSON).
      `data: {"id":"chatcmpl-1","object":"chat.completion.chunk",\ndata: "choices":[{"index":0,"delta":{"content":", naïve"},"finish_reason":null}]}\n\n`,
      `data: ${chunk({}, 'stop')}\n\n`,
      `data: ${usageChunk(12, 7)}\n\n`,
      'data: [DONE]\n\n',
    ].join('');
    const bytes = Buffer.from(stream, 'utf8');
    const at = (needle: string, plus: number) => bytes.indexOf(Buffer.from(needle, 'utf8')) + plus;
    const cuts = [
      5, // inside the keep-alive comment
      at('data: {', 3), // inside the field name
      at('"object"', 4), // inside the JSON
      at('é', 1), // between the two bytes of é
      at('\r\n\r\n', 1), // between CR and LF
      at('🚀', 1), // inside the emoji
      at('🚀', 3),
      at('"choices":[{"index":0,"delta":{"content":", na', 10), // between two data lines' worth of JSON
      at('ï', 1),
      at('[DONE]', 2),
    ].sort((a, b) => a - b);
    expect(new Set(cuts).size).toBe(cuts.length);
    const counting = countingFetch();
    const server = await startServer(async (_request, res) => {
      startEventStream(res);
      await writeInPieces(res, bytes, cuts, () => counting.state.received);
      res.end();
    });
    const provider = createOpenAICompatibleProvider({
      baseUrl: server.baseUrl,
      model: 'test-model',
      fetch: counting.fetch,
    });

    const events = await drain(provider.stream({ prompt: 'Say hi', signal: signal() }));

    // Every cut really was a boundary between two reads on the client.
    expect(cuts.filter((cut) => !counting.state.readEnds.includes(cut))).toEqual([]);

    expect(texts(events)).toEqual(['Café ', '🚀 ready', ', naïve']);
    expect(events.at(-1)).toEqual({ type: 'usage', usage: { inputTokens: 12, outputTokens: 7 } });
    expect(events.filter((event) => event.type === 'usage')).toHaveLength(1);
    const [request] = server.requests;
    expect(request).toMatchObject({ method: 'POST', url: '/v1/chat/completions' });
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers.authorization).toBeUndefined();
    expect(request?.body).toEqual({
      model: 'test-model',
      messages: [{ role: 'user', content: 'Say hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  it('sends the Authorization header only when a key is set, and never shows the key', async () => {
    const apiKey = 'sk-test-SECRET-123';
    const server = await startServer((request, res) => {
      if (request.url === '/v1/models') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ object: 'list', data: [{ id: 'gpt-test', object: 'model' }] }));
        return;
      }
      startEventStream(res);
      res.end(`data: ${chunk({ content: 'ok' }, 'stop')}\n\ndata: [DONE]\n\n`);
    });
    const withKey = createOpenAICompatibleProvider({ baseUrl: server.baseUrl, model: 'gpt-test', apiKey });
    const withoutKey = createOpenAICompatibleProvider({ baseUrl: server.baseUrl, model: 'gpt-test' });

    expect(texts(await drain(withKey.stream({ prompt: 'x', signal: signal() })))).toEqual(['ok']);
    expect(await withKey.models()).toEqual(['gpt-test']);
    expect(texts(await drain(withoutKey.stream({ prompt: 'x', signal: signal() })))).toEqual(['ok']);
    expect(await withoutKey.models()).toEqual(['gpt-test']);

    expect(server.requests.map((request) => [request.url, request.headers.authorization])).toEqual([
      ['/v1/chat/completions', `Bearer ${apiKey}`],
      ['/v1/models', `Bearer ${apiKey}`],
      ['/v1/chat/completions', undefined],
      ['/v1/models', undefined],
    ]);
    expect(JSON.stringify(withKey)).not.toContain(apiKey);
    expect(withKey.label).toBe(`gpt-test · ${new URL(server.baseUrl).host}`);
    expect(server.requests[0]?.body).not.toHaveProperty('apiKey');
  });

  it('fails on HTTP 401 with the status and the server message, the echoed key redacted', async () => {
    const apiKey = 'sk-wrong-key-456';
    const server = await startServer((_request, res) => {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify({
          error: {
            message: `Incorrect API key provided: ${apiKey}. You can find your API key at the dashboard.`,
            type: 'invalid_request_error',
            code: 'invalid_api_key',
          },
        }),
      );
    });
    const provider = createOpenAICompatibleProvider({ baseUrl: server.baseUrl, model: 'm', apiKey });
    const failure = await drain(provider.stream({ prompt: 'x', signal: signal() })).catch(
      (error: Error) => error,
    );
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toBe(
      `the OpenAI-compatible server at ${new URL(server.baseUrl).host} answered HTTP 401 Unauthorized: ` +
        'Incorrect API key provided: [redacted]. You can find your API key at the dashboard.',
    );
  });

  it('quotes a long or plain-text error body only up to a bound', async () => {
    const server = await startServer((request, res) => {
      if ((request.body as { model: string }).model === 'long') {
        res.writeHead(500, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ object: 'error', message: `overloaded ${'x'.repeat(5000)}`, code: 500 }));
      } else {
        res.writeHead(503, { 'Content-Type': 'text/plain' });
        res.end('model is loading, retry later');
      }
    });
    const provider = createOpenAICompatibleProvider({ baseUrl: server.baseUrl, model: 'long' });
    const long = (await drain(provider.stream({ prompt: 'x', signal: signal() })).catch(
      (e: Error) => e,
    )) as Error;
    expect(long.message).toMatch(/answered HTTP 500 Internal Server Error: overloaded x+…$/);
    expect(long.message.length).toBeLessThan(450);
    const plain = (await drain(provider.stream({ prompt: 'x', model: 'plain', signal: signal() })).catch(
      (e: Error) => e,
    )) as Error;
    expect(plain.message).toMatch(/answered HTTP 503 Service Unavailable: model is loading, retry later$/);
  });

  it('fails with the server message when an error event arrives mid-stream, after the text before it', async () => {
    const server = await startServer(async (_request, res) => {
      startEventStream(res);
      res.write(`data: ${chunk({ content: 'partial' })}\n\n`);
      await sleep(10);
      res.end(`data: ${JSON.stringify({ error: { message: 'model crashed', type: 'server_error' } })}\n\n`);
    });
    const provider = createOpenAICompatibleProvider({ baseUrl: server.baseUrl, model: 'm' });
    const seen: ProviderEvent[] = [];
    const run = (async () => {
      for await (const event of provider.stream({ prompt: 'x', signal: signal() })) seen.push(event);
    })();
    await expect(run).rejects.toThrow(/reported an error: model crashed$/);
    expect(texts(seen)).toEqual(['partial']);
  });

  it('fails on malformed JSON in an event', async () => {
    const server = await startServer((_request, res) => {
      startEventStream(res);
      res.end('data: {"choices":[{"delta":{"content":"x"}}\n\ndata: [DONE]\n\n');
    });
    const provider = createOpenAICompatibleProvider({ baseUrl: server.baseUrl, model: 'm' });
    await expect(drain(provider.stream({ prompt: 'x', signal: signal() }))).rejects.toThrow(
      /sent malformed JSON in its stream: \{"choices"/,
    );
  });

  it('fails when the connection ends mid-answer, but accepts a finished answer without [DONE]', async () => {
    const server = await startServer((request, res) => {
      startEventStream(res);
      const finished = (request.body as { model: string }).model === 'finished';
      res.end(`data: ${chunk({ content: 'half' })}\n\n${finished ? `data: ${chunk({}, 'stop')}\n\n` : ''}`);
    });
    const provider = createOpenAICompatibleProvider({ baseUrl: server.baseUrl, model: 'cut' });
    await expect(drain(provider.stream({ prompt: 'x', signal: signal() }))).rejects.toThrow(
      /closed the stream before the answer finished/,
    );
    const done = await drain(provider.stream({ prompt: 'x', model: 'finished', signal: signal() }));
    expect(texts(done)).toEqual(['half']);
    expect(done.some((event) => event.type === 'usage')).toBe(false);
  });

  it('aborting a stalled answer really cancels the HTTP request: the server sees it closed', async () => {
    const server = await startServer(async (_request, res) => {
      startEventStream(res);
      res.write(`data: ${chunk({ content: 'first' })}\n\n`);
      // ...then stalls: no more data, no end.
    });
    const provider = createOpenAICompatibleProvider({ baseUrl: server.baseUrl, model: 'm' });
    const controller = new AbortController();
    const iterator = provider.stream({ prompt: 'x', signal: controller.signal })[Symbol.asyncIterator]();
    expect(await iterator.next()).toEqual({ done: false, value: { type: 'text', text: 'first' } });
    const pending = iterator.next();
    controller.abort();
    await expect(within(pending, 5_000, 'the aborted read')).rejects.toBeInstanceOf(AbortError);
    await waitUntil(() => server.clientClosed() === 1, 'the server saw the request closed', 5_000);
  });

  it('aborting before the server answers cancels the request too', async () => {
    const server = await startServer(() => {
      // Never answers.
    });
    const provider = createOpenAICompatibleProvider({ baseUrl: server.baseUrl, model: 'm' });
    const controller = new AbortController();
    const run = drain(provider.stream({ prompt: 'x', signal: controller.signal }));
    await waitUntil(() => server.requests.length === 1, 'the server received the request', 5_000);
    controller.abort();
    await expect(within(run, 5_000, 'the aborted request')).rejects.toBeInstanceOf(AbortError);
    await waitUntil(() => server.clientClosed() === 1, 'the server saw the request closed', 5_000);
  });

  it('continues a partial answer: the partial text as the assistant turn, then the instruction', async () => {
    const server = await startServer((_request, res) => {
      startEventStream(res);
      res.end(`data: ${chunk({ content: ' the end.' }, 'stop')}\n\ndata: [DONE]\n\n`);
    });
    const provider = createOpenAICompatibleProvider({ baseUrl: `${server.baseUrl}/`, model: 'm' });
    const events = await drain(
      provider.stream({
        prompt: 'Tell a story',
        continueFrom: 'Once upon a time',
        model: 'other',
        signal: signal(),
      }),
    );
    expect(texts(events)).toEqual([' the end.']);
    expect(server.requests[0]?.url).toBe('/v1/chat/completions');
    expect(server.requests[0]?.body).toMatchObject({
      model: 'other',
      messages: [
        { role: 'user', content: 'Tell a story' },
        { role: 'assistant', content: 'Once upon a time' },
        { role: 'user', content: CONTINUE_INSTRUCTION },
      ],
    });
  });

  it('lists models from /models, and falls back to the configured model when that fails', async () => {
    const server = await startServer((_request, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify({
          object: 'list',
          data: [
            { id: 'llama3.2:3b', object: 'model', owned_by: 'library' },
            { id: 'qwen2.5:7b', object: 'model', owned_by: 'library' },
          ],
        }),
      );
    });
    const missing = await startServer((_request, res) => {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('404 page not found');
    });
    const garbage = await startServer((_request, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('not json');
    });
    const list = (baseUrl: string) =>
      createOpenAICompatibleProvider({ baseUrl, model: 'configured' }).models();
    expect(await list(server.baseUrl)).toEqual(['llama3.2:3b', 'qwen2.5:7b']);
    expect(server.requests[0]).toMatchObject({ method: 'GET', url: '/v1/models' });
    expect(await list(missing.baseUrl)).toEqual(['configured']);
    expect(await list(garbage.baseUrl)).toEqual(['configured']);
  });

  it('reports an unreachable server clearly and still lists the configured model', async () => {
    const server = await startServer(() => undefined);
    const closed = servers.pop() as Server;
    closed.closeAllConnections();
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const provider = createOpenAICompatibleProvider({ baseUrl: server.baseUrl, model: 'configured' });
    await expect(drain(provider.stream({ prompt: 'x', signal: signal() }))).rejects.toThrow(
      `cannot reach the OpenAI-compatible server at ${new URL(server.baseUrl).host}`,
    );
    expect(await provider.models()).toEqual(['configured']);
  });
});
