import * as v from 'valibot';

/** Codes of the signaling `error` message. PROTOCOL.md says when each is sent. */
export const ErrorCode = v.picklist([
  /** The frame was not valid JSON text. */
  'bad-json',
  /** The frame was binary; the protocol is JSON text only. */
  'binary-frame',
  /** `type` is missing or not a message this server accepts. */
  'unknown-type',
  /** The message failed its schema; `message` names the field. */
  'invalid-message',
  /** The message is valid but not accepted in the socket's current state. */
  'invalid-state',
  /** `targetPeerId` is not connected (never was, or has left). */
  'unknown-target',
  /** The target cannot take more right now (its socket is congested); retry later. */
  'target-congested',
  /** Too many messages: this one was dropped. Repeating it closes the socket with 1008. */
  'rate-limited',
  /** Relay traffic over its byte or message budget: this one was dropped. */
  'relay-limited',
  /** `?v=` names a protocol version this server does not speak. */
  'unsupported-version',
  /** `?resume=` was not accepted; a new session was started instead. */
  'resume-rejected',
  /** Something went wrong on the server; the socket closes with 1011. */
  'internal',
]);
export type ErrorCode = v.InferOutput<typeof ErrorCode>;
