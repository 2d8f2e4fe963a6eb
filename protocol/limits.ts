/** Wire bounds shared by every peer and the server. Changing one is a protocol change. */

/** Current protocol version. A client names it with `?v=` on the WebSocket URL. */
export const PROTOCOL_VERSION = 1;
/** Versions this build of the server and client understand. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [1];

/** Largest text frame either side may send (64 KiB). Larger frames close the socket with 1009. */
export const MAX_FRAME_BYTES = 64 * 1024;

export const MAX_PEER_ID_LENGTH = 64;
export const MAX_TASK_ID_LENGTH = 64;
export const MAX_MODEL_NAME_LENGTH = 128;
export const MAX_MODELS = 32;
export const MAX_PROVIDER_NAME_LENGTH = 64;
export const MAX_CAPABILITY_TAGS = 32;
export const MAX_CAPABILITY_TAG_LENGTH = 64;
export const MAX_SDP_LENGTH = 60 * 1024;
export const MAX_CANDIDATE_LENGTH = 2048;
export const MAX_SDP_MID_LENGTH = 64;
export const MAX_UFRAG_LENGTH = 256;
export const MAX_DISCOVERED_PEERS = 50;
export const MAX_REQUEST_ID_LENGTH = 64;
export const MAX_ERROR_MESSAGE_LENGTH = 512;
export const MAX_REASON_LENGTH = 256;
export const MAX_ICE_SERVERS = 8;
export const MAX_ICE_URLS = 8;
export const MAX_ICE_URL_LENGTH = 512;
export const MAX_ICE_CREDENTIAL_LENGTH = 512;
export const MAX_RESUME_TOKEN_LENGTH = 256;
/** A prompt is bounded so a delegation always fits one frame with its envelope. */
export const MAX_PROMPT_LENGTH = 32 * 1024;
/** A streamed chunk of answer text. Longer answers are split across chunks. */
export const MAX_CHUNK_LENGTH = 16 * 1024;
export const MAX_METADATA_ENTRIES = 16;
export const MAX_METADATA_KEY_LENGTH = 64;
export const MAX_METADATA_STRING_LENGTH = 1024;
/** Timeout a requester may ask for on one task (10 minutes). */
export const MAX_TASK_TIMEOUT_MS = 10 * 60 * 1000;

/** Link messages larger than this (UTF-8 bytes) are sent as fragments (data channels and relay alike). */
export const MAX_LINK_MESSAGE_BYTES = 16 * 1024;
/** Characters per fragment: at most 4 bytes each, so a fragment frame stays well under 64 KiB. */
export const MAX_FRAGMENT_CHARS = 8 * 1024;
/** Fragments per message: bounds a reassembled message to 64 × 8 Ki characters. */
export const MAX_FRAGMENTS = 64;
