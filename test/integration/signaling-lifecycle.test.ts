import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { SignalingConfig } from '../../signaling/config.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { demoCapabilities, TestClient, type TestClientOptions } from '../support/signaling-client.ts';
import { startTestServer } from '../support/signaling-server.ts';
import { waitUntil } from '../support/wait.ts';

const servers: SignalingServer[] = [];
const clients: TestClient[] = [];
const start = async (overrides: Partial<SignalingConfig> = {}) => {
  const server = await startTestServer(overrides);
  servers.push(server);
  return server;
};
const connect = async (server: SignalingServer, options?: TestClientOptions, query = '') => {
  const client = await TestClient.connect(`${server.url}${query}`, options);
  clients.push(client);
  return client;
};
afterEach(async () => {
  for (const client of clients.splice(0)) {
    expect(client.invalid).toEqual([]);
    client.terminate();
  }
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

const announce = async (peer: TestClient & { peerId: string }, observer: TestClient, quota = 50) => {
  peer.send({ type: 'capability-announce', capabilities: demoCapabilities(quota) });
  return observer.next('peer-capability-update', (m) => m.peerId === peer.peerId);
};
/** Waits until the server has seen this peer's socket close (its session is gone or in grace). */
const serverSawClose = (server: SignalingServer, peerId: string) =>
  waitUntil(() => !server.registry.get(peerId)?.port, `the server saw ${peerId} disconnect`);

describe('leave detection', () => {
  it('a client that closes with 1000: the others get peer-left "left" at once, with no resume grace', async () => {
    // A grace far longer than any wait below: a peer-left here cannot have come from the grace.
    const server = await start({ resumeGraceMs: 600_000 });
    const leaver = await connect(server);
    const observer = await connect(server);
    await announce(leaver, observer);
    leaver.close(1000);
    expect(await observer.next('peer-left', (m) => m.peerId === leaver.peerId)).toMatchObject({
      reason: 'left',
    });
    expect(server.registry.get(leaver.peerId)).toBeUndefined();
  });

  it('a client that sends leave: its socket closes with 1000 and the others get peer-left "left" at once', async () => {
    const server = await start({ resumeGraceMs: 600_000 });
    const leaver = await connect(server);
    const observer = await connect(server);
    await announce(leaver, observer);
    leaver.send({ type: 'leave' });
    expect((await leaver.closed).code).toBe(1000);
    expect((await observer.next('peer-left', (m) => m.peerId === leaver.peerId)).reason).toBe('left');
  });

  it('a client that sends leave while a heartbeat is outstanding still leaves at once', async () => {
    const server = await start({
      heartbeatIntervalMs: 50,
      heartbeatTimeoutMs: 10_000,
      resumeGraceMs: 600_000,
    });
    const leaver = await connect(server);
    const observer = await connect(server, { answerHeartbeats: true });
    // The observer gets to know the leaver by offering to it; the leaver itself sends nothing, so
    // once it has a heartbeat, the server is certainly waiting for its answer.
    observer.send({ type: 'offer', targetPeerId: leaver.peerId, sdp: { type: 'offer', sdp: 'v=0' } });
    await leaver.next('offer');
    await leaver.next('heartbeat');
    leaver.send({ type: 'leave' });
    expect((await leaver.closed).code).toBe(1000);
    expect((await observer.next('peer-left', (m) => m.peerId === leaver.peerId)).reason).toBe('left');
  });

  it('a client that vanishes without a close frame: peer-left "closed" only after the resume grace', async () => {
    const server = await start({ resumeGraceMs: 800 });
    const dropped = await connect(server);
    const observer = await connect(server);
    await announce(dropped, observer);
    dropped.terminate();
    await serverSawClose(server, dropped.peerId);
    // The session is in its grace: nobody has been told yet.
    expect(server.registry.get(dropped.peerId)).toBeDefined();
    await observer.roundTrip();
    expect(observer.all('peer-left')).toEqual([]);
    expect((await observer.next('peer-left', (m) => m.peerId === dropped.peerId)).reason).toBe('closed');
    expect(server.registry.get(dropped.peerId)).toBeUndefined();
  });

  it('a client that closes with a code other than 1000 keeps its session for the grace, then is "closed"', async () => {
    const server = await start({ resumeGraceMs: 800 });
    const dropped = await connect(server);
    const observer = await connect(server);
    await announce(dropped, observer);
    dropped.close(4100);
    await serverSawClose(server, dropped.peerId);
    expect(server.registry.get(dropped.peerId)).toBeDefined();
    expect((await observer.next('peer-left', (m) => m.peerId === dropped.peerId)).reason).toBe('closed');
  });

  it('a client that stops answering heartbeats is closed with 4000, then peer-left "timeout" after the grace', async () => {
    const server = await start({ heartbeatIntervalMs: 150, heartbeatTimeoutMs: 400, resumeGraceMs: 300 });
    const silent = await connect(server);
    const observer = await connect(server, { answerHeartbeats: true });
    await announce(silent, observer);
    await silent.next('heartbeat');
    expect((await silent.closed).code).toBe(4000);
    expect((await observer.next('peer-left', (m) => m.peerId === silent.peerId)).reason).toBe('timeout');
    // The observer, which answered, is still served.
    await observer.roundTrip();
    expect(observer.ws.readyState).toBe(observer.ws.OPEN);
  });

  it('a client that answers every heartbeat stays connected across many intervals', async () => {
    const server = await start({ heartbeatIntervalMs: 80, heartbeatTimeoutMs: 500 });
    const echoing = await connect(server, { answerHeartbeats: true });
    const busy = await connect(server);
    const beats = 6;
    await Promise.all([
      (async () => {
        for (let beat = 0; beat < beats; beat++) await echoing.next('heartbeat');
      })(),
      (async () => {
        // `busy` never sends `heartbeat` but answers each one with another message: that counts too.
        for (let beat = 0; beat < beats; beat++) {
          await busy.next('heartbeat');
          busy.send({ type: 'ice-servers-request' });
        }
      })(),
    ]);
    await echoing.roundTrip();
    await busy.roundTrip();
    expect(echoing.ws.readyState).toBe(echoing.ws.OPEN);
    expect(busy.ws.readyState).toBe(busy.ws.OPEN);
    expect(echoing.all('error')).toEqual([]);
  });

  describe('who hears peer-left', () => {
    it('a peer that never announced and never talked to anyone leaves: nobody is told', async () => {
      const server = await start();
      const quiet = await connect(server);
      const a = await connect(server);
      const b = await connect(server);
      quiet.send({ type: 'discover', requirements: { needsAI: false, minQuota: 0, preferredModels: [] } });
      await quiet.next('peers-discovered');
      quiet.send({ type: 'leave' });
      await quiet.closed;
      await waitUntil(() => server.registry.get(quiet.peerId) === undefined, 'the session ended');
      await a.roundTrip();
      await b.roundTrip();
      expect(a.all('peer-left')).toEqual([]);
      expect(b.all('peer-left')).toEqual([]);
    });

    it('a peer that never announced but sent an offer to X: X is told when it leaves, the others are not', async () => {
      const server = await start();
      const caller = await connect(server);
      const x = await connect(server);
      const bystander = await connect(server);
      caller.send({ type: 'offer', targetPeerId: x.peerId, sdp: { type: 'offer', sdp: 'v=0' } });
      await x.next('offer');
      caller.close(1000);
      expect(await x.next('peer-left', (m) => m.peerId === caller.peerId)).toMatchObject({ reason: 'left' });
      await bystander.roundTrip();
      expect(bystander.all('peer-left')).toEqual([]);
    });

    it('a peer that was only ever offered to by X: X is told when it leaves', async () => {
      const server = await start({ resumeGraceMs: 200 });
      const x = await connect(server);
      const callee = await connect(server);
      const bystander = await connect(server);
      x.send({ type: 'offer', targetPeerId: callee.peerId, sdp: { type: 'offer', sdp: 'v=0' } });
      await callee.next('offer');
      callee.terminate();
      expect(await x.next('peer-left', (m) => m.peerId === callee.peerId)).toMatchObject({
        reason: 'closed',
      });
      await bystander.roundTrip();
      expect(bystander.all('peer-left')).toEqual([]);
    });

    it('a peer that re-announces and leaves before that update goes out: those who heard its first announcement are told', async () => {
      const server = await start({ coalesceMs: 400 });
      const leaver = await connect(server);
      const observer = await connect(server);
      await announce(leaver, observer, 10);
      leaver.send({ type: 'capability-announce', capabilities: demoCapabilities(20) });
      leaver.send({ type: 'leave' });
      expect((await observer.next('peer-left', (m) => m.peerId === leaver.peerId)).reason).toBe('left');
    });

    it('a peer that announces for the first time and leaves before the update goes out: nobody hears of it', async () => {
      const server = await start({ coalesceMs: 400 });
      const observer = await connect(server);
      const ghost = await connect(server);
      const later = await connect(server);
      ghost.send({ type: 'capability-announce', capabilities: demoCapabilities(20) });
      ghost.send({ type: 'leave' });
      await ghost.closed;
      await waitUntil(() => server.registry.get(ghost.peerId) === undefined, 'the session ended');
      // Any flush that could have carried the ghost's update has gone out once this one arrives.
      await announce(later, observer);
      expect(observer.all('peer-capability-update', (m) => m.peerId === ghost.peerId)).toEqual([]);
      expect(observer.all('peer-left')).toEqual([]);
    });

    it('a peer that announced but then left: every connected peer is told, even those it never talked to', async () => {
      const server = await start();
      const leaver = await connect(server);
      const a = await connect(server);
      const b = await connect(server);
      await announce(leaver, a);
      await b.next('peer-capability-update', (m) => m.peerId === leaver.peerId);
      leaver.send({ type: 'leave' });
      await a.next('peer-left', (m) => m.peerId === leaver.peerId);
      await b.next('peer-left', (m) => m.peerId === leaver.peerId);
      // The leaver is not told about itself; it has gone.
      expect(leaver.all('peer-left')).toEqual([]);
    });
  });
});

describe('resume', () => {
  it('reconnecting with the resume token within the grace keeps the peer id and capabilities; others notice nothing', async () => {
    const server = await start({ resumeGraceMs: 10_000 });
    const a = await connect(server);
    const b = await connect(server);
    const capabilities = demoCapabilities(77);
    a.send({ type: 'capability-announce', capabilities });
    await b.next('peer-capability-update', (m) => m.peerId === a.peerId);
    a.terminate();
    await serverSawClose(server, a.peerId);

    const again = await connect(server, {}, `?resume=${encodeURIComponent(a.hello.resumeToken)}`);
    expect(again.peerId).toBe(a.peerId);
    expect(again.hello.resumed).toBe(true);
    expect(again.hello.capabilities).toEqual(capabilities);
    expect(again.hello.resumeToken).not.toBe(a.hello.resumeToken);

    // Others: no leave, no new join; the peer is still discoverable, and reachable on its new socket.
    await b.roundTrip();
    expect(b.all('peer-left')).toEqual([]);
    expect(b.all('peer-capability-update', (m) => m.peerId === a.peerId)).toHaveLength(1);
    b.send({ type: 'discover', requirements: { needsAI: true, minQuota: 0, preferredModels: [] } });
    expect((await b.next('peers-discovered', (m) => !m.requestId)).peers.map((p) => p.peerId)).toEqual([
      a.peerId,
    ]);
    b.send({ type: 'offer', targetPeerId: a.peerId, sdp: { type: 'offer', sdp: 'v=0' } });
    expect((await again.next('offer')).fromPeerId).toBe(b.peerId);
    expect(again.all('error')).toEqual([]);
  });

  it('a superseded resume token is rejected: resume-rejected and a brand-new peer id', async () => {
    const server = await start({ resumeGraceMs: 10_000 });
    const first = await connect(server);
    first.terminate();
    await serverSawClose(server, first.peerId);
    const second = await connect(server, {}, `?resume=${encodeURIComponent(first.hello.resumeToken)}`);
    expect(second.peerId).toBe(first.peerId);

    // The first token was rotated away: using it again starts a new session.
    const replay = await connect(server, {}, `?resume=${encodeURIComponent(first.hello.resumeToken)}`);
    expect(replay.hello.resumed).toBe(false);
    expect(replay.peerId).not.toBe(first.peerId);
    expect((await replay.next('error')).code).toBe('resume-rejected');
    // The live session was not disturbed.
    await second.roundTrip();
    expect(second.ws.readyState).toBe(second.ws.OPEN);
  });

  it('a forged or garbled resume token is rejected with resume-rejected', async () => {
    const server = await start();
    const real = await connect(server);
    const [peerId, issuedAt] = real.hello.resumeToken.split('.');
    for (const token of [`${peerId}.${issuedAt}.forged-signature`, 'garbage', `${real.peerId}.1.x.y`]) {
      const client = await connect(server, {}, `?resume=${encodeURIComponent(token)}`);
      expect(client.hello.resumed).toBe(false);
      expect(client.peerId).not.toBe(real.peerId);
      expect((await client.next('error')).code).toBe('resume-rejected');
    }
    await real.roundTrip();
  });

  it('resuming while the old socket is still open replaces it: the old socket is closed with 4002', async () => {
    const server = await start({ resumeGraceMs: 10_000 });
    const old = await connect(server);
    const observer = await connect(server);
    await announce(old, observer);
    const fresh = await connect(server, {}, `?resume=${encodeURIComponent(old.hello.resumeToken)}`);
    expect(fresh.peerId).toBe(old.peerId);
    expect(fresh.hello.resumed).toBe(true);
    expect((await old.closed).code).toBe(4002);
    await waitUntil(() => server.hub.getSnapshot().context.sockets.size === 2, 'the old socket was reaped');
    await observer.roundTrip();
    expect(observer.all('peer-left')).toEqual([]);
    observer.send({ type: 'offer', targetPeerId: old.peerId, sdp: { type: 'offer', sdp: 'v=0' } });
    expect((await fresh.next('offer')).fromPeerId).toBe(observer.peerId);
  });

  it('an upgrade with an unsupported ?v= and a valid resume token does not take over the live session', async () => {
    const server = await start({ resumeGraceMs: 10_000 });
    const live = await connect(server);
    const observer = await connect(server);
    await announce(live, observer);
    const wrong = new TestClient(`${server.url}?v=99&resume=${encodeURIComponent(live.hello.resumeToken)}`);
    clients.push(wrong);
    expect((await wrong.next('error')).code).toBe('unsupported-version');
    expect((await wrong.closed).code).toBe(4001);
    await waitUntil(
      () => server.hub.getSnapshot().context.sockets.size === 2,
      'the refused socket was reaped',
    );
    // The live session is untouched: still open, still registered, still reachable.
    await live.roundTrip();
    expect(live.ws.readyState).toBe(live.ws.OPEN);
    expect(server.registry.get(live.peerId)?.port).toBeTruthy();
    observer.send({ type: 'offer', targetPeerId: live.peerId, sdp: { type: 'offer', sdp: 'v=0' } });
    expect((await live.next('offer')).fromPeerId).toBe(observer.peerId);
    expect(observer.all('peer-left')).toEqual([]);
  });

  it('a server restarted with the same resumeSecret honours a token from before: same id, no capabilities', async () => {
    const resumeSecret = 'shared-resume-secret-for-the-restart-test';
    const before = await start({ resumeSecret });
    const peer = await connect(before);
    await announce(peer, await connect(before));
    const token = peer.hello.resumeToken;
    for (const client of clients.splice(0)) client.terminate();
    await before.close();
    servers.splice(servers.indexOf(before), 1);

    const after = await start({ resumeSecret });
    const back = await connect(after, {}, `?resume=${encodeURIComponent(token)}`);
    expect(back.peerId).toBe(peer.peerId);
    expect(back.hello.resumed).toBe(true);
    expect(back.hello.capabilities).toBeUndefined();
    // Not announced on this server until it announces again.
    const other = await connect(after);
    expect((await other.roundTrip()).peers).toEqual([]);
    await announce(back, other);
    expect((await other.roundTrip()).peers.map((p) => p.peerId)).toEqual([peer.peerId]);
  });

  it('a server with a different resumeSecret rejects the token and starts a new session', async () => {
    const first = await start({ resumeSecret: 'secret-one' });
    const peer = await connect(first);
    const second = await start({ resumeSecret: 'secret-two' });
    const client = await connect(second, {}, `?resume=${encodeURIComponent(peer.hello.resumeToken)}`);
    expect(client.hello.resumed).toBe(false);
    expect(client.peerId).not.toBe(peer.peerId);
    expect((await client.next('error')).code).toBe('resume-rejected');
  });
});

describe('ICE servers', () => {
  const turnSecret = 'coturn-static-auth-secret';
  const config = {
    stunUrls: ['stun:stun.example.org:3478'],
    turnUrls: ['turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:5349'],
    turnSecret,
    turnTtlSeconds: 600,
  };
  const expectTurnEntry = (
    iceServers: { urls: string | string[]; username?: string; credential?: string }[],
    peerId: string,
  ) => {
    expect(iceServers).toHaveLength(2);
    expect(iceServers[0]).toEqual({ urls: config.stunUrls });
    const turn = iceServers[1];
    expect(turn?.urls).toEqual(config.turnUrls);
    const [expiry, who] = (turn?.username ?? '').split(':');
    expect(who).toBe(peerId);
    const nowSeconds = Date.now() / 1000;
    expect(Number(expiry)).toBeGreaterThan(nowSeconds + config.turnTtlSeconds - 60);
    expect(Number(expiry)).toBeLessThanOrEqual(Math.ceil(nowSeconds) + config.turnTtlSeconds);
    const expected = createHmac('sha1', turnSecret)
      .update(turn?.username ?? '')
      .digest('base64');
    expect(turn?.credential).toBe(expected);
    return Number(expiry);
  };

  it('peer-id carries the STUN URLs and a TURN entry with coturn REST credentials for this peer', async () => {
    const server = await start(config);
    const peer = await connect(server);
    expectTurnEntry(peer.hello.iceServers, peer.peerId);
  });

  it('ice-servers-request gets a fresh list with its expiry', async () => {
    const server = await start(config);
    const peer = await connect(server);
    peer.send({ type: 'ice-servers-request' });
    const answer = await peer.next('ice-servers');
    const expiry = expectTurnEntry(answer.iceServers, peer.peerId);
    expect(answer.expiresAt).toBe(expiry * 1000);
  });

  it('without ICE configuration the list is empty and never expires', async () => {
    const server = await start();
    const peer = await connect(server);
    expect(peer.hello.iceServers).toEqual([]);
    peer.send({ type: 'ice-servers-request' });
    expect(await peer.next('ice-servers')).toEqual({ type: 'ice-servers', iceServers: [], expiresAt: 0 });
  });
});
