import { fromCallback } from 'xstate';
import { MAX_CHUNK_LENGTH } from '../../protocol/index.ts';
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
  /** Chunks that may be in flight unacknowledged before the provider is paused. */
  window: number;
  /** Longest chunk sent (provider pieces are split to fit). */
  chunkChars?: number;
}

/**
 * Runs a provider with an AbortSignal and streams its text with credit-based backpressure: the
 * provider is not read while `window` chunks await acknowledgement. Stopping the actor aborts it.
 */
export const providerStreamActor = fromCallback<
  ProviderStreamCommand,
  ProviderStreamInput,
  ProviderStreamEvent
>(({ input, sendBack, receive }) => {
  const controller = new AbortController();
  const chunkChars = Math.min(input.chunkChars ?? 4096, MAX_CHUNK_LENGTH);
  let sent = 0;
  let acked = 0;
  let wake: (() => void) | undefined;
  receive((command) => {
    acked = Math.max(acked, command.acked);
    wake?.();
  });
  const credit = () =>
    sent - acked < input.window || controller.signal.aborted
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          wake = () => {
            if (sent - acked < input.window || controller.signal.aborted) {
              wake = undefined;
              resolve();
            }
          };
          controller.signal.addEventListener('abort', () => wake?.(), { once: true });
        });

  (async () => {
    let usage: Usage | undefined;
    const events = input.provider.stream({
      prompt: input.prompt,
      signal: controller.signal,
      ...(input.model ? { model: input.model } : {}),
      ...(input.continueFrom ? { continueFrom: input.continueFrom } : {}),
    });
    // The provider is read one piece ahead of the window (that is how a stream tells text from its
    // end); the piece is held until there is room for it, so at most `window` chunks are in flight.
    for await (const event of events) {
      if (controller.signal.aborted) return;
      if (event.type === 'usage') {
        usage = event.usage;
        continue;
      }
      for (let offset = 0; offset < event.text.length; offset += chunkChars) {
        await credit();
        if (controller.signal.aborted) return;
        sent++;
        sendBack({ type: 'provider.text', text: event.text.slice(offset, offset + chunkChars) });
      }
    }
    if (!controller.signal.aborted) sendBack({ type: 'provider.done', usage });
  })().catch((error: unknown) => {
    if (!controller.signal.aborted) {
      sendBack({ type: 'provider.error', message: error instanceof Error ? error.message : String(error) });
    }
  });
  return () => controller.abort();
});
