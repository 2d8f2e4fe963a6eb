import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Capabilities } from '../../protocol/index.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { demoCapabilities, TestClient, type TestClientOptions } from '../support/signaling-client.ts';
import { startTestServer } from '../support/signaling-server.ts';
import { waitUntil } from '../support/wait.ts';

const offerSdp = { type: 'offer', sdp: 'v=0 offer' } as const;

describe('routing between peers', () => {
  let server: SignalingServer;
  const clients: TestClient[] = [];
  const connect = async (options?: TestClientOptions) => {
    const client = await TestClient.connect(server.url, options);
    clients.push(client);
    return client;
  };
  beforeEach(async () => {
    server = await startTestServer({ resumeGraceMs: 10_000 });
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) {
      expect(client.invalid).toEqual([]);
      client.terminate();
    }
    await server.close();
  });

  it("a client that writes another peer's id as fromPeerId: the target sees the sender's real id", async () => {
    const a = await connect();
    const b = await connect();
    const c = await connect();
    a.send({ type: 'offer', targetPeerId: b.peerId, fromPeerId: c.peerId, sdp: offerSdp });
    expect(await b.next('offer')).toMatchObject({ fromPeerId: a.peerId, targetPeerId: b.peerId });

    a.send({
      type: 'answer',
      targetPeerId: b.peerId,
      fromPeerId: 'evil',
      sdp: { type: 'answer', sdp: 'v=0 answer' },
    });
    expect((await b.next('answer')).fromPeerId).toBe(a.peerId);

    a.send({ type: 'ice-candidate', targetPeerId: b.peerId, fromPeerId: b.peerId, candidate: null });
    expect((await b.next('ice-candidate')).fromPeerId).toBe(a.peerId);

    a.send({
      type: 'relay',
      targetPeerId: b.peerId,
      fromPeerId: 'evil',
      payload: { type: 'link-ping', ts: 1 },
    });
    expect((await b.next('relay')).fromPeerId).toBe(a.peerId);
    // The peer whose id was borrowed got nothing.
    await c.roundTrip();
    expect(c.all('offer')).toEqual([]);
  });

  it('an offer to a peer id that never connected is refused with unknown-target naming that id', async () => {
    const a = await connect();
    a.send({ type: 'offer', targetPeerId: 'nobody-here', sdp: offerSdp });
    const error = await a.next('error');
    expect(error).toMatchObject({ code: 'unknown-target', targetPeerId: 'nobody-here', inReplyTo: 'offer' });
    expect(error.retryAfterMs).toBeUndefined();
  });

  it('an offer a peer addresses to itself is refused with unknown-target', async () => {
    const a = await connect();
    a.send({ type: 'offer', targetPeerId: a.peerId, sdp: offerSdp });
    expect(await a.next('error')).toMatchObject({ code: 'unknown-target', targetPeerId: a.peerId });
    await a.roundTrip();
    expect(a.all('offer')).toEqual([]);
  });

  it('an offer to a peer that left for good is refused with unknown-target', async () => {
    const a = await connect();
    const b = await connect();
    b.send({ type: 'leave' });
    expect((await b.closed).code).toBe(1000);
    await waitUntil(() => server.registry.get(b.peerId) === undefined, 'the server forgot the peer');
    a.send({ type: 'offer', targetPeerId: b.peerId, sdp: offerSdp });
    expect(await a.next('error')).toMatchObject({ code: 'unknown-target', targetPeerId: b.peerId });
  });

  it('an offer to a peer whose connection dropped (in its resume grace) says to retry shortly', async () => {
    const a = await connect();
    const b = await connect();
    b.terminate();
    await waitUntil(() => server.registry.get(b.peerId)?.port === null, 'the session waits for a resume');
    a.send({ type: 'offer', targetPeerId: b.peerId, sdp: offerSdp });
    const error = await a.next('error');
    expect(error).toMatchObject({ code: 'unknown-target', targetPeerId: b.peerId });
    expect(error.retryAfterMs).toBeGreaterThan(0);
  });

  it('a prompt-response relayed through the server arrives intact, stamped with the sender', async () => {
    const a = await connect();
    const b = await connect();
    const payload = {
      type: 'prompt-response',
      taskId: 'task-1',
      seq: 3,
      chunk: 'Hello from the serving peer ✓',
      isComplete: false,
      metadata: { model: 'demo-1', tokens: 12, cached: false, note: null },
    } as const;
    b.send({ type: 'relay', targetPeerId: a.peerId, payload });
    const relayed = await a.next('relay');
    expect(relayed).toEqual({ type: 'relay', targetPeerId: a.peerId, fromPeerId: b.peerId, payload });
  });

  it('a relay whose payload breaks its schema is refused naming the field, and the target gets nothing', async () => {
    const a = await connect();
    const b = await connect();
    b.send({
      type: 'relay',
      targetPeerId: a.peerId,
      payload: { type: 'prompt-response', taskId: 'task-1', seq: -1, chunk: 'x', isComplete: false },
    });
    const error = await b.next('error');
    expect(error.code).toBe('invalid-message');
    expect(error.inReplyTo).toBe('relay');
    expect(error.message).toContain('`payload.seq`');

    b.send({ type: 'relay', targetPeerId: a.peerId, payload: { type: 'not-a-task-message' } });
    expect((await b.next('error')).message).toContain('`payload.type`');
    await a.roundTrip();
    expect(a.all('relay')).toEqual([]);
  });

  describe('discover', () => {
    const announce = async (
      client: TestClient & { peerId: string },
      capabilities: Capabilities,
      observers: TestClient[],
    ) => {
      client.send({ type: 'capability-announce', capabilities });
      // Once an observer hears of it, the registry holds it.
      for (const observer of observers) {
        await observer.next('peer-capability-update', (m) => m.peerId === client.peerId);
      }
    };
    const discover = async (client: TestClient, requirements: Record<string, unknown>) => {
      client.send({
        type: 'discover',
        requestId: 'q1',
        requirements: { needsAI: false, minQuota: 0, preferredModels: [], ...requirements },
      });
      const found = await client.next('peers-discovered', (m) => m.requestId === 'q1');
      return found.peers;
    };

    it('ranks matching peers best first and never returns the requester', async () => {
      const requester = await connect();
      const rich = await connect();
      const middling = await connect();
      const poor = await connect();
      const human = await connect();
      // The requester itself has the best offer of all; it must still not find itself.
      await announce(requester, demoCapabilities(100, ['m1']), [rich]);
      await announce(poor, demoCapabilities(5, ['m1']), [requester]);
      await announce(rich, demoCapabilities(90, ['m1']), [requester]);
      await announce(human, { hasAI: false, models: [] }, [requester]);
      await announce(middling, demoCapabilities(40, ['m1']), [requester]);

      const peers = await discover(requester, {});
      const ids = peers.map((p) => p.peerId);
      expect(ids).not.toContain(requester.peerId);
      expect(ids.slice(0, 3)).toEqual([rich.peerId, middling.peerId, poor.peerId]);
      expect(ids).toContain(human.peerId);
      expect(ids).toHaveLength(4);
      const scores = peers.map((p) => p.score);
      expect(scores).toEqual([...scores].sort((x, y) => y - x));
      expect(scores[0]).toBeGreaterThan(scores[1] as number);
      expect(peers[0]?.capabilities.quota?.availableQuota).toBe(90);
    });

    it('applies needsAI, minQuota, preferredModels, requireModel and limit', async () => {
      const requester = await connect();
      const m1Rich = await connect();
      const m2Only = await connect();
      const bothPoor = await connect();
      const human = await connect();
      await announce(m1Rich, demoCapabilities(90, ['m1']), [requester]);
      await announce(m2Only, demoCapabilities(50, ['m2']), [requester]);
      await announce(bothPoor, demoCapabilities(10, ['m1', 'm2']), [requester]);
      await announce(human, { hasAI: false, models: [] }, [requester]);

      const ids = async (requirements: Record<string, unknown>) =>
        (await discover(requester, requirements)).map((p) => p.peerId);

      expect(await ids({})).toContain(human.peerId);
      expect(await ids({ needsAI: true })).toEqual([m1Rich.peerId, m2Only.peerId, bothPoor.peerId]);
      expect(await ids({ needsAI: true, minQuota: 40 })).toEqual([m1Rich.peerId, m2Only.peerId]);
      expect(await ids({ needsAI: true, minQuota: 91 })).toEqual([]);
      // A preferred model lifts a peer above a richer one that lacks it, without excluding the latter.
      expect(await ids({ needsAI: true, preferredModels: ['m2'] })).toEqual([
        m2Only.peerId,
        bothPoor.peerId,
        m1Rich.peerId,
      ]);
      expect(await ids({ needsAI: true, preferredModels: ['m2'], requireModel: true })).toEqual([
        m2Only.peerId,
        bothPoor.peerId,
      ]);
      expect(await ids({ needsAI: true, limit: 2 })).toEqual([m1Rich.peerId, m2Only.peerId]);
      expect(await ids({ needsAI: true, limit: 1, preferredModels: ['m2'], requireModel: true })).toEqual([
        m2Only.peerId,
      ]);
    });

    it('does not return peers that have not announced, nor peers that left', async () => {
      const requester = await connect();
      const silent = await connect();
      const leaver = await connect();
      await announce(leaver, demoCapabilities(50), [requester]);
      expect((await discover(requester, {})).map((p) => p.peerId)).toEqual([leaver.peerId]);
      leaver.send({ type: 'leave' });
      await requester.next('peer-left', (m) => m.peerId === leaver.peerId);
      const ids = (await discover(requester, {})).map((p) => p.peerId);
      expect(ids).not.toContain(silent.peerId);
      expect(ids).not.toContain(leaver.peerId);
    });
  });

  it('a peer announcing five times in a burst: others end with its latest capabilities, at most five updates', async () => {
    const observer = await connect();
    const announcer = await connect();
    for (let round = 1; round <= 5; round++) {
      announcer.send({ type: 'capability-announce', capabilities: demoCapabilities(round * 10) });
    }
    const latest = (m: { capabilities: Capabilities }) => m.capabilities.quota?.availableQuota === 50;
    await observer.next('peer-capability-update', (m) => m.peerId === announcer.peerId && latest(m));
    // Every update is flushed by now: the latest one was, and nothing newer exists.
    const updates = observer.all('peer-capability-update', (m) => m.peerId === announcer.peerId);
    expect(updates.length).toBeLessThanOrEqual(5);
    expect(updates.at(-1)?.capabilities.quota?.availableQuota).toBe(50);
    const quotas = updates.map((m) => m.capabilities.quota?.availableQuota ?? 0);
    expect(quotas).toEqual([...quotas].sort((x, y) => x - y));
    // The announcer never hears of itself.
    await announcer.roundTrip();
    expect(announcer.all('peer-capability-update', (m) => m.peerId === announcer.peerId)).toEqual([]);
  });
});

describe('capability-update coalescing with a long window', () => {
  it('announcements inside one window reach the others as one update carrying the latest', async () => {
    const server = await startTestServer({ coalesceMs: 400 });
    const observer = await TestClient.connect(server.url);
    const announcer = await TestClient.connect(server.url);
    try {
      for (let round = 1; round <= 5; round++) {
        announcer.send({ type: 'capability-announce', capabilities: demoCapabilities(round * 10) });
      }
      const update = await observer.next('peer-capability-update');
      expect(update.capabilities.quota?.availableQuota).toBe(50);
      await observer.roundTrip();
      expect(observer.all('peer-capability-update')).toHaveLength(1);
    } finally {
      observer.terminate();
      announcer.terminate();
      await server.close();
    }
  });
});
