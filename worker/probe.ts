/**
 * The start-up check of an OpenAI-compatible server: `GET {baseUrl}/models`, with the API key.
 *
 * What it decides:
 *  - no HTTP answer at all (refused, unknown host, timeout)  → refuse to start: nothing could be served;
 *  - HTTP 401 or 403                                         → refuse to start: the key is wrong or missing;
 *  - a model list without the configured model               → refuse to start, naming what is offered;
 *  - any other answer (404, 5xx, not a list)                 → start, with a warning: some servers and
 *    proxies do not implement /models, and the model is then tried on the first task.
 * Ollama lists `llama3:latest` for a model asked for as `llama3`; either spelling matches.
 */
export type ProbeResult =
  | { ok: true; offered: string[] | undefined; warning?: string }
  | { ok: false; message: string };

export interface ProbeOptions {
  baseUrl: string;
  model: string;
  apiKey: string | undefined;
  /** Named in the message when the key is refused. */
  apiKeyEnv: string;
  timeoutMs: number;
  fetch?: typeof fetch;
}

/** Models named in a refusal at most. */
const MAX_LISTED = 20;

export async function probeOpenAIServer(options: ProbeOptions): Promise<ProbeResult> {
  const base = options.baseUrl.replace(/\/+$/, '');
  const url = `${base}/models`;
  const where = `the OpenAI-compatible server at ${new URL(base).host}`;
  const redact = (text: string) => (options.apiKey ? text.split(options.apiKey).join('[redacted]') : text);
  const doFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));

  let response: Response;
  try {
    response = await doFetch(url, {
      headers: {
        Accept: 'application/json',
        ...(options.apiKey ? { Authorization: `Bearer ${options.apiKey}` } : {}),
      },
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (error) {
    return { ok: false, message: redact(`cannot reach ${where} (GET ${url}): ${describeFetchError(error)}`) };
  }

  if (response.status === 401 || response.status === 403) {
    response.body?.cancel().catch(() => undefined);
    const key = options.apiKey
      ? `the API key in ${options.apiKeyEnv} was refused`
      : `it needs an API key: set ${options.apiKeyEnv} (or name another variable with --api-key-env)`;
    return { ok: false, message: `${where} answered HTTP ${response.status} to GET ${url}: ${key}` };
  }
  if (!response.ok) {
    response.body?.cancel().catch(() => undefined);
    return {
      ok: true,
      offered: undefined,
      warning: `${where} answered HTTP ${response.status} to GET ${url}; model ${options.model} is not checked and is tried on the first task`,
    };
  }

  let offered: string[] | undefined;
  try {
    const list = (await response.json()) as { data?: unknown };
    if (Array.isArray(list?.data)) {
      offered = list.data
        .map((entry: { id?: unknown } | null) => entry?.id)
        .filter((id): id is string => typeof id === 'string' && id.length > 0);
    }
  } catch {
    offered = undefined;
  }
  if (offered === undefined) {
    return {
      ok: true,
      offered: undefined,
      warning: `${where} sent no model list from GET ${url}; model ${options.model} is not checked and is tried on the first task`,
    };
  }
  if (!offers(offered, options.model)) {
    const listed =
      offered.length === 0
        ? 'it offers none'
        : `it offers ${offered.slice(0, MAX_LISTED).join(', ')}${offered.length > MAX_LISTED ? ` and ${offered.length - MAX_LISTED} more` : ''}`;
    return { ok: false, message: redact(`${where} does not offer model ${options.model}: ${listed}`) };
  }
  return { ok: true, offered };
}

/** Whether `model` is in `offered`, with or without Ollama's `:latest` tag. */
export function offers(offered: readonly string[], model: string): boolean {
  const bare = (name: string) => name.replace(/:latest$/, '');
  return offered.some((name) => name === model || bare(name) === bare(model));
}

function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === 'TimeoutError') return 'no answer in time (see --probe-timeout-ms)';
  const cause = (error as { cause?: unknown }).cause;
  const code = (cause as { code?: unknown } | undefined)?.code;
  if (cause instanceof Error && cause.message) {
    return `${error.message} (${typeof code === 'string' && !cause.message.includes(code) ? `${code}: ` : ''}${cause.message})`;
  }
  return error.message;
}
