/** Token counts a provider reports for one request. */
export interface Usage {
  inputTokens: number;
  outputTokens: number;
}

export interface ProviderRequest {
  prompt: string;
  model?: string;
  /** Text already produced for this prompt by another peer: continue after it, do not repeat it. */
  continueFrom?: string;
  signal: AbortSignal;
}

export type ProviderEvent = { type: 'text'; text: string } | { type: 'usage'; usage: Usage };

/** One streaming interface over every AI backend: prompt + options + AbortSignal → text chunks + usage. */
export interface AIProvider {
  /** 'demo', 'chrome' or 'openai'. */
  readonly id: string;
  /** Shown in every UI; the demo provider says it is a demo. */
  readonly label: string;
  readonly isDemo: boolean;
  models(): Promise<string[]>;
  stream(request: ProviderRequest): AsyncIterable<ProviderEvent>;
}

export class AbortError extends Error {
  override readonly name = 'AbortError';
  constructor(message = 'aborted') {
    super(message);
  }
}
