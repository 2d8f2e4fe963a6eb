import { createHmac } from 'node:crypto';
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { PeerId } from '../../protocol/index.ts';
import {
  iceServersFor,
  mintAccessToken,
  mintResumeToken,
  newPeerId,
  turnCredentials,
  verifyAccessToken,
  verifyResumeToken,
  verifySharedToken,
} from '../../signaling/credentials.ts';

const SECRET = 'resume-secret-for-tests';
const NOW = 1_767_225_600_000;
const DAY = 24 * 60 * 60 * 1000;

describe('peer ids', () => {
  it('are 128 random bits in base64url, valid on the wire and distinct', () => {
    const ids = Array.from({ length: 200 }, newPeerId);
    for (const id of ids) {
      expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(v.is(PeerId, id)).toBe(true);
    }
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('resume tokens', () => {
  const peerId = 'Qm9vbS1wZWVyLWlk';
  const token = mintResumeToken(SECRET, peerId, NOW);

  it('round-trip: a freshly minted token names its peer and when it was issued', () => {
    expect(token.startsWith(`${peerId}.${NOW}.`)).toBe(true);
    expect(verifyResumeToken(SECRET, token, NOW + 1000, DAY)).toEqual({ peerId, issuedAt: NOW });
  });

  it('are accepted up to exactly their maximum age, and not a millisecond after', () => {
    expect(verifyResumeToken(SECRET, token, NOW + DAY, DAY)).toEqual({ peerId, issuedAt: NOW });
    expect(verifyResumeToken(SECRET, token, NOW + DAY + 1, DAY)).toBeNull();
  });

  it('tolerate a minute of clock skew into the future, no more', () => {
    expect(verifyResumeToken(SECRET, token, NOW - 60_000, DAY)).not.toBeNull();
    expect(verifyResumeToken(SECRET, token, NOW - 60_001, DAY)).toBeNull();
  });

  it('minted with another secret are refused', () => {
    expect(verifyResumeToken('another-secret', token, NOW, DAY)).toBeNull();
  });

  it.each([
    ['another peer id', token.replace(peerId, 'SGlqYWNrZWQtcGVlcg')],
    ['a later issue time', token.replace(`.${NOW}.`, `.${NOW + 1}.`)],
    ['a flipped signature character', token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')],
    ['a truncated signature', token.slice(0, -2)],
    ['no signature', `${peerId}.${NOW}`],
    ['an extra part', `${token}.x`],
    ['a peer id with a dot', mintResumeToken(SECRET, 'a.b', NOW)],
    ['a non-numeric issue time', `${peerId}.soon.${token.split('.')[2]}`],
    ['an empty string', ''],
  ])('a token with %s is refused', (_, tampered) => {
    expect(verifyResumeToken(SECRET, tampered, NOW, DAY)).toBeNull();
  });
});

describe('access tokens', () => {
  const expSeconds = NOW / 1000 + 3600;
  const token = mintAccessToken(SECRET, expSeconds);

  it('are valid until their expiry second, and not after', () => {
    expect(verifyAccessToken(SECRET, token, NOW)).toBe(true);
    expect(verifyAccessToken(SECRET, token, expSeconds * 1000)).toBe(true);
    expect(verifyAccessToken(SECRET, token, expSeconds * 1000 + 1)).toBe(false);
  });

  it.each([
    ['another secret', mintAccessToken('another-secret', expSeconds)],
    ['a later expiry with the old signature', `${expSeconds + 3600}.${token.split('.')[1]}`],
    ['no dot', token.replace('.', '')],
    ['nothing before the dot', `.${token.split('.')[1]}`],
    ['a non-numeric expiry', `later.${token.split('.')[1]}`],
    ['an empty string', ''],
  ])('a token with %s is refused', (_, forged) => {
    expect(verifyAccessToken(SECRET, forged, NOW)).toBe(false);
  });

  it('shared tokens match only exactly', () => {
    expect(verifySharedToken('open sesame', 'open sesame')).toBe(true);
    expect(verifySharedToken('open sesame', 'open sesam')).toBe(false);
    expect(verifySharedToken('open sesame', 'open sesamf')).toBe(false);
    expect(verifySharedToken('open sesame', '')).toBe(false);
  });
});

describe('TURN REST credentials (coturn use-auth-secret)', () => {
  it('our HMAC-SHA1 reference matches the RFC 2202 test vector', () => {
    // RFC 2202, test case 2: key "Jefe", data "what do ya want for nothing?"
    expect(createHmac('sha1', 'Jefe').update('what do ya want for nothing?').digest('hex')).toBe(
      'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79',
    );
  });

  it('username is "<expiry seconds>:<peer id>" and the credential is base64(HMAC-SHA1(secret, username))', () => {
    const credentials = turnCredentials('coturn-secret', 'peer-a', NOW + 999, 600);
    const expiry = NOW / 1000 + 600;
    expect(credentials.username).toBe(`${expiry}:peer-a`);
    expect(credentials.credential).toBe(
      createHmac('sha1', 'coturn-secret').update(`${expiry}:peer-a`).digest('base64'),
    );
    expect(credentials.expiresAtMs).toBe(expiry * 1000);
    // Known answer from another implementation:
    //   printf '1767226200:peer-a' | openssl dgst -sha1 -hmac coturn-secret -binary | base64
    expect(credentials.credential).toBe('x1NcAjQEH/cV/6s2mKFnKFX91Cs=');
  });

  const config = {
    stunUrls: ['stun:stun.example.org:3478'],
    turnUrls: ['turn:turn.example.org:3478', 'turns:turn.example.org:5349'],
    turnSecret: 'coturn-secret' as string | undefined,
    turnTtlSeconds: 3600,
  };

  it('a peer gets STUN as configured and TURN with its own fresh credentials', () => {
    const { iceServers, expiresAt } = iceServersFor(config, 'peer-a', NOW);
    const username = `${NOW / 1000 + 3600}:peer-a`;
    expect(iceServers).toEqual([
      { urls: config.stunUrls },
      {
        urls: config.turnUrls,
        username,
        credential: createHmac('sha1', 'coturn-secret').update(username).digest('base64'),
      },
    ]);
    expect(expiresAt).toBe(NOW + 3600 * 1000);
  });

  it('without a TURN secret no TURN server is handed out, and nothing expires', () => {
    expect(iceServersFor({ ...config, turnSecret: undefined }, 'peer-a', NOW)).toEqual({
      iceServers: [{ urls: config.stunUrls }],
      expiresAt: 0,
    });
    expect(iceServersFor({ ...config, stunUrls: [], turnUrls: [] }, 'peer-a', NOW)).toEqual({
      iceServers: [],
      expiresAt: 0,
    });
  });
});
