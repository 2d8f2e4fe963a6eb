import { MAX_PROMPT_LENGTH } from '../../protocol/limits.ts';

/**
 * The serving peer's content policy: which prompts its owner will not run on their AI.
 *
 * A refusal by this policy is a statement about the owner's rules, not about the requester's
 * conduct, so it must never lower the requester's trust: patterns misfire on innocent text
 * ("what is a system prompt?"), the requester cannot see the policy in advance, and each owner's
 * list differs. The security manager records such refusals with `TrustLedger.recordRefusal`,
 * which leaves the score untouched.
 *
 * Pattern filtering is a speed bump, not a wall: a determined requester can rephrase. It is kept
 * because it is cheap and catches the copy-pasted classics. Patterns come from the owner, so their
 * cost (a catastrophic-backtracking regex) is the owner's to bear; the length bound caps it.
 */

/** The design's list ("Security Considerations" → `validatePrompt`). */
export const DEFAULT_PROMPT_PATTERNS: readonly RegExp[] = Object.freeze([
  /system\s+prompt/i,
  /ignore\s+previous/i,
  /execute\s+code/i,
]);

export interface PromptPolicyOptions {
  /**
   * Refused patterns. A string is a regular-expression source compiled case-insensitively
   * (`'drop\\s+table'`); a RegExp is used as given, minus any `g`/`y` flag (those make `test`
   * stateful). An invalid string throws a SyntaxError here, not at the first prompt.
   * Default: DEFAULT_PROMPT_PATTERNS. Pass `[]` to refuse nothing by content.
   */
  patterns?: readonly (string | RegExp)[];
  /** Longest prompt the owner will run, in UTF-16 units like the wire schema. 1..MAX_PROMPT_LENGTH. */
  maxPromptLength?: number;
  /**
   * Also match a normalized copy of the text (NFKC, format characters such as zero-width spaces
   * removed), so `ｉｇｎｏｒｅ previous` and `ig\u200Bnore previous` are caught. Default true.
   */
  normalize?: boolean;
}

export type PromptVerdict =
  | { allowed: true }
  | { allowed: false; reason: 'policy'; rule: 'pattern'; pattern: string; message: string }
  | { allowed: false; reason: 'policy'; rule: 'length'; limit: number; length: number; message: string };

const FORMAT_CHARACTERS = /\p{Cf}/gu;

function compile(pattern: string | RegExp): RegExp {
  if (typeof pattern === 'string') return new RegExp(pattern, 'i');
  return new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
}

/** Checks prompts against the owner's patterns and length bound. Pure: no clock, no state. */
export class PromptPolicy {
  readonly maxPromptLength: number;
  readonly patterns: readonly RegExp[];
  readonly normalize: boolean;

  constructor(options: PromptPolicyOptions = {}) {
    const max = options.maxPromptLength ?? MAX_PROMPT_LENGTH;
    if (!Number.isInteger(max) || max < 1 || max > MAX_PROMPT_LENGTH) {
      throw new RangeError(`maxPromptLength must be an integer in 1..${MAX_PROMPT_LENGTH}, got ${max}`);
    }
    this.maxPromptLength = max;
    this.patterns = Object.freeze((options.patterns ?? DEFAULT_PROMPT_PATTERNS).map(compile));
    this.normalize = options.normalize ?? true;
  }

  /** The first refused pattern found in `text` (as `/source/flags`), or undefined. */
  match(text: string): string | undefined {
    const normalized = this.normalize ? text.normalize('NFKC').replace(FORMAT_CHARACTERS, '') : text;
    for (const pattern of this.patterns) {
      if (pattern.test(text) || (normalized !== text && pattern.test(normalized))) return String(pattern);
    }
    return undefined;
  }

  /** Length first (it bounds the cost of matching), then patterns. */
  check(prompt: string): PromptVerdict {
    if (prompt.length > this.maxPromptLength) {
      return {
        allowed: false,
        reason: 'policy',
        rule: 'length',
        limit: this.maxPromptLength,
        length: prompt.length,
        message: `the prompt is ${prompt.length} characters; this peer runs prompts of at most ${this.maxPromptLength}`,
      };
    }
    const pattern = this.match(prompt);
    if (pattern !== undefined) {
      return {
        allowed: false,
        reason: 'policy',
        rule: 'pattern',
        pattern,
        message: "the prompt matches this peer's content policy",
      };
    }
    return { allowed: true };
  }
}
