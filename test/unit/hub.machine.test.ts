import { afterEach, describe, expect, it } from 'vitest';
import { type Actor, createActor, SimulatedClock } from 'xstate';
import { type Capabilities, type PeerIdAssigned, PROTOCOL_VERSION } from '../../protocol/index.ts';
import { defaultConfig, type SignalingConfig } from '../../signaling/config.ts';
import { verifyResumeToken } from '../../signaling/credentials.ts';
import { heartbeatTickMs, hubMachine, type SocketActor } from '../../signaling/hub.machine.ts';
import { createLogger } from '../../signaling/logger.ts';
import { SignalingMetrics } from '../../signaling/metrics.ts';
import { PeerRegistry } from '../../signaling/peer-registry.ts';
import { MemorySocketPort } from '../support/memory-socket-port.ts';

const T0 = 1_767_225_600_000;

const caps = (availableQuota: number): Capabilities => ({
  hasAI: true,
  models: ['llama-3.1-8b'],
  quota: {
    totalQuota: 100,
    usedQuota: 100 - availableQuota,
    availableQuota,
    resetTime: T0,
    provider: 'ollama',
    capabilities: [],
  },
});

/** One client: its port, and the socket actor the hub bound to it. */
class Client {
  readonly port = new MemorySocketPort();
  readonly now: () => number;
  answered = 0;

  constructor(now: () => number) {
    this.now = now;
  }
  /** Whether `Hub.advance` answers this client's heartbeats, as a live browser would. */
  answersHeartbeats = true;

  get actor(): SocketActor {
    if (!this.port.actor) throw new Error('no socket actor was bound to this port');
    return this.port.actor as SocketActor;
  }

  get welcome(): PeerIdAssigned {
    return this.port.only('peer-id');
  }

  get peerId(): string {
    return this.welcome.peerId;
  }

  /** Sends a frame as the uWS transport would deliver it: its arrival is stamped on the port first. */
  send(message: Parameters<SocketActor['send']>[0]): void {
    this.port.heard(this.now());
    this.actor.send(message);
  }

  /** Answers every heartbeat not answered yet. */
  catchUp(): void {
    const beats = this.port.ofType('heartbeat');
    for (const beat of beats.slice(this.answered)) this.send({ type: 'heartbeat', ts: beat.ts });
    this.answered = beats.length;
  }
}

/** The hub actor on a simulated clock, with in-memory sockets. */
class Hub {
  readonly clock = new SimulatedClock();
  readonly registry = new PeerRegistry();
  readonly metrics = new SignalingMetrics();
  readonly config: SignalingConfig;
  readonly clients: Client[] = [];
  readonly errors: unknown[] = [];
  readonly actor: Actor<typeof hubMachine>;

  constructor(overrides: Partial<SignalingConfig> = {}) {
    this.config = {
      ...defaultConfig(),
      coalesceMs: 25,
      resumeGraceMs: 4_000,
      // Heartbeats stay out of the way unless a test asks for them.
      heartbeatIntervalMs: 600_000,
      heartbeatTimeoutMs: 600_000,
      shutdownGraceMs: 500,
      reconnectAfterMs: 750,
      stunUrls: ['stun:stun.example.org:3478'],
      turnUrls: ['turn:turn.example.org:3478'],
      turnSecret: 'coturn-secret',
      ...overrides,
    };
    this.clock.set(T0);
    this.actor = createActor(hubMachine, {
      clock: this.clock,
      input: {
        config: this.config,
        registry: this.registry,
        metrics: this.metrics,
        log: createLogger('silent'),
        now: () => this.clock.now(),
      },
    });
    this.actor.subscribe({ error: (error) => this.errors.push(error) });
    this.actor.start();
  }

  open(options: { resumeToken?: string; protocolVersion?: number } = {}): Client {
    const client = new Client(() => this.clock.now());
    this.clients.push(client);
    this.actor.send({
      type: 'socket.open',
      port: client.port,
      bind: client.port.bind,
      resumeToken: options.resumeToken,
      protocolVersion: options.protocolVersion ?? PROTOCOL_VERSION,
      ip: '192.0.2.10',
    });
    return client;
  }

  /** Lets time pass in small steps; clients that answer heartbeats do so between steps. */
  advance(ms: number): void {
    for (let left = ms; left > 0; left -= 50) {
      this.clock.increment(Math.min(50, left));
      for (const client of this.clients) if (client.answersHeartbeats) client.catchUp();
    }
  }

  get state() {
    return this.actor.getSnapshot();
  }

  get socketActors() {
    return this.state.context.sockets;
  }

  dispose(): void {
    this.actor.stop();
    this.metrics.stop();
  }
}

let hub: Hub | undefined;
const start = (overrides: Partial<SignalingConfig> = {}) => {
  hub = new Hub(overrides);
  return hub;
};
afterEach(() => {
  if (hub) {
    expect(hub.errors).toEqual([]);
    for (const client of hub.clients) expect(client.port.malformed).toEqual([]);
    hub.dispose();
  }
  hub = undefined;
});

/** Both clients connected and `announcer` announced, with the update delivered. */
function announced(h: Hub, capabilities = caps(50)) {
  const announcer = h.open();
  const observer = h.open();
  announcer.send({ type: 'capability-announce', capabilities });
  h.advance(h.config.coalesceMs);
  expect(observer.port.ofType('peer-capability-update')).toEqual([
    { type: 'peer-capability-update', peerId: announcer.peerId, capabilities },
  ]);
  return { announcer, observer };
}

describe('opening sockets', () => {
  it('spawns a socket actor per socket and greets the client with its peer id, resume token and ICE servers', () => {
    const h = start();
    const client = h.open();
    const { welcome } = client;

    expect(client.actor.getSnapshot().status).toBe('active');
    expect(h.socketActors.get('socket-1')).toBe(client.actor);
    expect(welcome).toMatchObject({
      resumed: false,
      protocolVersion: PROTOCOL_VERSION,
      heartbeatIntervalMs: h.config.heartbeatIntervalMs,
      resumeGraceMs: h.config.resumeGraceMs,
    });
    expect(welcome.capabilities).toBeUndefined();
    expect(
      verifyResumeToken(h.config.resumeSecret, welcome.resumeToken, T0, h.config.resumeTokenMaxAgeMs),
    ).toEqual({
      peerId: welcome.peerId,
      issuedAt: T0,
    });
    expect(welcome.iceServers).toEqual([
      { urls: h.config.stunUrls },
      {
        urls: h.config.turnUrls,
        username: `${T0 / 1000 + h.config.turnTtlSeconds}:${welcome.peerId}`,
        credential: expect.any(String),
      },
    ]);
    expect(h.registry.get(welcome.peerId)?.port).toBe(client.port);
    expect(h.metrics.connectionsTotal).toBe(1);
  });

  it('gives every socket its own actor and peer id', () => {
    const h = start();
    const [a, b, c] = [h.open(), h.open(), h.open()];
    expect(new Set([a.peerId, b.peerId, c.peerId]).size).toBe(3);
    expect([...h.socketActors.keys()]).toEqual(['socket-1', 'socket-2', 'socket-3']);
    expect(new Set([a.actor, b.actor, c.actor]).size).toBe(3);
    expect(h.registry.liveCount).toBe(3);
  });

  it('starts a new session, and says so, when the resume token is not valid', () => {
    const h = start();
    const client = h.open({ resumeToken: 'forged.1767225600000.c2lnbmF0dXJl' });
    expect(client.port.sent.map((m) => m.type)).toEqual(['peer-id', 'error']);
    expect(client.port.only('error').code).toBe('resume-rejected');
    expect(client.welcome.resumed).toBe(false);
    expect(client.peerId).not.toBe('forged');
  });
});

describe('capability announcements', () => {
  it('two announcements within the coalescing window go out once, with the latest capabilities', () => {
    const h = start();
    const announcer = h.open();
    const observer = h.open();
    announcer.send({ type: 'capability-announce', capabilities: caps(10) });
    h.clock.increment(10);
    announcer.send({ type: 'capability-announce', capabilities: caps(90) });
    h.clock.increment(h.config.coalesceMs - 11);
    expect(observer.port.ofType('peer-capability-update')).toEqual([]);

    h.clock.increment(1);
    expect(observer.port.ofType('peer-capability-update')).toEqual([
      { type: 'peer-capability-update', peerId: announcer.peerId, capabilities: caps(90) },
    ]);
    expect(announcer.port.ofType('peer-capability-update')).toEqual([]);
    expect(h.metrics.capabilityUpdatesSent).toBe(1);
    expect(h.registry.discover({ needsAI: true, minQuota: 0, preferredModels: [] }, observer.peerId)).toEqual(
      [{ peerId: announcer.peerId, capabilities: caps(90), score: expect.any(Number) }],
    );
  });

  it('updates from several peers within one window reach everyone but their sender', () => {
    const h = start();
    const [a, b, c] = [h.open(), h.open(), h.open()];
    a.send({ type: 'capability-announce', capabilities: caps(1) });
    b.send({ type: 'capability-announce', capabilities: caps(2) });
    h.advance(h.config.coalesceMs);
    const updatesFor = (client: Client) => client.port.ofType('peer-capability-update').map((u) => u.peerId);
    expect(updatesFor(a)).toEqual([b.peerId]);
    expect(updatesFor(b)).toEqual([a.peerId]);
    expect(updatesFor(c)).toEqual([a.peerId, b.peerId]);
  });
});

describe('departures', () => {
  it('a dropped socket keeps its session for the resume grace, then everyone who knew the peer hears peer-left', () => {
    const h = start();
    const { announcer, observer } = announced(h);
    const bystander = h.open();
    announcer.port.closeFromClient(1006);

    expect(announcer.actor.getSnapshot().status).toBe('done');
    expect(h.socketActors.size).toBe(2);
    const entry = h.registry.get(announcer.peerId);
    expect(entry).toMatchObject({
      port: null,
      socketId: null,
      graceUntil: h.clock.now() + h.config.resumeGraceMs,
    });

    h.advance(h.config.resumeGraceMs - 50);
    expect(observer.port.ofType('peer-left')).toEqual([]);
    expect(h.registry.get(announcer.peerId)).toBe(entry);

    h.advance(1_000); // the next sweep after the grace ends
    const left = { type: 'peer-left', peerId: announcer.peerId, reason: 'closed' };
    expect(observer.port.ofType('peer-left')).toEqual([left]);
    expect(bystander.port.ofType('peer-left')).toEqual([left]);
    expect(h.registry.get(announcer.peerId)).toBeUndefined();
    expect(h.metrics.peerLeftSent).toBe(2);
  });

  it('a peer that never announced is reported only to the peers it talked to', () => {
    const h = start();
    const [talker, partner, stranger] = [h.open(), h.open(), h.open()];
    talker.send({ type: 'offer', targetPeerId: partner.peerId, sdp: { type: 'offer', sdp: 'v=0' } });
    expect(partner.port.only('offer').fromPeerId).toBe(talker.peerId);

    talker.port.closeFromClient(1006);
    h.advance(h.config.resumeGraceMs + 1_000);
    expect(partner.port.ofType('peer-left')).toEqual([
      { type: 'peer-left', peerId: talker.peerId, reason: 'closed' },
    ]);
    expect(stranger.port.ofType('peer-left')).toEqual([]);
  });

  it('a peer that stops answering heartbeats is closed with 4000 and later reported with reason "timeout"', () => {
    const h = start({ heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 500 });
    const { announcer, observer } = announced(h);
    announcer.answersHeartbeats = false;

    h.advance(1_500);
    expect(announcer.port.ends.map((end) => end.code)).toEqual([4000]);
    expect(observer.port.ends).toEqual([]);
    announcer.port.closeFromClient(4000);

    h.advance(h.config.resumeGraceMs + 1_000);
    expect(observer.port.ofType('peer-left')).toEqual([
      { type: 'peer-left', peerId: announcer.peerId, reason: 'timeout' },
    ]);
    expect(observer.actor.getSnapshot().status).toBe('active');
  });

  it("paces every socket's heartbeats with one tick: a beat every interval (at most one tick late); answered ones keep the socket", () => {
    const h = start({ heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 600 });
    expect(heartbeatTickMs(h.config)).toBe(300);
    const first = h.open();
    h.clock.increment(100);
    const second = h.open();
    h.advance(10_000);

    for (const client of [first, second]) {
      const beats = client.port.ofType('heartbeat').map((beat) => beat.ts - T0);
      expect(beats.length).toBeGreaterThanOrEqual(7);
      const gaps = beats.slice(1).map((ts, i) => ts - (beats[i] as number));
      for (const gap of gaps) {
        expect(gap).toBeGreaterThanOrEqual(1_000);
        expect(gap).toBeLessThanOrEqual(1_000 + heartbeatTickMs(h.config));
      }
      expect(client.port.ends).toEqual([]);
      expect(client.actor.getSnapshot().status).toBe('active');
    }
  });

  it('drops a silent peer no sooner than the heartbeat timeout and no later than one tick after it', () => {
    const h = start({ heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 600 });
    const client = h.open();
    client.answersHeartbeats = false;
    h.advance(1_300);
    const [beat] = client.port.ofType('heartbeat');
    expect(beat).toBeDefined();
    const sentAt = (beat?.ts ?? 0) - T0;
    h.clock.set(T0 + sentAt + 599);
    expect(client.port.ends).toEqual([]);
    h.clock.set(T0 + sentAt + 600 + heartbeatTickMs(h.config));
    expect(client.port.ends.map((end) => end.code)).toEqual([4000]);
  });

  it('a peer that leaves is reported at once, with no grace', () => {
    const h = start();
    const { announcer, observer } = announced(h);
    announcer.send({ type: 'leave' });
    expect(announcer.port.ends.map((end) => end.code)).toEqual([1000]);
    announcer.port.closeFromClient(1000);

    expect(observer.port.ofType('peer-left')).toEqual([
      { type: 'peer-left', peerId: announcer.peerId, reason: 'left' },
    ]);
    expect(h.registry.get(announcer.peerId)).toBeUndefined();
  });
});

describe('resume', () => {
  it('within the grace the peer gets its session back: same id and capabilities, and nobody hears peer-left', () => {
    const h = start();
    const { announcer, observer } = announced(h, caps(70));
    const entry = h.registry.get(announcer.peerId);
    announcer.port.closeFromClient(1006);
    h.advance(h.config.resumeGraceMs / 2);

    const back = h.open({ resumeToken: announcer.welcome.resumeToken });
    expect(back.welcome).toMatchObject({ peerId: announcer.peerId, resumed: true, capabilities: caps(70) });
    expect(back.welcome.resumeToken).not.toBe(announcer.welcome.resumeToken);
    expect(h.registry.get(announcer.peerId)).toBe(entry);
    expect(entry?.port).toBe(back.port);
    expect(entry?.graceUntil).toBe(0);

    h.advance(h.config.resumeGraceMs * 2);
    expect(observer.port.ofType('peer-left')).toEqual([]);
    expect(h.registry.get(announcer.peerId)).toBe(entry);
  });

  it('a token that was rotated by a resume no longer resumes', () => {
    const h = start();
    const first = h.open();
    first.port.closeFromClient(1006);
    const second = h.open({ resumeToken: first.welcome.resumeToken });
    expect(second.peerId).toBe(first.peerId);

    const replay = h.open({ resumeToken: first.welcome.resumeToken });
    expect(replay.port.only('error').code).toBe('resume-rejected');
    expect(replay.peerId).not.toBe(first.peerId);
    expect(second.port.ends).toEqual([]);
  });

  it('resuming while the old socket is still open replaces it with 4002 and keeps the session', () => {
    const h = start();
    const { announcer, observer } = announced(h);
    const back = h.open({ resumeToken: announcer.welcome.resumeToken });

    expect(announcer.port.ends.map((end) => end.code)).toEqual([4002]);
    announcer.port.closeFromClient(4002);
    expect(announcer.actor.getSnapshot().output).toMatchObject({ departure: 'replaced', code: 4002 });
    expect(h.registry.get(announcer.peerId)?.port).toBe(back.port);
    expect(h.registry.get(announcer.peerId)?.graceUntil).toBe(0);

    h.advance(h.config.resumeGraceMs * 2);
    expect(observer.port.ofType('peer-left')).toEqual([]);
  });

  it('a socket refused for its protocol version does not take over the session its token names', () => {
    const h = start();
    const owner = h.open();
    const wrongVersion = h.open({
      resumeToken: owner.welcome.resumeToken,
      protocolVersion: PROTOCOL_VERSION + 1,
    });

    expect(wrongVersion.port.sent.map((m) => m.type)).toEqual(['error']);
    expect(wrongVersion.port.ends.map((end) => end.code)).toEqual([4001]);
    wrongVersion.port.closeFromClient(4001);
    expect(owner.port.ends).toEqual([]);
    expect(h.registry.get(owner.peerId)?.port).toBe(owner.port);
    expect(h.registry.size).toBe(1);
  });
});

describe('shutdown', () => {
  it('tells every client to reconnect, closes those that stay with 1001, and ends once every socket actor has', () => {
    const h = start();
    const [polite, stubborn, silent] = [h.open(), h.open(), h.open()];
    const actors = [polite.actor, stubborn.actor, silent.actor];
    h.actor.send({ type: 'hub.shutdown' });

    expect(h.state.value).toBe('draining');
    for (const client of [polite, stubborn, silent]) {
      expect(client.port.ofType('reconnect')).toEqual([
        { type: 'reconnect', reason: 'server shutting down', retryAfterMs: h.config.reconnectAfterMs },
      ]);
      expect(client.port.ends).toEqual([]);
    }
    polite.port.closeFromClient(1000);
    expect(polite.actor.getSnapshot().status).toBe('done');
    expect(h.state.status).toBe('active');

    h.clock.increment(h.config.shutdownGraceMs - 1);
    expect([stubborn, silent].map((client) => client.port.ends.map((end) => end.code))).toEqual([
      [1001],
      [1001],
    ]);
    expect(polite.port.ends).toEqual([]);
    expect(h.state.status).toBe('active');

    h.clock.increment(1);
    expect(h.state.value).toBe('stopped');
    expect(h.state.status).toBe('done');
    expect(h.socketActors.size).toBe(0);
    expect(actors.map((actor) => actor.getSnapshot().status)).toEqual(['done', 'done', 'done']);
    expect([polite, stubborn, silent].map((client) => client.port.terminations)).toEqual([0, 1, 1]);

    // Nothing is left scheduled: no heartbeat, flush or sweep fires after the end.
    const sent = h.clients.map((client) => client.port.sent.length);
    h.clock.increment(24 * 60 * 60 * 1000);
    expect(h.clients.map((client) => client.port.sent.length)).toEqual(sent);
  });

  it('a socket that opens while draining is told to reconnect at once', () => {
    const h = start();
    h.open();
    h.actor.send({ type: 'hub.shutdown' });
    const late = h.open();
    expect(late.port.sent.map((m) => m.type)).toEqual(['peer-id', 'reconnect']);

    h.clock.increment(h.config.shutdownGraceMs);
    expect(late.port.ends.map((end) => end.code)).toEqual([1001]);
    expect(h.state.status).toBe('done');
    expect(late.actor.getSnapshot().status).toBe('done');
  });

  it('with no sockets open, shutdown ends at once', () => {
    const h = start();
    h.actor.send({ type: 'hub.shutdown' });
    expect(h.state.value).toBe('stopped');
    expect(h.state.status).toBe('done');
  });
});

describe('a socket actor that fails', () => {
  it('is reaped: its connection is dropped, its session waits for a resume, the others carry on', () => {
    const h = start();
    const { announcer, observer } = announced(h);
    // A port that throws breaks the socket actor's promise that sending never throws: a bug.
    announcer.port.send = () => {
      throw new Error('port exploded');
    };
    announcer.send({ type: 'ice-servers-request' });

    expect(announcer.actor.getSnapshot().status).toBe('error');
    expect(h.socketActors.size).toBe(1);
    expect(announcer.port.terminations).toBe(1);
    expect(h.registry.get(announcer.peerId)?.port).toBeNull();
    expect(h.state.status).toBe('active');

    observer.send({ type: 'ice-servers-request' });
    expect(observer.port.ofType('ice-servers')).toHaveLength(1);
    h.advance(h.config.resumeGraceMs + 1_000);
    expect(observer.port.ofType('peer-left')).toEqual([
      { type: 'peer-left', peerId: announcer.peerId, reason: 'closed' },
    ]);
  });
});
