import { afterEach, describe, expect, it } from 'vitest';
import { type Actor, type AnyActorRef, createActor, fromCallback, SimulatedClock } from 'xstate';
import type { connectionMachine, ForwardedMessage } from '../../machines/connection.machine.ts';
import type { discoveryMachine } from '../../machines/discovery.machine.ts';
import {
  type HandoffEmitted,
  type HandoffEvent,
  type HandoffInput,
  HISTORY_LIMIT,
  handoffMachine,
  linkId,
  requestId,
  type ServePolicy,
} from '../../machines/handoff.machine.ts';
import type { LinkMessage } from '../../machines/link-framing.ts';
import type { LinkToParent, peerLinkMachine } from '../../machines/peer-link.machine.ts';
import type { TaskRequestOutput, taskRequestMachine } from '../../machines/task-request.machine.ts';
import type { TaskServeOutput, taskServeMachine } from '../../machines/task-serve.machine.ts';
import type { Capabilities, DiscoveredPeer, IceServer, ServerError } from '../../protocol/index.ts';
import { aiPeer, delegation, ScriptedProvider, settle, UnusedWebSocket } from '../support/client-fakes.ts';
import { FakeChildren } from '../support/fake-children.ts';
import { UnusedRTCPeerConnection } from '../support/fake-rtc.ts';

const ME = 'peer-me';
const A = 'peer-a';
const B = 'peer-b';
const C = 'peer-c';
const ICE: IceServer[] = [{ urls: 'stun:stun.example.org:3478' }];

// ---------------------------------------------------------------- messages

const offerFrom = (peer: string): ForwardedMessage => ({
  type: 'offer',
  targetPeerId: ME,
  fromPeerId: peer,
  sdp: { type: 'offer', sdp: `v=0 offer from ${peer}` },
});
const answerFrom = (peer: string): ForwardedMessage => ({
  type: 'answer',
  targetPeerId: ME,
  fromPeerId: peer,
  sdp: { type: 'answer', sdp: `v=0 answer from ${peer}` },
});
const candidateFrom = (peer: string): ForwardedMessage => ({
  type: 'ice-candidate',
  targetPeerId: ME,
  fromPeerId: peer,
  candidate: { candidate: `candidate:1 1 udp 1 10.0.0.1 9 typ host (${peer})`, sdpMid: '0' },
});
const relayFrom = (peer: string, payload: LinkMessage): ForwardedMessage => ({
  type: 'relay',
  targetPeerId: ME,
  fromPeerId: peer,
  payload,
});
const serverError = (overrides: Partial<ServerError> = {}): ServerError => ({
  type: 'error',
  code: 'unknown-target',
  message: 'peer is not connected',
  inReplyTo: 'offer',
  ...overrides,
});
const ranked = (...peerIds: string[]): DiscoveredPeer[] =>
  peerIds.map((peerId, index) => ({ peerId, capabilities: aiPeer(['m-1']), score: 90 - index }));

const accepted = (taskId: string): LinkMessage => ({ type: 'task-accepted', taskId, queuePosition: 0 });
const chunk = (taskId: string, seq: number, text: string, isComplete = false): LinkMessage => ({
  type: 'prompt-response',
  taskId,
  seq,
  chunk: text,
  isComplete,
});

// ---------------------------------------------------------------- the harness

interface StartOptions {
  /** Replace taskRequest and taskServe with recording fakes (they stay running until finished). */
  fakeTasks?: boolean;
  /** What the fake connection's snapshot shows as our peer id (undefined: no session yet). */
  peerId?: string | undefined;
}

let running: { actor: Actor<typeof handoffMachine>; errors: unknown[] } | undefined;
afterEach(() => {
  const current = running;
  running = undefined;
  current?.actor.stop();
  // No scenario may leave the root (or a child it was told about) in error.
  expect(current?.errors ?? []).toEqual([]);
});

function startHandoff(input: Partial<Omit<HandoffInput, 'environment'>> = {}, options: StartOptions = {}) {
  const clock = new SimulatedClock();
  const fakes = new FakeChildren();
  const peerId = 'peerId' in options ? options.peerId : ME;
  const tasks = options.fakeTasks
    ? {
        taskRequest: fakes.logic<typeof taskRequestMachine>('taskRequest', (taskInput) => ({
          ...(taskInput as object),
          current: 0,
        })),
        taskServe: fakes.logic<typeof taskServeMachine>('taskServe', (serveInput) => ({
          ...(serveInput as object),
        })),
      }
    : {};
  const machine = handoffMachine.provide({
    actors: {
      connection: fakes.logic<typeof connectionMachine>('connection', () => ({ peerId, iceServers: ICE })),
      discovery: fakes.logic<typeof discoveryMachine>('discovery', () => ({ ranked: [] })),
      peerLink: fakes.logic<typeof peerLinkMachine>('peerLink'),
      ...tasks,
    },
  });
  const actor = createActor(machine, {
    clock,
    input: {
      environment: { WebSocket: UnusedWebSocket, RTCPeerConnection: UnusedRTCPeerConnection },
      now: () => clock.now(),
      ...input,
    },
  });
  const errors: unknown[] = [];
  const taskDone: Extract<HandoffEmitted, { type: 'handoff.taskDone' }>[] = [];
  const serveDone: Extract<HandoffEmitted, { type: 'handoff.serveDone' }>[] = [];
  actor.subscribe({ error: (error) => errors.push(error) });
  actor.on('handoff.taskDone', (event) => taskDone.push(event));
  actor.on('handoff.serveDone', (event) => serveDone.push(event));
  actor.start();
  running = { actor, errors };

  const children = () => actor.getSnapshot().children as Record<string, AnyActorRef | undefined>;
  const h = {
    clock,
    fakes,
    actor,
    errors,
    taskDone,
    serveDone,
    context: () => actor.getSnapshot().context,
    children,
    /** Ids of the root's children that start with `prefix`, sorted. */
    childIds: (prefix: string) =>
      Object.keys(children())
        .filter((id) => id.startsWith(prefix))
        .sort(),
    send: (event: HandoffEvent) => actor.send(event),
    /** The signaling server says something; the connection forwards it to the root. */
    server: (message: ForwardedMessage) => fakes.sendParent('connection', message),
    /** A peer link tells the root something. */
    fromLink: (peer: string, event: LinkToParent) => fakes.sendParent(linkId(peer), event),
    /** A peer sends a task message over its link. */
    fromPeer: (peer: string, message: LinkMessage) =>
      fakes.sendParent(linkId(peer), { type: 'link.message', peerId: peer, message }),
    /** What the latest link to `peer` received. */
    toLink: (peer: string) => fakes.received(linkId(peer)),
    /** `link.send` payloads the latest link to `peer` received. */
    sentTo: (peer: string) =>
      fakes
        .received(linkId(peer))
        .filter((event) => event.type === 'link.send')
        .map((event) => (event as unknown as { message: LinkMessage }).message),
    /** Opens a responder link to `peer` (an offer arrives) at the current time. */
    openLinkFrom: (peer: string) => fakes.sendParent('connection', offerFrom(peer)),
    isRunning: (id: string) => children()[id]?.getSnapshot().status === 'active',
  };
  return h;
}

const linkInput = (h: ReturnType<typeof startHandoff>, peer: string) =>
  h.fakes.get(linkId(peer)).input as Record<string, unknown>;

// ---------------------------------------------------------------- scenarios

describe('handoff root: connection and discovery', () => {
  it('passes connect, disconnect, retry and announce to the connection and remembers the announcement', () => {
    const h = startHandoff();
    expect(h.context().capabilities).toEqual({ hasAI: false, models: [] });
    const announced: Capabilities = aiPeer(['m-1', 'm-2'], { available: 40 });
    const events: HandoffEvent[] = [
      { type: 'user.connect', url: 'wss://signal.example.org/ws' },
      { type: 'user.announce', capabilities: announced },
      { type: 'user.retry' },
      { type: 'user.disconnect' },
    ];
    for (const event of events) h.send(event);
    expect(h.fakes.received('connection')).toEqual(events);
    expect(h.context().capabilities).toEqual(announced);
    expect(h.fakes.received('discovery')).toEqual([]);
  });

  it('starts the connection with the environment’s WebSocket and the connection options', () => {
    const h = startHandoff({ connection: { maxAttempts: 3, token: 'secret' } });
    expect(h.fakes.get('connection').input).toEqual({
      WebSocket: UnusedWebSocket,
      maxAttempts: 3,
      token: 'secret',
    });
    expect(h.fakes.started('discovery')).toEqual(['discovery']);
  });

  it('asks discovery and keeps it told of capability updates, results, leaves and measured RTT', () => {
    const h = startHandoff();
    const requirements = { needsAI: true, minQuota: 5, preferredModels: ['m-1'] };
    h.send({ type: 'user.discover', requirements });
    const update: ForwardedMessage = {
      type: 'peer-capability-update',
      peerId: A,
      capabilities: aiPeer(['m-1']),
    };
    const results: ForwardedMessage = {
      type: 'peers-discovered',
      peers: ranked(A, B),
      requestId: 'discover-1',
    };
    const left: ForwardedMessage = { type: 'peer-left', peerId: B, reason: 'left' };
    h.server(update);
    h.server(results);
    h.server(left);
    h.send({ type: 'link.rtt', peerId: A, rttMs: 42 });
    expect(h.fakes.received('discovery')).toEqual([
      { type: 'user.discover', requirements },
      update,
      results,
      left,
      { type: 'link.rtt', peerId: A, rttMs: 42 },
    ]);
    expect(h.fakes.received('connection')).toEqual([]);
  });
});

describe('handoff root: signals and links', () => {
  it('opens a responder link for an offer from a new peer and hands it the offer', () => {
    const h = startHandoff({ link: { directTimeoutMs: 1_234 } });
    h.clock.increment(500);
    h.server(offerFrom(A));
    expect(h.childIds('link-')).toEqual([linkId(A)]);
    expect(linkInput(h, A)).toMatchObject({
      localPeerId: ME,
      remotePeerId: A,
      initiator: false,
      RTCPeerConnection: UnusedRTCPeerConnection,
      iceServers: ICE,
      directTimeoutMs: 1_234,
    });
    expect(h.toLink(A)).toEqual([offerFrom(A)]);
    expect(h.context().linkUse).toEqual({ [A]: 500 });
  });

  it('opens a responder link for relayed traffic from a new peer and hands it the relay', () => {
    const h = startHandoff();
    const relay = relayFrom(B, delegation({ taskId: 'via-relay' }));
    h.server(relay);
    expect(linkInput(h, B)).toMatchObject({ localPeerId: ME, remotePeerId: B, initiator: false });
    expect(h.toLink(B)).toEqual([relay]);
  });

  it('drops an answer or ICE candidate from a peer it has no link to', () => {
    const h = startHandoff();
    h.server(answerFrom(A));
    h.server(candidateFrom(A));
    expect(h.fakes.started('peerLink')).toEqual([]);
    expect(h.childIds('link-')).toEqual([]);
    expect(h.context().linkUse).toEqual({});
  });

  it('routes every signal from a known peer to its one link', () => {
    const h = startHandoff();
    h.openLinkFrom(A);
    h.openLinkFrom(B);
    h.server(candidateFrom(A));
    h.server(answerFrom(A));
    h.server(relayFrom(A, accepted('t')));
    h.server(offerFrom(A));
    expect(h.fakes.started('peerLink')).toEqual([linkId(A), linkId(B)]);
    expect(h.toLink(A)).toEqual([
      offerFrom(A),
      candidateFrom(A),
      answerFrom(A),
      relayFrom(A, accepted('t')),
      offerFrom(A),
    ]);
    expect(h.toLink(B)).toEqual([offerFrom(B)]);
  });

  it('opens no link before the signaling session has given us a peer id', () => {
    const h = startHandoff({}, { peerId: undefined });
    h.server(offerFrom(A));
    h.server(relayFrom(A, accepted('t')));
    expect(h.fakes.started('peerLink')).toEqual([]);
    // Once the session exists, the next offer opens one with our id.
    h.fakes.assign('connection', { peerId: ME });
    h.server(offerFrom(A));
    expect(linkInput(h, A)).toMatchObject({ localPeerId: ME, initiator: false });
  });

  it('opens an initiator link for a task message to a peer without one and sends the message over it', () => {
    const h = startHandoff();
    h.clock.increment(70);
    const message = delegation({ taskId: 't-out' });
    h.send({ type: 'task.send', peerId: B, message });
    expect(linkInput(h, B)).toMatchObject({
      localPeerId: ME,
      remotePeerId: B,
      initiator: true,
      iceServers: ICE,
    });
    expect(h.toLink(B)).toEqual([{ type: 'link.send', message }]);
    expect(h.context().linkUse).toEqual({ [B]: 70 });
    // A second message reuses the link.
    h.send({ type: 'task.send', peerId: B, message: accepted('t-out') });
    expect(h.fakes.started('peerLink')).toEqual([linkId(B)]);
    expect(h.sentTo(B)).toEqual([message, accepted('t-out')]);
  });

  it('passes a link’s signaling message to the connection as signal.send', () => {
    const h = startHandoff();
    h.openLinkFrom(A);
    const answer = {
      type: 'answer' as const,
      targetPeerId: A,
      sdp: { type: 'answer' as const, sdp: 'v=0 mine' },
    };
    h.fromLink(A, { type: 'link.signal', message: answer });
    const relay = { type: 'relay' as const, targetPeerId: A, payload: accepted('t') };
    h.fromLink(A, { type: 'link.signal', message: relay });
    expect(h.fakes.received('connection')).toEqual([
      { type: 'signal.send', message: answer },
      { type: 'signal.send', message: relay },
    ]);
  });

  it('tells a link its peer is unreachable only after a grace for the peer to come back, and records the error', () => {
    const h = startHandoff({ unreachableGraceMs: 8_000 });
    h.openLinkFrom(A);
    const unreachable = serverError({ targetPeerId: A, message: 'peer-a is not connected' });
    h.server(unreachable);
    expect(h.context().lastServerError).toEqual(unreachable);
    // The peer may only be reconnecting (a restarted server forgets everyone): nothing yet.
    h.clock.increment(7_999);
    expect(h.toLink(A)).toEqual([offerFrom(A)]);
    h.clock.increment(1);
    expect(h.toLink(A)).toEqual([
      offerFrom(A),
      { type: 'link.unreachable', reason: 'peer-a is not connected' },
    ]);

    // Another code, or a target without a link, is only recorded.
    const limited = serverError({ code: 'rate-limited', targetPeerId: A, message: 'slow down' });
    h.server(limited);
    const unknown = serverError({ targetPeerId: B });
    h.server(unknown);
    h.clock.increment(10_000);
    expect(h.toLink(A)).toHaveLength(2);
    expect(h.fakes.started('peerLink')).toEqual([linkId(A)]);
    expect(h.context().lastServerError).toEqual(unknown);
  });

  it('withdraws an unknown-target verdict when the peer shows up again within the grace', () => {
    const h = startHandoff({ unreachableGraceMs: 8_000 });
    h.openLinkFrom(A);
    h.openLinkFrom(B);
    h.server(serverError({ targetPeerId: A }));
    h.server(serverError({ targetPeerId: B }));
    h.clock.increment(3_000);
    // A announces again after reconnecting; B talks to us over its link.
    h.server({ type: 'peer-capability-update', peerId: A, capabilities: aiPeer(['m-1']) });
    h.fromPeer(B, accepted('t-x'));
    h.clock.increment(10_000);
    expect(h.toLink(A).map((event) => event.type)).not.toContain('link.unreachable');
    expect(h.toLink(B).map((event) => event.type)).not.toContain('link.unreachable');
  });
});

describe('handoff root: the link pool', () => {
  it('recycles the least recently used idle link when a new one would exceed maxLinks', () => {
    const h = startHandoff({ maxLinks: 2 });
    h.clock.increment(10);
    h.openLinkFrom(A);
    h.clock.increment(10);
    h.openLinkFrom(B);
    h.clock.increment(10);
    // A is used again, so B is now the least recently used.
    h.send({ type: 'task.send', peerId: A, message: accepted('t') });
    const linkB = h.children()[linkId(B)];
    h.clock.increment(10);
    h.openLinkFrom(C);
    expect(h.childIds('link-')).toEqual([linkId(A), linkId(C)].sort());
    expect(linkB?.getSnapshot().status).toBe('stopped');
    expect(h.isRunning(linkId(A))).toBe(true);
    expect(h.toLink(C)).toEqual([offerFrom(C)]);
  });

  it('keeps the link a running request depends on, recycling an idle one even if it was used later', () => {
    const h = startHandoff({ maxLinks: 2 });
    h.clock.increment(10);
    // The request's delegation opens the link to A (the least recently used one from here on).
    h.send({ type: 'user.delegate', taskId: 't-a', prompt: 'hello', options: { targetPeerId: A } });
    expect(h.sentTo(A).map((message) => message.type)).toEqual(['prompt-delegation']);
    h.clock.increment(10);
    h.openLinkFrom(B);
    h.clock.increment(10);
    h.openLinkFrom(C);
    expect(h.childIds('link-')).toEqual([linkId(A), linkId(C)].sort());
    expect(h.isRunning(requestId('t-a'))).toBe(true);
  });

  it('keeps the link a running serve task depends on', async () => {
    const provider = new ScriptedProvider();
    const h = startHandoff({ maxLinks: 2, provider, models: ['scripted-1'] });
    h.clock.increment(10);
    h.openLinkFrom(A);
    h.fromPeer(A, delegation({ taskId: 't-served' }));
    await settle();
    expect(h.sentTo(A).map((message) => message.type)).toEqual(['task-accepted']);
    expect(h.isRunning('serve-1')).toBe(true);
    h.clock.increment(10);
    h.openLinkFrom(B);
    h.clock.increment(10);
    h.openLinkFrom(C);
    expect(h.childIds('link-')).toEqual([linkId(A), linkId(C)].sort());
  });

  it('tells a task its peer is lost, naming the pool, when every open link is busy', () => {
    const h = startHandoff({ maxLinks: 1 });
    h.send({ type: 'user.delegate', taskId: 't-a', prompt: 'first', options: { targetPeerId: A } });
    h.send({ type: 'user.delegate', taskId: 't-b', prompt: 'second', options: { targetPeerId: B } });
    expect(h.childIds('link-')).toEqual([linkId(A)]);
    expect(h.isRunning(requestId('t-a'))).toBe(true);
    // The second task had no other candidate, so losing B ended it.
    expect(h.taskDone).toHaveLength(1);
    const [done] = h.taskDone;
    expect(done?.output).toMatchObject({ taskId: 't-b', status: 'failed' });
    expect(done?.output.attempts).toEqual([
      { peerId: B, outcome: 'lost', reason: expect.stringMatching(/pool/), chars: 0 },
    ]);
  });
});

describe('handoff root: task traffic', () => {
  it('refuses to serve with no-model when this peer has no provider (the default policy)', () => {
    const h = startHandoff({}, { fakeTasks: true });
    h.openLinkFrom(A);
    const asked = delegation({ taskId: 't-1' });
    h.fromPeer(A, asked);
    expect(h.fakes.started('taskServe')).toEqual(['serve-1']);
    expect(h.fakes.get('serve-1').input).toEqual({
      requesterPeerId: A,
      delegation: asked,
      admission: { admitted: false, reason: 'no-model', message: expect.any(String) },
      provider: undefined,
    });
    expect(h.context().serves).toEqual({ [`${A} t-1`]: 'serve-1' });
  });

  it('refuses with no-model a delegation for a model the provider does not offer', () => {
    const provider = new ScriptedProvider();
    const h = startHandoff({ provider, models: ['m-1'], maxConcurrentServes: 5 }, { fakeTasks: true });
    h.openLinkFrom(A);
    h.fromPeer(A, delegation({ taskId: 't-1', model: 'm-2' }));
    h.fromPeer(A, delegation({ taskId: 't-2', model: 'm-1' }));
    h.fromPeer(A, delegation({ taskId: 't-3' }));
    const admissions = ['serve-1', 'serve-2', 'serve-3'].map(
      (id) => (h.fakes.get(id).input as { admission: unknown }).admission,
    );
    expect(admissions).toEqual([
      { admitted: false, reason: 'no-model', message: expect.stringContaining('m-2') },
      { admitted: true, queuePosition: 0 },
      { admitted: true, queuePosition: 0 },
    ]);
    expect((h.fakes.get('serve-2').input as { provider: unknown }).provider).toBe(provider);
  });

  it('refuses as busy, with a retry hint, past maxConcurrentServes running serves', () => {
    const provider = new ScriptedProvider();
    const h = startHandoff({ provider, maxConcurrentServes: 1 }, { fakeTasks: true });
    h.openLinkFrom(A);
    h.openLinkFrom(B);
    h.fromPeer(A, delegation({ taskId: 't-1' }));
    h.fromPeer(B, delegation({ taskId: 't-2' }));
    expect((h.fakes.get('serve-2').input as { admission: unknown }).admission).toEqual({
      admitted: false,
      reason: 'busy',
      message: expect.any(String),
      retryAfterMs: 1_000,
    });
    // Once the first serve is done, there is room again.
    h.fakes.finish('serve-1', serveOutput(A, 't-1', 'completed'));
    h.fakes.finish('serve-2', serveOutput(B, 't-2', 'rejected'));
    h.fromPeer(B, delegation({ taskId: 't-2' }));
    expect((h.fakes.get('serve-3').input as { admission: unknown }).admission).toEqual({
      admitted: true,
      queuePosition: 0,
    });
  });

  it('asks a custom serve policy, with the sender and how many serves are running', () => {
    const asked: Parameters<ServePolicy>[0][] = [];
    const servePolicy: ServePolicy = (request) => {
      asked.push(request);
      return request.fromPeerId === B
        ? { admitted: false, reason: 'policy', message: 'not from B' }
        : { admitted: true, queuePosition: 7 };
    };
    const h = startHandoff({ servePolicy }, { fakeTasks: true });
    h.openLinkFrom(A);
    h.openLinkFrom(B);
    const fromA = delegation({ taskId: 't-1' });
    const fromB = delegation({ taskId: 't-2' });
    h.fromPeer(A, fromA);
    h.fromPeer(B, fromB);
    // `now` comes from the root's clock; no quota monitor, so no `quota`.
    expect(asked).toEqual([
      { delegation: fromA, fromPeerId: A, running: 0, now: h.clock.now() },
      { delegation: fromB, fromPeerId: B, running: 1, now: h.clock.now() },
    ]);
    expect((h.fakes.get('serve-1').input as { admission: unknown }).admission).toEqual({
      admitted: true,
      queuePosition: 7,
    });
    expect((h.fakes.get('serve-2').input as { admission: unknown }).admission).toEqual({
      admitted: false,
      reason: 'policy',
      message: 'not from B',
    });
  });

  it('serves a repeated delegation once, but the same task id from another peer separately', () => {
    const h = startHandoff({ provider: new ScriptedProvider() }, { fakeTasks: true });
    h.openLinkFrom(A);
    h.openLinkFrom(B);
    h.fromPeer(A, delegation({ taskId: 't-1' }));
    h.fromPeer(A, delegation({ taskId: 't-1' }));
    expect(h.fakes.started('taskServe')).toEqual(['serve-1']);
    h.fromPeer(B, delegation({ taskId: 't-1' }));
    expect(h.fakes.started('taskServe')).toEqual(['serve-1', 'serve-2']);
    expect(h.context().serves).toEqual({ [`${A} t-1`]: 'serve-1', [`${B} t-1`]: 'serve-2' });
  });

  it('hands verdicts, chunks and failures from a peer to the request task they name', () => {
    const h = startHandoff({}, { fakeTasks: true });
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'one', options: { targetPeerId: A } });
    h.send({ type: 'user.delegate', taskId: 't-2', prompt: 'two', options: { targetPeerId: A } });
    h.send({ type: 'task.send', peerId: A, message: delegation({ taskId: 't-1' }) });
    const messages: LinkMessage[] = [
      accepted('t-1'),
      chunk('t-1', 0, 'Hi'),
      { type: 'task-rejected', taskId: 't-1', reason: 'busy', message: 'busy', retryAfterMs: 10 },
      { type: 'task-failed', taskId: 't-1', code: 'provider-error', message: 'boom' },
    ];
    for (const message of messages) h.fromPeer(A, message);
    // A message for a task we are not running goes nowhere.
    h.fromPeer(A, accepted('t-unknown'));
    expect(h.fakes.received(requestId('t-1'))).toEqual(
      messages.map((message) => ({ type: 'task.message', peerId: A, message })),
    );
    expect(h.fakes.received(requestId('t-2'))).toEqual([]);
    expect(h.fakes.started('taskServe')).toEqual([]);
  });

  it('hands chunk acks and cancels to the serve task of that peer and task', () => {
    const h = startHandoff({ provider: new ScriptedProvider() }, { fakeTasks: true });
    h.openLinkFrom(A);
    h.openLinkFrom(B);
    h.fromPeer(A, delegation({ taskId: 't-1' }));
    h.fromPeer(B, delegation({ taskId: 't-1' }));
    const ack: LinkMessage = { type: 'chunk-ack', taskId: 't-1', seq: 3 };
    const cancel: LinkMessage = { type: 'task-cancel', taskId: 't-1', reason: 'enough' };
    h.fromPeer(B, ack);
    h.fromPeer(A, cancel);
    // Unknown task ids are dropped.
    h.fromPeer(A, { type: 'chunk-ack', taskId: 't-9', seq: 0 });
    expect(h.fakes.received('serve-1')).toEqual([cancel]);
    expect(h.fakes.received('serve-2')).toEqual([ack]);
  });

  it('tells the serve tasks of a peer whose link changed path to resend what is unacknowledged', () => {
    const h = startHandoff({ provider: new ScriptedProvider() }, { fakeTasks: true });
    h.openLinkFrom(A);
    h.openLinkFrom(B);
    h.fromPeer(A, delegation({ taskId: 't-1' }));
    h.fromPeer(A, delegation({ taskId: 't-2' }));
    h.fromPeer(B, delegation({ taskId: 't-3' }));
    h.fromLink(A, { type: 'link.transport', peerId: A, transport: 'relayed' });
    expect(h.fakes.received('serve-1')).toEqual([{ type: 'requester.pathChanged' }]);
    expect(h.fakes.received('serve-2')).toEqual([{ type: 'requester.pathChanged' }]);
    expect(h.fakes.received('serve-3')).toEqual([]);
  });
});

/** Two requests (to A and to B) and two serves (for A and for B), all fakes, all running. */
function withTasksOnTwoPeers() {
  const h = startHandoff({ provider: new ScriptedProvider() }, { fakeTasks: true });
  h.openLinkFrom(A);
  h.openLinkFrom(B);
  h.send({ type: 'user.delegate', taskId: 'r-a', prompt: 'to a', options: { targetPeerId: A } });
  h.send({ type: 'user.delegate', taskId: 'r-b', prompt: 'to b', options: { targetPeerId: B } });
  h.fromPeer(A, delegation({ taskId: 's-a' }));
  h.fromPeer(B, delegation({ taskId: 's-b' }));
  expect(h.fakes.started('taskServe')).toEqual(['serve-1', 'serve-2']);
  return h;
}

describe('handoff root: losing a peer', () => {
  it('tells the tasks a silent peer matters to that it is lost', () => {
    const h = withTasksOnTwoPeers();
    h.fromLink(A, { type: 'link.silent', peerId: A });
    const lost = { type: 'peer.lost', peerId: A, reason: 'peer stopped answering' };
    // Every request hears it (each ignores a peer it is not using); only A's serve is aborted.
    expect(h.fakes.received(requestId('r-a'))).toEqual([lost]);
    expect(h.fakes.received(requestId('r-b'))).toEqual([lost]);
    expect(h.fakes.received('serve-1')).toEqual([{ type: 'requester.lost' }]);
    expect(h.fakes.received('serve-2')).toEqual([]);
    // The link itself is left to recover.
    expect(h.toLink(A)).toEqual([offerFrom(A)]);
  });

  it('closes the link of a peer that left, and tells its tasks and discovery', () => {
    const h = withTasksOnTwoPeers();
    const left: ForwardedMessage = { type: 'peer-left', peerId: B, reason: 'timeout' };
    h.server(left);
    expect(h.toLink(B)).toEqual([offerFrom(B), { type: 'link.close' }]);
    expect(h.toLink(A)).toEqual([offerFrom(A)]);
    const lost = { type: 'peer.lost', peerId: B, reason: 'peer left (timeout)' };
    expect(h.fakes.received(requestId('r-a'))).toEqual([lost]);
    expect(h.fakes.received(requestId('r-b'))).toEqual([lost]);
    expect(h.fakes.received('serve-1')).toEqual([]);
    expect(h.fakes.received('serve-2')).toEqual([{ type: 'requester.lost' }]);
    expect(h.fakes.received('discovery')).toEqual([left]);
  });

  it('forgets a link that closed and tells the tasks that used it', () => {
    const h = withTasksOnTwoPeers();
    const linkA = h.children()[linkId(A)];
    expect(Object.keys(h.context().linkUse).sort()).toEqual([A, B]);
    h.fakes.finish(linkId(A));
    expect(h.childIds('link-')).toEqual([linkId(B)]);
    expect(linkA?.getSnapshot().status).toBe('done');
    expect(Object.keys(h.context().linkUse)).toEqual([B]);
    const lost = { type: 'peer.lost', peerId: A, reason: 'link closed' };
    expect(h.fakes.received(requestId('r-a'))).toEqual([lost]);
    expect(h.fakes.received('serve-1')).toEqual([{ type: 'requester.lost' }]);
    expect(h.fakes.received('serve-2')).toEqual([]);
    // The next message to A opens a fresh link.
    h.send({ type: 'task.send', peerId: A, message: accepted('s-a') });
    expect(h.fakes.runs(linkId(A))).toHaveLength(2);
    expect(linkInput(h, A)).toMatchObject({ initiator: true });
  });
});

describe('handoff root: liveness of the links tasks depend on', () => {
  const busy = { type: 'link.busy' };
  const idle = { type: 'link.idle' };
  const probeWords = (h: ReturnType<typeof startHandoff>, peer: string) =>
    h.toLink(peer).filter((event) => event.type === 'link.busy' || event.type === 'link.idle');

  it('tells the link a request delegates over that it is busy, and idle once the task is done', () => {
    const h = startHandoff();
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'Say hi', options: { targetPeerId: A } });
    expect(h.toLink(A).map((event) => event.type)).toEqual(['link.send', 'link.busy']);
    expect(h.context().engaged).toEqual({ 't-1': A });
    h.fromPeer(A, accepted('t-1'));
    h.fromPeer(A, chunk('t-1', 0, 'Hi', true));
    expect(h.taskDone).toHaveLength(1);
    expect(probeWords(h, A)).toEqual([busy, idle]);
    expect(h.context().engaged).toEqual({});
  });

  it('moves busy to the next peer when the task re-delegates; the previous link goes idle', () => {
    const h = startHandoff({ standbyLinks: false });
    h.fakes.assign('discovery', { ranked: ranked(A, B) });
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'Say hi', options: {} });
    h.fromPeer(A, { type: 'task-rejected', taskId: 't-1', reason: 'busy', message: 'busy' });
    expect(h.sentTo(B).map((message) => message.type)).toEqual(['prompt-delegation']);
    expect(probeWords(h, A)).toEqual([busy, idle]);
    expect(probeWords(h, B)).toEqual([busy]);
    expect(h.context().engaged).toEqual({ 't-1': B });
  });

  it('keeps a link busy while any request still depends on it', () => {
    const h = startHandoff();
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'one', options: { targetPeerId: A } });
    h.send({ type: 'user.delegate', taskId: 't-2', prompt: 'two', options: { targetPeerId: A } });
    h.send({ type: 'user.cancel', taskId: 't-1' });
    expect(h.taskDone.map((done) => done.output.taskId)).toEqual(['t-1']);
    expect(probeWords(h, A)).toEqual([busy, busy]);
    h.send({ type: 'user.cancel', taskId: 't-2' });
    expect(probeWords(h, A)).toEqual([busy, busy, idle]);
  });

  it('tells no link anything about tasks it serves (the requester watches for silence)', async () => {
    const provider = new ScriptedProvider();
    const h = startHandoff({ provider, models: ['scripted-1'] });
    h.openLinkFrom(A);
    h.fromPeer(A, delegation({ taskId: 't-served' }));
    await settle();
    expect(h.isRunning('serve-1')).toBe(true);
    expect(probeWords(h, A)).toEqual([]);
  });
});

describe('handoff root: standby links', () => {
  it('opens a link to the next candidate once a peer accepts, and a failover re-delegates over it', () => {
    const h = startHandoff();
    h.fakes.assign('discovery', { ranked: ranked(A, B, C) });
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'Say hi', options: {} });
    expect(h.childIds('link-')).toEqual([linkId(A)]);
    h.clock.increment(10);
    h.fromPeer(A, accepted('t-1'));
    expect(h.childIds('link-')).toEqual([linkId(A), linkId(B)]);
    expect(linkInput(h, B)).toMatchObject({ initiator: true, remotePeerId: B });
    expect(h.toLink(B)).toEqual([]);
    expect(h.context().linkUse[B]).toBe(10);

    h.fromPeer(A, chunk('t-1', 0, 'Hi '));
    h.fromLink(A, { type: 'link.silent', peerId: A });
    // The task went on over the link opened beforehand (no second run)…
    expect(h.fakes.runs(linkId(B))).toHaveLength(1);
    expect(h.sentTo(B)).toEqual([
      expect.objectContaining({ type: 'prompt-delegation', taskId: 't-1', continueFrom: 'Hi ' }),
    ]);
    expect(h.childIds('link-')).toEqual([linkId(A), linkId(B)]);
    // …and B's acceptance prepared C behind it.
    h.fromPeer(B, accepted('t-1'));
    expect(h.childIds('link-')).toEqual([linkId(A), linkId(B), linkId(C)]);
    expect(h.toLink(C)).toEqual([]);
  });

  it('opens none for the last candidate, and none where a link to the next one is already open', () => {
    const h = startHandoff();
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'one', options: { targetPeerId: A } });
    h.fromPeer(A, accepted('t-1'));
    expect(h.childIds('link-')).toEqual([linkId(A)]);
    h.openLinkFrom(B);
    h.fakes.assign('discovery', { ranked: ranked(A, B) });
    h.send({ type: 'user.delegate', taskId: 't-2', prompt: 'two', options: { targetPeerId: A } });
    h.fromPeer(A, accepted('t-2'));
    expect(h.fakes.runs(linkId(B))).toHaveLength(1);
    expect(linkInput(h, B)).toMatchObject({ initiator: false });
  });

  it('takes only a free place in the pool: never recycles a link for a standby', () => {
    const h = startHandoff({ maxLinks: 2 });
    h.openLinkFrom(C);
    h.fakes.assign('discovery', { ranked: ranked(A, B) });
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'one', options: {} });
    h.fromPeer(A, accepted('t-1'));
    expect(h.childIds('link-')).toEqual([linkId(A), linkId(C)]);
    expect(h.isRunning(linkId(C))).toBe(true);
  });

  it('is recycled like any idle link when the pool needs the place', () => {
    const h = startHandoff({ maxLinks: 2 });
    h.fakes.assign('discovery', { ranked: ranked(A, B) });
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'one', options: {} });
    h.fromPeer(A, accepted('t-1'));
    expect(h.childIds('link-')).toEqual([linkId(A), linkId(B)]);
    h.clock.increment(10);
    h.openLinkFrom(C);
    expect(h.childIds('link-')).toEqual([linkId(A), linkId(C)]);
    expect(h.isRunning(requestId('t-1'))).toBe(true);
  });

  it('opens none with standbyLinks: false', () => {
    const h = startHandoff({ standbyLinks: false });
    h.fakes.assign('discovery', { ranked: ranked(A, B) });
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'one', options: {} });
    h.fromPeer(A, accepted('t-1'));
    expect(h.childIds('link-')).toEqual([linkId(A)]);
  });
});

describe('handoff root: delegating', () => {
  it('tries the chosen peer first, then the ranked ones, never itself', () => {
    const h = startHandoff({ acceptTimeoutMs: 3_000 }, { fakeTasks: true });
    h.fakes.assign('discovery', { ranked: ranked(C, ME, A, B) });
    const announced = aiPeer(['m-local']);
    h.send({ type: 'user.announce', capabilities: announced });
    h.send({
      type: 'user.delegate',
      taskId: 't-1',
      prompt: 'Summarise this',
      options: { targetPeerId: A, priority: 8, timeoutMs: 9_000, model: 'm-1' },
    });
    expect(h.fakes.get(requestId('t-1')).input).toEqual({
      taskId: 't-1',
      prompt: 'Summarise this',
      candidates: [A, C, B],
      requesterCapabilities: announced,
      priority: 8,
      timeoutMs: 9_000,
      model: 'm-1',
      acceptTimeoutMs: 3_000,
    });
    h.send({ type: 'user.delegate', taskId: 't-2', prompt: 'Anyone', options: {} });
    expect(h.fakes.get(requestId('t-2')).input).toEqual({
      taskId: 't-2',
      prompt: 'Anyone',
      candidates: [C, A, B],
      requesterCapabilities: announced,
      acceptTimeoutMs: 3_000,
    });
  });

  it('passes the user’s cancel to the request it names', () => {
    const h = startHandoff({}, { fakeTasks: true });
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'one', options: { targetPeerId: A } });
    h.send({ type: 'user.delegate', taskId: 't-2', prompt: 'two', options: { targetPeerId: A } });
    h.send({ type: 'user.cancel', taskId: 't-2' });
    h.send({ type: 'user.cancel', taskId: 't-unknown' });
    expect(h.fakes.received(requestId('t-1'))).toEqual([]);
    expect(h.fakes.received(requestId('t-2'))).toEqual([{ type: 'user.cancel' }]);
  });

  it('delegates over a new link, streams the answer, records the finished task and stops it', () => {
    const h = startHandoff();
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'Say hi', options: { targetPeerId: A } });
    expect(linkInput(h, A)).toMatchObject({ initiator: true, remotePeerId: A });
    expect(h.sentTo(A)).toEqual([expect.objectContaining({ type: 'prompt-delegation', taskId: 't-1' })]);
    const request = h.children()[requestId('t-1')];
    h.fromPeer(A, accepted('t-1'));
    h.fromPeer(A, chunk('t-1', 0, 'Hello '));
    h.fromPeer(A, chunk('t-1', 1, 'there'));
    expect(h.taskDone).toEqual([]);
    h.fromPeer(A, chunk('t-1', 2, '', true));

    const expected: TaskRequestOutput = {
      taskId: 't-1',
      status: 'completed',
      text: 'Hello there',
      attempts: [{ peerId: A, outcome: 'completed', chars: 'Hello there'.length }],
      usage: undefined,
      metadata: undefined,
      error: undefined,
    };
    expect(h.taskDone).toEqual([{ type: 'handoff.taskDone', output: expected }]);
    expect(h.context().history).toEqual([expected]);
    expect(h.children()[requestId('t-1')]).toBeUndefined();
    expect(request?.getSnapshot().status).toBe('done');
    // The final chunk was acknowledged over the same link.
    expect(h.sentTo(A).at(-1)).toEqual({ type: 'chunk-ack', taskId: 't-1', seq: 2 });
    // The link stays open for the next task.
    expect(h.isRunning(linkId(A))).toBe(true);
  });

  it(`keeps only the last ${HISTORY_LIMIT} finished tasks`, () => {
    const h = startHandoff();
    const total = HISTORY_LIMIT + 3;
    // With no target and nobody discovered, each request fails at once (no-peers).
    for (let n = 1; n <= total; n++)
      h.send({ type: 'user.delegate', taskId: `t-${n}`, prompt: 'p', options: {} });
    expect(h.taskDone).toHaveLength(total);
    const history = h.context().history;
    expect(history).toHaveLength(HISTORY_LIMIT);
    expect(history[0]?.taskId).toBe('t-4');
    expect(history.at(-1)).toMatchObject({
      taskId: `t-${total}`,
      status: 'failed',
      error: { reason: 'no-peers' },
    });
    expect(h.childIds('request-')).toEqual([]);
  });
});

function serveOutput(peer: string, taskId: string, outcome: TaskServeOutput['outcome']): TaskServeOutput {
  return { taskId, requesterPeerId: peer, outcome, usage: undefined, chars: 0, error: undefined };
}

describe('handoff root: serving', () => {
  it('answers a delegation it cannot serve, then records the refusal and forgets the task', () => {
    const h = startHandoff();
    h.openLinkFrom(A);
    h.fromPeer(A, delegation({ taskId: 't-1' }));
    expect(h.sentTo(A)).toEqual([
      { type: 'task-rejected', taskId: 't-1', reason: 'no-model', message: expect.any(String) },
    ]);
    const output: TaskServeOutput = serveOutput(A, 't-1', 'rejected');
    expect(h.serveDone).toEqual([{ type: 'handoff.serveDone', output }]);
    expect(h.context().served).toEqual([output]);
    expect(h.context().serves).toEqual({});
    expect(h.childIds('serve-')).toEqual([]);
  });

  it('streams a served answer over the link and records it when the requester cancels', async () => {
    const provider = new ScriptedProvider().text('Hello ');
    const h = startHandoff({ provider });
    h.openLinkFrom(A);
    h.fromPeer(A, delegation({ taskId: 't-1' }));
    await settle();
    expect(h.sentTo(A)).toEqual([
      { type: 'task-accepted', taskId: 't-1', queuePosition: 0 },
      chunk('t-1', 0, 'Hello '),
    ]);
    expect(h.context().serves).toEqual({ [`${A} t-1`]: 'serve-1' });
    h.fromPeer(A, { type: 'task-cancel', taskId: 't-1' });
    expect(provider.signal.aborted).toBe(true);
    expect(h.serveDone.map((event) => event.output)).toEqual([
      {
        taskId: 't-1',
        requesterPeerId: A,
        outcome: 'cancelled',
        usage: undefined,
        chars: 6,
        error: undefined,
      },
    ]);
    expect(h.context().served).toHaveLength(1);
    expect(h.context().serves).toEqual({});
    expect(h.childIds('serve-')).toEqual([]);
  });
});

describe('handoff root: stopping', () => {
  it('stops every child it runs when it is stopped', async () => {
    const provider = new ScriptedProvider();
    const h = startHandoff({ provider, maxLinks: 5 });
    h.openLinkFrom(A);
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'to b', options: { targetPeerId: B } });
    h.fromPeer(A, delegation({ taskId: 's-1' }));
    await settle();
    const children = Object.entries(h.children());
    expect(children.map(([id]) => id).sort()).toEqual(
      ['connection', 'discovery', linkId(A), linkId(B), requestId('t-1'), 'serve-1'].sort(),
    );
    for (const [, child] of children) expect(child?.getSnapshot().status).toBe('active');

    h.actor.stop();
    expect(h.actor.getSnapshot().status).toBe('stopped');
    const statuses = Object.fromEntries(children.map(([id, child]) => [id, child?.getSnapshot().status]));
    expect(statuses).toEqual(Object.fromEntries(children.map(([id]) => [id, 'stopped'])));
    // The serve task's provider stream was aborted with it.
    expect(provider.signal.aborted).toBe(true);
    await settle();
    expect(provider.finished).toBe(true);
    expect(h.errors).toEqual([]);
  });
});

describe('handoff root: faults stay local', () => {
  it('reaps a peer link that throws like a closed one, and the client keeps running', () => {
    const fakes = new FakeChildren();
    const machine = handoffMachine.provide({
      actors: {
        connection: fakes.logic<typeof connectionMachine>('connection', () => ({
          peerId: ME,
          iceServers: ICE,
        })),
        discovery: fakes.logic<typeof discoveryMachine>('discovery', () => ({ ranked: [] })),
        // As a browser's RTCPeerConnection constructor throws for a `turn:` URL without credentials.
        peerLink: fromCallback(() => {
          throw new Error('bad ICE server');
        }) as unknown as typeof peerLinkMachine,
      },
    });
    const actor = createActor(machine, {
      input: { environment: { WebSocket: UnusedWebSocket, RTCPeerConnection: UnusedRTCPeerConnection } },
    });
    const errors: unknown[] = [];
    actor.subscribe({ error: (error) => errors.push(error) });
    actor.start();
    fakes.sendParent('connection', offerFrom(A));
    expect(actor.getSnapshot().status).toBe('active');
    expect(errors).toEqual([]);
    expect(Object.keys(actor.getSnapshot().children).filter((id) => id.startsWith('link-'))).toEqual([]);
    expect(actor.getSnapshot().context.linkUse).toEqual({});
    // The connection and discovery are untouched and still reachable.
    fakes.sendParent('connection', offerFrom(B));
    expect(fakes.started('connection')).toEqual(['connection']);
    actor.stop();
  });

  it('does not start a task id that is already running, and never delegates to itself', () => {
    const h = startHandoff({}, { fakeTasks: true });
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'first', options: { targetPeerId: A } });
    h.send({ type: 'user.delegate', taskId: 't-1', prompt: 'second', options: { targetPeerId: B } });
    expect(h.fakes.started('taskRequest')).toEqual([requestId('t-1')]);
    expect((h.fakes.get(requestId('t-1')).input as { prompt: string }).prompt).toBe('first');
    h.send({ type: 'user.delegate', taskId: 't-2', prompt: 'to me?', options: { targetPeerId: ME } });
    expect((h.fakes.get(requestId('t-2')).input as { candidates: string[] }).candidates).toEqual([]);
  });
});
