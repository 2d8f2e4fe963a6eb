import { assign, emit, enqueueActions, sendParent, sendTo, setup } from 'xstate';
import type { PromptDelegation, PromptResponse, TaskRejectReason } from '../protocol/index.ts';
import { type ProviderStreamEvent, providerStreamActor } from './actors/provider-stream.actor.ts';
import type { LinkMessage } from './link-framing.ts';
import type { AIProvider, Usage } from './providers/provider.ts';

/** The serving policy's verdict on one delegation. */
export type Admission =
  | { admitted: true; queuePosition?: number }
  | { admitted: false; reason: TaskRejectReason; message: string; retryAfterMs?: number };

export interface TaskServeInput {
  requesterPeerId: string;
  delegation: PromptDelegation;
  provider: AIProvider;
  admission: Admission;
  /** Unacknowledged chunks in flight before the provider is paused. */
  window?: number;
}

export interface TaskServeContext extends TaskServeInput {
  taskId: string;
  window: number;
  /** Next `seq` to send. */
  seq: number;
  /** Chunks acknowledged by the requester. */
  acked: number;
  /** Sent but not yet acknowledged; sent again if the link changes path (they may be lost). */
  inFlight: PromptResponse[];
  usage: Usage | undefined;
  chars: number;
  error: string | undefined;
  outcome: TaskServeOutcome | undefined;
}

export type TaskServeEvent =
  | ProviderStreamEvent
  | { type: 'chunk-ack'; taskId: string; seq: number }
  | { type: 'task-cancel'; taskId: string; reason?: string }
  | { type: 'requester.lost' }
  | { type: 'requester.pathChanged' }
  /** A queued task got its slot. */
  | { type: 'serve.start' }
  | { type: 'serve.shutdown' };

export type TaskServeOutcome = 'completed' | 'rejected' | 'cancelled' | 'failed' | 'timedOut' | 'aborted';
export interface TaskServeOutput {
  taskId: string;
  requesterPeerId: string;
  outcome: TaskServeOutcome;
  usage: Usage | undefined;
  chars: number;
  error: string | undefined;
}

/** Sends a task message to the requester through the root actor (which owns the link). */
const toRequester = (context: TaskServeContext, message: LinkMessage) => ({
  type: 'task.send' as const,
  peerId: context.requesterPeerId,
  message,
});

export const taskServeMachine = setup({
  types: {
    input: {} as TaskServeInput,
    context: {} as TaskServeContext,
    events: {} as TaskServeEvent,
    output: {} as TaskServeOutput,
    emitted: {} as { type: 'serve.progress'; taskId: string; chars: number },
    tags: {} as 'busy',
  },
  actors: { providerStream: providerStreamActor },
  delays: {
    taskTimeout: ({ context }) => context.delegation.timeout,
  },
  guards: {
    admitted: ({ context }) => context.admission.admitted,
    queued: ({ context }) => context.admission.admitted && (context.admission.queuePosition ?? 0) > 0,
  },
  actions: {
    accept: sendParent(({ context }) =>
      toRequester(context, {
        type: 'task-accepted',
        taskId: context.taskId,
        queuePosition: context.admission.admitted ? (context.admission.queuePosition ?? 0) : 0,
        ...(context.delegation.model ? { model: context.delegation.model } : {}),
      }),
    ),
    reject: sendParent(({ context }) => {
      const verdict = context.admission as Extract<Admission, { admitted: false }>;
      return toRequester(context, {
        type: 'task-rejected',
        taskId: context.taskId,
        reason: verdict.reason,
        message: verdict.message,
        ...(verdict.retryAfterMs !== undefined ? { retryAfterMs: verdict.retryAfterMs } : {}),
      });
    }),
    sendChunk: sendParent(({ context }) =>
      toRequester(context, context.inFlight[context.inFlight.length - 1] as PromptResponse),
    ),
    countChunk: assign(({ context, event }) => {
      const text = event.type === 'provider.text' ? event.text : '';
      const chunk: PromptResponse = {
        type: 'prompt-response',
        taskId: context.taskId,
        seq: context.seq,
        chunk: text,
        isComplete: false,
      };
      return {
        seq: context.seq + 1,
        chars: context.chars + text.length,
        inFlight: [...context.inFlight, chunk],
      };
    }),
    retransmit: enqueueActions(({ context, enqueue }) => {
      for (const chunk of context.inFlight) enqueue.sendParent(toRequester(context, chunk));
    }),
    emitProgress: emit(({ context }) => ({
      type: 'serve.progress' as const,
      taskId: context.taskId,
      chars: context.chars,
    })),
    sendComplete: sendParent(({ context, event }) => {
      const usage = event.type === 'provider.done' ? event.usage : undefined;
      return toRequester(context, {
        type: 'prompt-response',
        taskId: context.taskId,
        seq: context.seq,
        chunk: '',
        isComplete: true,
        metadata: {
          provider: context.provider.id,
          demo: context.provider.isDemo,
          ...(usage ? { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens } : {}),
        },
      });
    }),
    recordUsage: assign({ usage: ({ event }) => (event.type === 'provider.done' ? event.usage : undefined) }),
    recordAck: assign(({ context, event }) => {
      const acked = event.type === 'chunk-ack' ? Math.max(context.acked, event.seq + 1) : context.acked;
      return { acked, inFlight: context.inFlight.filter((chunk) => chunk.seq >= acked) };
    }),
    forwardAck: sendTo('stream', ({ context }) => ({ type: 'stream.acked' as const, acked: context.acked })),
    sendFailure: sendParent(({ context, event }) =>
      toRequester(context, {
        type: 'task-failed',
        taskId: context.taskId,
        code: 'provider-error',
        message: event.type === 'provider.error' ? event.message.slice(0, 500) : 'provider failed',
      }),
    ),
    recordError: assign({
      error: ({ event }) => (event.type === 'provider.error' ? event.message : undefined),
    }),
    sendTimeout: sendParent(({ context }) =>
      toRequester(context, {
        type: 'task-failed',
        taskId: context.taskId,
        code: 'timeout',
        message: 'the task ran out of time',
      }),
    ),
    sendShuttingDown: sendParent(({ context }) =>
      toRequester(context, {
        type: 'task-failed',
        taskId: context.taskId,
        code: 'internal',
        message: 'the serving peer is shutting down',
      }),
    ),
  },
}).createMachine({
  id: 'taskServe',
  description:
    'Serving side of one task: admit or refuse, run the provider, stream chunks with backpressure.',
  context: ({ input }) => ({
    ...input,
    taskId: input.delegation.taskId,
    window: input.window ?? 32,
    seq: 0,
    acked: 0,
    inFlight: [],
    usage: undefined,
    chars: 0,
    error: undefined,
    outcome: undefined,
  }),
  initial: 'checking',
  states: {
    checking: {
      description: 'Policy and quota decide: accept, or refuse with a reason.',
      always: [
        { guard: 'queued', target: 'queued', actions: 'accept' },
        { guard: 'admitted', target: 'streaming', actions: 'accept' },
        { target: 'rejected', actions: 'reject' },
      ],
    },
    queued: {
      description: 'Accepted behind other tasks (the requester knows its position); waits for a slot.',
      on: {
        'serve.start': 'streaming',
        'task-cancel': 'cancelled',
        'requester.lost': 'aborted',
        'serve.shutdown': { target: 'aborted', actions: 'sendShuttingDown' },
      },
      after: { taskTimeout: { target: 'timedOut', actions: 'sendTimeout' } },
    },
    streaming: {
      tags: 'busy',
      description: 'The provider runs; its text goes out in acknowledged, numbered chunks.',
      invoke: {
        id: 'stream',
        src: 'providerStream',
        input: ({ context }) => ({
          provider: context.provider,
          prompt: context.delegation.prompt,
          window: context.window,
          ...(context.delegation.model ? { model: context.delegation.model } : {}),
          ...(context.delegation.continueFrom ? { continueFrom: context.delegation.continueFrom } : {}),
        }),
      },
      on: {
        'provider.text': { actions: ['countChunk', 'sendChunk', 'emitProgress'] },
        'requester.pathChanged': { actions: 'retransmit' },
        'provider.done': { target: 'completed', actions: ['recordUsage', 'sendComplete'] },
        'provider.error': { target: 'failed', actions: ['recordError', 'sendFailure'] },
        'chunk-ack': { actions: ['recordAck', 'forwardAck'] },
        'task-cancel': 'cancelled',
        'requester.lost': 'aborted',
        'serve.shutdown': { target: 'aborted', actions: 'sendShuttingDown' },
      },
      after: { taskTimeout: { target: 'timedOut', actions: 'sendTimeout' } },
    },
    completed: { type: 'final', entry: assign({ outcome: 'completed' as const }) },
    rejected: { type: 'final', entry: assign({ outcome: 'rejected' as const }) },
    cancelled: { type: 'final', entry: assign({ outcome: 'cancelled' as const }) },
    failed: { type: 'final', entry: assign({ outcome: 'failed' as const }) },
    timedOut: { type: 'final', entry: assign({ outcome: 'timedOut' as const }) },
    aborted: { type: 'final', entry: assign({ outcome: 'aborted' as const }) },
  },
  output: ({ context }) => ({
    taskId: context.taskId,
    requesterPeerId: context.requesterPeerId,
    outcome: context.outcome ?? 'aborted',
    usage: context.usage,
    chars: context.chars,
    error: context.error,
  }),
});
