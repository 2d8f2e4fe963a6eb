import { describe, expect, it } from 'vitest';
import {
  CHROME_BUILTIN_MODEL,
  createChromePromptProvider,
  isChromePromptApiAvailable,
  type LanguageModelAvailability,
  type LanguageModelLike,
  type LanguageModelPrompt,
} from '../../machines/providers/chrome-prompt-api.ts';
import { CONTINUE_INSTRUCTION } from '../../machines/providers/continuation.ts';
import { AbortError, type ProviderEvent } from '../../machines/providers/provider.ts';

type Message = { role: 'system' | 'user' | 'assistant'; content: string };

interface FakeOptions {
  availability?: LanguageModelAvailability;
  /** 'current' = contextWindow/contextUsage/measureContextUsage; 'older' = inputQuota/inputUsage/measureInputUsage. */
  names?: 'current' | 'older';
  contextWindow?: number;
  /** The answer, streamed one piece per read. */
  reply?: string[];
  /** After the first piece, the stream waits (for an abort) instead of finishing. */
  stallAfterFirstPiece?: boolean;
  /** The stream ignores its abort signal entirely (a misbehaving implementation). */
  ignoreSignal?: boolean;
  /** Sessions have no clone() method. */
  noClone?: boolean;
  /** The first `failCreates` calls to create() reject. */
  failCreates?: number;
  /** create() waits for this before resolving. */
  createGate?: Promise<void>;
}

/** What the fake saw, for assertions. */
interface FakeLog {
  creates: Array<Record<string, unknown>>;
  clones: number;
  destroyed: number;
  /** The conversation each prompt was made in: the session's history, then the new input. */
  prompts: Array<{ history: Message[]; input: LanguageModelPrompt }>;
  abortedStreams: number;
  piecesProduced: number;
}

const words = (text: string) => text.split(/\s+/).filter(Boolean).length;
const toMessages = (input: LanguageModelPrompt): Message[] =>
  typeof input === 'string' ? [{ role: 'user', content: input }] : input;
/** The fake's tokenizer: one token per word, plus one per message. */
const tokensOf = (input: LanguageModelPrompt) =>
  toMessages(input).reduce((sum, message) => sum + words(message.content) + 1, 0);
const abortError = () => new DOMException('The operation was aborted.', 'AbortError');

/**
 * A fake of the Prompt API's `LanguageModel` with exactly its documented surface: static
 * availability() and create({ signal, initialPrompts, … }); per session promptStreaming(input,
 * { signal }) → ReadableStream<string> of deltas, clone({ signal }), destroy(), and either the
 * current context names or the older quota names.
 */
function fakeLanguageModel(options: FakeOptions = {}): { LanguageModel: LanguageModelLike; log: FakeLog } {
  const log: FakeLog = {
    creates: [],
    clones: 0,
    destroyed: 0,
    prompts: [],
    abortedStreams: 0,
    piecesProduced: 0,
  };
  const names = options.names ?? 'current';
  const window = options.contextWindow ?? 1000;
  let failuresLeft = options.failCreates ?? 0;

  class FakeSession {
    history: Message[];
    usage: number;
    destroyedHere = false;

    constructor(history: Message[]) {
      this.history = history;
      this.usage = history.reduce((sum, message) => sum + tokensOf(message.content), 0);
    }

    static async availability(): Promise<LanguageModelAvailability> {
      return options.availability ?? 'available';
    }

    static async create(createOptions: Record<string, unknown> = {}): Promise<FakeSession> {
      log.creates.push(createOptions);
      const signal = createOptions['signal'] as AbortSignal | undefined;
      if (options.createGate) await options.createGate;
      if (signal?.aborted) throw abortError();
      if (failuresLeft > 0) {
        failuresLeft--;
        throw new DOMException('The model could not be loaded.', 'OperationError');
      }
      return new FakeSession([...((createOptions['initialPrompts'] as Message[] | undefined) ?? [])]);
    }

    async clone(cloneOptions: { signal?: AbortSignal } = {}): Promise<FakeSession> {
      if (cloneOptions.signal?.aborted) throw abortError();
      log.clones++;
      return new FakeSession([...this.history]);
    }

    destroy(): void {
      if (!this.destroyedHere) log.destroyed++;
      this.destroyedHere = true;
    }

    promptStreaming(
      input: LanguageModelPrompt,
      promptOptions: { signal?: AbortSignal } = {},
    ): ReadableStream<string> {
      if (this.destroyedHere) throw new DOMException('session destroyed', 'InvalidStateError');
      const signal = promptOptions.signal;
      log.prompts.push({ history: [...this.history], input });
      this.history.push(...toMessages(input));
      this.usage += tokensOf(input);
      const pieces = [...(options.reply ?? ['Hello', ' from', ' Chrome.'])];
      let index = 0;
      let stalled: (() => void) | undefined;
      return new ReadableStream<string>({
        start: (controller) => {
          if (options.ignoreSignal || !signal) return;
          signal.addEventListener(
            'abort',
            () => {
              log.abortedStreams++;
              stalled?.();
              controller.error(abortError());
            },
            { once: true },
          );
        },
        pull: async (controller) => {
          if (signal?.aborted && !options.ignoreSignal) return;
          if (index === 1 && options.stallAfterFirstPiece) {
            await new Promise<void>((resolve) => {
              stalled = resolve;
            });
            return;
          }
          const piece = pieces[index++];
          if (piece === undefined) {
            controller.close();
            return;
          }
          log.piecesProduced++;
          this.usage += tokensOf(piece);
          controller.enqueue(piece);
        },
      });
    }
  }

  const measure = async (input: LanguageModelPrompt, measureOptions: { signal?: AbortSignal } = {}) => {
    if (measureOptions.signal?.aborted) throw abortError();
    return tokensOf(input);
  };
  // Only one generation of names exists on a session, as in a real browser of either age.
  const [windowName, usageName, measureName] =
    names === 'current'
      ? ['contextWindow', 'contextUsage', 'measureContextUsage']
      : ['inputQuota', 'inputUsage', 'measureInputUsage'];
  Object.defineProperty(FakeSession.prototype, windowName, { get: () => window });
  Object.defineProperty(FakeSession.prototype, usageName, {
    get(this: FakeSession) {
      return this.usage;
    },
  });
  Object.defineProperty(FakeSession.prototype, measureName, { value: measure });
  if (options.noClone) Object.defineProperty(FakeSession.prototype, 'clone', { value: undefined });
  return { LanguageModel: FakeSession as unknown as LanguageModelLike, log };
}

/** Reads a whole stream (bounded: a runaway stream fails the test). */
async function drain(events: AsyncIterable<ProviderEvent>, limit = 1000): Promise<ProviderEvent[]> {
  const seen: ProviderEvent[] = [];
  for await (const event of events) {
    seen.push(event);
    if (seen.length > limit) throw new Error('stream did not end');
  }
  return seen;
}

const textOf = (events: ProviderEvent[]) =>
  events.map((event) => (event.type === 'text' ? event.text : '')).join('');
const usageOf = (events: ProviderEvent[]) => events.find((event) => event.type === 'usage');
const signal = () => new AbortController().signal;

describe('Chrome Prompt API provider', () => {
  it('streams the delta chunks of the answer and reports measured input and output tokens', async () => {
    const { LanguageModel } = fakeLanguageModel({ reply: ['The sky', ' is blue', ' today.'] });
    const provider = createChromePromptProvider({ LanguageModel });
    const events = await drain(provider.stream({ prompt: 'Why is the sky blue?', signal: signal() }));
    expect(events.filter((event) => event.type === 'text').map((event) => event.text)).toEqual([
      'The sky',
      ' is blue',
      ' today.',
    ]);
    // Input: 5 words + 1 message; output: the answer measured with the same tokenizer (5 + 1).
    expect(usageOf(events)).toEqual({ type: 'usage', usage: { inputTokens: 6, outputTokens: 6 } });
    expect(events.at(-1)?.type).toBe('usage');
  });

  it('works the same with the older inputQuota / inputUsage / measureInputUsage names', async () => {
    const { LanguageModel, log } = fakeLanguageModel({ names: 'older', contextWindow: 20, reply: ['ok'] });
    const provider = createChromePromptProvider({ LanguageModel });
    const session = (await LanguageModel.create()) as unknown as Record<string, unknown>;
    expect(
      ['contextWindow', 'contextUsage', 'measureContextUsage'].filter((name) => name in session),
    ).toEqual([]);
    log.creates.length = 0;
    const events = await drain(provider.stream({ prompt: 'short prompt', signal: signal() }));
    expect(textOf(events)).toBe('ok');
    expect(usageOf(events)).toEqual({ type: 'usage', usage: { inputTokens: 3, outputTokens: 2 } });
    await expect(drain(provider.stream({ prompt: 'word '.repeat(30), signal: signal() }))).rejects.toThrow(
      /prompt too long for Chrome built-in AI: it needs 31 tokens and 20 of the 20-token/,
    );
    expect(log.prompts).toHaveLength(1);
  });

  it('refuses a prompt larger than the remaining context window before prompting', async () => {
    const initialPrompts: Message[] = [{ role: 'system', content: 'You are terse and helpful always.' }];
    const { LanguageModel, log } = fakeLanguageModel({ contextWindow: 20 });
    const provider = createChromePromptProvider({ LanguageModel, createOptions: { initialPrompts } });
    // The system prompt already uses 7 of 20 tokens: 13 are left, and 12 words + 1 need 13.
    await expect(
      drain(provider.stream({ prompt: 'w '.repeat(12), signal: signal() })),
    ).resolves.toBeDefined();
    const tooLong = provider.stream({ prompt: 'w '.repeat(13), signal: signal() });
    await expect(drain(tooLong)).rejects.toThrow(
      'prompt too long for Chrome built-in AI: it needs 14 tokens and 13 of the 20-token context window are left',
    );
    expect(log.prompts).toHaveLength(1);
  });

  it('creates one session, runs each prompt on a clone of it, so prompts never see each other', async () => {
    const initialPrompts: Message[] = [{ role: 'system', content: 'Answer in English.' }];
    const { LanguageModel, log } = fakeLanguageModel();
    const provider = createChromePromptProvider({
      LanguageModel,
      createOptions: { initialPrompts, temperature: 0.2 },
    });
    await drain(provider.stream({ prompt: 'first question', signal: signal() }));
    await drain(provider.stream({ prompt: 'second question', signal: signal() }));
    expect(log.creates).toHaveLength(1);
    expect(log.creates[0]).toMatchObject({ initialPrompts, temperature: 0.2 });
    expect(log.clones).toBe(2);
    expect(log.prompts.map((prompt) => prompt.history)).toEqual([initialPrompts, initialPrompts]);
    expect(log.prompts.map((prompt) => prompt.input)).toEqual(['first question', 'second question']);
    expect(log.destroyed).toBe(2); // each clone, once its prompt is done; the cached session lives on
  });

  it('creates a fresh session per prompt where sessions cannot be cloned', async () => {
    const { LanguageModel, log } = fakeLanguageModel({ noClone: true });
    const provider = createChromePromptProvider({ LanguageModel });
    await drain(provider.stream({ prompt: 'one', signal: signal() }));
    await drain(provider.stream({ prompt: 'two', signal: signal() }));
    expect(log.clones).toBe(0);
    expect(log.creates).toHaveLength(3); // the cached one, then one per prompt
    expect(log.prompts.map((prompt) => prompt.history)).toEqual([[], []]);
  });

  it('continues a partial answer: replays it as the assistant turn, then asks to continue', async () => {
    const { LanguageModel, log } = fakeLanguageModel({ reply: [' and the rest.'] });
    const provider = createChromePromptProvider({ LanguageModel });
    const events = await drain(
      provider.stream({ prompt: 'Tell a story', continueFrom: 'Once upon a time', signal: signal() }),
    );
    expect(textOf(events)).toBe(' and the rest.');
    expect(log.prompts[0]?.input).toEqual([
      { role: 'user', content: 'Tell a story' },
      { role: 'assistant', content: 'Once upon a time' },
      { role: 'user', content: CONTINUE_INSTRUCTION },
    ]);
  });

  it('aborting mid-answer stops the fake stream through its signal and ends with an AbortError', async () => {
    const { LanguageModel, log } = fakeLanguageModel({
      reply: ['first', ' second', ' third'],
      stallAfterFirstPiece: true,
    });
    const provider = createChromePromptProvider({ LanguageModel });
    const controller = new AbortController();
    const iterator = provider.stream({ prompt: 'go', signal: controller.signal })[Symbol.asyncIterator]();
    expect(await iterator.next()).toEqual({ done: false, value: { type: 'text', text: 'first' } });
    const next = iterator.next();
    controller.abort();
    await expect(next).rejects.toBeInstanceOf(AbortError);
    expect(log.abortedStreams).toBe(1);
    expect(log.piecesProduced).toBe(1);
    expect(log.destroyed).toBe(1); // the prompt's clone
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
  });

  it('stops at once on abort even if the browser stream ignores its signal', async () => {
    const { LanguageModel, log } = fakeLanguageModel({ stallAfterFirstPiece: true, ignoreSignal: true });
    const provider = createChromePromptProvider({ LanguageModel });
    const controller = new AbortController();
    const iterator = provider.stream({ prompt: 'go', signal: controller.signal })[Symbol.asyncIterator]();
    await iterator.next();
    const next = iterator.next();
    controller.abort();
    await expect(next).rejects.toBeInstanceOf(AbortError);
    expect(log.abortedStreams).toBe(0);
    expect(log.destroyed).toBe(1);
  });

  it('refuses to start on an already aborted signal without touching the model', async () => {
    const { LanguageModel, log } = fakeLanguageModel();
    const provider = createChromePromptProvider({ LanguageModel });
    await expect(
      drain(provider.stream({ prompt: 'go', signal: AbortSignal.abort() })),
    ).rejects.toBeInstanceOf(AbortError);
    expect(log.creates).toHaveLength(0);
  });

  it('one prompt aborted while the shared session is being created does not break another', async () => {
    let open!: () => void;
    const createGate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const { LanguageModel, log } = fakeLanguageModel({ createGate, reply: ['fine'] });
    const provider = createChromePromptProvider({ LanguageModel });
    const first = new AbortController();
    const firstRun = drain(provider.stream({ prompt: 'one', signal: first.signal }));
    const secondRun = drain(provider.stream({ prompt: 'two', signal: signal() }));
    first.abort();
    await expect(firstRun).rejects.toBeInstanceOf(AbortError);
    open();
    expect(textOf(await secondRun)).toBe('fine');
    expect(log.creates).toHaveLength(1);
    const createSignal = log.creates[0]?.['signal'];
    expect(createSignal).toBeInstanceOf(AbortSignal);
    expect(createSignal instanceof AbortSignal && createSignal.aborted).toBe(false);
  });

  it('retries creating the session after a failed creation instead of caching the failure', async () => {
    const { LanguageModel, log } = fakeLanguageModel({ failCreates: 1, reply: ['back'] });
    const provider = createChromePromptProvider({ LanguageModel });
    await expect(drain(provider.stream({ prompt: 'x', signal: signal() }))).rejects.toThrow(
      'The model could not be loaded.',
    );
    expect(textOf(await drain(provider.stream({ prompt: 'x', signal: signal() })))).toBe('back');
    expect(log.creates).toHaveLength(2);
  });

  it('destroy() releases the cached session and the next prompt creates a new one', async () => {
    const { LanguageModel, log } = fakeLanguageModel();
    const provider = createChromePromptProvider({ LanguageModel });
    await drain(provider.stream({ prompt: 'x', signal: signal() }));
    provider.destroy();
    await expect.poll(() => log.destroyed, { timeout: 1000 }).toBe(2);
    await drain(provider.stream({ prompt: 'y', signal: signal() }));
    expect(log.creates).toHaveLength(2);
  });

  it('reports availability for UIs: only "available" counts as available now', async () => {
    const states: LanguageModelAvailability[] = ['unavailable', 'downloadable', 'downloading', 'available'];
    const seen: Array<[string, boolean, string[]]> = [];
    for (const availability of states) {
      const { LanguageModel } = fakeLanguageModel({ availability });
      const provider = createChromePromptProvider({ LanguageModel });
      seen.push([await provider.availability(), await provider.isAvailable(), await provider.models()]);
      expect(await isChromePromptApiAvailable(LanguageModel)).toBe(availability === 'available');
    }
    expect(seen).toEqual([
      ['unavailable', false, []],
      ['downloadable', false, [CHROME_BUILTIN_MODEL]],
      ['downloading', false, [CHROME_BUILTIN_MODEL]],
      ['available', true, [CHROME_BUILTIN_MODEL]],
    ]);
  });

  it('in a browser without the Prompt API: unavailable, no models, and a clear error on prompt', async () => {
    const provider = createChromePromptProvider({ LanguageModel: undefined });
    expect(await provider.availability()).toBe('unavailable');
    expect(await provider.isAvailable()).toBe(false);
    expect(await provider.models()).toEqual([]);
    await expect(drain(provider.stream({ prompt: 'x', signal: signal() }))).rejects.toThrow(
      'Chrome built-in AI is not available: this browser has no Prompt API',
    );
    expect(provider).toMatchObject({ id: 'chrome', isDemo: false });
    expect(await isChromePromptApiAvailable(undefined)).toBe(false);
  });

  it('refuses to prompt when the device cannot run the model', async () => {
    const { LanguageModel, log } = fakeLanguageModel({ availability: 'unavailable' });
    const provider = createChromePromptProvider({ LanguageModel });
    await expect(drain(provider.stream({ prompt: 'x', signal: signal() }))).rejects.toThrow(
      'Chrome built-in AI is unavailable on this device',
    );
    expect(log.creates).toHaveLength(0);
  });
});
