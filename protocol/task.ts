import * as v from 'valibot';
import {
  MAX_CHUNK_LENGTH,
  MAX_ERROR_MESSAGE_LENGTH,
  MAX_FRAGMENT_CHARS,
  MAX_FRAGMENTS,
  MAX_PROMPT_LENGTH,
  MAX_REASON_LENGTH,
  MAX_TASK_TIMEOUT_MS,
} from './limits.ts';
import { Capabilities, Metadata, ModelName, nonNegative, Signature, TaskId } from './primitives.ts';

/**
 * Peer <-> peer task traffic. It travels over a WebRTC data channel, or through the signaling
 * server's `relay` when no direct link can be made; the schemas are the same either way.
 */

const count = (max: number) => v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(max));

/** Why a serving peer refused a task. */
export const TaskRejectReason = v.picklist([
  'busy',
  'no-model',
  'quota-exhausted',
  'policy',
  'rate-limited',
  'banned',
  'invalid',
  'unsigned',
  'shutting-down',
]);
export type TaskRejectReason = v.InferOutput<typeof TaskRejectReason>;

/** The design's Prompt Delegation Request, plus what re-delegation needs. */
export const PromptDelegation = v.object({
  type: v.literal('prompt-delegation'),
  taskId: TaskId,
  prompt: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_PROMPT_LENGTH)),
  requesterCapabilities: Capabilities,
  /** 0 (lowest) to 10 (highest). */
  priority: count(10),
  /** How long the requester waits for the whole answer, in ms. */
  timeout: v.pipe(count(MAX_TASK_TIMEOUT_MS), v.minValue(1)),
  model: v.optional(ModelName),
  /** Text already received from a peer that vanished: the new peer continues after it. */
  continueFrom: v.optional(v.pipe(v.string(), v.maxLength(MAX_PROMPT_LENGTH))),
  /** The sender's Ed25519 signature (see protocol/signing.ts). */
  sig: v.optional(Signature),
});
export type PromptDelegation = v.InferOutput<typeof PromptDelegation>;

export const TaskAccepted = v.object({
  type: v.literal('task-accepted'),
  taskId: TaskId,
  /** 0 when the task runs now; otherwise its place in the serving peer's queue. */
  queuePosition: count(10_000),
  model: v.optional(ModelName),
  /** The sender's Ed25519 signature (see protocol/signing.ts). */
  sig: v.optional(Signature),
});
export type TaskAccepted = v.InferOutput<typeof TaskAccepted>;

export const TaskRejected = v.object({
  type: v.literal('task-rejected'),
  taskId: TaskId,
  reason: TaskRejectReason,
  message: v.pipe(v.string(), v.maxLength(MAX_ERROR_MESSAGE_LENGTH)),
  retryAfterMs: v.optional(count(86_400_000)),
  /** The sender's Ed25519 signature (see protocol/signing.ts). */
  sig: v.optional(Signature),
});
export type TaskRejected = v.InferOutput<typeof TaskRejected>;

/** The design's Streaming Response. `seq` counts chunks from 0 so the requester can order and ack them. */
export const PromptResponse = v.object({
  type: v.literal('prompt-response'),
  taskId: TaskId,
  seq: count(1_000_000_000),
  chunk: v.pipe(v.string(), v.maxLength(MAX_CHUNK_LENGTH)),
  isComplete: v.boolean(),
  metadata: v.optional(Metadata),
  /** The sender's Ed25519 signature (see protocol/signing.ts). */
  sig: v.optional(Signature),
});
export type PromptResponse = v.InferOutput<typeof PromptResponse>;

/** Acknowledges every chunk up to and including `seq`. */
export const ChunkAck = v.object({
  type: v.literal('chunk-ack'),
  taskId: TaskId,
  seq: count(1_000_000_000),
  /** The sender's Ed25519 signature (see protocol/signing.ts). */
  sig: v.optional(Signature),
});
export type ChunkAck = v.InferOutput<typeof ChunkAck>;

export const TaskCancel = v.object({
  type: v.literal('task-cancel'),
  taskId: TaskId,
  reason: v.optional(v.pipe(v.string(), v.maxLength(MAX_REASON_LENGTH))),
  /** The sender's Ed25519 signature (see protocol/signing.ts). */
  sig: v.optional(Signature),
});
export type TaskCancel = v.InferOutput<typeof TaskCancel>;

export const TaskFailed = v.object({
  type: v.literal('task-failed'),
  taskId: TaskId,
  code: v.picklist(['provider-error', 'timeout', 'quota-exhausted', 'internal']),
  message: v.pipe(v.string(), v.maxLength(MAX_ERROR_MESSAGE_LENGTH)),
  /** The sender's Ed25519 signature (see protocol/signing.ts). */
  sig: v.optional(Signature),
});
export type TaskFailed = v.InferOutput<typeof TaskFailed>;

/** Round-trip probes over a peer link; `ts` is the sender's clock, echoed back untouched. */
export const LinkPing = v.object({ type: v.literal('link-ping'), ts: nonNegative(1e15) });
export const LinkPong = v.object({ type: v.literal('link-pong'), ts: nonNegative(1e15) });
export type LinkPing = v.InferOutput<typeof LinkPing>;
export type LinkPong = v.InferOutput<typeof LinkPong>;

/**
 * Link framing: a message whose encoding exceeds MAX_LINK_MESSAGE_BYTES travels as fragments of at
 * most MAX_FRAGMENT_CHARS characters, reassembled in order by `id` on the other side.
 */
export const LinkFragment = v.object({
  type: v.literal('link-fragment'),
  id: count(1_000_000_000),
  index: count(MAX_FRAGMENTS - 1),
  count: v.pipe(count(MAX_FRAGMENTS), v.minValue(2)),
  data: v.pipe(v.string(), v.maxLength(MAX_FRAGMENT_CHARS)),
});
export type LinkFragment = v.InferOutput<typeof LinkFragment>;

export const TaskMessage = v.variant('type', [
  PromptDelegation,
  TaskAccepted,
  TaskRejected,
  PromptResponse,
  ChunkAck,
  TaskCancel,
  TaskFailed,
  LinkPing,
  LinkPong,
  LinkFragment,
]);
export type TaskMessage = v.InferOutput<typeof TaskMessage>;
export const TASK_MESSAGE_TYPES = TaskMessage.options.map((option) => option.entries.type.literal);

const TASK_SCHEMAS = new Map(
  TaskMessage.options.map((option) => [option.entries.type.literal as string, option]),
);

/**
 * A TaskMessage, its schema picked by `type` (a `variant` tries its options in turn). Used where
 * task traffic is nested, as in `relay`; an unknown `type` falls back to the variant's own error.
 */
export const TaskPayload = v.lazy((input: unknown) => {
  const type = typeof input === 'object' && input !== null ? (input as { type?: unknown }).type : undefined;
  return (typeof type === 'string' && TASK_SCHEMAS.get(type)) || TaskMessage;
});
