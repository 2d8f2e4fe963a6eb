import { describe, expect, it } from 'vitest';
import { type AnyEventObject, createActor, SimulatedClock } from 'xstate';
import {
  type ConnectionEmitted,
  type ConnectionEvent,
  type ConnectionInput,
  connectionMachine,
  OUTBOX_LIMIT,
} from '../../machines/connection.machine.ts';
import type { Capabilities, ClientMessage, ServerMessage } from '../../protocol/index.ts';
import {
  aiPeer,
  FakeSignalingSockets,
  peerIdMessage,
  runUnderParent,
  UnusedWebSocket,
} from '../support/client-fakes.ts';

const URL_BASE = 'wss://signal.test/ws';
const CAPABILITIES: Capabilities = aiPeer(['demo-1'], { available: 50 });

/** The connection machine on a simulated clock, its websocket actor replaced by the fake. */
function startConnection(input: Partial<ConnectionInput> = {}) {
  const sockets = new FakeSignalingSockets();
  const clock = new SimulatedClock();
  const actor = createActor(connectionMachine.provide({ actors: { websocket: sockets.logic } }), {
    clock,
    input: { WebSocket: UnusedWebSocket, random: () => 0.5, ...input },
  });
  const emitted: ConnectionEmitted[] = [];
  actor.on('*', (event) => emitted.push(event));
  const errors: unknown[] = [];
  actor.subscribe({ error: (error) => errors.push(error) });
  actor.start();
  const send = (event: ConnectionEvent) => actor.send(event);
  return {
    actor,
    clock,
    sockets,
    emitted,
    errors,
    send,
    snapshot: () => actor.getSnapshot(),
    /** user.connect, then the server's peer-id on the new socket. */
    connect(peerId = peerIdMessage()) {
      send({ type: 'user.connect', url: URL_BASE });
      sockets.current.push({ type: 'socket.opened' });
      sockets.current.push(peerId);
    },
  };
}

/** The documented backoff: uniformly random in [0, min(cap, base · 2^attempt)). */
const jitterCeiling = (attempt: number, base: number, cap: number) => Math.min(cap, base * 2 ** attempt);

const discover = (requestId: string): ClientMessage => ({
  type: 'discover',
  requirements: { needsAI: true, minQuota: 0, preferredModels: [] },
  requestId,
});

describe('connection machine', () => {
  it('opens a socket on connect, waits in signaling, and goes online when the server assigns a peer id', () => {
    const c = startConnection({ token: 'access-1' });
    expect(c.snapshot().value).toBe('disconnected');
    expect(c.sockets.sockets).toHaveLength(0);

    c.send({ type: 'user.connect', url: URL_BASE });
    expect(c.snapshot().value).toEqual({ session: 'signaling' });
    expect(c.snapshot().hasTag('busy')).toBe(true);
    expect(c.snapshot().hasTag('online')).toBe(false);
    const url = c.sockets.current.url;
    expect(`${url.origin}${url.pathname}`).toBe(URL_BASE);
    expect(url.searchParams.get('v')).toBe('1');
    expect(url.searchParams.get('token')).toBe('access-1');
    expect(url.searchParams.has('resume')).toBe(false);

    c.sockets.current.push({ type: 'socket.opened' });
    expect(c.snapshot().value).toEqual({ session: 'signaling' });

    const hello = peerIdMessage({ peerId: 'peer-7', resumeToken: 'tok-7', heartbeatIntervalMs: 2_000 });
    c.sockets.current.push(hello);
    expect(c.snapshot().value).toEqual({ session: 'connected' });
    expect(c.snapshot().hasTag('online')).toBe(true);
    expect(c.snapshot().hasTag('busy')).toBe(false);
    expect(c.snapshot().context).toMatchObject({
      peerId: 'peer-7',
      resumeToken: 'tok-7',
      iceServers: hello.iceServers,
      heartbeatIntervalMs: 2_000,
      attempt: 0,
    });
    expect(c.emitted).toEqual([
      { type: 'connection.session', peerId: 'peer-7', resumed: false, iceServers: hello.iceServers },
    ]);
    expect(c.errors).toEqual([]);
  });

  it('echoes every server heartbeat with its timestamp', () => {
    const c = startConnection();
    c.connect();
    c.sockets.current.push({ type: 'heartbeat', ts: 111 });
    c.sockets.current.push({ type: 'heartbeat', ts: 222 });
    expect(c.sockets.current.sent).toEqual([
      { type: 'heartbeat', ts: 111 },
      { type: 'heartbeat', ts: 222 },
    ]);
    expect(c.snapshot().value).toEqual({ session: 'connected' });
  });

  it('reconnects after two and a half heartbeat intervals of silence, and a heartbeat restarts that clock', () => {
    const c = startConnection();
    c.connect(peerIdMessage({ heartbeatIntervalMs: 1_000 }));
    const first = c.sockets.current;

    c.clock.increment(2_000);
    first.push({ type: 'heartbeat', ts: 1 });
    c.clock.increment(2_499);
    expect(c.snapshot().value).toEqual({ session: 'connected' });

    c.clock.increment(1);
    expect(c.snapshot().matches('reconnecting')).toBe(true);
    expect(first.stopped).toBe(true);
    expect(c.snapshot().context.lastError).toBe('no answer from the signaling server');
    expect(c.emitted.at(-1)).toEqual({ type: 'connection.lost', attempt: 1, code: undefined });
  });

  it('gives up waiting for peer-id after connectTimeoutMs and tries again', () => {
    const c = startConnection({ connectTimeoutMs: 3_000 });
    c.send({ type: 'user.connect', url: URL_BASE });
    c.clock.increment(2_999);
    expect(c.snapshot().value).toEqual({ session: 'signaling' });
    c.clock.increment(1);
    expect(c.snapshot().matches('reconnecting')).toBe(true);
    expect(c.sockets.current.stopped).toBe(true);
  });

  it('waits a full-jitter backoff before every reconnect, capped at maxDelayMs, never reconnecting early', () => {
    const draws = [0.75, 0.999, 0.5, 0.999, 0.25, 0.999];
    const used: number[] = [];
    const random = () => {
      const value = draws[used.length] ?? 0.5;
      used.push(value);
      return value;
    };
    const base = 100;
    const cap = 1_000;
    const c = startConnection({ baseDelayMs: base, maxDelayMs: cap, random });
    c.send({ type: 'user.connect', url: URL_BASE });

    for (let attempt = 1; attempt <= draws.length; attempt++) {
      const opened = c.sockets.sockets.length;
      c.sockets.current.push({ type: 'socket.closed', code: 1006, reason: '' });
      expect(c.snapshot().matches('reconnecting')).toBe(true);
      expect(c.snapshot().context.attempt).toBe(attempt);

      // From attempt 4 on the ceiling is the cap (100 · 2^4 = 1600 > 1000): 0.999 waits 999 ms, not 1598.
      const delay = Math.floor((draws[attempt - 1] as number) * jitterCeiling(attempt, base, cap));

      c.clock.increment(delay - 1);
      expect(c.snapshot().matches('reconnecting')).toBe(true);
      expect(c.sockets.sockets).toHaveLength(opened);

      c.clock.increment(1);
      expect(c.snapshot().value).toEqual({ session: 'signaling' });
      expect(c.sockets.sockets).toHaveLength(opened + 1);
    }
    // One draw per attempt.
    expect(used).toEqual(draws);
  });

  it('reconnects with v=1 and the resume token from the latest peer-id', () => {
    const c = startConnection({ token: 'access-1' });
    c.connect(peerIdMessage({ resumeToken: 'tok-A' }));
    c.sockets.current.push({ type: 'socket.closed', code: 1006, reason: 'network' });
    c.clock.increment(10_000);
    let url = c.sockets.current.url;
    expect(url.searchParams.get('v')).toBe('1');
    expect(url.searchParams.get('resume')).toBe('tok-A');
    expect(url.searchParams.get('token')).toBe('access-1');

    c.sockets.current.push(peerIdMessage({ resumeToken: 'tok-B', resumed: true }));
    expect(c.emitted.filter((event) => event.type === 'connection.session').at(-1)).toMatchObject({
      resumed: true,
    });
    c.sockets.current.push({ type: 'socket.closed', code: 4000, reason: 'heartbeat timeout' });
    c.clock.increment(10_000);
    url = c.sockets.current.url;
    expect(url.searchParams.get('resume')).toBe('tok-B');
    expect(url.searchParams.get('v')).toBe('1');
  });

  it('forgets the session on disconnect: the next connect asks for a new one and drops the outbox', () => {
    const c = startConnection();
    c.connect(peerIdMessage({ resumeToken: 'tok-A' }));
    c.sockets.current.push({ type: 'socket.closed', code: 1006, reason: '' });
    c.send({ type: 'signal.send', message: discover('r-1') });
    c.send({ type: 'user.disconnect' });
    expect(c.snapshot().value).toBe('disconnected');
    expect(c.snapshot().context.peerId).toBeUndefined();
    expect(c.snapshot().context.outbox).toEqual([]);

    c.clock.increment(60_000);
    expect(c.sockets.sockets).toHaveLength(1);
    c.connect(peerIdMessage({ resumeToken: 'tok-B' }));
    expect(c.sockets.current.url.searchParams.has('resume')).toBe(false);
    expect(c.sockets.current.sent).toEqual([]);
  });

  it('stops the socket when the user disconnects while online', () => {
    const c = startConnection();
    c.connect();
    const socket = c.sockets.current;
    c.send({ type: 'user.disconnect' });
    expect(c.snapshot().value).toBe('disconnected');
    expect(socket.stopped).toBe(true);
  });

  it('announces again after a resume when the restarted server forgot the capabilities', () => {
    const c = startConnection();
    c.connect();
    c.send({ type: 'user.announce', capabilities: CAPABILITIES });
    expect(c.sockets.current.sent).toEqual([{ type: 'capability-announce', capabilities: CAPABILITIES }]);

    c.sockets.current.push({ type: 'socket.closed', code: 1001, reason: 'restart' });
    c.clock.increment(10_000);
    c.sockets.current.push(peerIdMessage({ resumed: true }));
    expect(c.snapshot().value).toEqual({ session: 'connected' });
    expect(c.sockets.current.sent).toEqual([{ type: 'capability-announce', capabilities: CAPABILITIES }]);
  });

  it('does not announce again when the resumed session kept its capabilities', () => {
    const c = startConnection();
    c.connect();
    c.send({ type: 'user.announce', capabilities: CAPABILITIES });
    c.sockets.current.push({ type: 'socket.closed', code: 1006, reason: '' });
    c.clock.increment(10_000);
    c.sockets.current.push(peerIdMessage({ resumed: true, capabilities: CAPABILITIES }));
    expect(c.snapshot().value).toEqual({ session: 'connected' });
    expect(c.sockets.current.sent).toEqual([]);
  });

  it('announces capabilities given before connecting as soon as the session starts', () => {
    const c = startConnection();
    c.send({ type: 'user.announce', capabilities: CAPABILITIES });
    expect(c.sockets.sockets).toHaveLength(0);
    c.connect();
    expect(c.sockets.current.sent).toEqual([{ type: 'capability-announce', capabilities: CAPABILITIES }]);
  });

  it.each([
    [1008, 'policy violation'],
    [4001, 'unsupported protocol version'],
    [4002, 'session replaced'],
  ])('fails without retrying when the server closes with %i (%s)', (code, reason) => {
    const c = startConnection();
    c.connect();
    c.sockets.current.push({ type: 'socket.closed', code, reason });
    expect(c.snapshot().value).toBe('failed');
    expect(c.snapshot().context).toMatchObject({ lastCloseCode: code, lastError: reason });
    expect(c.snapshot().hasTag('busy')).toBe(false);
    c.clock.increment(10 * 60_000);
    expect(c.sockets.sockets).toHaveLength(1);
    expect(c.snapshot().value).toBe('failed');
  });

  it.each([1001, 1006, 1011, 4000, 4003])('reconnects after close code %i', (code) => {
    const c = startConnection();
    c.connect();
    c.sockets.current.push({ type: 'socket.closed', code, reason: '' });
    expect(c.snapshot().matches('reconnecting')).toBe(true);
    expect(c.snapshot().context.lastCloseCode).toBe(code);
    expect(c.emitted.at(-1)).toEqual({ type: 'connection.lost', attempt: 1, code });
    c.clock.increment(10_000);
    expect(c.sockets.sockets).toHaveLength(2);
  });

  it('fails once maxAttempts reconnects have gone unanswered, and stays down', () => {
    const maxAttempts = 3;
    const c = startConnection({ maxAttempts, connectTimeoutMs: 1_000 });
    c.send({ type: 'user.connect', url: URL_BASE });
    for (let round = 0; round < 10 && !c.snapshot().matches('failed'); round++) {
      c.sockets.current.push({ type: 'socket.closed', code: 1006, reason: '' });
      c.clock.increment(10_000);
    }
    expect(c.snapshot().value).toBe('failed');
    expect(c.snapshot().context.attempt).toBe(maxAttempts);
    const lost = c.emitted.filter((event) => event.type === 'connection.lost');
    expect(lost.map((event) => event.attempt)).toEqual([1, 2, 3]);
    const opened = c.sockets.sockets.length;
    // The first connection plus exactly maxAttempts reconnects.
    expect(opened).toBe(maxAttempts + 1);
    expect(c.sockets.sockets.every((socket) => socket.stopped)).toBe(true);
    c.clock.increment(10 * 60_000);
    expect(c.sockets.sockets).toHaveLength(opened);
  });

  it('starts over when the user retries from failed, and counts attempts from zero again', () => {
    const c = startConnection({ maxAttempts: 1 });
    c.connect(peerIdMessage({ resumeToken: 'tok-A' }));
    c.sockets.current.push({ type: 'socket.closed', code: 4002, reason: 'replaced' });
    expect(c.snapshot().value).toBe('failed');

    c.send({ type: 'user.retry' });
    expect(c.snapshot().value).toEqual({ session: 'signaling' });
    expect(c.snapshot().context.attempt).toBe(0);
    expect(c.sockets.sockets).toHaveLength(2);
    expect(c.sockets.current.url.searchParams.get('resume')).toBe('tok-A');
    c.sockets.current.push(peerIdMessage());
    expect(c.snapshot().value).toEqual({ session: 'connected' });
  });

  it('connects to a new URL from failed', () => {
    const c = startConnection();
    c.connect();
    c.sockets.current.push({ type: 'socket.closed', code: 1008, reason: 'abuse' });
    c.send({ type: 'user.connect', url: 'wss://other.test/' });
    expect(c.snapshot().value).toEqual({ session: 'signaling' });
    expect(c.sockets.current.url.host).toBe('other.test');
  });

  it('sends messages straight to the socket while online', () => {
    const c = startConnection();
    c.connect();
    c.send({ type: 'signal.send', message: discover('r-1') });
    expect(c.sockets.current.sent).toEqual([discover('r-1')]);
  });

  it('delivers messages sent while offline in order once connected', () => {
    const c = startConnection();
    c.send({ type: 'signal.send', message: discover('r-1') });
    c.send({ type: 'signal.send', message: discover('r-2') });
    c.send({ type: 'user.connect', url: URL_BASE });
    c.send({ type: 'signal.send', message: discover('r-3') });
    expect(c.sockets.current.sent).toEqual([]);
    c.sockets.current.push(peerIdMessage());
    expect(c.sockets.current.sent).toEqual([discover('r-1'), discover('r-2'), discover('r-3')]);
    expect(c.snapshot().context.outbox).toEqual([]);

    c.sockets.current.push({ type: 'socket.closed', code: 1006, reason: '' });
    c.send({ type: 'signal.send', message: discover('r-4') });
    c.clock.increment(10_000);
    c.send({ type: 'signal.send', message: discover('r-5') });
    c.sockets.current.push(peerIdMessage({ resumed: true }));
    expect(c.sockets.current.sent).toEqual([discover('r-4'), discover('r-5')]);
  });

  it('keeps only the newest OUTBOX_LIMIT messages while offline', () => {
    const c = startConnection();
    const total = OUTBOX_LIMIT + 5;
    for (let index = 0; index < total; index++) {
      c.send({ type: 'signal.send', message: discover(`r-${index}`) });
    }
    expect(c.snapshot().context.outbox).toHaveLength(OUTBOX_LIMIT);
    c.connect();
    const delivered = c.sockets.current.sent;
    expect(delivered).toHaveLength(OUTBOX_LIMIT);
    expect(delivered[0]).toEqual(discover('r-5'));
    expect(delivered.at(-1)).toEqual(discover(`r-${total - 1}`));
    expect(delivered).toEqual(Array.from({ length: OUTBOX_LIMIT }, (_, index) => discover(`r-${index + 5}`)));
  });

  it('waits at least retryAfterMs when the server asks it to reconnect', () => {
    const c = startConnection({ baseDelayMs: 100, maxDelayMs: 1_000, random: () => 0.999 });
    c.connect();
    const first = c.sockets.current;
    first.push({ type: 'reconnect', reason: 'server restarting', retryAfterMs: 4_000 });
    expect(c.snapshot().matches('reconnecting')).toBe(true);
    expect(first.stopped).toBe(true);
    c.clock.increment(3_999);
    expect(c.sockets.sockets).toHaveLength(1);
    c.clock.increment(1);
    expect(c.sockets.sockets).toHaveLength(2);
    expect(c.sockets.current.url.searchParams.get('resume')).toBe('token-1');
  });

  it('forgets the server-requested wait once a new session succeeds', () => {
    const c = startConnection({ baseDelayMs: 100, maxDelayMs: 1_000, random: () => 0.5 });
    c.connect();
    c.sockets.current.push({ type: 'reconnect', reason: 'server restarting', retryAfterMs: 4_000 });
    c.clock.increment(4_000);
    c.sockets.current.push(peerIdMessage({ resumed: true }));
    c.sockets.current.push({ type: 'socket.closed', code: 1006, reason: '' });
    const jitter = Math.floor(0.5 * jitterCeiling(1, 100, 1_000));
    c.clock.increment(jitter - 1);
    expect(c.sockets.sockets).toHaveLength(2);
    c.clock.increment(1);
    expect(c.sockets.sockets).toHaveLength(3);
  });

  it('waits for the jitter when it is longer than the retryAfterMs the server asked for', () => {
    const c = startConnection({ baseDelayMs: 1_000, maxDelayMs: 10_000, random: () => 0.9 });
    c.connect();
    c.sockets.current.push({ type: 'reconnect', reason: 'rebalancing', retryAfterMs: 100 });
    const jitter = Math.floor(0.9 * jitterCeiling(1, 1_000, 10_000));
    c.clock.increment(jitter - 1);
    expect(c.sockets.sockets).toHaveLength(1);
    c.clock.increment(1);
    expect(c.sockets.sockets).toHaveLength(2);
  });

  it('hands the server messages meant for the client to its parent, in order, and nothing else', () => {
    const sockets = new FakeSignalingSockets();
    const h = runUnderParent(connectionMachine.provide({ actors: { websocket: sockets.logic } }), {
      WebSocket: UnusedWebSocket,
      random: () => 0.5,
    });
    h.child.send({ type: 'user.connect', url: URL_BASE });
    sockets.current.push(peerIdMessage());
    const forwarded: ServerMessage[] = [
      { type: 'peer-capability-update', peerId: 'peer-b', capabilities: CAPABILITIES },
      { type: 'peers-discovered', peers: [], requestId: 'discover-1' },
      { type: 'peer-left', peerId: 'peer-b', reason: 'left' },
      { type: 'offer', targetPeerId: 'me', fromPeerId: 'peer-c', sdp: { type: 'offer', sdp: 'v=0 o' } },
      { type: 'answer', targetPeerId: 'me', fromPeerId: 'peer-c', sdp: { type: 'answer', sdp: 'v=0 a' } },
      {
        type: 'ice-candidate',
        targetPeerId: 'me',
        fromPeerId: 'peer-c',
        candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0' },
      },
      { type: 'relay', targetPeerId: 'me', fromPeerId: 'peer-c', payload: { type: 'link-ping', ts: 5 } },
      { type: 'error', code: 'unknown-target', message: 'peer-z is not connected', targetPeerId: 'peer-z' },
    ];
    sockets.current.push({ type: 'heartbeat', ts: 1 });
    for (const message of forwarded) sockets.current.push(message);
    sockets.current.push({ type: 'ice-servers', iceServers: [], expiresAt: 0 });
    expect(h.toParent).toEqual(forwarded as AnyEventObject[]);
    expect(h.errors).toEqual([]);
    h.stop();
  });
});
