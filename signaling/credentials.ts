import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IceServer } from '../protocol/index.ts';

const sign = (secret: string, data: string) => createHmac('sha256', secret).update(data).digest('base64url');

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** A fresh, unguessable peer id (128 bits, base64url). */
export const newPeerId = (): string => randomBytes(16).toString('base64url');

/**
 * Resume tokens: `<peerId>.<issuedAtMs>.<hmac>`. Stateless, so a server restarted with the same
 * secret still recognises them; the registry remembers the newest `issuedAt` so a rotated token
 * cannot be replayed while the session lives.
 */
export function mintResumeToken(secret: string, peerId: string, issuedAt: number): string {
  return `${peerId}.${issuedAt}.${sign(secret, `resume:${peerId}.${issuedAt}`)}`;
}

export function verifyResumeToken(
  secret: string,
  token: string,
  now: number,
  maxAgeMs: number,
): { peerId: string; issuedAt: number } | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const [peerId, issued, signature] = parts as [string, string, string];
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(peerId) || !/^\d{1,16}$/.test(issued)) return null;
  const issuedAt = Number(issued);
  if (issuedAt > now + 60_000 || now - issuedAt > maxAgeMs) return null;
  if (!safeEqual(signature, sign(secret, `resume:${peerId}.${issuedAt}`))) return null;
  return { peerId, issuedAt };
}

/**
 * Signed access tokens for `?token=`: `<expiresAtUnixSeconds>.<hmac-sha256 of "access:<exp>">`.
 * Mint them where you hand out the page (`npm run token -- --secret S --ttl 3600`).
 */
export function mintAccessToken(secret: string, expiresAtSeconds: number): string {
  return `${expiresAtSeconds}.${sign(secret, `access:${expiresAtSeconds}`)}`;
}

export function verifyAccessToken(secret: string, token: string, nowMs: number): boolean {
  const dot = token.indexOf('.');
  if (dot <= 0) return false;
  const exp = token.slice(0, dot);
  if (!/^\d{1,12}$/.test(exp) || Number(exp) * 1000 < nowMs) return false;
  return safeEqual(token.slice(dot + 1), sign(secret, `access:${exp}`));
}

/** Constant-time check of a shared-secret token. */
export const verifySharedToken = (expected: string, token: string): boolean => safeEqual(expected, token);

/**
 * TURN credentials in coturn's REST format (`use-auth-secret`): username `<expiry>:<peerId>`,
 * credential base64(HMAC-SHA1(secret, username)).
 */
export function turnCredentials(secret: string, peerId: string, nowMs: number, ttlSeconds: number) {
  const expiresAt = Math.floor(nowMs / 1000) + ttlSeconds;
  const username = `${expiresAt}:${peerId}`;
  const credential = createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential, expiresAtMs: expiresAt * 1000 };
}

/** The ICE server list one peer gets: STUN as configured, TURN with its own fresh credentials. */
export function iceServersFor(
  config: { stunUrls: string[]; turnUrls: string[]; turnSecret: string | undefined; turnTtlSeconds: number },
  peerId: string,
  nowMs: number,
): { iceServers: IceServer[]; expiresAt: number } {
  const iceServers: IceServer[] = [];
  if (config.stunUrls.length) iceServers.push({ urls: config.stunUrls });
  if (!config.turnUrls.length || !config.turnSecret) return { iceServers, expiresAt: 0 };
  const { username, credential, expiresAtMs } = turnCredentials(
    config.turnSecret,
    peerId,
    nowMs,
    config.turnTtlSeconds,
  );
  iceServers.push({ urls: config.turnUrls, username, credential });
  return { iceServers, expiresAt: expiresAtMs };
}
