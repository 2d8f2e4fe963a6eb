import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_CANDIDATE_LENGTH,
  MAX_CAPABILITY_TAG_LENGTH,
  MAX_CAPABILITY_TAGS,
  MAX_CHUNK_LENGTH,
  MAX_DISCOVERED_PEERS,
  MAX_METADATA_ENTRIES,
  MAX_METADATA_KEY_LENGTH,
  MAX_METADATA_STRING_LENGTH,
  MAX_MODEL_NAME_LENGTH,
  MAX_MODELS,
  MAX_PEER_ID_LENGTH,
  MAX_PROMPT_LENGTH,
  MAX_PROVIDER_NAME_LENGTH,
  MAX_REQUEST_ID_LENGTH,
  MAX_SDP_LENGTH,
  MAX_SDP_MID_LENGTH,
  MAX_TASK_ID_LENGTH,
  MAX_TASK_TIMEOUT_MS,
  MAX_UFRAG_LENGTH,
} from '../../protocol/index.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { demoCapabilities, TestClient } from '../support/signaling-client.ts';
import { startTestServer } from '../support/signaling-server.ts';

const TARGET = 'some-peer';
const quota = demoCapabilities(50).quota;
const announce = (capabilities: Record<string, unknown>) => ({ type: 'capability-announce', capabilities });
const withQuota = (patch: Record<string, unknown>) =>
  announce({ hasAI: true, models: ['m'], quota: { ...quota, ...patch } });
const discover = (requirements: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  type: 'discover',
  requirements: { needsAI: false, minQuota: 0, preferredModels: [], ...requirements },
  ...extra,
});
const offer = (patch: Record<string, unknown>) => ({
  type: 'offer',
  targetPeerId: TARGET,
  sdp: { type: 'offer', sdp: 'v=0' },
  ...patch,
});
const candidate = (patch: Record<string, unknown>) => ({
  type: 'ice-candidate',
  targetPeerId: TARGET,
  candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 5000 typ host', sdpMid: '0', ...patch },
});
const relay = (payload: unknown) => ({ type: 'relay', targetPeerId: TARGET, payload });
const delegation = (patch: Record<string, unknown>) =>
  relay({
    type: 'prompt-delegation',
    taskId: 't1',
    prompt: 'hi',
    requesterCapabilities: { hasAI: false, models: [] },
    priority: 5,
    timeout: 30_000,
    ...patch,
  });
const response = (patch: Record<string, unknown>) =>
  relay({ type: 'prompt-response', taskId: 't1', seq: 0, chunk: 'x', isComplete: false, ...patch });
const entries = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, i]));
const text = (length: number) => 'x'.repeat(length);

/** [scenario, message, the field path the error must name] — one row per field rule. */
const violations: [string, Record<string, unknown>, string][] = [
  ['an announce without capabilities', { type: 'capability-announce' }, 'capabilities'],
  ['hasAI given as a string', announce({ hasAI: 'yes', models: [] }), 'capabilities.hasAI'],
  ['models given as a string', announce({ hasAI: true, models: 'm' }), 'capabilities.models'],
  [
    `more than MAX_MODELS (${MAX_MODELS}) models`,
    announce({ hasAI: true, models: Array(MAX_MODELS + 1).fill('m') }),
    'capabilities.models',
  ],
  ['an empty model name', announce({ hasAI: true, models: [''] }), 'capabilities.models.0'],
  [
    'a model name over MAX_MODEL_NAME_LENGTH',
    announce({ hasAI: true, models: [text(MAX_MODEL_NAME_LENGTH + 1)] }),
    'capabilities.models.0',
  ],
  ['a negative availableQuota', withQuota({ availableQuota: -1 }), 'capabilities.quota.availableQuota'],
  ['totalQuota given as a string', withQuota({ totalQuota: '100' }), 'capabilities.quota.totalQuota'],
  ['a quota without resetTime', withQuota({ resetTime: undefined }), 'capabilities.quota.resetTime'],
  [
    'a provider name over MAX_PROVIDER_NAME_LENGTH',
    withQuota({ provider: text(MAX_PROVIDER_NAME_LENGTH + 1) }),
    'capabilities.quota.provider',
  ],
  [
    'more than MAX_CAPABILITY_TAGS tags',
    withQuota({ capabilities: Array(MAX_CAPABILITY_TAGS + 1).fill('t') }),
    'capabilities.quota.capabilities',
  ],
  [
    'a capability tag over MAX_CAPABILITY_TAG_LENGTH',
    withQuota({ capabilities: [text(MAX_CAPABILITY_TAG_LENGTH + 1)] }),
    'capabilities.quota.capabilities.0',
  ],
  [
    'a negative latency',
    announce({ hasAI: true, models: ['m'], performance: { latency: -5 } }),
    'capabilities.performance.latency',
  ],
  ['a discover without requirements', { type: 'discover' }, 'requirements'],
  ['needsAI given as a string', discover({ needsAI: 'true' }), 'requirements.needsAI'],
  ['a negative minQuota', discover({ minQuota: -1 }), 'requirements.minQuota'],
  [
    'more than MAX_MODELS preferred models',
    discover({ preferredModels: Array(MAX_MODELS + 1).fill('m') }),
    'requirements.preferredModels',
  ],
  ['a limit of 0', discover({ limit: 0 }), 'requirements.limit'],
  ['a limit over MAX_DISCOVERED_PEERS', discover({ limit: MAX_DISCOVERED_PEERS + 1 }), 'requirements.limit'],
  ['a fractional limit', discover({ limit: 2.5 }), 'requirements.limit'],
  ['a requestId with a space', discover({}, { requestId: 'a b' }), 'requestId'],
  [
    'a requestId over MAX_REQUEST_ID_LENGTH',
    discover({}, { requestId: text(MAX_REQUEST_ID_LENGTH + 1) }),
    'requestId',
  ],
  ['an offer without targetPeerId', offer({ targetPeerId: undefined }), 'targetPeerId'],
  ['a targetPeerId given as a number', offer({ targetPeerId: 42 }), 'targetPeerId'],
  ['a targetPeerId with a slash', offer({ targetPeerId: 'peer/../x' }), 'targetPeerId'],
  ['a targetPeerId with a space', offer({ targetPeerId: 'a b' }), 'targetPeerId'],
  ['an empty targetPeerId', offer({ targetPeerId: '' }), 'targetPeerId'],
  [
    'a targetPeerId over MAX_PEER_ID_LENGTH',
    offer({ targetPeerId: text(MAX_PEER_ID_LENGTH + 1) }),
    'targetPeerId',
  ],
  ['an offer without sdp', offer({ sdp: undefined }), 'sdp'],
  ['an offer carrying an answer sdp', offer({ sdp: { type: 'answer', sdp: 'v=0' } }), 'sdp.type'],
  [
    'an answer carrying an offer sdp',
    { type: 'answer', targetPeerId: TARGET, sdp: { type: 'offer', sdp: 'v=0' } },
    'sdp.type',
  ],
  ['an sdp over MAX_SDP_LENGTH', offer({ sdp: { type: 'offer', sdp: text(MAX_SDP_LENGTH + 1) } }), 'sdp.sdp'],
  ['an ice-candidate without candidate', { type: 'ice-candidate', targetPeerId: TARGET }, 'candidate'],
  [
    'a candidate over MAX_CANDIDATE_LENGTH',
    candidate({ candidate: text(MAX_CANDIDATE_LENGTH + 1) }),
    'candidate.candidate',
  ],
  [
    'an sdpMid over MAX_SDP_MID_LENGTH',
    candidate({ sdpMid: text(MAX_SDP_MID_LENGTH + 1) }),
    'candidate.sdpMid',
  ],
  ['a negative sdpMLineIndex', candidate({ sdpMLineIndex: -1 }), 'candidate.sdpMLineIndex'],
  [
    'a usernameFragment over MAX_UFRAG_LENGTH',
    candidate({ usernameFragment: text(MAX_UFRAG_LENGTH + 1) }),
    'candidate.usernameFragment',
  ],
  ['a relay without payload', { type: 'relay', targetPeerId: TARGET }, 'payload'],
  ['a relay payload of an unknown type', relay({ type: 'rm-rf' }), 'payload.type'],
  ['a relay payload that is a string', relay('hello'), 'payload'],
  ['an empty prompt', delegation({ prompt: '' }), 'payload.prompt'],
  ['a prompt over MAX_PROMPT_LENGTH', delegation({ prompt: text(MAX_PROMPT_LENGTH + 1) }), 'payload.prompt'],
  ['a priority above 10', delegation({ priority: 11 }), 'payload.priority'],
  ['a timeout of 0', delegation({ timeout: 0 }), 'payload.timeout'],
  ['a timeout over MAX_TASK_TIMEOUT_MS', delegation({ timeout: MAX_TASK_TIMEOUT_MS + 1 }), 'payload.timeout'],
  ['a taskId with a space', delegation({ taskId: 'task 1' }), 'payload.taskId'],
  [
    'a taskId over MAX_TASK_ID_LENGTH',
    delegation({ taskId: text(MAX_TASK_ID_LENGTH + 1) }),
    'payload.taskId',
  ],
  ['a negative chunk seq', response({ seq: -1 }), 'payload.seq'],
  ['a chunk over MAX_CHUNK_LENGTH', response({ chunk: text(MAX_CHUNK_LENGTH + 1) }), 'payload.chunk'],
  [
    'metadata with more than MAX_METADATA_ENTRIES entries',
    response({ metadata: entries(MAX_METADATA_ENTRIES + 1) }),
    'payload.metadata',
  ],
  [
    'a metadata key over MAX_METADATA_KEY_LENGTH',
    response({ metadata: { [text(MAX_METADATA_KEY_LENGTH + 1)]: 1 } }),
    `payload.metadata.${text(MAX_METADATA_KEY_LENGTH + 1)}`,
  ],
  [
    'a metadata string over MAX_METADATA_STRING_LENGTH',
    response({ metadata: { note: text(MAX_METADATA_STRING_LENGTH + 1) } }),
    'payload.metadata.note',
  ],
  ['a nested metadata object', response({ metadata: { nested: { a: 1 } } }), 'payload.metadata.nested'],
  [
    'a task-rejected with an unknown reason',
    relay({ type: 'task-rejected', taskId: 't1', reason: 'bored', message: '' }),
    'payload.reason',
  ],
  ['a heartbeat without ts', { type: 'heartbeat' }, 'ts'],
  ['a negative heartbeat ts', { type: 'heartbeat', ts: -1 }, 'ts'],
  ['a heartbeat ts given as a string', { type: 'heartbeat', ts: '1' }, 'ts'],
];

describe('frames the server refuses', () => {
  let server: SignalingServer;
  let client: TestClient | undefined;
  beforeAll(async () => {
    server = await startTestServer({ maxViolations: 1_000 });
  });
  afterEach(() => {
    expect(client?.invalid).toEqual([]);
    client?.terminate();
    client = undefined;
  });
  afterAll(() => server.close());

  const connect = async () => {
    client = await TestClient.connect(server.url);
    return client;
  };

  it('text that is not JSON gets bad-json, and the socket still answers', async () => {
    const c = await connect();
    c.sendRaw('{"type": "discover",');
    const error = await c.next('error');
    expect(error.code).toBe('bad-json');
    expect(error.message).toMatch(/JSON/);
    expect((await c.roundTrip()).peers).toEqual([]);
  });

  it('an unknown message type gets unknown-type naming the type', async () => {
    const c = await connect();
    c.send({ type: 'make-me-admin' });
    const error = await c.next('error');
    expect(error).toMatchObject({ code: 'unknown-type', inReplyTo: 'make-me-admin' });
    expect(error.message).toContain('make-me-admin');
    await c.roundTrip();
  });

  it('a server-only message type sent by a client gets unknown-type', async () => {
    const c = await connect();
    c.send({ type: 'peer-left', peerId: 'x', reason: 'left' });
    expect(await c.next('error')).toMatchObject({ code: 'unknown-type', inReplyTo: 'peer-left' });
    await c.roundTrip();
  });

  it('a message without a type (or with a non-string type) gets unknown-type', async () => {
    const c = await connect();
    c.send({ targetPeerId: 'x' });
    expect((await c.next('error')).code).toBe('unknown-type');
    c.send({ type: 7 });
    expect((await c.next('error')).code).toBe('unknown-type');
    await c.roundTrip();
  });

  it('JSON that is not an object (array, string, null) gets invalid-message', async () => {
    const c = await connect();
    for (const frame of ['[]', '"discover"', 'null', '42']) {
      c.sendRaw(frame);
      const error = await c.next('error');
      expect(error.code).toBe('invalid-message');
      expect(error.message).toContain('JSON object');
    }
    await c.roundTrip();
  });

  it('a binary frame gets binary-frame, even when its bytes are valid JSON', async () => {
    const c = await connect();
    c.sendRaw(Buffer.from(JSON.stringify({ type: 'ice-servers-request' })), { binary: true });
    expect((await c.next('error')).code).toBe('binary-frame');
    await c.roundTrip();
    expect(c.all('ice-servers')).toEqual([]);
  });

  it.each(violations)('%s gets invalid-message naming the field', async (_scenario, message, path) => {
    const c = await connect();
    const frame = JSON.stringify(message);
    c.sendRaw(frame);
    const error = await c.next('error');
    expect(error.code).toBe('invalid-message');
    expect(error.inReplyTo).toBe(message.type);
    expect(error.message).toContain(`\`${path}\``);
    // The socket still works after the error.
    expect((await c.roundTrip()).peers).toEqual([]);
    expect(c.all('error')).toHaveLength(1);
  });

  it('values exactly at their bounds are accepted and delivered', async () => {
    const sender = await connect();
    const target = await TestClient.connect(server.url);
    try {
      const atBounds = {
        hasAI: true,
        models: Array.from({ length: MAX_MODELS }, (_, i) => `${i}`.padEnd(MAX_MODEL_NAME_LENGTH, 'm')),
        quota: { ...quota, provider: text(MAX_PROVIDER_NAME_LENGTH), availableQuota: 0 },
      };
      sender.send(announce(atBounds));
      const update = await target.next('peer-capability-update');
      expect(update.capabilities.models).toHaveLength(MAX_MODELS);

      sender.send({
        type: 'offer',
        targetPeerId: target.peerId,
        sdp: { type: 'offer', sdp: text(MAX_SDP_LENGTH) },
      });
      expect((await target.next('offer')).sdp.sdp).toHaveLength(MAX_SDP_LENGTH);

      sender.send({
        type: 'relay',
        targetPeerId: target.peerId,
        payload: {
          type: 'prompt-response',
          taskId: text(MAX_TASK_ID_LENGTH),
          seq: 0,
          chunk: text(MAX_CHUNK_LENGTH),
          isComplete: true,
          metadata: entries(MAX_METADATA_ENTRIES),
        },
      });
      expect((await target.next('relay')).payload).toMatchObject({ chunk: text(MAX_CHUNK_LENGTH) });

      sender.send(discover({ limit: MAX_DISCOVERED_PEERS }, { requestId: text(MAX_REQUEST_ID_LENGTH) }));
      expect(await sender.next('peers-discovered')).toMatchObject({ requestId: text(MAX_REQUEST_ID_LENGTH) });

      sender.send(offer({ targetPeerId: text(MAX_PEER_ID_LENGTH) }));
      expect((await sender.next('error')).code).toBe('unknown-target');
      await sender.roundTrip();
      expect(sender.all('error').map((e) => e.code)).toEqual(['unknown-target']);
    } finally {
      target.terminate();
    }
  });
});

describe('repeated invalid messages', () => {
  const maxViolations = 3;
  let server: SignalingServer;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    server = await startTestServer({ maxViolations, abuseWindowMs: 60_000, resumeGraceMs: 10_000 });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.terminate();
  });
  afterAll(() => server.close());
  const connect = async () => {
    const c = await TestClient.connect(server.url);
    clients.push(c);
    return c;
  };

  it(`up to maxViolations are tolerated; one more closes the socket with 1008`, async () => {
    const c = await connect();
    for (let i = 0; i < maxViolations; i++) {
      c.sendRaw('not json');
      expect((await c.next('error')).code).toBe('bad-json');
    }
    // Still served after exactly maxViolations.
    await c.roundTrip();
    c.send({ type: 'heartbeat', ts: -1 });
    expect((await c.next('error')).code).toBe('invalid-message');
    const closed = await c.closed;
    expect(closed.code).toBe(1008);
  });

  it('a misbehaving peer changes nothing for the others: capabilities, routing and discovery stay intact', async () => {
    const good = await connect();
    const watcher = await connect();
    const bad = await connect();
    const goodCapabilities = demoCapabilities(70);
    good.send({ type: 'capability-announce', capabilities: goodCapabilities });
    bad.send({ type: 'capability-announce', capabilities: demoCapabilities(30) });
    await watcher.next('peer-capability-update', (m) => m.peerId === good.peerId);
    await watcher.next('peer-capability-update', (m) => m.peerId === bad.peerId);

    // Invalid messages that name other peers or try to rewrite state.
    bad.send({ type: 'capability-announce', capabilities: { hasAI: true, models: 'all' } });
    bad.send({ type: 'offer', targetPeerId: good.peerId, sdp: { type: 'answer', sdp: 'x' } });
    bad.send({ type: 'relay', targetPeerId: good.peerId, payload: { type: 'task-cancel' } });
    bad.sendRaw('{{{{');
    expect(await bad.closed).toMatchObject({ code: 1008 });

    // The others hear that it is gone, and nothing it sent reached them.
    await watcher.next('peer-left', (m) => m.peerId === bad.peerId);
    await good.next('peer-left', (m) => m.peerId === bad.peerId);
    await good.roundTrip();
    expect(good.all('offer')).toEqual([]);
    expect(good.all('relay')).toEqual([]);

    watcher.send(discover({ needsAI: true }));
    const found = await watcher.next('peers-discovered');
    expect(found.peers.map((p) => p.peerId)).toEqual([good.peerId]);
    expect(found.peers[0]?.capabilities).toEqual(goodCapabilities);
    watcher.send({ type: 'offer', targetPeerId: good.peerId, sdp: { type: 'offer', sdp: 'v=0' } });
    expect((await good.next('offer')).fromPeerId).toBe(watcher.peerId);
  });

  it('an invalid announce leaves the earlier valid capabilities in place', async () => {
    const peer = await connect();
    const watcher = await connect();
    peer.send({ type: 'capability-announce', capabilities: demoCapabilities(60) });
    await watcher.next('peer-capability-update', (m) => m.peerId === peer.peerId);
    peer.send({ type: 'capability-announce', capabilities: { ...demoCapabilities(99), models: [''] } });
    expect((await peer.next('error')).code).toBe('invalid-message');
    watcher.send(discover({}));
    const found = await watcher.next('peers-discovered');
    expect(found.peers.find((p) => p.peerId === peer.peerId)?.capabilities.quota?.availableQuota).toBe(60);
  });
});
