import * as v from 'valibot';
import type { ErrorCode } from './error-codes.ts';
import { ClientMessage, ServerMessage } from './signaling.ts';
import { TaskMessage } from './task.ts';

/** Why a frame was refused, in words that name the problem. */
export interface DecodeFailure {
  ok: false;
  code: Extract<ErrorCode, 'bad-json' | 'unknown-type' | 'invalid-message'>;
  message: string;
  /** The frame's `type`, when it had a readable one. */
  inReplyTo?: string;
}
export type DecodeResult<T> = { ok: true; value: T } | DecodeFailure;

type MessageSchema = v.GenericSchema<unknown, { type: string }>;
type MessageUnion = { options: readonly (MessageSchema & { entries: { type: { literal: string } } })[] };

/**
 * Builds a decoder for one message union. Decoders never throw. The schema is picked by `type`
 * from a map: valibot's `variant` tries its options in turn (measured 2.8 µs against 1.2 µs for
 * a relay frame).
 */
function decoderFor<T extends { type: string }>(union: MessageUnion, side: string) {
  const schemas = new Map(
    union.options.map((option) => [option.entries.type.literal, option as MessageSchema]),
  );
  return (text: string): DecodeResult<T> => {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (error) {
      return { ok: false, code: 'bad-json', message: `frame is not valid JSON: ${(error as Error).message}` };
    }
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      return { ok: false, code: 'invalid-message', message: 'a message must be a JSON object' };
    }
    const type = (data as { type?: unknown }).type;
    if (typeof type !== 'string') {
      return { ok: false, code: 'unknown-type', message: 'message has no string `type` field' };
    }
    const schema = schemas.get(type);
    if (!schema) {
      return {
        ok: false,
        code: 'unknown-type',
        message: `unknown ${side} message type ${JSON.stringify(type.slice(0, 64))}`,
        inReplyTo: type.slice(0, 64),
      };
    }
    const result = v.safeParse(schema, data, { abortEarly: true });
    if (result.success) return { ok: true, value: result.output as T };
    return {
      ok: false,
      code: 'invalid-message',
      message: describeIssue(type, result.issues[0]),
      inReplyTo: type,
    };
  };
}

/** "`capabilities.quota.totalQuota` in capability-announce: Invalid type: Expected number but received "x"" */
export function describeIssue(type: string, issue: v.BaseIssue<unknown> | undefined): string {
  if (!issue) return `invalid ${type} message`;
  const path = issue.path?.map((item) => String(item.key)).join('.') ?? '';
  const where = path ? `\`${path}\`` : 'message';
  return `${where} in ${type}: ${issue.message}`.slice(0, 500);
}

/** Decodes a frame a client sent to the signaling server. */
export const decodeClientMessage = decoderFor<ClientMessage>(ClientMessage, 'client');
/** Decodes a frame the signaling server sent to a client. */
export const decodeServerMessage = decoderFor<ServerMessage>(ServerMessage, 'server');
/** Decodes a frame one peer sent another (data channel or relay payload). */
export const decodeTaskMessage = decoderFor<TaskMessage>(TaskMessage, 'task');

/** Encodes any protocol message as a text frame. */
export const encodeMessage = <T extends { type: string }>(message: T): string => JSON.stringify(message);

/** UTF-8 byte length of a string without allocating a buffer. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}
