import { fromCallback } from 'xstate';
import { MAX_CHUNK_LENGTH } from '../../protocol/index.ts';
import { nextTurn } from '../next-turn.ts';
import type { AIProvider, Usage } from '../providers/provider.ts';

export type ProviderStreamEvent =
  | { type: 'provider.text'; text: string }
  | { type: 'provider.done'; usage: Usage | undefined }
  | { type: 'provider.error'; message: string };

/** `acked` = how many chunks the requester has acknowledged in total. */
export type ProviderStreamCommand = { type: 'stream.acked'; acked: number };

export interface ProviderStreamInput {
  provider: AIProvider;
  prompt: string;
  model?: string;
  continueFrom?: string;
  /** Chunks that may be in flight unacknowledged; past that, text waits (merged) for credit. */
  window: number;
  /** Longest chunk sent: provider pieces are split to fit, and merged up to it while the link is behind. */
  chunkChars?: number;
}

/**
 * The longest chunk sent by default: as long as fits one link message (16 KiB) with its framing and
 * signature, for ASCII text. Chunks are only this long when the provider runs ahead of the link.
 */
export const DEFAULT_CHUNK_CHARS = 15 * 1024;

/**
 * Runs a provider with an AbortSignal and streams its text with credit-based backpressure: at most
 * `window` chunks await acknowledgement. Pieces the provider has ready together (in one turn of the
 * event loop), and pieces that arrive while there is no credit, are merged into one pending chunk;
 * a whole chunk goes out at once, a partial one in the next turn or when credit returns, and the
 * provider is paused only while a whole chunk waits for credit. So a provider slower than the link
 * streams piece by piece, and one faster than the link streams in long chunks (one signed message
 * each) instead of many short ones. Stopping the actor aborts the provider.
 */
export const providerStreamActor = fromCallback<
  ProviderStreamCommand,
  ProviderStreamInput,
  ProviderStreamEvent
>(({ input, sendBack, receive }) => {
  const controller = new AbortController();
  const { signal } = controller;
  const chunkChars = Math.max(1, Math.min(input.chunkChars ?? DEFAULT_CHUNK_CHARS, MAX_CHUNK_LENGTH));
  let sent = 0;
  let acked = 0;
  let pending = '';
  let usage: Usage | undefined;
  let finished = false;
  let doneSent = false;
  let resumeReading: (() => void) | undefined;
  let pumpQueued = false;

  /**
   * Sends what the window allows (only whole chunks when `wholeOnly`); ends the stream once the
   * provider is done and everything is sent.
   */
  const pump = (wholeOnly = false) => {
    if (signal.aborted) return;
    const least = wholeOnly ? chunkChars : 1;
    while (pending.length >= least && sent - acked < input.window) {
      const text = pending.slice(0, chunkChars);
      pending = pending.slice(chunkChars);
      sent++;
      sendBack({ type: 'provider.text', text });
    }
    if (finished && pending.length === 0 && !doneSent) {
      doneSent = true;
      sendBack({ type: 'provider.done', usage });
    }
    if (pending.length < chunkChars) {
      resumeReading?.();
      resumeReading = undefined;
    }
  };
  const pumpNextTurn = () => {
    if (pumpQueued) return;
    pumpQueued = true;
    nextTurn(() => {
      pumpQueued = false;
      pump();
    });
  };
  receive((command) => {
    acked = Math.max(acked, command.acked);
    pump();
  });
  signal.addEventListener('abort', () => resumeReading?.(), { once: true });

  (async () => {
    const events = input.provider.stream({
      prompt: input.prompt,
      signal,
      ...(input.model ? { model: input.model } : {}),
      ...(input.continueFrom ? { continueFrom: input.continueFrom } : {}),
    });
    for await (const event of events) {
      if (signal.aborted) return;
      if (event.type === 'usage') {
        usage = event.usage;
        continue;
      }
      pending += event.text;
      pump(true);
      pumpNextTurn();
      if (pending.length >= chunkChars && !signal.aborted) {
        await new Promise<void>((resolve) => {
          resumeReading = resolve;
        });
      }
    }
    finished = true;
    pump();
  })().catch((error: unknown) => {
    if (!signal.aborted) {
      pump(); // the text it produced before failing goes first, where the window allows
      sendBack({ type: 'provider.error', message: error instanceof Error ? error.message : String(error) });
    }
  });
  return () => controller.abort();
});
