import { describe, expect, it } from 'vitest';
import { Keyring } from '../../machines/keyring.ts';
import {
  canonicalJson,
  createIdentity,
  fromBase64Url,
  importPublicKey,
  needsSignature,
  type PromptResponse,
  toBase64Url,
  verifyMessage,
} from '../../protocol/index.ts';

const chunk: PromptResponse = {
  type: 'prompt-response',
  taskId: 't-1',
  seq: 3,
  chunk: 'héllo 📦',
  isComplete: false,
};

describe('task-message signatures', () => {
  it('writes canonical JSON with sorted keys at every level and no undefined fields', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null }, u: undefined })).toBe(
      '{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}',
    );
  });

  it('round-trips base64url', () => {
    const bytes = Uint8Array.from({ length: 64 }, (_, i) => (i * 37) % 256);
    const text = toBase64Url(bytes);
    expect(text).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect([...fromBase64Url(text)]).toEqual([...bytes]);
  });

  it('verifies a signed message whatever the key order it arrives in', async () => {
    const alice = await createIdentity();
    expect(alice.publicKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const signed = await alice.sign(chunk, 'alice', 'bob');
    const reordered = JSON.parse(
      JSON.stringify({
        sig: signed.sig,
        isComplete: false,
        chunk: chunk.chunk,
        seq: 3,
        taskId: 't-1',
        type: 'prompt-response',
      }),
    );
    const key = await importPublicKey(alice.publicKey);
    expect(await verifyMessage(signed, 'alice', 'bob', key)).toBe(true);
    expect(await verifyMessage(reordered, 'alice', 'bob', key)).toBe(true);
  });

  it('refuses tampered, unsigned, re-addressed and foreign-key messages', async () => {
    const alice = await createIdentity();
    const mallory = await createIdentity();
    const signed = await alice.sign(chunk, 'alice', 'bob');
    const key = await importPublicKey(alice.publicKey);
    expect(await verifyMessage({ ...signed, chunk: 'hellO 📦' }, 'alice', 'bob', key)).toBe(false);
    expect(await verifyMessage({ ...signed, seq: 4 }, 'alice', 'bob', key)).toBe(false);
    expect(await verifyMessage(chunk, 'alice', 'bob', key)).toBe(false);
    expect(await verifyMessage(signed, 'alice', 'carol', key)).toBe(false);
    expect(await verifyMessage(signed, 'mallory', 'bob', key)).toBe(false);
    expect(await verifyMessage({ ...signed, sig: 'A'.repeat(86) }, 'alice', 'bob', key)).toBe(false);
    const forged = await mallory.sign(chunk, 'alice', 'bob');
    expect(await verifyMessage(forged, 'alice', 'bob', key)).toBe(false);
  });

  it('signs task messages but not the link’s own pings, pongs and fragments', () => {
    for (const type of [
      'prompt-delegation',
      'task-accepted',
      'task-rejected',
      'prompt-response',
      'chunk-ack',
      'task-cancel',
      'task-failed',
    ]) {
      expect(needsSignature({ type })).toBe(true);
    }
    for (const type of ['link-ping', 'link-pong', 'link-fragment'])
      expect(needsSignature({ type })).toBe(false);
  });
});

describe('keyring', () => {
  it('keeps the first key a peer registered and ignores a different one later', async () => {
    const first = await createIdentity();
    const second = await createIdentity();
    const ring = new Keyring(() => {});
    ring.learn('p', first.publicKey);
    ring.learn('p', second.publicKey);
    const signed = await first.sign(chunk, 'p', 'me');
    expect(await verifyMessage(signed, 'p', 'me', await ring.key('p'))).toBe(true);
  });

  it('looks a missing key up once and resolves every waiter when it arrives', async () => {
    const alice = await createIdentity();
    const lookups: string[] = [];
    const ring = new Keyring((peerId) => lookups.push(peerId), 1_000);
    const waiting = [ring.key('alice'), ring.key('alice')];
    expect(lookups).toEqual(['alice']);
    ring.learn('alice', alice.publicKey);
    const keys = await Promise.all(waiting);
    const signed = await alice.sign(chunk, 'alice', 'me');
    for (const key of keys) expect(await verifyMessage(signed, 'alice', 'me', key)).toBe(true);
  });

  it('gives up on a key that never arrives, within its bound', async () => {
    const ring = new Keyring(() => {}, 20);
    await expect(ring.key('ghost')).rejects.toThrow(/no public key registered for peer ghost/);
  });
});
