import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the fake server saw it. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  /** The JSON body (undefined when there was none). */
  body: unknown;
}

export interface FakeOpenAIOptions {
  /** What GET /v1/models lists; `'not-found'` answers 404 (a server without /models). Default ['test-model']. */
  models?: string[] | 'not-found';
  /** The answer's text pieces, one `chat.completion.chunk` each, for a request. Default ['Hello', ', world', '!']. */
  answer?: (request: SeenRequest) => string[];
  /** Usage reported in the final chunk. Default { prompt: 5, completion: pieces }. */
  usage?: { promptTokens: number; completionTokens: number };
  /** Pause between writes, so the answer really arrives in pieces (default 5 ms). */
  pieceDelayMs?: number;
}

export interface FakeOpenAIServer {
  /** The API root, `http://127.0.0.1:<port>/v1`. */
  baseUrl: string;
  /** Every request received, in order. */
  requests: SeenRequest[];
  close(): Promise<void>;
}

const CREATED = 1_767_225_600;

/** A `chat.completion.chunk` exactly as OpenAI streams it. */
export function completionChunk(
  model: string,
  delta: Record<string, unknown>,
  finishReason: string | null = null,
): string {
  return JSON.stringify({
    id: 'chatcmpl-fake-1',
    object: 'chat.completion.chunk',
    created: CREATED,
    model,
    system_fingerprint: 'fp_fake',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    usage: null,
  });
}

/** The final chunk `stream_options.include_usage` asks for: no choices, just usage. */
export function usageChunk(model: string, promptTokens: number, completionTokens: number): string {
  return JSON.stringify({
    id: 'chatcmpl-fake-1',
    object: 'chat.completion.chunk',
    created: CREATED,
    model,
    choices: [],
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
  });
}

/** The SSE frames of a whole streamed answer: role, one chunk per piece, finish, usage, [DONE]. */
export function completionStream(
  model: string,
  pieces: string[],
  usage: { promptTokens: number; completionTokens: number },
): string[] {
  return [
    `data: ${completionChunk(model, { role: 'assistant', content: '' })}\n\n`,
    ...pieces.map((piece) => `data: ${completionChunk(model, { content: piece })}\n\n`),
    `data: ${completionChunk(model, {}, 'stop')}\n\n`,
    `data: ${usageChunk(model, usage.promptTokens, usage.completionTokens)}\n\n`,
    'data: [DONE]\n\n',
  ];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A real HTTP server on 127.0.0.1 (port 0) speaking OpenAI's chat completions API the way Ollama,
 * llama.cpp and vLLM do: GET /v1/models, and POST /v1/chat/completions streamed as server-sent
 * `chat.completion.chunk` events (a usage chunk, then `[DONE]`), written in pieces — every frame
 * separately, and one frame cut in the middle of its JSON. It records every request, headers
 * included, so tests can check what a client sent (the prompt, the Authorization header).
 */
export async function startFakeOpenAIServer(options: FakeOpenAIOptions = {}): Promise<FakeOpenAIServer> {
  const requests: SeenRequest[] = [];
  const models = options.models ?? ['test-model'];
  const answer = options.answer ?? (() => ['Hello', ', world', '!']);
  const pieceDelayMs = options.pieceDelayMs ?? 5;

  async function respond(request: SeenRequest, res: ServerResponse): Promise<void> {
    if (request.method === 'GET' && request.url === '/v1/models') {
      if (models === 'not-found') {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('404 page not found');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify({
          object: 'list',
          data: models.map((id) => ({ id, object: 'model', created: CREATED, owned_by: 'library' })),
        }),
      );
      return;
    }
    if (request.method === 'POST' && request.url === '/v1/chat/completions') {
      const model = (request.body as { model?: string } | undefined)?.model ?? 'unknown';
      const pieces = answer(request);
      const usage = options.usage ?? { promptTokens: 5, completionTokens: pieces.length };
      res.writeHead(200, {
        'Content-Type': 'text/event-stream',
        'Cache-Control': 'no-cache',
        Connection: 'keep-alive',
      });
      res.flushHeaders();
      const frames = completionStream(model, pieces, usage);
      for (const [index, frame] of frames.entries()) {
        if (res.destroyed) return;
        if (index === 1) {
          // The first text frame goes out in two writes, cut inside its JSON.
          const cut = Math.floor(frame.length / 2);
          res.write(frame.slice(0, cut));
          await sleep(pieceDelayMs);
          res.write(frame.slice(cut));
        } else {
          res.write(frame);
        }
        await sleep(pieceDelayMs);
      }
      res.end();
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: { message: `no route for ${request.method} ${request.url}` } }));
  }

  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = text;
      }
      const seen: SeenRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
      };
      requests.push(seen);
      respond(seen, res).catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
