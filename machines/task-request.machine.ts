import { and, assign, emit, enqueueActions, sendParent, setup } from 'xstate';
import type { Capabilities, TaskMessage, TaskRejectReason } from '../protocol/index.ts';
import type { LinkMessage } from './link-framing.ts';
import type { Usage } from './providers/provider.ts';

export interface TaskRequestInput {
  taskId: string;
  prompt: string;
  /** Peers to try, best first; the task moves down the list when a peer refuses or vanishes. */
  candidates: string[];
  requesterCapabilities: Capabilities;
  priority?: number;
  timeoutMs?: number;
  model?: string;
  /** How long a peer has to accept (or refuse) before the next one is tried. */
  acceptTimeoutMs?: number;
}

export interface TaskAttempt {
  peerId: string;
  outcome: 'pending' | 'streamed' | 'rejected' | 'failed' | 'lost' | 'unanswered' | 'completed';
  reason?: string;
  /** Characters of the answer this peer produced. */
  chars: number;
}

export interface TaskRequestContext {
  taskId: string;
  prompt: string;
  candidates: string[];
  requesterCapabilities: Capabilities;
  priority: number;
  timeoutMs: number;
  model: string | undefined;
  acceptTimeoutMs: number;
  /** Index into `candidates` of the peer serving now. */
  current: number;
  /** The answer so far, each character exactly once, in order. */
  text: string;
  /** Next `seq` expected from the current peer. */
  nextSeq: number;
  queuePosition: number;
  attempts: TaskAttempt[];
  usage: Usage | undefined;
  metadata: Record<string, unknown> | undefined;
  error:
    | {
        reason: TaskRejectReason | 'no-peers' | 'provider-error' | 'timeout' | 'lost' | 'internal';
        message: string;
      }
    | undefined;
  status: TaskRequestStatus | undefined;
}

/** A task message from a peer, as routed by the root actor. */
export type TaskRequestEvent =
  | { type: 'task.message'; peerId: string; message: Exclude<TaskMessage, { type: 'link-fragment' }> }
  | { type: 'peer.lost'; peerId: string; reason: string }
  | { type: 'user.cancel' };

export type TaskRequestEmitted =
  | { type: 'task.chunk'; taskId: string; text: string; offset: number }
  | { type: 'task.redelegated'; taskId: string; from: string; to: string; offset: number };

export type TaskRequestStatus = 'completed' | 'failed' | 'cancelled' | 'timedOut';
export interface TaskRequestOutput {
  taskId: string;
  status: TaskRequestStatus;
  text: string;
  attempts: TaskAttempt[];
  usage: Usage | undefined;
  metadata: Record<string, unknown> | undefined;
  error: TaskRequestContext['error'];
}

type Inbound<T extends TaskMessage['type']> = {
  type: 'task.message';
  peerId: string;
  message: Extract<TaskMessage, { type: T }>;
};
/** Chunks per cumulative acknowledgement (the serving side's window is larger). */
export const ACK_EVERY = 8;

const inbound = (event: TaskRequestEvent) => (event.type === 'task.message' ? event.message : undefined);
const currentPeer = (context: TaskRequestContext) => context.candidates[context.current];

function toPeer(context: TaskRequestContext, message: LinkMessage) {
  return { type: 'task.send' as const, peerId: currentPeer(context) as string, message };
}

/** Sets the outcome of the latest attempt. */
function settleAttempt(
  context: TaskRequestContext,
  outcome: TaskAttempt['outcome'],
  reason?: string,
): TaskAttempt[] {
  const last = context.attempts.length - 1;
  return context.attempts.map((attempt, index) =>
    index === last ? { ...attempt, outcome, ...(reason ? { reason } : {}) } : attempt,
  );
}

export const taskRequestMachine = setup({
  types: {
    input: {} as TaskRequestInput,
    context: {} as TaskRequestContext,
    events: {} as TaskRequestEvent,
    emitted: {} as TaskRequestEmitted,
    output: {} as TaskRequestOutput,
    tags: {} as 'busy' | 'streaming',
  },
  delays: {
    taskTimeout: ({ context }) => context.timeoutMs,
    acceptTimeout: ({ context }) => context.acceptTimeoutMs,
  },
  guards: {
    hasCandidate: ({ context }) => context.current < context.candidates.length,
    hasNextCandidate: ({ context }) => context.current + 1 < context.candidates.length,
    fromCurrent: ({ context, event }) =>
      (event.type === 'task.message' || event.type === 'peer.lost') && event.peerId === currentPeer(context),
    isAccepted: ({ event }) => inbound(event)?.type === 'task-accepted',
    isRejected: ({ event }) => inbound(event)?.type === 'task-rejected',
    isFailed: ({ event }) => inbound(event)?.type === 'task-failed',
    isResponse: ({ event }) => inbound(event)?.type === 'prompt-response',
    isNextInSequence: ({ context, event }) => {
      const message = inbound(event);
      return message?.type === 'prompt-response' && message.seq === context.nextSeq;
    },
    /** Acks are cumulative: one every ACK_EVERY chunks keeps the server well inside its window. */
    ackDue: ({ event }) => {
      const message = inbound(event);
      return message?.type === 'prompt-response' && message.seq % ACK_EVERY === ACK_EVERY - 1;
    },
    isFinalChunk: ({ event }) => {
      const message = inbound(event);
      return message?.type === 'prompt-response' && message.isComplete;
    },
  },
  actions: {
    startAttempt: assign({
      attempts: ({ context }) => [
        ...context.attempts,
        { peerId: currentPeer(context) as string, outcome: 'pending' as const, chars: 0 },
      ],
      nextSeq: 0,
      queuePosition: 0,
    }),
    sendDelegation: sendParent(({ context }) =>
      toPeer(context, {
        type: 'prompt-delegation',
        taskId: context.taskId,
        prompt: context.prompt,
        requesterCapabilities: context.requesterCapabilities,
        priority: context.priority,
        timeout: context.timeoutMs,
        ...(context.model ? { model: context.model } : {}),
        ...(context.text ? { continueFrom: context.text } : {}),
      }),
    ),
    recordAccepted: assign({
      queuePosition: ({ event }) => (event as Inbound<'task-accepted'>).message.queuePosition,
      attempts: ({ context }) => settleAttempt(context, 'streamed'),
    }),
    appendChunk: assign(({ context, event }) => {
      const { message } = event as Inbound<'prompt-response'>;
      const attempts = context.attempts.slice();
      const last = attempts[attempts.length - 1];
      if (last) attempts[attempts.length - 1] = { ...last, chars: last.chars + message.chunk.length };
      return { text: context.text + message.chunk, nextSeq: context.nextSeq + 1, attempts };
    }),
    emitChunk: enqueueActions(({ context, event, enqueue }) => {
      const { message } = event as Inbound<'prompt-response'>;
      if (!message.chunk) return;
      enqueue.emit({
        type: 'task.chunk',
        taskId: context.taskId,
        text: message.chunk,
        offset: context.text.length - message.chunk.length,
      });
    }),
    acknowledge: sendParent(({ context, event }) =>
      toPeer(context, {
        type: 'chunk-ack',
        taskId: context.taskId,
        seq: (event as Inbound<'prompt-response'>).message.seq,
      }),
    ),
    /** A chunk we already have (a duplicate) is acknowledged again, never shown twice. */
    reacknowledge: enqueueActions(({ context, event, enqueue }) => {
      const message = inbound(event);
      if (message?.type === 'prompt-response' && message.seq < context.nextSeq) {
        enqueue.sendParent(
          toPeer(context, { type: 'chunk-ack', taskId: context.taskId, seq: context.nextSeq - 1 }),
        );
      }
    }),
    recordCompletion: assign(({ context, event }) => {
      const { message } = event as Inbound<'prompt-response'>;
      const usage =
        typeof message.metadata?.outputTokens === 'number'
          ? {
              inputTokens: Number(message.metadata.inputTokens ?? 0),
              outputTokens: message.metadata.outputTokens,
            }
          : undefined;
      return {
        usage,
        metadata: message.metadata,
        attempts: settleAttempt(context, 'completed'),
        error: undefined,
      };
    }),
    recordRejection: assign(({ context, event }) => {
      const { message } = event as Inbound<'task-rejected'>;
      return {
        attempts: settleAttempt(context, 'rejected', message.reason),
        error: { reason: message.reason, message: message.message },
      };
    }),
    recordFailure: assign(({ context, event }) => {
      const { message } = event as Inbound<'task-failed'>;
      const reason =
        message.code === 'timeout'
          ? 'timeout'
          : message.code === 'quota-exhausted'
            ? 'quota-exhausted'
            : 'provider-error';
      return {
        attempts: settleAttempt(context, 'failed', message.code),
        error: { reason, message: message.message },
      };
    }),
    recordLoss: assign(({ context, event }) => ({
      attempts: settleAttempt(context, 'lost', event.type === 'peer.lost' ? event.reason : undefined),
      error: { reason: 'lost' as const, message: `peer ${currentPeer(context)} went away` },
    })),
    recordSilence: assign(({ context }) => ({
      attempts: settleAttempt(context, 'unanswered'),
      error: { reason: 'lost' as const, message: `peer ${currentPeer(context)} did not answer` },
    })),
    recordNoPeers: assign({
      error: { reason: 'no-peers' as const, message: 'no peer can take this task' },
    }),
    recordTimeout: assign({ error: { reason: 'timeout' as const, message: 'the task ran out of time' } }),
    nextCandidate: assign({ current: ({ context }) => context.current + 1 }),
    emitRedelegated: emit(({ context }) => ({
      type: 'task.redelegated' as const,
      taskId: context.taskId,
      from: context.candidates[context.current - 1] as string,
      to: currentPeer(context) as string,
      offset: context.text.length,
    })),
    /**
     * Once a peer has accepted, asks the parent to have a link to the next candidate ready while this
     * one works, so a failover mid-stream finds an open channel instead of negotiating one (the parent
     * may decline: pool full, or standby links off). Not earlier: the first link's negotiation is over
     * by then, so the two never negotiate at once.
     */
    requestStandby: enqueueActions(({ context, enqueue }) => {
      const next = context.candidates[context.current + 1];
      if (next === undefined) return; // the last candidate: nothing to prepare
      enqueue.sendParent({
        type: 'task.standby',
        taskId: context.taskId,
        peerId: next,
      });
    }),
    sendCancel: sendParent(({ context }) =>
      toPeer(context, { type: 'task-cancel', taskId: context.taskId, reason: 'cancelled by requester' }),
    ),
    sendTimeoutCancel: enqueueActions(({ context, enqueue }) => {
      if (currentPeer(context))
        enqueue.sendParent(
          toPeer(context, { type: 'task-cancel', taskId: context.taskId, reason: 'timed out' }),
        );
    }),
  },
}).createMachine({
  id: 'taskRequest',
  description:
    'Requester side of one task: delegate, stream numbered chunks in order, move to the next peer if one vanishes.',
  context: ({ input }) => ({
    taskId: input.taskId,
    prompt: input.prompt,
    candidates: input.candidates,
    requesterCapabilities: input.requesterCapabilities,
    priority: input.priority ?? 5,
    timeoutMs: input.timeoutMs ?? 120_000,
    model: input.model,
    acceptTimeoutMs: input.acceptTimeoutMs ?? 10_000,
    current: 0,
    text: '',
    nextSeq: 0,
    queuePosition: 0,
    attempts: [],
    usage: undefined,
    metadata: undefined,
    error: undefined,
    status: undefined,
  }),
  initial: 'starting',
  after: { taskTimeout: { target: '.timedOut', actions: ['recordTimeout', 'sendTimeoutCancel'] } },
  states: {
    starting: {
      always: [
        { guard: 'hasCandidate', target: 'delegating' },
        { target: 'failed', actions: 'recordNoPeers' },
      ],
    },
    delegating: {
      tags: 'busy',
      description:
        'prompt-delegation sent (with the partial answer when re-delegating); waiting for a verdict.',
      entry: ['startAttempt', 'sendDelegation'],
      on: {
        'task.message': [
          { guard: and(['fromCurrent', 'isAccepted']), target: 'streaming', actions: 'recordAccepted' },
          { guard: and(['fromCurrent', 'isRejected']), target: 'redelegating', actions: 'recordRejection' },
          { guard: and(['fromCurrent', 'isFailed']), target: 'redelegating', actions: 'recordFailure' },
        ],
        'peer.lost': { guard: 'fromCurrent', target: 'redelegating', actions: 'recordLoss' },
        'user.cancel': { target: 'cancelled', actions: 'sendCancel' },
      },
      after: { acceptTimeout: { target: 'redelegating', actions: 'recordSilence' } },
    },
    streaming: {
      tags: ['busy', 'streaming'],
      description:
        'Chunks arrive numbered; each is shown once, in order, and acknowledged. The next candidate is prepared meanwhile.',
      entry: 'requestStandby',
      on: {
        'task.message': [
          {
            guard: and(['fromCurrent', 'isNextInSequence', 'isFinalChunk']),
            target: 'completed',
            actions: ['appendChunk', 'emitChunk', 'acknowledge', 'recordCompletion'],
          },
          {
            guard: and(['fromCurrent', 'isNextInSequence', 'ackDue']),
            actions: ['appendChunk', 'emitChunk', 'acknowledge'],
          },
          { guard: and(['fromCurrent', 'isNextInSequence']), actions: ['appendChunk', 'emitChunk'] },
          { guard: and(['fromCurrent', 'isResponse']), actions: 'reacknowledge' },
          { guard: and(['fromCurrent', 'isFailed']), target: 'redelegating', actions: 'recordFailure' },
        ],
        'peer.lost': { guard: 'fromCurrent', target: 'redelegating', actions: 'recordLoss' },
        'user.cancel': { target: 'cancelled', actions: 'sendCancel' },
      },
    },
    redelegating: {
      description:
        'The peer refused, failed or vanished: hand the task, and what arrived so far, to the next one.',
      always: [
        { guard: 'hasNextCandidate', target: 'delegating', actions: ['nextCandidate', 'emitRedelegated'] },
        { target: 'failed' },
      ],
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
    attempts: context.attempts,
    usage: context.usage,
    metadata: context.metadata,
    error: context.error,
  }),
});
