import { afterEach, describe, expect, it } from 'vitest';
import { MAX_FRAME_BYTES, MAX_SDP_LENGTH } from '../../protocol/index.ts';
import type { SignalingConfig } from '../../signaling/config.ts';
import { mintAccessToken } from '../../signaling/credentials.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { TestClient, type TestClientOptions } from '../support/signaling-client.ts';
import { startTestServer } from '../support/signaling-server.ts';
import { waitUntil } from '../support/wait.ts';

let server: SignalingServer | undefined;
const clients: TestClient[] = [];
const start = async (overrides: Partial<SignalingConfig> = {}) => {
  server = await startTestServer(overrides);
  return server;
};
const connect = async (options?: TestClientOptions, query = '') => {
  const client = await TestClient.connect(`${server?.url}${query}`, options);
  clients.push(client);
  return client;
};
afterEach(async () => {
  for (const client of clients.splice(0)) {
    expect(client.invalid).toEqual([]);
    client.terminate();
  }
  await server?.close();
  server = undefined;
});

/** A JSON text frame of exactly `bytes` UTF-8 bytes: `message` with a `pad` field filling the rest. */
function frameOf(bytes: number, message: Record<string, unknown>): string {
  const bare = JSON.stringify({ ...message, pad: '' });
  const frame = JSON.stringify({ ...message, pad: 'x'.repeat(bytes - Buffer.byteLength(bare)) });
  expect(Buffer.byteLength(frame)).toBe(bytes);
  return frame;
}

describe('frame size', () => {
  it('a text frame one byte over 64 KiB closes the socket with 1009', async () => {
    await start();
    const client = await connect();
    client.sendRaw(frameOf(MAX_FRAME_BYTES + 1, { type: 'heartbeat', ts: 1 }));
    expect((await client.closed).code).toBe(1009);
  });

  it('a binary frame over 64 KiB closes the socket with 1009 too', async () => {
    await start();
    const client = await connect();
    client.sendRaw(Buffer.alloc(MAX_FRAME_BYTES + 1, 0x20), { binary: true });
    expect((await client.closed).code).toBe(1009);
  });

  it('a valid frame of exactly 64 KiB is accepted and the socket stays open', async () => {
    await start();
    const client = await connect();
    client.sendRaw(frameOf(MAX_FRAME_BYTES, { type: 'ice-servers-request' }));
    await client.next('ice-servers');
    await client.roundTrip();
    expect(client.all('error')).toEqual([]);
  });

  it('a 64 KiB frame that breaks the schema gets invalid-message, not 1009', async () => {
    await start();
    const client = await connect();
    const bare = JSON.stringify({ type: 'offer', targetPeerId: 'x', sdp: { type: 'offer', sdp: '' } });
    const sdp = 'x'.repeat(MAX_FRAME_BYTES - Buffer.byteLength(bare));
    expect(sdp.length).toBeGreaterThan(MAX_SDP_LENGTH);
    const frame = JSON.stringify({ type: 'offer', targetPeerId: 'x', sdp: { type: 'offer', sdp } });
    expect(Buffer.byteLength(frame)).toBe(MAX_FRAME_BYTES);
    client.sendRaw(frame);
    const error = await client.next('error');
    expect(error.code).toBe('invalid-message');
    expect(error.message).toContain('`sdp.sdp`');
    await client.roundTrip();
  });
});

describe('message rate', () => {
  it('a flooding client gets rate-limited errors, then is closed with 1008, while another keeps working', async () => {
    const maxRateLimitStrikes = 3;
    await start({ messagesPerSecond: 5, messageBurst: 5, maxRateLimitStrikes, abuseWindowMs: 60_000 });
    const flooder = await connect();
    const bystander = await connect();
    for (let i = 0; i < 40; i++) flooder.send({ type: 'ice-servers-request' });
    expect((await flooder.closed).code).toBe(1008);

    const errors = flooder.all('error');
    // Every refusal before the close was a rate-limit one, with a retry hint; then the close.
    expect(errors.length).toBe(maxRateLimitStrikes);
    for (const error of errors) {
      expect(error.code).toBe('rate-limited');
      expect(error.retryAfterMs).toBeGreaterThan(0);
    }
    // The burst (5) was served before the limit bit: the greeting, then five answers.
    expect(flooder.received.slice(0, 6).map((m) => m.type)).toEqual([
      'peer-id',
      ...Array(5).fill('ice-servers'),
    ]);

    const found = await bystander.roundTrip();
    expect(found.peers).toEqual([]);
    expect(bystander.all('error')).toEqual([]);
  });

  it('relay traffic over the byte budget is dropped with relay-limited and does not reach the target', async () => {
    await start({ relayBurstBytes: 1_000, relayBytesPerSecond: 1 });
    const sender = await connect();
    const target = await connect();
    const relay = (chunk: string) => ({
      type: 'relay',
      targetPeerId: target.peerId,
      payload: { type: 'prompt-response', taskId: 't1', seq: 0, chunk, isComplete: false },
    });
    sender.send(relay('a'.repeat(600)));
    expect((await target.next('relay')).payload).toMatchObject({ chunk: 'a'.repeat(600) });
    sender.send(relay('b'.repeat(600)));
    const error = await sender.next('error');
    expect(error).toMatchObject({ code: 'relay-limited', inReplyTo: 'relay' });
    expect(error.retryAfterMs).toBeGreaterThan(0);
    // Signaling that is not relay is not charged to the relay budget.
    sender.send({ type: 'offer', targetPeerId: target.peerId, sdp: { type: 'offer', sdp: 'v=0' } });
    await target.next('offer');
    await target.roundTrip();
    expect(target.all('relay')).toHaveLength(1);
  });
});

describe('a slow reader', () => {
  it('a target that stops reading: senders get target-congested, and after maxCongestedMs it is closed with 4003', async () => {
    const s = await start({
      // Budgets out of the way: only the target's backlog may stop this sender.
      messagesPerSecond: 100_000,
      messageBurst: 100_000,
      relayBytesPerSecond: 1e9,
      relayBurstBytes: 1e9,
      congestionHighWaterBytes: 256 * 1024,
      congestionLowWaterBytes: 64 * 1024,
      maxCongestedMs: 300,
      resumeGraceMs: 10_000,
    });
    const sender = await connect();
    const target = await connect();
    // Stop reading: the kernel buffers fill, then uWS buffers the rest on the server side.
    const socket = (target.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.pause();
    const chunk = 'x'.repeat(16_000);
    let congested: boolean | undefined;
    for (let seq = 0; seq < 4_000 && !congested; ) {
      for (let i = 0; i < 20; i++, seq++) {
        sender.send({
          type: 'relay',
          targetPeerId: target.peerId,
          payload: { type: 'prompt-response', taskId: 't1', seq, chunk, isComplete: false },
        });
      }
      congested = await sender.receives(
        'error',
        20,
        (m) => m.type === 'error' && m.code === 'target-congested',
      );
    }
    expect(congested).toBe(true);
    const refusal = sender.all('error', (m) => m.code === 'target-congested')[0];
    expect(refusal).toMatchObject({ targetPeerId: target.peerId, inReplyTo: 'relay' });
    expect(refusal?.retryAfterMs).toBeGreaterThan(0);

    const targetActor = () =>
      [...s.hub.getSnapshot().context.sockets.values()].find(
        (actor) => actor.getSnapshot().context.peerId === target.peerId,
      );
    await waitUntil(
      // Out of `active`: closing, or already closed and reaped.
      () => targetActor()?.getSnapshot().matches('active') !== true,
      'the server gave up on the slow reader',
    );
    socket.resume();
    expect((await target.closed).code).toBe(4003);
    // The sender was never affected, and the slow reader's session waits for a resume.
    await sender.roundTrip();
    await waitUntil(() => s.registry.get(target.peerId)?.port === null, 'the session is in its grace');
  });
});

describe('admission at the upgrade', () => {
  it('a third connection from one address is refused with HTTP 429 when maxConnectionsPerIp is 2', async () => {
    const s = await start({ maxConnectionsPerIp: 2 });
    const first = await connect();
    await connect();
    expect(await TestClient.refusal(s.url)).toBe(429);
    // A freed slot can be used again.
    first.close();
    await first.closed;
    await waitUntil(() => s.hub.getSnapshot().context.sockets.size === 1, 'the server saw the close');
    await connect();
  });

  it('an Origin outside the allowlist is refused with 403; a listed one and no Origin are accepted', async () => {
    const s = await start({ allowedOrigins: ['https://app.example'] });
    expect(await TestClient.refusal(s.url, { origin: 'https://evil.example' })).toBe(403);
    expect(await TestClient.refusal(s.url, { origin: 'https://app.example.evil.example' })).toBe(403);
    await connect({ origin: 'https://app.example' });
    await connect();
  });

  it('the default allowlist admits the demo origins and clients without an Origin, and refuses others', async () => {
    const s = await start();
    await connect({ origin: 'http://127.0.0.1:8082' });
    await connect({ origin: 'http://localhost:8082' });
    await connect(); // no Origin (a Node peer) is allowed by default
    expect(await TestClient.refusal(s.url, { origin: 'http://127.0.0.1:9999' })).toBe(403);
  });

  it('with allowNoOrigin=false a client without an Origin is refused with 403', async () => {
    const s = await start({ allowNoOrigin: false, allowedOrigins: ['https://app.example'] });
    expect(await TestClient.refusal(s.url)).toBe(403);
    await connect({ origin: 'https://app.example' });
  });

  it('allowedOrigins ["*"] admits any origin', async () => {
    await start({ allowedOrigins: ['*'] });
    await connect({ origin: 'https://anything.example' });
  });

  it('a shared auth token: missing or wrong is refused with 401, the right ?token= is accepted', async () => {
    const s = await start({ authToken: 'open-sesame' });
    expect(await TestClient.refusal(s.url)).toBe(401);
    expect(await TestClient.refusal(`${s.url}?token=open-sesame-not`)).toBe(401);
    expect(await TestClient.refusal(`${s.url}?token=`)).toBe(401);
    await connect({}, '?token=open-sesame');
  });

  it('an HMAC access token: valid is accepted; expired, tampered or missing is refused with 401', async () => {
    const secret = 'hmac-secret-for-tests';
    const s = await start({ authHmacSecret: secret });
    const nowSeconds = Math.floor(Date.now() / 1000);
    const valid = mintAccessToken(secret, nowSeconds + 60);
    await connect({}, `?token=${encodeURIComponent(valid)}`);

    const expired = mintAccessToken(secret, nowSeconds - 5);
    expect(await TestClient.refusal(`${s.url}?token=${encodeURIComponent(expired)}`)).toBe(401);
    const otherSecret = mintAccessToken('another-secret', nowSeconds + 60);
    expect(await TestClient.refusal(`${s.url}?token=${encodeURIComponent(otherSecret)}`)).toBe(401);
    // Moving the expiry without re-signing does not work.
    const [, signature] = valid.split('.');
    const extended = `${nowSeconds + 86_400}.${signature}`;
    expect(await TestClient.refusal(`${s.url}?token=${encodeURIComponent(extended)}`)).toBe(401);
    expect(await TestClient.refusal(s.url)).toBe(401);
  });

  it('an unsupported ?v= gets unsupported-version and a close with 4001', async () => {
    const s = await start();
    for (const version of ['99', 'abc']) {
      const client = new TestClient(`${s.url}?v=${version}`);
      clients.push(client);
      const error = await client.next('error');
      expect(error.code).toBe('unsupported-version');
      expect(error.message).toContain('1');
      expect((await client.closed).code).toBe(4001);
      expect(client.all('peer-id')).toEqual([]);
    }
    await connect({}, '?v=1');
  });

  it('refused upgrades are counted by reason in /metrics', async () => {
    const s = await start({ authToken: 'open-sesame', allowedOrigins: ['https://app.example'] });
    expect(await TestClient.refusal(s.url, { origin: 'https://evil.example' })).toBe(403);
    expect(await TestClient.refusal(s.url)).toBe(401);
    const text = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text();
    expect(text).toContain('handoff_upgrade_rejections_total{reason="origin"} 1');
    expect(text).toContain('handoff_upgrade_rejections_total{reason="token"} 1');
  });
});
