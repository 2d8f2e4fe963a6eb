import * as v from 'valibot';
import {
  MAX_CAPABILITY_TAG_LENGTH,
  MAX_CAPABILITY_TAGS,
  MAX_METADATA_ENTRIES,
  MAX_METADATA_KEY_LENGTH,
  MAX_METADATA_STRING_LENGTH,
  MAX_MODEL_NAME_LENGTH,
  MAX_MODELS,
  MAX_PEER_ID_LENGTH,
  MAX_PROVIDER_NAME_LENGTH,
  MAX_REQUEST_ID_LENGTH,
  MAX_TASK_ID_LENGTH,
} from './limits.ts';

/** A bounded string of printable identifier characters. */
const identifier = (max: number) =>
  v.pipe(
    v.string(),
    v.minLength(1),
    v.maxLength(max),
    v.regex(/^[A-Za-z0-9_.:-]+$/, 'use only A-Z a-z 0-9 _ . : -'),
  );

const boundedText = (max: number) => v.pipe(v.string(), v.maxLength(max));

/** A finite, non-negative number no larger than `max`. */
export const nonNegative = (max: number) => v.pipe(v.number(), v.finite(), v.minValue(0), v.maxValue(max));

/** A peer id as assigned by the signaling server. */
export const PeerId = identifier(MAX_PEER_ID_LENGTH);
export type PeerId = v.InferOutput<typeof PeerId>;

export const TaskId = identifier(MAX_TASK_ID_LENGTH);
export type TaskId = v.InferOutput<typeof TaskId>;

/** Correlates a request with its response (e.g. `discover` with `peers-discovered`). */
export const RequestId = identifier(MAX_REQUEST_ID_LENGTH);

export const ModelName = v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_MODEL_NAME_LENGTH));

/** The design's Quota Data Model. Amounts are in the provider's unit (requests or tokens). */
export const QuotaStatus = v.object({
  totalQuota: nonNegative(1e12),
  usedQuota: nonNegative(1e12),
  availableQuota: nonNegative(1e12),
  /** When the quota resets, in milliseconds since the Unix epoch. */
  resetTime: nonNegative(1e15),
  provider: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_PROVIDER_NAME_LENGTH)),
  capabilities: v.pipe(v.array(boundedText(MAX_CAPABILITY_TAG_LENGTH)), v.maxLength(MAX_CAPABILITY_TAGS)),
});
export type QuotaStatus = v.InferOutput<typeof QuotaStatus>;

/** Measured provider performance: time to first token in ms, throughput in tokens/s. */
export const PerformanceMetrics = v.object({
  latency: v.optional(nonNegative(3_600_000)),
  tokensPerSecond: v.optional(nonNegative(1_000_000)),
});
export type PerformanceMetrics = v.InferOutput<typeof PerformanceMetrics>;

/** What a peer can offer. A peer without AI announces `hasAI: false` and no models. */
export const Capabilities = v.object({
  hasAI: v.boolean(),
  models: v.pipe(v.array(ModelName), v.maxLength(MAX_MODELS)),
  quota: v.optional(QuotaStatus),
  performance: v.optional(PerformanceMetrics),
});
export type Capabilities = v.InferOutput<typeof Capabilities>;

/** Free-form, bounded, flat metadata (strings, numbers, booleans). */
export const Metadata = v.pipe(
  v.record(
    v.pipe(v.string(), v.maxLength(MAX_METADATA_KEY_LENGTH)),
    v.union([v.pipe(v.string(), v.maxLength(MAX_METADATA_STRING_LENGTH)), v.number(), v.boolean(), v.null()]),
  ),
  v.check(
    (record) => Object.keys(record).length <= MAX_METADATA_ENTRIES,
    `at most ${MAX_METADATA_ENTRIES} entries`,
  ),
);
export type Metadata = v.InferOutput<typeof Metadata>;

/** An Ed25519 public key, raw 32 bytes in base64url (43 characters). */
export const PublicKey = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes of base64url'));
export type PublicKey = v.InferOutput<typeof PublicKey>;

/** An Ed25519 signature, 64 bytes in base64url (86 characters). */
export const Signature = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{86}$/, 'must be 64 bytes of base64url'));
