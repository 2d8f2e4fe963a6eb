import type { TaskMessage } from './task.ts';

/**
 * Task-message signatures. Every task message but the link's own (pings, pongs, fragments) carries
 * `sig`: an Ed25519 signature by its sender over
 *
 *   "handoff-task-v1|<fromPeerId>|<toPeerId>|" + canonical JSON of the message without `sig`
 *
 * Canonical JSON sorts object keys, so the signature survives re-serialisation; binding both peer
 * ids stops a message being replayed to, or passed off as from, another peer. Public keys are
 * registered with the signaling server (`capability-announce`'s `publicKey`), which hands them on.
 * WebCrypto only: the same code runs in browsers and in Node.
 */
export const SIGNED_TYPES: ReadonlySet<TaskMessage['type']> = new Set([
  'prompt-delegation',
  'task-accepted',
  'task-rejected',
  'prompt-response',
  'chunk-ack',
  'task-cancel',
  'task-failed',
]);

export const needsSignature = (message: { type: string }): boolean =>
  SIGNED_TYPES.has(message.type as TaskMessage['type']);

const ED25519 = { name: 'Ed25519' } as const;
const encoder = new TextEncoder();

/** JSON with object keys sorted at every level. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, item]) => item !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
}

function signedBytes(message: { sig?: string }, from: string, to: string): Uint8Array {
  const { sig: _sig, ...unsigned } = message;
  return encoder.encode(`handoff-task-v1|${from}|${to}|${canonicalJson(unsigned)}`);
}

export function toBase64Url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64Url(text: string): Uint8Array {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** A peer's signing identity: an Ed25519 key pair whose private half never leaves WebCrypto. */
export interface Identity {
  /** Raw public key, base64url: what `capability-announce` registers. */
  readonly publicKey: string;
  /** Returns the message with `sig` set, signed as sent from `from` to `to`. */
  sign<T extends { sig?: string }>(message: T, from: string, to: string): Promise<T>;
}

export async function createIdentity(subtle: SubtleCrypto = globalThis.crypto.subtle): Promise<Identity> {
  const pair = (await subtle.generateKey(ED25519, false, ['sign', 'verify'])) as CryptoKeyPair;
  const publicKey = toBase64Url(new Uint8Array(await subtle.exportKey('raw', pair.publicKey)));
  return {
    publicKey,
    async sign(message, from, to) {
      const signature = await subtle.sign(
        ED25519,
        pair.privateKey,
        signedBytes(message, from, to) as BufferSource,
      );
      return { ...message, sig: toBase64Url(new Uint8Array(signature)) };
    },
  };
}

export function importPublicKey(
  publicKey: string,
  subtle: SubtleCrypto = globalThis.crypto.subtle,
): Promise<CryptoKey> {
  return subtle.importKey('raw', fromBase64Url(publicKey) as BufferSource, ED25519, false, ['verify']);
}

/** Checks `message.sig` against the sender's key; false for a missing, malformed or wrong signature. */
export async function verifyMessage(
  message: { readonly sig?: string; readonly [field: string]: unknown },
  from: string,
  to: string,
  key: CryptoKey,
  subtle: SubtleCrypto = globalThis.crypto.subtle,
): Promise<boolean> {
  if (!message.sig) return false;
  try {
    return await subtle.verify(
      ED25519,
      key,
      fromBase64Url(message.sig) as BufferSource,
      signedBytes(message, from, to) as BufferSource,
    );
  } catch {
    return false;
  }
}
