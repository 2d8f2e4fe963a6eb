import { type ChatMessage, chatMessages, estimateTokens } from './continuation.ts';
import { AbortError, type AIProvider, type ProviderEvent, type ProviderRequest } from './provider.ts';

/**
 * The part of Chrome's Prompt API (https://webmachinelearning.github.io/prompt-api/) this provider
 * uses, typed structurally because TypeScript's DOM library does not declare it yet. Current Chrome
 * names the context `contextWindow` / `contextUsage` / `measureContextUsage()`; earlier releases (and
 * extension contexts) use `inputQuota` / `inputUsage` / `measureInputUsage()`. Both are accepted.
 */
export type LanguageModelAvailability = 'unavailable' | 'downloadable' | 'downloading' | 'available';

/** A prompt: a string, or messages (the Prompt API accepts `user` and `assistant` turns). */
export type LanguageModelPrompt = string | ChatMessage[];

export interface LanguageModelSessionLike {
  promptStreaming(input: LanguageModelPrompt, options?: { signal?: AbortSignal }): ReadableStream<string>;
  clone?(options?: { signal?: AbortSignal }): Promise<LanguageModelSessionLike>;
  destroy?(): void;
  measureContextUsage?(input: LanguageModelPrompt, options?: { signal?: AbortSignal }): Promise<number>;
  readonly contextWindow?: number;
  readonly contextUsage?: number;
  /** Older name of `measureContextUsage`. */
  measureInputUsage?(input: LanguageModelPrompt, options?: { signal?: AbortSignal }): Promise<number>;
  /** Older name of `contextWindow`. */
  readonly inputQuota?: number;
  /** Older name of `contextUsage`. */
  readonly inputUsage?: number;
}

/** Options for `LanguageModel.create()` (initialPrompts, expectedInputs, temperature, monitor, …). */
export type LanguageModelCreateOptions = Record<string, unknown>;

export interface LanguageModelLike {
  availability(options?: LanguageModelCreateOptions): Promise<LanguageModelAvailability>;
  create(options?: LanguageModelCreateOptions & { signal?: AbortSignal }): Promise<LanguageModelSessionLike>;
}

export interface ChromePromptOptions {
  /**
   * The Prompt API's `LanguageModel`; defaults to the global one. Passing the key with `undefined`
   * means "no Prompt API" (as in a browser without it).
   */
  LanguageModel?: LanguageModelLike | undefined;
  /** Passed to `availability()` and `create()` (never the per-prompt signal). */
  createOptions?: LanguageModelCreateOptions;
  label?: string;
}

export interface ChromePromptProvider extends AIProvider {
  /** The Prompt API's own answer; 'unavailable' when the browser has no `LanguageModel`. */
  availability(): Promise<LanguageModelAvailability>;
  /** True when prompts can run now without a model download (for UIs deciding what to offer). */
  isAvailable(): Promise<boolean>;
  /** Destroys the cached session; the next prompt creates a new one. */
  destroy(): void;
}

export const CHROME_BUILTIN_MODEL = 'chrome-builtin';

/** The Prompt API's `LanguageModel` global, if this browser has one. */
export function builtInLanguageModel(): LanguageModelLike | undefined {
  return (globalThis as { LanguageModel?: LanguageModelLike }).LanguageModel;
}

/** True when Chrome's built-in model can answer prompts right now (no download pending). */
export async function isChromePromptApiAvailable(
  LanguageModel: LanguageModelLike | undefined = builtInLanguageModel(),
  createOptions: LanguageModelCreateOptions = {},
): Promise<boolean> {
  if (!LanguageModel) return false;
  try {
    return (await LanguageModel.availability(createOptions)) === 'available';
  } catch {
    return false;
  }
}

/**
 * Chrome's built-in, on-device model through the Prompt API. One session is created per provider
 * (with `createOptions`, e.g. initial prompts) and cached; every prompt runs on a `clone()` of it —
 * or on a fresh session where `clone` is missing — so prompts never see each other's history.
 *
 * Before prompting, the prompt is measured against the remaining context window and refused with an
 * Error if it does not fit. Usage reports the measured input tokens; the Prompt API gives no output
 * token count, so output tokens are the answer text measured the same way, or estimated at about
 * four characters per token where no measure function exists.
 */
export function createChromePromptProvider(options: ChromePromptOptions = {}): ChromePromptProvider {
  const LanguageModel = 'LanguageModel' in options ? options.LanguageModel : builtInLanguageModel();
  const createOptions = options.createOptions ?? {};
  /** Aborted by destroy(): stops a base session still being created. */
  let lifetime = new AbortController();
  let baseSession: Promise<LanguageModelSessionLike> | undefined;

  async function availability(): Promise<LanguageModelAvailability> {
    if (!LanguageModel) return 'unavailable';
    return LanguageModel.availability(createOptions);
  }

  /**
   * The Prompt API does not name its model, so it is `chrome-builtin`; a browser that cannot run it
   * offers none ('downloadable' and 'downloading' count as able: the first prompt waits for it).
   */
  async function models(): Promise<string[]> {
    try {
      return (await availability()) === 'unavailable' ? [] : [CHROME_BUILTIN_MODEL];
    } catch {
      return [];
    }
  }

  function sharedSession(api: LanguageModelLike): Promise<LanguageModelSessionLike> {
    if (!baseSession) {
      const created = api.create({ ...createOptions, signal: lifetime.signal });
      baseSession = created;
      // A failed creation is not cached: the next prompt tries again.
      created.catch(() => {
        if (baseSession === created) baseSession = undefined;
      });
    }
    return baseSession;
  }

  /** A session with the base context and no other prompt's history, owned by one request. */
  async function sessionFor(api: LanguageModelLike, signal: AbortSignal): Promise<LanguageModelSessionLike> {
    const base = await untilAborted(sharedSession(api), signal);
    if (typeof base.clone === 'function') return base.clone({ signal });
    return api.create({ ...createOptions, signal });
  }

  async function* stream(request: ProviderRequest): AsyncGenerator<ProviderEvent> {
    const { signal } = request;
    if (signal.aborted) throw new AbortError();
    if (!LanguageModel)
      throw new Error('Chrome built-in AI is not available: this browser has no Prompt API');
    let session: LanguageModelSessionLike | undefined;
    try {
      if (!baseSession && (await availability()) === 'unavailable') {
        throw new Error('Chrome built-in AI is unavailable on this device');
      }
      session = await sessionFor(LanguageModel, signal);
      const input: LanguageModelPrompt = request.continueFrom
        ? chatMessages(request.prompt, request.continueFrom)
        : request.prompt;
      const measure = measureOf(session);
      const inputTokens = measure ? await measure(input, signal) : estimateTokens(textOf(input));
      const window = session.contextWindow ?? session.inputQuota;
      const used = session.contextUsage ?? session.inputUsage ?? 0;
      if (window !== undefined && Number.isFinite(window) && inputTokens > window - used) {
        throw new Error(
          `prompt too long for Chrome built-in AI: it needs ${inputTokens} tokens and ` +
            `${Math.max(0, window - used)} of the ${window}-token context window are left`,
        );
      }

      const reader = session.promptStreaming(input, { signal }).getReader();
      let answer = '';
      try {
        for (;;) {
          const { done, value } = await untilAborted(reader.read(), signal);
          if (done) break;
          // Current Chrome streams deltas (each chunk is new text), not the cumulative answer.
          if (typeof value === 'string' && value.length > 0) {
            answer += value;
            yield { type: 'text', text: value };
          }
        }
      } finally {
        reader.cancel().catch(() => undefined);
      }
      // The Prompt API reports no output token count: measure the answer text with the model's own
      // tokenizer where possible, else estimate it from the text (about four characters per token).
      const outputTokens = measure ? await measure(answer, signal) : estimateTokens(answer);
      yield { type: 'usage', usage: { inputTokens, outputTokens } };
    } catch (error) {
      if (signal.aborted) throw new AbortError();
      throw error;
    } finally {
      session?.destroy?.();
    }
  }

  return {
    id: 'chrome',
    label: options.label ?? 'Chrome built-in AI (on device)',
    isDemo: false,
    models,
    stream,
    availability,
    isAvailable: () => isChromePromptApiAvailable(LanguageModel, createOptions),
    destroy() {
      lifetime.abort();
      lifetime = new AbortController();
      const current = baseSession;
      baseSession = undefined;
      current?.then((session) => session.destroy?.()).catch(() => undefined);
    },
  };
}

function measureOf(
  session: LanguageModelSessionLike,
): ((input: LanguageModelPrompt, signal: AbortSignal) => Promise<number>) | undefined {
  if (typeof session.measureContextUsage === 'function') {
    return (input, signal) => session.measureContextUsage!(input, { signal });
  }
  if (typeof session.measureInputUsage === 'function') {
    return (input, signal) => session.measureInputUsage!(input, { signal });
  }
  return undefined;
}

function textOf(input: LanguageModelPrompt): string {
  return typeof input === 'string' ? input : input.map((message) => message.content).join('\n');
}

/** `promise`, or an AbortError as soon as `signal` aborts (whichever comes first). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new AbortError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortError());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
