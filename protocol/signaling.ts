import * as v from 'valibot';
import { ErrorCode } from './error-codes.ts';
import {
  MAX_CANDIDATE_LENGTH,
  MAX_DISCOVERED_PEERS,
  MAX_ERROR_MESSAGE_LENGTH,
  MAX_ICE_CREDENTIAL_LENGTH,
  MAX_ICE_SERVERS,
  MAX_ICE_URL_LENGTH,
  MAX_ICE_URLS,
  MAX_MODELS,
  MAX_REASON_LENGTH,
  MAX_RESUME_TOKEN_LENGTH,
  MAX_SDP_LENGTH,
  MAX_SDP_MID_LENGTH,
  MAX_UFRAG_LENGTH,
} from './limits.ts';
import { Capabilities, ModelName, nonNegative, PeerId, PublicKey, RequestId } from './primitives.ts';
import { TaskPayload } from './task.ts';

/*
 * Client <-> signaling server messages. Names and fields of the design's "Signaling Protocol
 * Messages" and "WebRTC Signaling" sections are kept exactly; the rest is what a real server needs.
 * Messages the server forwards carry `fromPeerId`, always set by the server to the real sender.
 */

const millis = (max: number) => v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(max));

// ---------------------------------------------------------------- shared shapes

export const SessionDescription = <T extends 'offer' | 'answer'>(kind: T) =>
  v.object({ type: v.literal(kind), sdp: v.pipe(v.string(), v.maxLength(MAX_SDP_LENGTH)) });

/** An RTCIceCandidateInit; `null` marks the end of candidates. */
export const IceCandidate = v.nullable(
  v.object({
    candidate: v.pipe(v.string(), v.maxLength(MAX_CANDIDATE_LENGTH)),
    sdpMid: v.optional(v.nullable(v.pipe(v.string(), v.maxLength(MAX_SDP_MID_LENGTH)))),
    sdpMLineIndex: v.optional(v.nullable(millis(65_535))),
    usernameFragment: v.optional(v.nullable(v.pipe(v.string(), v.maxLength(MAX_UFRAG_LENGTH)))),
  }),
);
export type IceCandidate = v.InferOutput<typeof IceCandidate>;

const iceUrl = v.pipe(
  v.string(),
  v.maxLength(MAX_ICE_URL_LENGTH),
  v.regex(/^(stun|stuns|turn|turns):/, 'must be a stun: or turn: URL'),
);

/** An RTCIceServer as handed to clients. */
export const IceServer = v.object({
  urls: v.union([iceUrl, v.pipe(v.array(iceUrl), v.minLength(1), v.maxLength(MAX_ICE_URLS))]),
  username: v.optional(v.pipe(v.string(), v.maxLength(MAX_ICE_CREDENTIAL_LENGTH))),
  credential: v.optional(v.pipe(v.string(), v.maxLength(MAX_ICE_CREDENTIAL_LENGTH))),
});
export type IceServer = v.InferOutput<typeof IceServer>;
export const IceServers = v.pipe(v.array(IceServer), v.maxLength(MAX_ICE_SERVERS));

export const DiscoveryRequirements = v.object({
  needsAI: v.boolean(),
  /** Smallest `availableQuota` a peer must have. */
  minQuota: nonNegative(1e12),
  /** Models in order of preference; a peer with none of them ranks lower but still matches. */
  preferredModels: v.pipe(v.array(ModelName), v.maxLength(MAX_MODELS)),
  /** When true, only peers offering one of `preferredModels` match. */
  requireModel: v.optional(v.boolean()),
  /** How many peers to return at most (server cap: MAX_DISCOVERED_PEERS). */
  limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_DISCOVERED_PEERS))),
});
export type DiscoveryRequirements = v.InferOutput<typeof DiscoveryRequirements>;

export const DiscoveredPeer = v.object({
  peerId: PeerId,
  capabilities: Capabilities,
  /** The peer's registered Ed25519 key: its task messages verify against it. */
  publicKey: v.optional(PublicKey),
  /** 0..100, higher is better. */
  score: nonNegative(100),
});
export type DiscoveredPeer = v.InferOutput<typeof DiscoveredPeer>;

// ---------------------------------------------------------------- client -> server

export const CapabilityAnnounce = v.object({
  type: v.literal('capability-announce'),
  capabilities: Capabilities,
  /** Registers this peer's Ed25519 public key with its peer id (the first one sticks). */
  publicKey: v.optional(PublicKey),
});
export const Discover = v.object({
  type: v.literal('discover'),
  requirements: DiscoveryRequirements,
  requestId: v.optional(RequestId),
});
export const ClientOffer = v.object({
  type: v.literal('offer'),
  targetPeerId: PeerId,
  sdp: SessionDescription('offer'),
});
export const ClientAnswer = v.object({
  type: v.literal('answer'),
  targetPeerId: PeerId,
  sdp: SessionDescription('answer'),
});
export const ClientIceCandidate = v.object({
  type: v.literal('ice-candidate'),
  targetPeerId: PeerId,
  candidate: IceCandidate,
});
/** Task traffic for a peer that cannot be reached directly. */
export const ClientRelay = v.object({ type: v.literal('relay'), targetPeerId: PeerId, payload: TaskPayload });
/** Answers the server's heartbeat (echoing `ts`), or probes the server. */
export const ClientHeartbeat = v.object({ type: v.literal('heartbeat'), ts: nonNegative(1e15) });
/** Asks for a fresh ICE server list (TURN credentials expire). */
export const IceServersRequest = v.object({ type: v.literal('ice-servers-request') });
/** Asks for a peer's capabilities and public key (answered with `peer-capability-update`). */
export const PeerLookup = v.object({ type: v.literal('peer-lookup'), peerId: PeerId });
/** Leaves for good: no resume grace, `peer-left` goes out at once. */
export const Leave = v.object({ type: v.literal('leave') });

export const ClientMessage = v.variant('type', [
  CapabilityAnnounce,
  Discover,
  ClientOffer,
  ClientAnswer,
  ClientIceCandidate,
  ClientRelay,
  ClientHeartbeat,
  IceServersRequest,
  PeerLookup,
  Leave,
]);
export type ClientMessage = v.InferOutput<typeof ClientMessage>;
export type ClientMessageType = ClientMessage['type'];
export const CLIENT_MESSAGE_TYPES = ClientMessage.options.map((option) => option.entries.type.literal);

/** Client messages the server forwards to `targetPeerId`. */
export type RoutedClientMessage = Extract<ClientMessage, { targetPeerId: string }>;

// ---------------------------------------------------------------- server -> client

/** Sent once a socket is open: who you are, how to come back, how to reach peers. */
export const PeerIdAssigned = v.object({
  type: v.literal('peer-id'),
  peerId: PeerId,
  /** Present this as `?resume=` when reconnecting to keep the same peer id. Rotates on every resume. */
  resumeToken: v.pipe(v.string(), v.maxLength(MAX_RESUME_TOKEN_LENGTH)),
  /** True when the server restored an earlier session (same peer id, same capabilities). */
  resumed: v.boolean(),
  /** Capabilities restored with the session, if it had announced any. */
  capabilities: v.optional(Capabilities),
  protocolVersion: v.pipe(v.number(), v.integer(), v.minValue(1)),
  iceServers: IceServers,
  /** The server sends `heartbeat` this often; answer each one. */
  heartbeatIntervalMs: millis(3_600_000),
  /** How long the server keeps a dropped session for resume. */
  resumeGraceMs: millis(3_600_000),
});
export const PeerCapabilityUpdate = v.object({
  type: v.literal('peer-capability-update'),
  peerId: PeerId,
  capabilities: Capabilities,
  publicKey: v.optional(PublicKey),
});
export const PeersDiscovered = v.object({
  type: v.literal('peers-discovered'),
  /** Best first. */
  peers: v.pipe(v.array(DiscoveredPeer), v.maxLength(MAX_DISCOVERED_PEERS)),
  requestId: v.optional(RequestId),
});
const forwarded = { targetPeerId: PeerId, fromPeerId: PeerId };
export const ServerOffer = v.object({
  type: v.literal('offer'),
  ...forwarded,
  sdp: SessionDescription('offer'),
});
export const ServerAnswer = v.object({
  type: v.literal('answer'),
  ...forwarded,
  sdp: SessionDescription('answer'),
});
export const ServerIceCandidate = v.object({
  type: v.literal('ice-candidate'),
  ...forwarded,
  candidate: IceCandidate,
});
export const ServerRelay = v.object({ type: v.literal('relay'), ...forwarded, payload: TaskPayload });
export const PeerLeft = v.object({
  type: v.literal('peer-left'),
  peerId: PeerId,
  reason: v.picklist(['left', 'closed', 'timeout', 'replaced']),
});
export const ServerHeartbeat = v.object({ type: v.literal('heartbeat'), ts: nonNegative(1e15) });
export const ServerError = v.object({
  type: v.literal('error'),
  code: ErrorCode,
  /** Names the problem, e.g. which field is invalid. */
  message: v.pipe(v.string(), v.maxLength(MAX_ERROR_MESSAGE_LENGTH)),
  /** The `type` of the message that caused it, when known. */
  inReplyTo: v.optional(v.pipe(v.string(), v.maxLength(64))),
  /** The target a routed message could not reach. */
  targetPeerId: v.optional(PeerId),
  requestId: v.optional(RequestId),
  retryAfterMs: v.optional(millis(86_400_000)),
});
/** The server is going away: reconnect (with your resume token) after `retryAfterMs`. */
export const Reconnect = v.object({
  type: v.literal('reconnect'),
  reason: v.pipe(v.string(), v.maxLength(MAX_REASON_LENGTH)),
  retryAfterMs: millis(3_600_000),
});
export const IceServersMessage = v.object({
  type: v.literal('ice-servers'),
  iceServers: IceServers,
  /** When the TURN credentials in the list stop working (ms since epoch); 0 if none expire. */
  expiresAt: nonNegative(1e15),
});

export const ServerMessage = v.variant('type', [
  PeerIdAssigned,
  PeerCapabilityUpdate,
  PeersDiscovered,
  ServerOffer,
  ServerAnswer,
  ServerIceCandidate,
  ServerRelay,
  PeerLeft,
  ServerHeartbeat,
  ServerError,
  Reconnect,
  IceServersMessage,
]);
export type ServerMessage = v.InferOutput<typeof ServerMessage>;
export type ServerMessageType = ServerMessage['type'];
export const SERVER_MESSAGE_TYPES = ServerMessage.options.map((option) => option.entries.type.literal);

export type PeerIdAssigned = v.InferOutput<typeof PeerIdAssigned>;
export type PeerCapabilityUpdate = v.InferOutput<typeof PeerCapabilityUpdate>;
export type PeersDiscovered = v.InferOutput<typeof PeersDiscovered>;
export type PeerLeft = v.InferOutput<typeof PeerLeft>;
export type ServerError = v.InferOutput<typeof ServerError>;
export type Reconnect = v.InferOutput<typeof Reconnect>;
export type ServerRelay = v.InferOutput<typeof ServerRelay>;
export type RoutedServerMessage = Extract<ServerMessage, { fromPeerId: string }>;
