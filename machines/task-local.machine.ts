import { assign, emit, setup } from 'xstate';
import { type ProviderStreamEvent, providerStreamActor } from './actors/provider-stream.actor.ts';
import type { AIProvider, Usage } from './providers/provider.ts';
import type { TaskRequestOutput, TaskRequestStatus } from './task-request.machine.ts';

export interface TaskLocalInput {
  taskId: string;
  prompt: string;
  model?: string;
  provider: AIProvider;
  timeoutMs?: number;
}

interface TaskLocalContext extends TaskLocalInput {
  timeoutMs: number;
  text: string;
  usage: Usage | undefined;
  error: string | undefined;
  status: TaskRequestStatus | undefined;
}

type TaskLocalEvent = ProviderStreamEvent | { type: 'user.cancel' };

/**
 * A prompt this peer runs on its own AI (it had the model and quota). Its chunks and its output
 * have the same shape as a delegated task's, so the UI treats both alike.
 */
export const taskLocalMachine = setup({
  types: {
    input: {} as TaskLocalInput,
    context: {} as TaskLocalContext,
    events: {} as TaskLocalEvent,
    output: {} as TaskRequestOutput,
    emitted: {} as { type: 'task.chunk'; taskId: string; text: string; offset: number },
    tags: {} as 'busy' | 'streaming',
  },
  actors: { providerStream: providerStreamActor },
  delays: { taskTimeout: ({ context }) => context.timeoutMs },
}).createMachine({
  id: 'taskLocal',
  description: 'Runs a prompt on this peer’s own provider, streaming its chunks.',
  context: ({ input }) => ({
    ...input,
    timeoutMs: input.timeoutMs ?? 120_000,
    text: '',
    usage: undefined,
    error: undefined,
    status: undefined,
  }),
  initial: 'running',
  states: {
    running: {
      tags: ['busy', 'streaming'],
      invoke: {
        src: 'providerStream',
        input: ({ context }) => ({
          provider: context.provider,
          prompt: context.prompt,
          window: Number.MAX_SAFE_INTEGER,
          ...(context.model ? { model: context.model } : {}),
        }),
      },
      on: {
        'provider.text': {
          actions: [
            assign({ text: ({ context, event }) => context.text + event.text }),
            emit(({ context, event }) => ({
              type: 'task.chunk' as const,
              taskId: context.taskId,
              text: event.text,
              offset: context.text.length - event.text.length,
            })),
          ],
        },
        'provider.done': { target: 'completed', actions: assign({ usage: ({ event }) => event.usage }) },
        'provider.error': { target: 'failed', actions: assign({ error: ({ event }) => event.message }) },
        'user.cancel': 'cancelled',
      },
      after: { taskTimeout: { target: 'timedOut', actions: assign({ error: 'the task ran out of time' }) } },
    },
    completed: { type: 'final', entry: assign({ status: 'completed' as const }) },
    failed: { type: 'final', entry: assign({ status: 'failed' as const }) },
    cancelled: { type: 'final', entry: assign({ status: 'cancelled' as const }) },
    timedOut: { type: 'final', entry: assign({ status: 'timedOut' as const }) },
  },
  output: ({ context }) => ({
    taskId: context.taskId,
    status: context.status ?? 'failed',
    text: context.text,
    attempts: [
      {
        peerId: 'local',
        outcome: context.status === 'completed' ? 'completed' : 'failed',
        chars: context.text.length,
        ...(context.error ? { reason: context.error } : {}),
      },
    ],
    usage: context.usage,
    metadata: { provider: context.provider.id, demo: context.provider.isDemo, local: true },
    error: context.error
      ? { reason: context.status === 'timedOut' ? 'timeout' : 'provider-error', message: context.error }
      : undefined,
  }),
});
