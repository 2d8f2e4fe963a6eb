/** A chat message in the role/content shape that OpenAI-compatible servers and the Prompt API share. */
export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

/** The instruction that follows a partial answer another peer already produced. */
export const CONTINUE_INSTRUCTION =
  'Your previous answer was cut off. Continue it exactly where it stopped: do not repeat any of it, ' +
  'do not restart it and do not add a preamble.';

/**
 * The conversation for one request. Without `continueFrom` it is the user's prompt alone. With it,
 * the partial answer is replayed as the assistant's own turn, followed by a short user instruction
 * to continue exactly where it stopped without repeating it; the model's reply is then the rest of
 * the answer, which the requester appends to what it already has. (Chat models cannot reliably be
 * made to continue an assistant turn in place across servers, so this is the portable form; a model
 * may still occasionally repeat a few words at the seam.)
 */
export function chatMessages(prompt: string, continueFrom?: string): ChatMessage[] {
  const messages: ChatMessage[] = [{ role: 'user', content: prompt }];
  if (continueFrom) {
    messages.push(
      { role: 'assistant', content: continueFrom },
      { role: 'user', content: CONTINUE_INSTRUCTION },
    );
  }
  return messages;
}

/**
 * A rough token count for text when a backend reports none: about four characters per token, the
 * usual figure for English with BPE tokenizers. Used only where no real count exists.
 */
export function estimateTokens(text: string): number {
  return estimateTokensForLength(text.length);
}

/** `estimateTokens` for text of `length` characters. */
export function estimateTokensForLength(length: number): number {
  return Math.ceil(Math.max(0, length) / 4);
}
