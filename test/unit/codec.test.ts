import { describe, expect, it } from 'vitest';
import {
  CLIENT_MESSAGE_TYPES,
  type ClientMessage,
  type DecodeResult,
  decodeClientMessage,
  decodeServerMessage,
  decodeTaskMessage,
  describeIssue,
  encodeMessage,
  MAX_CANDIDATE_LENGTH,
  MAX_CAPABILITY_TAG_LENGTH,
  MAX_CAPABILITY_TAGS,
  MAX_CHUNK_LENGTH,
  MAX_DISCOVERED_PEERS,
  MAX_ERROR_MESSAGE_LENGTH,
  MAX_FRAGMENT_CHARS,
  MAX_FRAGMENTS,
  MAX_ICE_SERVERS,
  MAX_ICE_URL_LENGTH,
  MAX_METADATA_ENTRIES,
  MAX_METADATA_KEY_LENGTH,
  MAX_METADATA_STRING_LENGTH,
  MAX_MODEL_NAME_LENGTH,
  MAX_MODELS,
  MAX_PEER_ID_LENGTH,
  MAX_PROMPT_LENGTH,
  MAX_PROVIDER_NAME_LENGTH,
  MAX_REASON_LENGTH,
  MAX_REQUEST_ID_LENGTH,
  MAX_RESUME_TOKEN_LENGTH,
  MAX_SDP_LENGTH,
  MAX_SDP_MID_LENGTH,
  MAX_TASK_ID_LENGTH,
  MAX_TASK_TIMEOUT_MS,
  MAX_UFRAG_LENGTH,
  SERVER_MESSAGE_TYPES,
  type ServerMessage,
  TASK_MESSAGE_TYPES,
  type TaskMessage,
  utf8Length,
} from '../../protocol/index.ts';

type Decoder = (text: string) => DecodeResult<{ type: string }>;
const decoders: Record<'client' | 'server' | 'task', Decoder> = {
  client: decodeClientMessage,
  server: decodeServerMessage,
  task: decodeTaskMessage,
};

const text = (length: number, char = 'x') => char.repeat(length);
const list = <T>(length: number, item: (index: number) => T) => Array.from({ length }, (_, i) => item(i));

const capabilities = {
  hasAI: true,
  models: ['llama-3.1-8b', 'mistral-7b'],
  quota: {
    totalQuota: 1000,
    usedQuota: 250,
    availableQuota: 750,
    resetTime: 1_767_225_600_000,
    provider: 'ollama',
    capabilities: ['chat', 'code'],
  },
  performance: { latency: 180, tokensPerSecond: 42 },
};
const requirements = { needsAI: true, minQuota: 10, preferredModels: ['llama-3.1-8b'] };
const candidate = {
  candidate: 'candidate:842163049 1 udp 1677729535 203.0.113.7 3478 typ srflx',
  sdpMid: '0',
  sdpMLineIndex: 0,
  usernameFragment: 'Ab3x',
};
const delegation: Extract<TaskMessage, { type: 'prompt-delegation' }> = {
  type: 'prompt-delegation',
  taskId: 'task-1',
  prompt: 'Summarise this paragraph.',
  requesterCapabilities: { hasAI: false, models: [] },
  priority: 5,
  timeout: 60_000,
  model: 'llama-3.1-8b',
};

/** A valid example of every message; the `Record` types make a new message type a compile error here. */
const validClient: Record<ClientMessage['type'], ClientMessage> = {
  'capability-announce': { type: 'capability-announce', capabilities },
  discover: {
    type: 'discover',
    requirements: { ...requirements, requireModel: true, limit: 5 },
    requestId: 'r-1',
  },
  offer: {
    type: 'offer',
    targetPeerId: 'peer-b',
    sdp: { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 0.0.0.0' },
  },
  answer: { type: 'answer', targetPeerId: 'peer-b', sdp: { type: 'answer', sdp: 'v=0' } },
  'ice-candidate': { type: 'ice-candidate', targetPeerId: 'peer-b', candidate },
  relay: { type: 'relay', targetPeerId: 'peer-b', payload: delegation },
  heartbeat: { type: 'heartbeat', ts: 1_767_225_600_000 },
  'ice-servers-request': { type: 'ice-servers-request' },
  'peer-lookup': { type: 'peer-lookup', peerId: 'peer-b' },
  leave: { type: 'leave' },
};
const validServer: Record<ServerMessage['type'], ServerMessage> = {
  'peer-id': {
    type: 'peer-id',
    peerId: 'Qm9vbS1wZWVyLWlk',
    resumeToken: 'Qm9vbS1wZWVyLWlk.1767225600000.c2ln',
    resumed: true,
    capabilities,
    protocolVersion: 1,
    iceServers: [
      { urls: 'stun:stun.example.org:3478' },
      {
        urls: ['turn:turn.example.org:3478?transport=udp'],
        username: '1767229200:peer',
        credential: 'c2VjcmV0',
      },
    ],
    heartbeatIntervalMs: 5_000,
    resumeGraceMs: 5_000,
  },
  'peer-capability-update': { type: 'peer-capability-update', peerId: 'peer-b', capabilities },
  'peers-discovered': {
    type: 'peers-discovered',
    peers: [{ peerId: 'peer-b', capabilities, score: 87.5 }],
    requestId: 'r-1',
  },
  offer: { type: 'offer', targetPeerId: 'peer-a', fromPeerId: 'peer-b', sdp: { type: 'offer', sdp: 'v=0' } },
  answer: {
    type: 'answer',
    targetPeerId: 'peer-a',
    fromPeerId: 'peer-b',
    sdp: { type: 'answer', sdp: 'v=0' },
  },
  'ice-candidate': { type: 'ice-candidate', targetPeerId: 'peer-a', fromPeerId: 'peer-b', candidate: null },
  relay: {
    type: 'relay',
    targetPeerId: 'peer-a',
    fromPeerId: 'peer-b',
    payload: { type: 'task-cancel', taskId: 'task-1' },
  },
  'peer-left': { type: 'peer-left', peerId: 'peer-b', reason: 'timeout' },
  heartbeat: { type: 'heartbeat', ts: 0 },
  error: {
    type: 'error',
    code: 'unknown-target',
    message: 'peer peer-z is not connected',
    inReplyTo: 'offer',
    targetPeerId: 'peer-z',
    retryAfterMs: 1000,
  },
  reconnect: { type: 'reconnect', reason: 'server shutting down', retryAfterMs: 500 },
  'ice-servers': { type: 'ice-servers', iceServers: [], expiresAt: 0 },
};
const validTask: Record<TaskMessage['type'], TaskMessage> = {
  'prompt-delegation': { ...delegation, continueFrom: 'The paragraph says' },
  'task-accepted': { type: 'task-accepted', taskId: 'task-1', queuePosition: 0, model: 'llama-3.1-8b' },
  'task-rejected': {
    type: 'task-rejected',
    taskId: 'task-1',
    reason: 'quota-exhausted',
    message: 'out of quota until midnight',
    retryAfterMs: 60_000,
  },
  'prompt-response': {
    type: 'prompt-response',
    taskId: 'task-1',
    seq: 3,
    chunk: 'The paragraph',
    isComplete: false,
    metadata: { model: 'llama-3.1-8b', tokens: 12, cached: false, note: null },
  },
  'chunk-ack': { type: 'chunk-ack', taskId: 'task-1', seq: 3 },
  'task-cancel': { type: 'task-cancel', taskId: 'task-1', reason: 'user cancelled' },
  'task-failed': { type: 'task-failed', taskId: 'task-1', code: 'provider-error', message: 'HTTP 502' },
  'link-ping': { type: 'link-ping', ts: 1_767_225_600_000 },
  'link-pong': { type: 'link-pong', ts: 1_767_225_600_000 },
  'link-fragment': { type: 'link-fragment', id: 7, index: 1, count: 2, data: '"prompt":"…' },
};

describe('valid messages', () => {
  it.each([
    ['client', validClient, CLIENT_MESSAGE_TYPES],
    ['server', validServer, SERVER_MESSAGE_TYPES],
    ['task', validTask, TASK_MESSAGE_TYPES],
  ] as const)('the %s table has an example of every message type the decoder knows', (_, table, types) => {
    expect(Object.keys(table).sort()).toEqual([...types].sort());
  });

  const cases = [
    ...Object.values(validClient).map((message) => ['client', message.type, message] as const),
    ...Object.values(validServer).map((message) => ['server', message.type, message] as const),
    ...Object.values(validTask).map((message) => ['task', message.type, message] as const),
  ];
  it.each(cases)('the %s decoder accepts a valid %s unchanged', (side, _type, message) => {
    expect(decoders[side](encodeMessage(message))).toEqual({ ok: true, value: message });
  });

  it('a client offer carrying its own `fromPeerId` loses it: only the server stamps the sender', () => {
    const forged = { ...validClient.offer, fromPeerId: 'mallory', sdp: { type: 'offer', sdp: 'v=0', x: 1 } };
    const result = decodeClientMessage(JSON.stringify(forged));
    expect(result).toEqual({
      ok: true,
      value: { type: 'offer', targetPeerId: 'peer-b', sdp: { type: 'offer', sdp: 'v=0' } },
    });
  });

  it('unknown fields are dropped at every depth, including inside a relayed task message', () => {
    const frame = {
      type: 'relay',
      targetPeerId: 'peer-b',
      fromPeerId: 'mallory',
      admin: true,
      payload: { ...delegation, sudo: true, requesterCapabilities: { hasAI: false, models: [], extra: 1 } },
    };
    const result = decodeClientMessage(JSON.stringify(frame));
    expect(result).toEqual({
      ok: true,
      value: { type: 'relay', targetPeerId: 'peer-b', payload: delegation },
    });
  });

  it('a `__proto__` key in a frame neither fails the decode nor pollutes Object.prototype', () => {
    const result = decodeClientMessage('{"type":"leave","__proto__":{"polluted":true}}');
    expect(result).toEqual({ ok: true, value: { type: 'leave' } });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('frames that are not messages', () => {
  const sides = ['client', 'server', 'task'] as const;

  it.each(
    sides.flatMap((side) =>
      ['{', '', 'undefined', "{'type':'leave'}", '{"type":"leave",}'].map((frame) => [side, frame] as const),
    ),
  )('the %s decoder calls %j bad JSON', (side, frame) => {
    const result = decoders[side](frame);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.code).toBe('bad-json');
    expect(result.message).toMatch(/^frame is not valid JSON: /);
    expect(result.inReplyTo).toBeUndefined();
  });

  it.each(
    sides.flatMap((side) =>
      ['[]', '[{"type":"leave"}]', '42', '"leave"', 'null', 'true'].map((f) => [side, f] as const),
    ),
  )('the %s decoder refuses %s: a message must be a JSON object', (side, frame) => {
    expect(decoders[side](frame)).toEqual({
      ok: false,
      code: 'invalid-message',
      message: 'a message must be a JSON object',
    });
  });

  it.each(
    sides.flatMap((side) =>
      ['{}', '{"type":5}', '{"type":null}', '{"kind":"leave"}'].map((f) => [side, f] as const),
    ),
  )('the %s decoder refuses %s: no string `type`', (side, frame) => {
    expect(decoders[side](frame)).toEqual({
      ok: false,
      code: 'unknown-type',
      message: 'message has no string `type` field',
    });
  });

  it.each([
    ['client', 'peer-id'],
    ['client', 'peers-discovered'],
    ['client', 'constructor'],
    ['client', '__proto__'],
    ['server', 'leave'],
    ['server', 'discover'],
    ['server', 'ice-servers-request'],
    ['task', 'offer'],
    ['task', 'toString'],
  ] as const)('the %s decoder refuses type %j as unknown and says which type it was', (side, type) => {
    expect(decoders[side](JSON.stringify({ type }))).toEqual({
      ok: false,
      code: 'unknown-type',
      message: `unknown ${side} message type ${JSON.stringify(type)}`,
      inReplyTo: type,
    });
  });

  it('an unknown type is echoed back at most 64 characters long', () => {
    const result = decodeClientMessage(JSON.stringify({ type: text(200, 'z') }));
    expect(result).toEqual({
      ok: false,
      code: 'unknown-type',
      message: `unknown client message type "${text(64, 'z')}"`,
      inReplyTo: text(64, 'z'),
    });
  });
});

interface Bound {
  side: 'client' | 'server' | 'task';
  /** The field, as the error message names it. */
  field: string;
  /** Builds a frame with the bounded value at `size`. */
  frame: (size: number) => { type: string };
  /** The largest accepted size; `limit + 1` must be refused. */
  limit: number;
}

const offerWithSdp = (size: number) => ({ ...validClient.offer, sdp: { type: 'offer', sdp: text(size) } });
const announceWith = (patch: Record<string, unknown>) => ({
  type: 'capability-announce',
  capabilities: { ...capabilities, ...patch },
});
const quotaWith = (patch: Record<string, unknown>) =>
  announceWith({ quota: { ...capabilities.quota, ...patch } });
const responseWith = (patch: Record<string, unknown>) => ({ ...validTask['prompt-response'], ...patch });

/** Every bounded field: the limit itself is accepted, one more is refused, naming the field. */
const bounds: Bound[] = [
  {
    side: 'client',
    field: 'targetPeerId',
    limit: MAX_PEER_ID_LENGTH,
    frame: (n) => ({ ...validClient.offer, targetPeerId: text(n) }),
  },
  { side: 'client', field: 'sdp.sdp', limit: MAX_SDP_LENGTH, frame: offerWithSdp },
  {
    side: 'client',
    field: 'sdp.sdp',
    limit: MAX_SDP_LENGTH,
    frame: (n) => ({ ...validClient.answer, sdp: { type: 'answer', sdp: text(n) } }),
  },
  {
    side: 'client',
    field: 'candidate.candidate',
    limit: MAX_CANDIDATE_LENGTH,
    frame: (n) => ({ ...validClient['ice-candidate'], candidate: { candidate: text(n) } }),
  },
  {
    side: 'client',
    field: 'candidate.sdpMid',
    limit: MAX_SDP_MID_LENGTH,
    frame: (n) => ({ ...validClient['ice-candidate'], candidate: { candidate: '', sdpMid: text(n) } }),
  },
  {
    side: 'client',
    field: 'candidate.sdpMLineIndex',
    limit: 65_535,
    frame: (n) => ({ ...validClient['ice-candidate'], candidate: { candidate: '', sdpMLineIndex: n } }),
  },
  {
    side: 'client',
    field: 'candidate.usernameFragment',
    limit: MAX_UFRAG_LENGTH,
    frame: (n) => ({
      ...validClient['ice-candidate'],
      candidate: { candidate: '', usernameFragment: text(n) },
    }),
  },
  {
    side: 'client',
    field: 'capabilities.models',
    limit: MAX_MODELS,
    frame: (n) => announceWith({ models: list(n, (i) => `m${i}`) }),
  },
  {
    side: 'client',
    field: 'capabilities.models.0',
    limit: MAX_MODEL_NAME_LENGTH,
    frame: (n) => announceWith({ models: [text(n)] }),
  },
  {
    side: 'client',
    field: 'capabilities.quota.provider',
    limit: MAX_PROVIDER_NAME_LENGTH,
    frame: (n) => quotaWith({ provider: text(n) }),
  },
  {
    side: 'client',
    field: 'capabilities.quota.capabilities',
    limit: MAX_CAPABILITY_TAGS,
    frame: (n) => quotaWith({ capabilities: list(n, (i) => `tag${i}`) }),
  },
  {
    side: 'client',
    field: 'capabilities.quota.capabilities.0',
    limit: MAX_CAPABILITY_TAG_LENGTH,
    frame: (n) => quotaWith({ capabilities: [text(n)] }),
  },
  {
    side: 'client',
    field: 'capabilities.quota.totalQuota',
    limit: 1e12,
    frame: (n) => quotaWith({ totalQuota: n }),
  },
  {
    side: 'client',
    field: 'capabilities.performance.latency',
    limit: 3_600_000,
    frame: (n) => announceWith({ performance: { latency: n } }),
  },
  {
    side: 'client',
    field: 'requirements.limit',
    limit: MAX_DISCOVERED_PEERS,
    frame: (n) => ({ type: 'discover', requirements: { ...requirements, limit: n } }),
  },
  {
    side: 'client',
    field: 'requirements.preferredModels',
    limit: MAX_MODELS,
    frame: (n) => ({
      type: 'discover',
      requirements: { ...requirements, preferredModels: list(n, (i) => `m${i}`) },
    }),
  },
  {
    side: 'client',
    field: 'requestId',
    limit: MAX_REQUEST_ID_LENGTH,
    frame: (n) => ({ type: 'discover', requirements, requestId: text(n) }),
  },
  { side: 'client', field: 'ts', limit: 1e15, frame: (n) => ({ type: 'heartbeat', ts: n }) },
  {
    side: 'client',
    field: 'payload.prompt',
    limit: MAX_PROMPT_LENGTH,
    frame: (n) => ({ ...validClient.relay, payload: { ...delegation, prompt: text(n) } }),
  },
  {
    side: 'server',
    field: 'resumeToken',
    limit: MAX_RESUME_TOKEN_LENGTH,
    frame: (n) => ({ ...validServer['peer-id'], resumeToken: text(n) }),
  },
  {
    side: 'server',
    field: 'iceServers',
    limit: MAX_ICE_SERVERS,
    frame: (n) => ({
      type: 'ice-servers',
      iceServers: list(n, () => ({ urls: 'stun:s.example.org' })),
      expiresAt: 0,
    }),
  },
  {
    side: 'server',
    field: 'iceServers.0.urls',
    limit: MAX_ICE_URL_LENGTH,
    frame: (n) => ({ type: 'ice-servers', iceServers: [{ urls: `stun:${text(n - 5)}` }], expiresAt: 0 }),
  },
  {
    side: 'server',
    field: 'peers',
    limit: MAX_DISCOVERED_PEERS,
    frame: (n) => ({
      type: 'peers-discovered',
      peers: list(n, (i) => ({ peerId: `p${i}`, capabilities: { hasAI: false, models: [] }, score: 0 })),
    }),
  },
  {
    side: 'server',
    field: 'peers.0.score',
    limit: 100,
    frame: (n) => ({
      type: 'peers-discovered',
      peers: [{ peerId: 'p', capabilities: { hasAI: false, models: [] }, score: n }],
    }),
  },
  {
    side: 'server',
    field: 'message',
    limit: MAX_ERROR_MESSAGE_LENGTH,
    frame: (n) => ({ type: 'error', code: 'internal', message: text(n) }),
  },
  {
    side: 'server',
    field: 'retryAfterMs',
    limit: 86_400_000,
    frame: (n) => ({ type: 'error', code: 'rate-limited', message: '', retryAfterMs: n }),
  },
  {
    side: 'server',
    field: 'reason',
    limit: MAX_REASON_LENGTH,
    frame: (n) => ({ type: 'reconnect', reason: text(n), retryAfterMs: 0 }),
  },
  {
    side: 'task',
    field: 'taskId',
    limit: MAX_TASK_ID_LENGTH,
    frame: (n) => ({ ...delegation, taskId: text(n) }),
  },
  {
    side: 'task',
    field: 'prompt',
    limit: MAX_PROMPT_LENGTH,
    frame: (n) => ({ ...delegation, prompt: text(n) }),
  },
  { side: 'task', field: 'priority', limit: 10, frame: (n) => ({ ...delegation, priority: n }) },
  {
    side: 'task',
    field: 'timeout',
    limit: MAX_TASK_TIMEOUT_MS,
    frame: (n) => ({ ...delegation, timeout: n }),
  },
  {
    side: 'task',
    field: 'continueFrom',
    limit: MAX_PROMPT_LENGTH,
    frame: (n) => ({ ...delegation, continueFrom: text(n) }),
  },
  {
    side: 'task',
    field: 'queuePosition',
    limit: 10_000,
    frame: (n) => ({ type: 'task-accepted', taskId: 't', queuePosition: n }),
  },
  { side: 'task', field: 'chunk', limit: MAX_CHUNK_LENGTH, frame: (n) => responseWith({ chunk: text(n) }) },
  {
    side: 'task',
    field: 'metadata',
    limit: MAX_METADATA_ENTRIES,
    frame: (n) => responseWith({ metadata: Object.fromEntries(list(n, (i) => [`k${i}`, i])) }),
  },
  {
    side: 'task',
    field: 'metadata.note',
    limit: MAX_METADATA_STRING_LENGTH,
    frame: (n) => responseWith({ metadata: { note: text(n) } }),
  },
  {
    side: 'task',
    // A record's issue path names the offending key itself.
    field: `metadata.${text(MAX_METADATA_KEY_LENGTH + 1)}`,
    limit: MAX_METADATA_KEY_LENGTH,
    frame: (n) => responseWith({ metadata: { [text(n)]: 1 } }),
  },
  {
    side: 'task',
    field: 'message',
    limit: MAX_ERROR_MESSAGE_LENGTH,
    frame: (n) => ({ type: 'task-failed', taskId: 't', code: 'internal', message: text(n) }),
  },
  {
    side: 'task',
    field: 'reason',
    limit: MAX_REASON_LENGTH,
    frame: (n) => ({ type: 'task-cancel', taskId: 't', reason: text(n) }),
  },
  {
    side: 'task',
    field: 'index',
    limit: MAX_FRAGMENTS - 1,
    frame: (n) => ({ ...validTask['link-fragment'], index: n }),
  },
  {
    side: 'task',
    field: 'count',
    limit: MAX_FRAGMENTS,
    frame: (n) => ({ ...validTask['link-fragment'], count: n }),
  },
  {
    side: 'task',
    field: 'data',
    limit: MAX_FRAGMENT_CHARS,
    frame: (n) => ({ ...validTask['link-fragment'], data: text(n) }),
  },
];

describe('bounds', () => {
  const table = bounds.map(
    (bound) => [bound.side, bound.frame(bound.limit).type, bound.field, bound.limit, bound] as const,
  );

  it.each(table)(
    'the %s decoder accepts %s `%s` at its limit of %d',
    (side, _type, _field, limit, { frame }) => {
      const result = decoders[side](JSON.stringify(frame(limit)));
      expect(result.ok ? result.ok : result.message).toBe(true);
    },
  );

  it.each(table)(
    'the %s decoder refuses %s `%s` one past %d and names the field',
    (side, _type, field, limit, { frame }) => {
      const message = frame(limit + 1);
      expect(decoders[side](JSON.stringify(message))).toEqual({
        ok: false,
        code: 'invalid-message',
        message: expect.stringContaining(`\`${field}\` in ${message.type}: `),
        inReplyTo: message.type,
      });
    },
  );
});

describe('values a schema refuses', () => {
  const refusals: [Bound['side'], string, Record<string, unknown>][] = [
    ['client', 'targetPeerId', { ...validClient.offer, targetPeerId: 'peer/b' }],
    ['client', 'targetPeerId', { ...validClient.offer, targetPeerId: '' }],
    ['client', 'sdp.type', { ...validClient.offer, sdp: { type: 'answer', sdp: 'v=0' } }],
    ['client', 'capabilities', { type: 'capability-announce' }],
    ['client', 'capabilities.hasAI', announceWith({ hasAI: 'yes' })],
    ['client', 'capabilities.models.0', announceWith({ models: [''] })],
    ['client', 'capabilities.quota.usedQuota', quotaWith({ usedQuota: -1 })],
    [
      'client',
      'requirements.minQuota',
      { type: 'discover', requirements: { ...requirements, minQuota: -5 } },
    ],
    ['client', 'requirements.limit', { type: 'discover', requirements: { ...requirements, limit: 0 } }],
    ['client', 'requirements.limit', { type: 'discover', requirements: { ...requirements, limit: 2.5 } }],
    ['client', 'requestId', { type: 'discover', requirements, requestId: 'has space' }],
    [
      'client',
      'candidate.sdpMLineIndex',
      { ...validClient['ice-candidate'], candidate: { candidate: '', sdpMLineIndex: 1.5 } },
    ],
    ['client', 'payload.type', { ...validClient.relay, payload: { type: 'rm -rf' } }],
    ['client', 'payload.ts', { ...validClient.relay, payload: { type: 'link-ping', ts: 'soon' } }],
    ['client', 'ts', { type: 'heartbeat', ts: -1 }],
    ['server', 'fromPeerId', { type: 'offer', targetPeerId: 'a', sdp: { type: 'offer', sdp: '' } }],
    ['server', 'reason', { type: 'peer-left', peerId: 'p', reason: 'kicked' }],
    ['server', 'code', { type: 'error', code: 'teapot', message: '' }],
    [
      'server',
      'iceServers.0.urls',
      { type: 'ice-servers', iceServers: [{ urls: 'http://evil.example' }], expiresAt: 0 },
    ],
    ['server', 'heartbeatIntervalMs', { ...validServer['peer-id'], heartbeatIntervalMs: 2.5 }],
    ['server', 'protocolVersion', { ...validServer['peer-id'], protocolVersion: 0 }],
    ['task', 'prompt', { ...delegation, prompt: '' }],
    ['task', 'timeout', { ...delegation, timeout: 0 }],
    ['task', 'reason', { type: 'task-rejected', taskId: 't', reason: 'bored', message: '' }],
    ['task', 'code', { type: 'task-failed', taskId: 't', code: 'oops', message: '' }],
    ['task', 'seq', { type: 'chunk-ack', taskId: 't', seq: -1 }],
    ['task', 'metadata.nested', responseWith({ metadata: { nested: { a: 1 } } })],
    ['task', 'count', { ...validTask['link-fragment'], count: 1 }],
  ];

  it.each(refusals)('%s: `%s` is named when %j is refused', (side, field, message) => {
    expect(decoders[side](JSON.stringify(message))).toEqual({
      ok: false,
      code: 'invalid-message',
      message: expect.stringContaining(`\`${field}\` in ${message.type}: `),
      inReplyTo: message.type,
    });
  });

  it('never throws, whatever the frame', () => {
    const frames = [
      '\u0000',
      '\uD800',
      '{"type":"offer","sdp":null}',
      '{"type":"relay","payload":[]}',
      text(70_000, '['),
    ];
    for (const frame of frames) {
      for (const decode of Object.values(decoders)) expect(() => decode(frame)).not.toThrow();
    }
  });
});

describe('describeIssue and encodeMessage', () => {
  it('says which message was invalid when there is no issue to quote', () => {
    expect(describeIssue('offer', undefined)).toBe('invalid offer message');
  });

  it('keeps an error message within 500 characters', () => {
    const issue = {
      kind: 'validation',
      type: 'x',
      input: 0,
      expected: null,
      received: '0',
      message: text(900),
    };
    expect(describeIssue('offer', issue as never)).toHaveLength(500);
  });

  it('encodes a message as the JSON text the decoders read back', () => {
    expect(encodeMessage(validServer.reconnect)).toBe(
      '{"type":"reconnect","reason":"server shutting down","retryAfterMs":500}',
    );
  });
});

describe('utf8Length', () => {
  it.each([
    '',
    'plain ascii',
    'é à ü',
    '€ 日本語',
    '👩‍💻 🚀',
    'mixed é€👩‍💻 text',
    JSON.stringify({ chunk: 'é€👩‍💻' }),
  ])('counts %j as many bytes as Buffer.byteLength does', (value) => {
    expect(utf8Length(value)).toBe(Buffer.byteLength(value, 'utf8'));
  });
});
