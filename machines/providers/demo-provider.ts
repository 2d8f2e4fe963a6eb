import { AbortError, type AIProvider, type ProviderEvent, type ProviderRequest } from './provider.ts';

export interface DemoProviderOptions {
  /** Words streamed per second (default 40). 0 streams as fast as the consumer reads. */
  wordsPerSecond?: number;
  /** Words in each answer (default 60). */
  answerWords?: number;
  model?: string;
}

const VOCABULARY = (
  'handoff peer browser prompt answer stream channel signal quota model token relay link offer ' +
  'candidate route delegate serve chunk sequence trust latency window buffer state actor machine ' +
  'event context snapshot inspector panel network data direct local remote demo text quick steady'
).split(' ');

/** FNV-1a: a small, stable hash so the same prompt always gets the same answer. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * The built-in demo provider: deterministic text streamed at a configurable rate. It is not an AI
 * and says so (`isDemo`, and "Demo" in its label); it is what `npm start` and the tests use when no
 * AI is configured. The same prompt always yields the same answer, so a task resumed on another
 * demo peer with `continueFrom` continues exactly where the first stopped.
 */
export function createDemoProvider(options: DemoProviderOptions = {}): AIProvider {
  const wordsPerSecond = options.wordsPerSecond ?? 40;
  const answerWords = options.answerWords ?? 60;
  const model = options.model ?? 'demo-1';

  function answerFor(prompt: string): string {
    let state = hash(prompt) || 1;
    const words: string[] = [`Demo answer to "${prompt.slice(0, 40)}":`];
    for (let i = 0; i < answerWords; i++) {
      state = Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) >>> 0;
      words.push(VOCABULARY[state % VOCABULARY.length] as string);
    }
    return `${words.join(' ')}.`;
  }

  async function* stream(request: ProviderRequest): AsyncGenerator<ProviderEvent> {
    const full = answerFor(request.prompt);
    const done = request.continueFrom ?? '';
    // Continue after what was already produced; a foreign prefix gets the whole answer after it.
    const rest = full.startsWith(done) ? full.slice(done.length) : ` ${full}`;
    const pieces = rest.match(/\s*\S+/g) ?? [];
    const delay = wordsPerSecond > 0 ? 1000 / wordsPerSecond : 0;
    for (const piece of pieces) {
      if (request.signal.aborted) throw new AbortError();
      if (delay > 0) await sleep(delay, request.signal);
      yield { type: 'text', text: piece };
    }
    yield {
      type: 'usage',
      usage: { inputTokens: request.prompt.split(/\s+/).filter(Boolean).length, outputTokens: pieces.length },
    };
  }

  return {
    id: 'demo',
    label: `Demo provider (not an AI) · ${model}`,
    isDemo: true,
    models: async () => [model],
    stream,
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new AbortError());
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortError());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
