/** WebSocket close codes the signaling server uses. */
export const CloseCode = {
  /** Normal closure (the client said `leave`, or closed on purpose). */
  normal: 1000,
  /** The server is shutting down: reconnect with the resume token. */
  goingAway: 1001,
  /** Policy violation: rate-limit abuse or repeated invalid messages. */
  policyViolation: 1008,
  /** A frame over MAX_FRAME_BYTES. */
  messageTooBig: 1009,
  /** An internal server error. */
  internalError: 1011,
  /** No answer to heartbeats in time. */
  heartbeatTimeout: 4000,
  /** `?v=` names an unsupported protocol version. */
  unsupportedVersion: 4001,
  /** Another socket resumed this session with its token. */
  sessionReplaced: 4002,
  /** The socket stayed congested (unread backlog) for too long. */
  tooSlow: 4003,
  /** Sent by a client that hangs up to reconnect (not a leave: its session waits for the resume). */
  clientReconnecting: 4100,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Codes after which a client should not reconnect automatically. */
export const TERMINAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.policyViolation,
  CloseCode.unsupportedVersion,
  CloseCode.sessionReplaced,
]);
