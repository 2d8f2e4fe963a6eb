import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MAX_FRAME_BYTES } from '../../protocol/index.ts';
import type { SignalingConfig } from '../../signaling/config.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { TestClient } from '../support/signaling-client.ts';
import { startTestServer } from '../support/signaling-server.ts';
import { waitUntil } from '../support/wait.ts';

/*
 * Floods against the real signaling server (uWS on 127.0.0.1, in this process). Each flood is bounded
 * in count; the server's limits are configured small so the limits, not the clock, end it. What is
 * asserted is delivery and order for everyone else, never timings.
 */

type Client = TestClient & { peerId: string };
let server: SignalingServer | undefined;
const clients: TestClient[] = [];

const start = async (overrides: Partial<SignalingConfig>) => {
  server = await startTestServer(overrides);
  return server;
};
const connect = async (): Promise<Client> => {
  const client = await TestClient.connect(`${server?.url}`, { answerHeartbeats: true });
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

const yieldToServer = () => new Promise<void>((resolve) => setImmediate(resolve));

const relay = (targetPeerId: string, seq: number, chunk = `chunk ${seq}`) => ({
  type: 'relay',
  targetPeerId,
  payload: { type: 'prompt-response', taskId: 'flood', seq, chunk, isComplete: false },
});

/** Relay seqs `client` received from `from`, in arrival order. */
const seqsFrom = (client: TestClient, from: string) =>
  client
    .all('relay', (m) => m.fromPeerId === from)
    .map((m) => (m.payload.type === 'prompt-response' ? m.payload.seq : -1));

const range = (count: number) => Array.from({ length: count }, (_, i) => i);
const isIncreasing = (seqs: number[]) => seqs.every((seq, i) => i === 0 || seq > (seqs[i - 1] as number));

/** Pairs of well-behaved peers relaying to each other; `talk(n)` sends the next `n` in each direction. */
function bystanderPairs(pairs: [Client, Client][]) {
  let sent = 0;
  return {
    talk(count: number) {
      for (let i = 0; i < count; i++, sent++) {
        for (const [x, y] of pairs) {
          x.send(relay(y.peerId, sent));
          y.send(relay(x.peerId, sent));
        }
      }
    },
    /** Everything each sent reached the other, once and in order; none of them got an error. */
    async assertAllDelivered() {
      const peers = pairs.flat();
      await Promise.all(peers.map((peer) => peer.roundTrip()));
      await waitUntil(
        () =>
          pairs.every(
            ([x, y]) => seqsFrom(x, y.peerId).length >= sent && seqsFrom(y, x.peerId).length >= sent,
          ),
        `every bystander received the ${sent} relays sent to it`,
      );
      for (const [x, y] of pairs) {
        expect(seqsFrom(y, x.peerId)).toEqual(range(sent));
        expect(seqsFrom(x, y.peerId)).toEqual(range(sent));
      }
      for (const peer of peers) expect(peer.all('error')).toEqual([]);
      return sent;
    },
  };
}

describe('a message flood', () => {
  it('a client flooding 5,000 relays gets rate-limited errors, then 1008; two pairs keep relaying, every message delivered in order', async () => {
    const maxRateLimitStrikes = 1_000;
    const messageBurst = 100;
    await start({ messagesPerSecond: 200, messageBurst, maxRateLimitStrikes, abuseWindowMs: 60_000 });
    const [a, b, c, d, flooder] = [
      await connect(),
      await connect(),
      await connect(),
      await connect(),
      await connect(),
    ];
    const bystanders = bystanderPairs([
      [a, b],
      [c, d],
    ]);

    // 5,000 relays to b as fast as the client can write them, in 10 bursts; the bystanders talk
    // (well within their own budget) between the bursts, while the server is still reading the flood.
    const flood = 5_000;
    let sent = 0;
    for (let burst = 0; burst < 10; burst++) {
      for (let i = 0; i < flood / 10; i++) flooder.send(relay(b.peerId, sent++));
      bystanders.talk(4);
      await yieldToServer();
    }
    expect((await flooder.closed).code).toBe(1008);

    // Refusals came one per dropped frame, each a rate-limit with a retry hint, up to the strike limit.
    const errors = flooder.all('error');
    expect(errors).toHaveLength(maxRateLimitStrikes);
    for (const error of errors) {
      expect(error).toMatchObject({ code: 'rate-limited' });
      expect(error.retryAfterMs).toBeGreaterThan(0);
    }
    // What was admitted (the burst, plus the refill while it lasted) reached b, in order; the rest did not.
    await b.roundTrip();
    const admitted = seqsFrom(b, flooder.peerId);
    expect(admitted.length).toBeGreaterThanOrEqual(messageBurst);
    expect(admitted.length + errors.length).toBeLessThan(flood);
    expect(admitted.slice(0, messageBurst)).toEqual(range(messageBurst));
    expect(isIncreasing(admitted)).toBe(true);
    // b talked with the flooder, so it hears that it is gone.
    expect(await b.next('peer-left', (m) => m.peerId === flooder.peerId)).toMatchObject({ reason: 'closed' });

    expect(await bystanders.assertAllDelivered()).toBe(40);
    expect(server?.registry.get(flooder.peerId)).toBeUndefined();
  });

  it('a client flooding 2,000 invalid frames gets one error each up to maxViolations, then 1008; the others never notice', async () => {
    const maxViolations = 200;
    await start({ messagesPerSecond: 100_000, messageBurst: 100_000, maxViolations, abuseWindowMs: 60_000 });
    const [a, b, flooder] = [await connect(), await connect(), await connect()];
    const bystanders = bystanderPairs([[a, b]]);
    const junk = ['{', '[]', '{"type":7}', '{"type":"relay"}', '{"type":"offer","targetPeerId":"a b"}'];
    for (let burst = 0; burst < 10; burst++) {
      for (let i = 0; i < 200; i++) flooder.sendRaw(junk[i % junk.length] as string);
      bystanders.talk(5);
      await yieldToServer();
    }
    expect((await flooder.closed).code).toBe(1008);
    // Every invalid frame up to the one that tipped it over was answered; nothing after the close.
    const errors = flooder.all('error');
    expect(errors).toHaveLength(maxViolations + 1);
    expect(new Set(errors.map((e) => e.code))).toEqual(
      new Set(['bad-json', 'invalid-message', 'unknown-type']),
    );
    expect(await bystanders.assertAllDelivered()).toBe(50);
  });
});

describe('a relay flood toward one slow reader', () => {
  it('senders get target-congested while its backlog is high, never silence; other targets are unaffected; it recovers once it reads', async () => {
    const s = await start({
      // Budgets out of the way: only the target's backlog may stop these senders.
      messagesPerSecond: 100_000,
      messageBurst: 100_000,
      relayBytesPerSecond: 1e9,
      relayBurstBytes: 1e9,
      congestionHighWaterBytes: 256 * 1024,
      congestionLowWaterBytes: 64 * 1024,
      maxCongestedMs: 20_000,
      resumeGraceMs: 20_000,
    });
    const [sender, other, slow, healthy] = [
      await connect(),
      await connect(),
      await connect(),
      await connect(),
    ];
    const slowSocket = (slow.ws as unknown as { _socket: Socket })._socket;
    const congestedRefusals = (client: TestClient) =>
      client.all('error', (m) => m.code === 'target-congested' && m.targetPeerId === slow.peerId);
    const slowActor = () =>
      [...s.hub.getSnapshot().context.sockets.values()].find(
        (actor) => actor.getSnapshot().context.peerId === slow.peerId,
      );

    // The slow reader stops reading; the sender floods it with 16 KB relays until the server refuses.
    slowSocket.pause();
    const chunk = 'x'.repeat(16_000);
    let seq = 0;
    while (seq < 4_000 && congestedRefusals(sender).length === 0) {
      for (let i = 0; i < 20; i++) sender.send(relay(slow.peerId, seq++, chunk));
      await sender.receives('error', 20, (m) => m.type === 'error' && m.code === 'target-congested');
    }
    // A few more while it is congested: each must be refused.
    for (let i = 0; i < 50; i++) sender.send(relay(slow.peerId, seq++, chunk));
    await sender.roundTrip();
    expect(congestedRefusals(sender).length).toBeGreaterThan(50);
    expect(congestedRefusals(sender)[0]).toMatchObject({ inReplyTo: 'relay' });
    expect(congestedRefusals(sender)[0]?.retryAfterMs).toBeGreaterThan(0);
    expect(slowActor()?.getSnapshot().hasTag('congested')).toBe(true);

    // Another sender is refused too: the backlog is the target's, not the first sender's.
    other.send({ type: 'offer', targetPeerId: slow.peerId, sdp: { type: 'offer', sdp: 'v=0' } });
    expect(await other.next('error')).toMatchObject({ code: 'target-congested', inReplyTo: 'offer' });
    // Meanwhile the sender's traffic to a peer that reads goes through, all of it, in order.
    for (let i = 0; i < 50; i++) sender.send(relay(healthy.peerId, i));
    await waitUntil(
      () => seqsFrom(healthy, sender.peerId).length >= 50,
      'the healthy peer got its 50 relays',
    );
    expect(seqsFrom(healthy, sender.peerId)).toEqual(range(50));

    // The slow reader catches up: its backlog drains, the congestion clears, and it is served again.
    slowSocket.resume();
    await waitUntil(() => slowActor()?.getSnapshot().hasTag('congested') === false, 'the backlog drained');
    sender.send(relay(slow.peerId, seq++, 'after'));
    await waitUntil(
      () => seqsFrom(slow, sender.peerId).includes(seq - 1),
      'the relay sent after the drain arrived',
    );
    await slow.roundTrip();
    await sender.roundTrip();

    // No silence: each relay the sender wrote was either delivered, in order, or refused with an error.
    const delivered = seqsFrom(slow, sender.peerId);
    expect(isIncreasing(delivered)).toBe(true);
    expect(delivered.length + congestedRefusals(sender).length).toBe(seq);
    expect(sender.all('error').filter((m) => m.code !== 'target-congested')).toEqual([]);
    expect(slow.all('error')).toEqual([]);
    expect(slowActor()?.getSnapshot().matches('active')).toBe(true);
  });
});

describe('an oversize-frame flood', () => {
  it('eight clients each flooding 20 frames over 64 KiB are each closed with 1009, with no error frames; a pair keeps relaying', async () => {
    const s = await start({ resumeGraceMs: 20_000 });
    const [a, b] = [await connect(), await connect()];
    const bystanders = bystanderPairs([[a, b]]);
    const baseline = { peers: s.registry.size, sockets: s.hub.getSnapshot().context.sockets.size };
    const flooders = await Promise.all(Array.from({ length: 8 }, () => connect()));
    const oversize = JSON.stringify({ type: 'heartbeat', ts: 1, pad: 'x'.repeat(MAX_FRAME_BYTES) });
    expect(Buffer.byteLength(oversize)).toBeGreaterThan(MAX_FRAME_BYTES);
    for (let burst = 0; burst < 4; burst++) {
      for (const flooder of flooders) for (let i = 0; i < 5; i++) flooder.sendRaw(oversize);
      bystanders.talk(5);
      await yieldToServer();
    }
    for (const flooder of flooders) {
      expect((await flooder.closed).code).toBe(1009);
      expect(flooder.all('error')).toEqual([]);
    }
    expect(await bystanders.assertAllDelivered()).toBe(20);
    // A 1009 is a violation: the sessions end at once, no resume grace.
    await waitUntil(
      () =>
        s.registry.size === baseline.peers && s.hub.getSnapshot().context.sockets.size === baseline.sockets,
      'the flooders’ sessions and socket actors are gone',
    );
  });

  it('a frame over 1 MiB is dropped by the transport before it is read: the socket fails (1006), the server and the others go on', async () => {
    await start({});
    const [a, b] = [await connect(), await connect()];
    const bystanders = bystanderPairs([[a, b]]);
    // A raw `ws` socket: TestClient's reader is not needed, and `ws` would refuse to receive this itself.
    const giant = new WebSocket(`${server?.url}`);
    const closed = new Promise<number>((resolve) => giant.once('close', (code) => resolve(code)));
    giant.on('error', () => {});
    await new Promise((resolve) => giant.once('open', resolve));
    giant.send('x'.repeat(1024 * 1024 + 1));
    bystanders.talk(10);
    expect(await closed).toBe(1006);
    expect(await bystanders.assertAllDelivered()).toBe(10);
    const fresh = await connect();
    expect((await fresh.roundTrip()).peers).toEqual([]);
  });
});
