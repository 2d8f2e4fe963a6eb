import { chatMessages } from './continuation.ts';
import {
  AbortError,
  type AIProvider,
  type ProviderEvent,
  type ProviderRequest,
  type Usage,
} from './provider.ts';
import { readSseEvents } from './sse.ts';

export interface OpenAICompatibleOptions {
  /** The API root, e.g. `http://127.0.0.1:11434/v1` (Ollama), `http://127.0.0.1:8080/v1` (llama.cpp). */
  baseUrl: string;
  /** The model used when a request names none. */
  model: string;
  /** Sent as `Authorization: Bearer …` and nowhere else. Local servers usually need none. */
  apiKey?: string;
  /** Defaults to the global `fetch` (browsers and Node 18+). */
  fetch?: typeof fetch;
  /** Shown in UIs; defaults to the model and the server's host. */
  label?: string;
  /** How long `models()` waits for `/models` before falling back to the configured model (default 5 s). */
  modelsTimeoutMs?: number;
}

/** Longest piece of a server's error message quoted in an Error. */
const MAX_QUOTED_CHARS = 300;
/** Bytes of an error response read to find its message. */
const MAX_ERROR_BODY_BYTES = 8 * 1024;

/**
 * A provider for any server speaking OpenAI's chat completions API with streaming: Ollama,
 * llama.cpp's server, vLLM, LM Studio and OpenAI itself.
 *
 * `stream()` POSTs `{baseUrl}/chat/completions` with `stream: true` and
 * `stream_options.include_usage`, and turns the server-sent `chat.completion.chunk` events into text
 * events and one usage event (when the server reports usage). Aborting the request's signal cancels
 * the HTTP request itself. A `continueFrom` (text another peer already produced) is sent as the
 * assistant's turn after the prompt, followed by a short user instruction to continue exactly where
 * it stopped without repeating it (see `chatMessages`); only the continuation is streamed.
 *
 * The API key is kept in this closure and sent only in the Authorization header: it is not part of
 * the label, and any error text that happens to quote it has it replaced by `[redacted]`.
 */
export function createOpenAICompatibleProvider(options: OpenAICompatibleOptions): AIProvider {
  const base = options.baseUrl.replace(/\/+$/, '');
  const model = options.model;
  const apiKey = options.apiKey || undefined;
  const doFetch: typeof fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const modelsTimeoutMs = options.modelsTimeoutMs ?? 5_000;
  const where = `the OpenAI-compatible server at ${hostOf(base)}`;

  const redact = (text: string): string => (apiKey ? text.split(apiKey).join('[redacted]') : text);
  const headers = (extra: Record<string, string>): Record<string, string> =>
    apiKey ? { ...extra, Authorization: `Bearer ${apiKey}` } : extra;

  async function* stream(request: ProviderRequest): AsyncGenerator<ProviderEvent> {
    const { signal } = request;
    if (signal.aborted) throw new AbortError();
    try {
      let response: Response;
      try {
        response = await doFetch(`${base}/chat/completions`, {
          method: 'POST',
          headers: headers({ 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
          body: JSON.stringify({
            model: request.model ?? model,
            messages: chatMessages(request.prompt, request.continueFrom),
            stream: true,
            stream_options: { include_usage: true },
          }),
          signal,
        });
      } catch (error) {
        if (signal.aborted) throw error;
        throw new Error(redact(`cannot reach ${where}: ${describeFetchError(error)}`));
      }
      if (!response.ok) {
        const message = serverMessage(await readPrefix(response, MAX_ERROR_BODY_BYTES));
        const status = `${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
        throw new Error(redact(`${where} answered HTTP ${status}${message ? `: ${quote(message)}` : ''}`));
      }
      if (!response.body) throw new Error(`${where} sent no response body`);

      let usage: Usage | undefined;
      let sawDone = false;
      let sawFinish = false;
      for await (const event of readSseEvents(response.body)) {
        if (event.data === '[DONE]') {
          sawDone = true;
          break; // ends the read, which releases the connection
        }
        const chunk = parseChunk(event.data);
        if (event.type === 'error') {
          // An `event: error` frame (some proxies): its data may be JSON or plain text.
          throw new Error(redact(`${where} reported an error: ${quote(messageOf(chunk) ?? event.data)}`));
        }
        if (chunk === undefined) {
          throw new Error(redact(`${where} sent malformed JSON in its stream: ${quote(event.data)}`));
        }
        if (chunk.error !== undefined && chunk.error !== null) {
          const message = messageOf(chunk.error) ?? messageOf(chunk) ?? event.data;
          throw new Error(redact(`${where} reported an error: ${quote(message)}`));
        }
        const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined;
        const content = choice?.delta?.content;
        if (typeof content === 'string' && content.length > 0) yield { type: 'text', text: content };
        if (choice?.finish_reason) sawFinish = true;
        usage = usageOf(chunk.usage) ?? usage;
      }
      // Servers end with `[DONE]`; some older ones just close after the final chunk. A stream that
      // closes with neither was cut off, and the requester should know the answer is incomplete.
      if (!sawDone && !sawFinish) throw new Error(`${where} closed the stream before the answer finished`);
      if (usage) yield { type: 'usage', usage };
    } catch (error) {
      if (signal.aborted) throw new AbortError();
      throw error;
    }
  }

  async function models(): Promise<string[]> {
    try {
      const response = await doFetch(`${base}/models`, {
        headers: headers({ Accept: 'application/json' }),
        signal: AbortSignal.timeout(modelsTimeoutMs),
      });
      if (!response.ok) {
        response.body?.cancel().catch(() => undefined);
        return [model];
      }
      const list = (await response.json()) as { data?: unknown };
      const ids = Array.isArray(list.data)
        ? list.data.map((entry: { id?: unknown }) => entry?.id).filter((id) => typeof id === 'string' && id)
        : [];
      return ids.length > 0 ? [...new Set(ids as string[])] : [model];
    } catch {
      return [model];
    }
  }

  return {
    id: 'openai',
    label: redact(options.label ?? `${model} · ${hostOf(base)}`),
    isDemo: false,
    models,
    stream,
  };
}

interface CompletionChunk {
  choices?: Array<{ delta?: { content?: unknown }; finish_reason?: unknown } | undefined>;
  usage?: unknown;
  error?: unknown;
}

/** The event's JSON object, or undefined when it is not a JSON object. */
function parseChunk(data: string): CompletionChunk | undefined {
  try {
    const value: unknown = JSON.parse(data);
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as CompletionChunk)
      : undefined;
  } catch {
    return undefined;
  }
}

function usageOf(value: unknown): Usage | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const { prompt_tokens: input, completion_tokens: output } = value as Record<string, unknown>;
  if (!isCount(input) || !isCount(output)) return undefined;
  return { inputTokens: input, outputTokens: output };
}

const isCount = (value: unknown): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= 0;

/** The message in `{error:{message}}`, `{error:"…"}`, `{message}` or `{detail}` (FastAPI) shapes. */
function messageOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value || undefined;
  if (value === null || typeof value !== 'object') return undefined;
  const record = value as Record<string, unknown>;
  return (
    (record['error'] !== undefined ? messageOf(record['error']) : undefined) ??
    (typeof record['message'] === 'string' && record['message'] ? record['message'] : undefined) ??
    (typeof record['detail'] === 'string' && record['detail'] ? record['detail'] : undefined)
  );
}

function serverMessage(body: string): string {
  try {
    const message = messageOf(JSON.parse(body));
    if (message) return message;
  } catch {
    // not JSON: quote the text itself
  }
  return body.trim();
}

function quote(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > MAX_QUOTED_CHARS ? `${flat.slice(0, MAX_QUOTED_CHARS)}…` : flat;
}

/** Up to `maxBytes` of the body as text; the rest is not read (the body is cancelled). */
async function readPrefix(response: Response, maxBytes: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  try {
    while (bytes < maxBytes) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      text += decoder.decode(value, { stream: true });
    }
    return text + decoder.decode();
  } catch {
    return text;
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Error && cause.message ? `${error.message} (${cause.message})` : error.message;
}

/** host:port of the API root, without any user:password part; the root itself if it is relative. */
function hostOf(baseUrl: string): string {
  try {
    return new URL(baseUrl).host;
  } catch {
    return baseUrl;
  }
}
