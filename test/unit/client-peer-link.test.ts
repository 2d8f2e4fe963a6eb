import { afterEach, describe, expect, it } from 'vitest';
import { LinkAssembler, LinkFramer, type LinkMessage } from '../../machines/link-framing.ts';
import { LINK_OUTBOX_LIMIT, MAX_SAMPLES } from '../../machines/peer-link.machine.ts';
import {
  encodeMessage,
  MAX_FRAGMENT_CHARS,
  MAX_LINK_MESSAGE_BYTES,
  type PromptDelegation,
  type TaskMessage,
  utf8Length,
} from '../../protocol/index.ts';
import { LOCAL_PEER, type PeerLinkHarness, REMOTE_PEER, startPeerLink } from '../support/fake-rtc.ts';

const cancel = (taskId: string): LinkMessage => ({ type: 'task-cancel', taskId });

/** A delegation whose encoding is well over MAX_LINK_MESSAGE_BYTES, so it must travel in fragments. */
const bigDelegation = (): PromptDelegation => ({
  type: 'prompt-delegation',
  taskId: 'task-big',
  prompt: 'summarise this: ' + 'lorem ipsum dolor sit amet '.repeat(900),
  requesterCapabilities: { hasAI: false, models: [] },
  priority: 5,
  timeout: 60_000,
});

/** The relay frame the signaling server delivers from `fromPeerId`. */
const relayFrom = (payload: TaskMessage, fromPeerId = REMOTE_PEER) =>
  ({ type: 'relay', fromPeerId, targetPeerId: LOCAL_PEER, payload }) as const;

let harness: PeerLinkHarness | undefined;
function start(...args: Parameters<typeof startPeerLink>): PeerLinkHarness {
  harness = startPeerLink(...args);
  return harness;
}
afterEach(() => {
  expect(harness?.errors ?? []).toEqual([]);
  harness?.stop();
  harness = undefined;
});

/** Opens the direct path (from `connecting`). */
function goDirect(link: PeerLinkHarness): void {
  link.rtc.current.push({ type: 'rtc.channelOpen' });
  expect(link.snapshot.matches({ active: { path: 'direct' } })).toBe(true);
}

/** Lets the direct timeout run out (from `connecting`). */
function goRelayed(link: PeerLinkHarness, directTimeoutMs: number): void {
  link.clock.increment(directTimeoutMs);
  expect(link.snapshot.matches({ active: { path: 'relayed' } })).toBe(true);
}

describe('peer link: setting up the RTC actor', () => {
  it('hands the RTC actor the ICE configuration, the initiator role and a polite flag when its id sorts after the remote one', () => {
    const link = start({ rtcConfiguration: { bindAddress: '127.0.0.1' }, initiator: false });
    expect(LOCAL_PEER > REMOTE_PEER).toBe(true);
    expect(link.snapshot.context.polite).toBe(true);
    expect(link.rtc.peers).toHaveLength(1);
    expect(link.rtc.current.input).toMatchObject({
      polite: true,
      initiator: false,
      configuration: { bindAddress: '127.0.0.1', iceServers: [{ urls: 'stun:stun.example.org:3478' }] },
    });
    expect(link.snapshot.matches({ active: { path: 'connecting' } })).toBe(true);
    expect(link.snapshot.hasTag('connecting')).toBe(true);
    expect(link.snapshot.context.transport).toBe('none');
  });

  it('is impolite when its own id sorts before the remote one, so exactly one side of a pair yields', () => {
    const link = start({ localPeerId: 'peer-a', remotePeerId: 'peer-b' });
    expect(link.snapshot.context.polite).toBe(false);
    expect(link.rtc.current.input.polite).toBe(false);
    expect(link.rtc.current.input.initiator).toBe(true);
  });
});

describe('peer link: connecting to direct', () => {
  it('holds messages while connecting and sends them over the channel, in order, once it opens', () => {
    const link = start({ directTimeoutMs: 5_000 });
    const messages = [cancel('t1'), cancel('t2'), cancel('t3')];
    for (const message of messages) link.send({ type: 'link.send', message });
    expect(link.rtc.sent).toEqual([]);
    expect(link.relayed()).toEqual([]);
    expect(link.snapshot.context.outbox).toEqual(messages);

    goDirect(link);
    expect(link.rtc.sent).toEqual(messages);
    expect(link.snapshot.context.outbox).toEqual([]);
    expect(link.snapshot.context.transport).toBe('direct');
    expect(link.snapshot.hasTag('direct')).toBe(true);
    expect(link.ofType('link.transport')).toEqual([
      { type: 'link.transport', peerId: REMOTE_PEER, transport: 'direct' },
    ]);
    expect(link.emitted).toEqual(link.ofType('link.transport'));

    link.send({ type: 'link.send', message: cancel('t4') });
    expect(link.rtc.sent).toEqual([...messages, cancel('t4')]);
    expect(link.relayed()).toEqual([]);
  });

  it('keeps only the newest LINK_OUTBOX_LIMIT messages while connecting', () => {
    const link = start();
    const overflow = 5;
    const messages = Array.from({ length: LINK_OUTBOX_LIMIT + overflow }, (_, i) => cancel(`t${i}`));
    for (const message of messages) link.send({ type: 'link.send', message });
    expect(link.snapshot.context.outbox).toHaveLength(LINK_OUTBOX_LIMIT);
    expect(link.snapshot.context.outbox[0]).toEqual(cancel(`t${overflow}`));

    goDirect(link);
    expect(link.rtc.sent).toEqual(messages.slice(overflow));
  });
});

describe('peer link: an attempt to connect that ends without a channel', () => {
  it('starts over on a fresh connection, at most maxConnectRetries times, within the same directTimeout', () => {
    const link = start({ directTimeoutMs: 5_000, maxConnectRetries: 2 });
    link.send({ type: 'link.send', message: cancel('t1') });
    link.clock.increment(100);
    // libdatachannel refused the answer and closed the connection under us.
    link.rtc.current.push({ type: 'rtc.error', error: 'Got a remote candidate without ICE transport' });
    link.rtc.current.push({ type: 'rtc.connectionState', state: 'closed' });
    expect(link.rtc.current.commands).toEqual([{ type: 'rtc.restart' }]);
    expect(link.snapshot.matches({ active: { path: 'connecting' } })).toBe(true);
    expect(link.snapshot.context).toMatchObject({ connectRetries: 1, restarts: 0, outbox: [cancel('t1')] });

    link.rtc.current.push({ type: 'rtc.connectionState', state: 'failed' });
    link.rtc.current.push({ type: 'rtc.connectionState', state: 'closed' }); // no retry left
    expect(link.rtc.restarts).toBe(2);
    expect(link.snapshot.context.connectRetries).toBe(2);

    // The direct timeout still counts from the start: the relay takes over at 5000.
    link.clock.increment(4_899);
    expect(link.snapshot.matches({ active: { path: 'connecting' } })).toBe(true);
    link.clock.increment(1);
    expect(link.snapshot.matches({ active: { path: 'relayed' } })).toBe(true);
    expect(link.relayed()).toEqual([cancel('t1')]);
  });

  it('goes direct when the fresh connection opens its channel', () => {
    const link = start();
    link.rtc.current.push({ type: 'rtc.connectionState', state: 'closed' });
    goDirect(link);
    expect(link.rtc.peers).toHaveLength(1);
    expect(link.snapshot.context.connectRetries).toBe(1);
  });

  it('leaves starting over to the initiator, and ignores states that do not end the attempt', () => {
    const responder = start({ initiator: false });
    responder.rtc.current.push({ type: 'rtc.connectionState', state: 'closed' });
    expect(responder.rtc.current.commands).toEqual([]);
    responder.stop();

    const initiator = start();
    for (const state of ['new', 'connecting', 'disconnected', 'connected'] as const)
      initiator.rtc.current.push({ type: 'rtc.connectionState', state });
    expect(initiator.rtc.current.commands).toEqual([]);
    expect(initiator.snapshot.matches({ active: { path: 'connecting' } })).toBe(true);
  });
});

describe('peer link: falling back to the relay', () => {
  it('switches to the relay when no channel opens within directTimeoutMs and relays the queued messages', () => {
    const link = start({ directTimeoutMs: 4_000 });
    const messages = [cancel('t1'), cancel('t2')];
    for (const message of messages) link.send({ type: 'link.send', message });

    link.clock.increment(3_999);
    expect(link.snapshot.matches({ active: { path: 'connecting' } })).toBe(true);
    expect(link.relayed()).toEqual([]);

    link.clock.increment(1);
    expect(link.snapshot.matches({ active: { path: 'relayed' } })).toBe(true);
    expect(link.snapshot.hasTag('relayed')).toBe(true);
    expect(link.snapshot.context.transport).toBe('relayed');
    expect(link.ofType('link.transport').map((event) => event.transport)).toEqual(['relayed']);
    expect(link.ofType('link.signal')).toEqual(
      messages.map((payload) => ({
        type: 'link.signal',
        message: { type: 'relay', targetPeerId: REMOTE_PEER, payload },
      })),
    );
    expect(link.rtc.sent).toEqual([]);
    expect(link.snapshot.context.bytesSent).toBe(
      messages.reduce((sum, message) => sum + JSON.stringify(message).length, 0),
    );
  });

  it('relays a message over 16 KiB as link-fragments that reassemble to the original', () => {
    const link = start({ directTimeoutMs: 1_000 });
    goRelayed(link, 1_000);
    const big = bigDelegation();
    expect(utf8Length(encodeMessage(big))).toBeGreaterThan(MAX_LINK_MESSAGE_BYTES);

    link.send({ type: 'link.send', message: big });
    const frames = link.relayed();
    expect(frames.length).toBeGreaterThanOrEqual(2);
    const assembler = new LinkAssembler();
    const results = frames.map((frame) => {
      if (frame.type !== 'link-fragment') throw new Error(`expected a fragment, got ${frame.type}`);
      expect(frame.count).toBe(frames.length);
      expect(frame.data.length).toBeLessThanOrEqual(MAX_FRAGMENT_CHARS);
      return assembler.push(frame, JSON.stringify(frame).length);
    });
    expect(results.slice(0, -1)).toEqual(results.slice(0, -1).map(() => ({ ok: true, message: undefined })));
    const wire = frames.reduce((total, frame) => total + JSON.stringify(frame).length, 0);
    expect(results.at(-1)).toEqual({ ok: true, message: big, bytes: wire });
  });

  it('reassembles relayed fragments from the remote peer into one delivered message', () => {
    const link = start({ directTimeoutMs: 1_000 });
    goRelayed(link, 1_000);
    const big = bigDelegation();
    const frames = new LinkFramer().frames(big);
    expect(frames.length).toBeGreaterThanOrEqual(2);

    for (const frame of frames.slice(0, -1)) link.send(relayFrom(frame));
    expect(link.delivered()).toEqual([]);
    link.send(relayFrom(frames.at(-1)!));
    expect(link.ofType('link.message')).toEqual([
      { type: 'link.message', peerId: REMOTE_PEER, message: big },
    ]);
  });

  it('records a fragment that belongs to no message as an error and delivers nothing', () => {
    const link = start({ directTimeoutMs: 1_000 });
    goRelayed(link, 1_000);
    link.send(relayFrom({ type: 'link-fragment', id: 7, index: 1, count: 3, data: '"}' }));
    expect(link.delivered()).toEqual([]);
    expect(link.snapshot.context.lastError).toBe('fragment 1 of unknown message 7');
  });

  it('ignores relay traffic from a peer other than its own', () => {
    const link = start({ directTimeoutMs: 1_000 });
    goRelayed(link, 1_000);
    link.send(relayFrom(cancel('t1'), 'peer-z'));
    expect(link.delivered()).toEqual([]);
    expect(link.snapshot.context.bytesReceived).toBe(0);
  });

  it('follows the remote onto the relay when a relayed message arrives while connecting, and delivers it', () => {
    const link = start({ directTimeoutMs: 60_000 });
    link.send({ type: 'link.send', message: cancel('queued') });
    const incoming = cancel('incoming');

    link.send(relayFrom(incoming));
    expect(link.snapshot.matches({ active: { path: 'relayed' } })).toBe(true);
    expect(link.ofType('link.message')).toEqual([
      { type: 'link.message', peerId: REMOTE_PEER, message: incoming },
    ]);
    expect(link.relayed()).toEqual([cancel('queued')]);
    expect(link.snapshot.context.bytesReceived).toBe(JSON.stringify(incoming).length);
  });

  it('follows the remote onto the relay when a relayed message arrives during an ICE restart, and delivers it', () => {
    const link = start({ restartTimeoutMs: 60_000 });
    goDirect(link);
    link.rtc.current.push({ type: 'rtc.channelClosed' });
    expect(link.snapshot.matches({ active: { path: 'restarting' } })).toBe(true);

    link.send(relayFrom(cancel('incoming')));
    expect(link.snapshot.matches({ active: { path: 'relayed' } })).toBe(true);
    expect(link.delivered()).toEqual([cancel('incoming')]);
  });

  it('upgrades from the relay to a direct channel that opens later', () => {
    const link = start({ directTimeoutMs: 1_000 });
    goRelayed(link, 1_000);
    link.rtc.current.push({ type: 'rtc.channelOpen' });
    expect(link.snapshot.matches({ active: { path: 'direct' } })).toBe(true);
    expect(link.ofType('link.transport').map((event) => event.transport)).toEqual(['relayed', 'direct']);

    link.send({ type: 'link.send', message: cancel('t1') });
    expect(link.rtc.sent).toEqual([cancel('t1')]);
    expect(link.relayed()).toEqual([]);
  });
});

describe('peer link: signaling', () => {
  it("hands the remote peer's offer, answer and ICE candidates to the RTC actor", () => {
    const link = start();
    const candidate = {
      candidate: 'candidate:1 1 udp 1 192.0.2.1 9 typ host',
      sdpMid: '0',
      sdpMLineIndex: 0,
    };
    link.send({
      type: 'offer',
      fromPeerId: REMOTE_PEER,
      targetPeerId: LOCAL_PEER,
      sdp: { type: 'offer', sdp: 'v=0 offer' },
    });
    link.send({
      type: 'answer',
      fromPeerId: REMOTE_PEER,
      targetPeerId: LOCAL_PEER,
      sdp: { type: 'answer', sdp: 'v=0 answer' },
    });
    link.send({ type: 'ice-candidate', fromPeerId: REMOTE_PEER, targetPeerId: LOCAL_PEER, candidate });
    link.send({ type: 'ice-candidate', fromPeerId: REMOTE_PEER, targetPeerId: LOCAL_PEER, candidate: null });
    expect(link.rtc.current.commands).toEqual([
      { type: 'rtc.remoteDescription', description: { type: 'offer', sdp: 'v=0 offer' } },
      { type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'v=0 answer' } },
      { type: 'rtc.remoteCandidate', candidate },
      { type: 'rtc.remoteCandidate', candidate: null },
    ]);
  });

  it('ignores offers, answers and candidates from any other peer', () => {
    const link = start();
    link.send({
      type: 'offer',
      fromPeerId: 'peer-z',
      targetPeerId: LOCAL_PEER,
      sdp: { type: 'offer', sdp: 'v=0 offer' },
    });
    link.send({
      type: 'answer',
      fromPeerId: 'peer-z',
      targetPeerId: LOCAL_PEER,
      sdp: { type: 'answer', sdp: 'v=0 answer' },
    });
    link.send({ type: 'ice-candidate', fromPeerId: 'peer-z', targetPeerId: LOCAL_PEER, candidate: null });
    expect(link.rtc.current.commands).toEqual([]);
  });

  it('signals its own descriptions and candidates to the remote peer through the parent', () => {
    const link = start();
    const candidate = {
      candidate: 'candidate:2 1 udp 2 192.0.2.2 9 typ host',
      sdpMid: '0',
      sdpMLineIndex: 0,
    };
    link.rtc.current.push({
      type: 'rtc.description',
      description: { type: 'offer', sdp: 'v=0 local offer' },
    });
    link.rtc.current.push({
      type: 'rtc.description',
      description: { type: 'answer', sdp: 'v=0 local answer' },
    });
    link.rtc.current.push({ type: 'rtc.candidate', candidate });
    link.rtc.current.push({ type: 'rtc.candidate', candidate: null });
    expect(link.toParent).toEqual([
      {
        type: 'link.signal',
        message: { type: 'offer', targetPeerId: REMOTE_PEER, sdp: { type: 'offer', sdp: 'v=0 local offer' } },
      },
      {
        type: 'link.signal',
        message: {
          type: 'answer',
          targetPeerId: REMOTE_PEER,
          sdp: { type: 'answer', sdp: 'v=0 local answer' },
        },
      },
      { type: 'link.signal', message: { type: 'ice-candidate', targetPeerId: REMOTE_PEER, candidate } },
      { type: 'link.signal', message: { type: 'ice-candidate', targetPeerId: REMOTE_PEER, candidate: null } },
    ]);
  });
});

describe('peer link: probing', () => {
  it('answers a ping over the data channel with a pong carrying the same timestamp', () => {
    const link = start();
    goDirect(link);
    link.rtc.current.push({ type: 'rtc.message', message: { type: 'link-ping', ts: 123 }, bytes: 30 });
    expect(link.rtc.sent).toEqual([{ type: 'link-pong', ts: 123 }]);
    expect(link.delivered()).toEqual([]);
    expect(link.snapshot.context.bytesReceived).toBe(30);
  });

  it('answers a ping over the relay with a pong over the relay', () => {
    const link = start({ directTimeoutMs: 1_000 });
    goRelayed(link, 1_000);
    link.send(relayFrom({ type: 'link-ping', ts: 456 }));
    expect(link.relayed()).toEqual([{ type: 'link-pong', ts: 456 }]);
    expect(link.rtc.sent).toEqual([]);
    expect(link.delivered()).toEqual([]);
  });

  it('smooths the round-trip time (first sample as is, then 7/8 old + 1/8 new) and reports each value', () => {
    const link = start();
    goDirect(link);
    link.clock.increment(10_000);
    const pong = (sentAt: number) =>
      link.rtc.current.push({ type: 'rtc.message', message: { type: 'link-pong', ts: sentAt }, bytes: 30 });

    pong(10_000 - 80); // 80 ms
    expect(link.snapshot.context.rttMs).toBe(80);
    pong(10_000 - 160); // (80·7 + 160) / 8 = 90
    expect(link.snapshot.context.rttMs).toBe(90);
    pong(10_000 + 50); // a timestamp from the future counts as 0: (90·7 + 0) / 8 = 78.75
    expect(link.snapshot.context.rttMs).toBe(79);
    expect(link.ofType('link.rtt')).toEqual([
      { type: 'link.rtt', peerId: REMOTE_PEER, rttMs: 80 },
      { type: 'link.rtt', peerId: REMOTE_PEER, rttMs: 90 },
      { type: 'link.rtt', peerId: REMOTE_PEER, rttMs: 79 },
    ]);
    expect(link.delivered()).toEqual([]);
  });

  it('pings once per interval over an open path, and not while no path is open', () => {
    const link = start({ pingIntervalMs: 1_000, directTimeoutMs: 60_000, silenceTimeoutMs: 60_000 });
    link.clock.increment(1_000);
    link.clock.increment(1_000);
    expect(link.rtc.sent).toEqual([]);
    expect(link.snapshot.context.outbox).toEqual([]);

    goDirect(link);
    link.clock.increment(999);
    expect(link.rtc.sent).toEqual([]);
    link.clock.increment(1);
    link.clock.increment(1_000);
    expect(link.rtc.sent).toEqual([
      { type: 'link-ping', ts: 3_000 },
      { type: 'link-ping', ts: 4_000 },
    ]);
  });
});

describe('peer link: ICE restart', () => {
  it('restarts ICE when the connection drops while direct, queues meanwhile, and resumes direct when the channel reopens', () => {
    const link = start({ restartTimeoutMs: 5_000 });
    goDirect(link);
    link.rtc.current.push({ type: 'rtc.connectionState', state: 'disconnected' });
    expect(link.snapshot.matches({ active: { path: 'restarting' } })).toBe(true);
    expect(link.snapshot.hasTag('connecting')).toBe(true);
    expect(link.rtc.current.commands).toEqual([{ type: 'rtc.restart' }]);
    expect(link.snapshot.context.restarts).toBe(1);

    link.send({ type: 'link.send', message: cancel('t1') });
    link.send({ type: 'link.send', message: cancel('t2') });
    expect(link.rtc.sent).toEqual([]);

    link.rtc.current.push({ type: 'rtc.channelOpen' });
    expect(link.snapshot.matches({ active: { path: 'direct' } })).toBe(true);
    expect(link.rtc.sent).toEqual([cancel('t1'), cancel('t2')]);
    expect(link.ofType('link.transport').map((event) => event.transport)).toEqual(['direct', 'direct']);
    expect(link.rtc.peers).toHaveLength(1);
  });

  it('restarts ICE when the connection fails and resumes direct when it reports connected again', () => {
    const link = start();
    goDirect(link);
    link.rtc.current.push({ type: 'rtc.connectionState', state: 'failed' });
    expect(link.snapshot.matches({ active: { path: 'restarting' } })).toBe(true);
    link.rtc.current.push({ type: 'rtc.connectionState', state: 'connected' });
    expect(link.snapshot.matches({ active: { path: 'direct' } })).toBe(true);
    expect(link.rtc.restarts).toBe(1);
  });

  it('restarts ICE when the data channel closes while direct', () => {
    const link = start();
    goDirect(link);
    link.rtc.current.push({ type: 'rtc.channelClosed' });
    expect(link.snapshot.matches({ active: { path: 'restarting' } })).toBe(true);
    expect(link.rtc.restarts).toBe(1);
  });

  it('stays direct on connection states that are not a break', () => {
    const link = start();
    goDirect(link);
    for (const state of ['connecting', 'connected', 'new'] as const)
      link.rtc.current.push({ type: 'rtc.connectionState', state });
    expect(link.snapshot.matches({ active: { path: 'direct' } })).toBe(true);
    expect(link.rtc.restarts).toBe(0);
  });

  it('counts every restart', () => {
    const link = start();
    goDirect(link);
    link.rtc.current.push({ type: 'rtc.channelClosed' });
    link.rtc.current.push({ type: 'rtc.channelOpen' });
    link.rtc.current.push({ type: 'rtc.connectionState', state: 'failed' });
    expect(link.snapshot.context.restarts).toBe(2);
    expect(link.rtc.restarts).toBe(2);
  });

  it('falls back to the relay when the restart takes longer than restartTimeoutMs', () => {
    const link = start({ restartTimeoutMs: 3_000 });
    goDirect(link);
    link.rtc.current.push({ type: 'rtc.channelClosed' });
    link.send({ type: 'link.send', message: cancel('t1') });

    link.clock.increment(2_999);
    expect(link.snapshot.matches({ active: { path: 'restarting' } })).toBe(true);
    link.clock.increment(1);
    expect(link.snapshot.matches({ active: { path: 'relayed' } })).toBe(true);
    expect(link.ofType('link.transport').map((event) => event.transport)).toEqual(['direct', 'relayed']);
    expect(link.relayed()).toEqual([cancel('t1')]);
    expect(link.rtc.sent).toEqual([]);
  });
});

describe('peer link: silence', () => {
  it('reports link.silent once when nothing is heard for silenceTimeoutMs, and recovers when the peer speaks', () => {
    const link = start({ pingIntervalMs: 500, silenceTimeoutMs: 1_500 });
    goDirect(link); // at 0: silence is measured from here
    const tick = () => link.clock.increment(500);

    tick(); // 500
    tick(); // 1000
    tick(); // 1500: exactly the timeout, not past it
    expect(link.ofType('link.silent')).toEqual([]);
    expect(link.snapshot.context.silent).toBe(false);
    tick(); // 2000
    expect(link.ofType('link.silent')).toEqual([{ type: 'link.silent', peerId: REMOTE_PEER }]);
    expect(link.snapshot.context.silent).toBe(true);
    tick(); // 2500
    tick(); // 3000
    expect(link.ofType('link.silent')).toHaveLength(1);

    link.rtc.current.push({ type: 'rtc.message', message: cancel('t1'), bytes: 40 });
    expect(link.snapshot.context.silent).toBe(false);
    expect(link.snapshot.context.lastHeardAt).toBe(3_000);
    tick(); // 3500
    tick(); // 4000
    tick(); // 4500
    expect(link.ofType('link.silent')).toHaveLength(1);
    tick(); // 5000: silent again, told again
    expect(link.ofType('link.silent')).toHaveLength(2);
  });

  it('never reports silence while no path has opened', () => {
    const link = start({ pingIntervalMs: 500, silenceTimeoutMs: 1_000, directTimeoutMs: 60_000 });
    for (let i = 0; i < 10; i++) link.clock.increment(500);
    expect(link.ofType('link.silent')).toEqual([]);
    expect(link.snapshot.context.silent).toBe(false);
  });

  it('measures silence from when the relay opened, not from when the link was created', () => {
    const link = start({ pingIntervalMs: 1_000, silenceTimeoutMs: 1_500, directTimeoutMs: 3_000 });
    goRelayed(link, 3_000); // one jump to 3000: the probe's timer fires first, with no path open yet
    expect(link.snapshot.context.lastHeardAt).toBe(3_000);
    link.clock.increment(1_000); // 4000
    expect(link.ofType('link.silent')).toEqual([]);
    link.clock.increment(1_000); // 5000
    expect(link.ofType('link.silent')).toHaveLength(1);
  });
});

describe('peer link: liveness while a task is in flight', () => {
  const ping = (ts: number) => ({ type: 'link-ping', ts });

  it('pings every busyPingIntervalMs while busy and every pingIntervalMs again once idle', () => {
    const link = start({
      pingIntervalMs: 500,
      busyPingIntervalMs: 250,
      silenceTimeoutMs: 60_000,
      busySilenceTimeoutMs: 60_000,
    });
    goDirect(link);
    expect(link.snapshot.matches({ active: { probe: 'idle' } })).toBe(true);
    link.clock.increment(500);
    expect(link.rtc.sent).toEqual([ping(500)]);

    link.send({ type: 'link.busy' });
    expect(link.snapshot.matches({ active: { probe: 'busy' } })).toBe(true);
    link.clock.increment(249);
    expect(link.rtc.sent).toEqual([ping(500)]);
    link.clock.increment(1); // 750
    link.clock.increment(250); // 1000
    expect(link.rtc.sent).toEqual([ping(500), ping(750), ping(1_000)]);
    link.send({ type: 'link.busy' }); // already busy: the timer is not restarted
    link.clock.increment(250); // 1250
    expect(link.rtc.sent).toHaveLength(4);

    link.send({ type: 'link.idle' });
    expect(link.snapshot.matches({ active: { probe: 'idle' } })).toBe(true);
    link.clock.increment(499);
    expect(link.rtc.sent).toHaveLength(4);
    link.clock.increment(1); // 1750
    expect(link.rtc.sent.at(-1)).toEqual(ping(1_750));
    link.send({ type: 'link.idle' }); // already idle: nothing changes
    expect(link.snapshot.matches({ active: { probe: 'idle' } })).toBe(true);
    // The path is not the probe's business, nor the probe the path's.
    expect(link.snapshot.matches({ active: { path: 'direct' } })).toBe(true);
    expect(link.ofType('link.silent')).toEqual([]);
  });

  it('reports silence after busySilenceTimeoutMs while busy, where an idle link would wait silenceTimeoutMs', () => {
    const idle = start({ pingIntervalMs: 250, silenceTimeoutMs: 1_500, busySilenceTimeoutMs: 1_000 });
    goDirect(idle);
    for (let at = 250; at <= 1_500; at += 250) idle.clock.increment(250);
    expect(idle.ofType('link.silent')).toEqual([]);
    idle.clock.increment(250); // 1750: past 1500
    expect(idle.ofType('link.silent')).toHaveLength(1);
    idle.stop();

    const busy = start({
      pingIntervalMs: 500,
      busyPingIntervalMs: 250,
      silenceTimeoutMs: 1_500,
      busySilenceTimeoutMs: 1_000,
    });
    goDirect(busy);
    busy.send({ type: 'link.busy' });
    for (let at = 250; at <= 1_000; at += 250) busy.clock.increment(250);
    expect(busy.ofType('link.silent')).toEqual([]); // exactly the timeout, not past it
    busy.clock.increment(250); // 1250
    expect(busy.ofType('link.silent')).toEqual([{ type: 'link.silent', peerId: REMOTE_PEER }]);
    expect(busy.snapshot.context.silent).toBe(true);
    busy.clock.increment(250);
    expect(busy.ofType('link.silent')).toHaveLength(1);
  });

  it('never finds the peer silent on a check that only came late (our own event loop stalled): the next one decides', () => {
    const link = start({ busyPingIntervalMs: 250, busySilenceTimeoutMs: 1_000, silenceTimeoutMs: 60_000 });
    goDirect(link);
    link.send({ type: 'link.busy' });
    link.clock.increment(250); // a check at 250
    link.rtc.current.push({ type: 'rtc.message', message: cancel('t1'), bytes: 40 }); // heard at 250
    link.clock.increment(1_500); // the next check fires 1500 ms late, at 1750
    expect(link.ofType('link.silent')).toEqual([]);
    // What arrived meanwhile is read now: the peer was never silent.
    link.rtc.current.push({ type: 'rtc.message', message: cancel('t2'), bytes: 40 });
    link.clock.increment(250); // 2000
    expect(link.ofType('link.silent')).toEqual([]);

    // Stalled again, and this time nothing had arrived: the late check still waits, the next one reports.
    link.clock.increment(1_500); // 3500, late
    expect(link.ofType('link.silent')).toEqual([]);
    link.clock.increment(250); // 3750, on time: silent since 1750
    expect(link.ofType('link.silent')).toHaveLength(1);
  });

  it('defaults to a 250 ms ping and 1 s silence while busy, never more relaxed than the idle values', () => {
    const defaults = start({ pingIntervalMs: undefined, busyPingIntervalMs: undefined });
    expect(defaults.snapshot.context).toMatchObject({
      pingIntervalMs: 500,
      silenceTimeoutMs: 1_500,
      busyPingIntervalMs: 250,
      busySilenceTimeoutMs: 1_000,
    });
    defaults.stop();
    const tight = start({ pingIntervalMs: 100, silenceTimeoutMs: 600, busyPingIntervalMs: undefined });
    expect(tight.snapshot.context).toMatchObject({ busyPingIntervalMs: 100, busySilenceTimeoutMs: 600 });
  });
});

describe('peer link: samples', () => {
  it('takes one sample per ping interval, with byte rates from the counters since the last sample', () => {
    const link = start({ pingIntervalMs: 2_000, silenceTimeoutMs: 60_000 });
    goDirect(link);
    link.rtc.current.push({ type: 'rtc.sent', bytes: 300 });
    link.rtc.current.push({ type: 'rtc.sent', bytes: 100 });
    link.rtc.current.push({ type: 'rtc.message', message: cancel('t1'), bytes: 200 });
    link.clock.increment(1_999);
    expect(link.snapshot.context.samples).toEqual([]);
    link.clock.increment(1); // 2000: 400 B sent, 200 B received over 2 s

    link.rtc.current.push({ type: 'rtc.message', message: { type: 'link-pong', ts: 1_950 }, bytes: 30 });
    link.rtc.current.push({ type: 'rtc.sent', bytes: 1_000 });
    link.clock.increment(2_000); // 4000: 1000 B sent, 30 B received over 2 s

    expect(link.snapshot.context.bytesSent).toBe(1_400);
    expect(link.snapshot.context.bytesReceived).toBe(230);
    expect(link.snapshot.context.samples).toEqual([
      { at: 2_000, rttMs: undefined, sentBytesPerSecond: 200, receivedBytesPerSecond: 100 },
      { at: 4_000, rttMs: 50, sentBytesPerSecond: 500, receivedBytesPerSecond: 15 },
    ]);
  });

  it('keeps the newest MAX_SAMPLES samples', () => {
    const link = start({ pingIntervalMs: 100, silenceTimeoutMs: 60_000 });
    const extra = 7;
    for (let i = 0; i < MAX_SAMPLES + extra; i++) link.clock.increment(100);
    const { samples } = link.snapshot.context;
    expect(samples).toHaveLength(MAX_SAMPLES);
    expect(samples[0]?.at).toBe((extra + 1) * 100);
    expect(samples.at(-1)?.at).toBe((MAX_SAMPLES + extra) * 100);
  });
});

describe('peer link: closing', () => {
  it('closes on link.close, stops the RTC actor and outputs its peer id without an error', () => {
    const link = start({ pingIntervalMs: 500 });
    goDirect(link);
    link.send({ type: 'link.close' });
    expect(link.snapshot.status).toBe('done');
    expect(link.snapshot.value).toBe('closed');
    expect(link.rtc.current.stopped).toBe(true);
    expect(link.done).toEqual({ output: { peerId: REMOTE_PEER, error: undefined } });

    const before = link.rtc.current.commands.length;
    link.clock.increment(10_000);
    expect(link.rtc.current.commands).toHaveLength(before);
  });

  it('closes on link.unreachable with the reason as its error, dropping what was queued', () => {
    const link = start({ directTimeoutMs: 1_000 });
    link.send({ type: 'link.send', message: cancel('t1') });
    link.send({ type: 'link.unreachable', reason: 'peer-a is not connected' });
    expect(link.snapshot.status).toBe('done');
    expect(link.done).toEqual({ output: { peerId: REMOTE_PEER, error: 'peer-a is not connected' } });
    expect(link.rtc.current.stopped).toBe(true);
    link.clock.increment(1_000);
    expect(link.relayed()).toEqual([]);
    expect(link.ofType('link.transport')).toEqual([]);
  });

  it('reports the last RTC error in its output when closed', () => {
    const link = start();
    link.rtc.current.push({ type: 'rtc.error', error: 'setRemoteDescription failed' });
    expect(link.snapshot.context.lastError).toBe('setRemoteDescription failed');
    link.send({ type: 'link.close' });
    expect(link.done).toEqual({ output: { peerId: REMOTE_PEER, error: 'setRemoteDescription failed' } });
  });
});
