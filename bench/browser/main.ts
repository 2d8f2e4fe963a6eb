import type { InspectionEvent } from 'xstate';
import { CHANNEL_HIGH_WATER, CHANNEL_LOW_WATER } from '../../machines/actors/rtc-peer.actor.ts';
import { createHandoff, type Handoff } from '../../machines/create-handoff.ts';
import type { AIProvider, ProviderEvent, ProviderRequest } from '../../machines/providers/provider.ts';
import { SecurityManager } from '../../machines/security/security-manager.ts';
import {
  canonicalJson,
  createIdentity,
  decodeTaskMessage,
  encodeMessage,
  importPublicKey,
  type PromptResponse,
  verifyMessage,
} from '../../protocol/index.ts';
import type {
  DelegationRun,
  HandoffBenchApi,
  LinkSetupSample,
  MicroSample,
  ProviderRun,
  Role,
  ThroughputSample,
} from './api.ts';

/**
 * The bench page, driven by bench/browser.bench.ts. A page holds a Handoff requester, a serving
 * peer (the bench provider below), or both, and the matching ends of a bare RTCPeerConnection pair:
 * every baseline runs in the same browser, the same pages, the same run.
 */

const now = () => performance.now();
/** Epoch milliseconds: comparable across the pages of one browser (see api.ts). */
const at = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Deterministic ASCII text: the answer both Handoff and the bare channel send. */
const BODY = (() => {
  const words =
    'handoff peer browser prompt answer stream channel signal quota model token relay link offer'.split(' ');
  const parts: string[] = [];
  let length = 0;
  let state = 0x2545f491;
  while (length < 4 * 1024 * 1024) {
    state = Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) >>> 0;
    const word = `${words[state % words.length]}${state % 11 === 0 ? '.\n' : ' '}`;
    parts.push(word);
    length += word.length;
  }
  return parts.join('');
})();

const SHORT_ANSWER = ['First token', ' and the rest.'];

/** What the provider saw, by prompt. */
const runs = new Map<string, ProviderRun>();

/**
 * The serving peer's provider (not an AI). The prompt says what to do:
 *  - `ttft <ms> <gapMs> …`: waits <ms> (its own time to first token), yields the first token, waits
 *    <gapMs> (the pace of a model's next tokens), then the rest of a short answer;
 *  - `bulk <chunkChars> <totalChars> …`: BODY's first <totalChars> characters as fast as they are
 *    read, in pieces of <chunkChars>;
 *  - anything else: the short answer at once.
 * Each run records when it started and when it yielded its first text.
 */
function benchProvider(): AIProvider {
  async function* stream(request: ProviderRequest): AsyncGenerator<ProviderEvent> {
    const run: ProviderRun = { startedAt: at(), firstTokenAt: 0 };
    runs.set(request.prompt, run);
    const [kind, a, b] = request.prompt.split(' ');
    const gapMs = kind === 'ttft' ? Number(b) : 0;
    const pieces: string[] = [];
    if (kind === 'bulk') {
      const chunk = Number(a);
      const total = Number(b);
      for (let offset = 0; offset < total; offset += chunk)
        pieces.push(BODY.slice(offset, Math.min(total, offset + chunk)));
    } else {
      if (kind === 'ttft') await sleep(Number(a));
      pieces.push(...SHORT_ANSWER);
    }
    for (const [index, text] of pieces.entries()) {
      if (request.signal.aborted) throw new Error('aborted');
      if (index === 1 && gapMs > 0) await sleep(gapMs);
      if (!run.firstTokenAt) run.firstTokenAt = at();
      yield { type: 'text', text };
    }
    yield { type: 'usage', usage: { inputTokens: 4, outputTokens: pieces.length } };
  }
  return {
    id: 'bench',
    label: 'Bench provider (not an AI)',
    isDemo: true,
    models: async () => ['bench-1'],
    stream,
  };
}

/** What the provider streams for `prompt`. */
function expectedAnswer(prompt: string): string {
  const [kind, , b] = prompt.split(' ');
  return kind === 'bulk' ? BODY.slice(0, Number(b)) : SHORT_ANSWER.join('');
}

/** The serving side's security manager with the default prompt policy, its rate limits opened up. */
const benchSecurity = () =>
  new SecurityManager({
    now: Date.now,
    limiter: {
      ratePerMinute: 1_000_000,
      burst: 100_000,
      maxConcurrent: 4,
      maxQueue: 8,
      maxPerPeer: 8,
      dailyRequests: Number.POSITIVE_INFINITY,
    },
  });

let counter = 0;
/** Unique prompts: the provider's records are keyed by them. */
const unique = (ask: string) => `${ask} #${++counter}-${Math.random().toString(36).slice(2, 8)}`;

/**
 * Tracing: while on, the first time each (role, event type, task message type) is sent between the
 * actors of this page's clients is recorded, from XState's inspection API (no hook in machines/).
 */
let tracing = false;
const trace = new Map<string, number>();
const tracer = (role: Role) => (event: InspectionEvent) => {
  if (!tracing || event.type !== '@xstate.event') return;
  const inner = event.event as { type: string; message?: { type?: unknown } };
  const messageType = typeof inner.message?.type === 'string' ? ` ${inner.message.type}` : '';
  const key = `${role} ${inner.type}${messageType}`;
  if (!trace.has(key)) trace.set(key, at());
};

/** Discovers until `peerId` is among the results (what a real requester does before delegating). */
async function discover(requester: Handoff, peerId: string, timeoutMs: number): Promise<void> {
  const deadline = now() + timeoutMs;
  for (;;) {
    const peers = await requester.discoverPeers({ needsAI: true, minQuota: 0, preferredModels: [] });
    if (peers.some((peer) => peer.peerId === peerId)) return;
    if (now() > deadline) throw new Error(`peer ${peerId} not discovered within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** One delegation to the end: when it was asked, its first chunk, its end, its text checked. */
async function delegate(handoff: Handoff, prompt: string, target: string): Promise<DelegationRun> {
  const t0At = at();
  const task = handoff.delegatePrompt(prompt, target);
  let firstAt = 0;
  let messages = 0;
  for await (const _chunk of task.chunks) {
    if (!firstAt) firstAt = at();
    messages++;
  }
  const result = await task.result;
  const endAt = at();
  if (result.status !== 'completed') {
    throw new Error(`task ${result.status}: ${result.error?.reason ?? ''} ${result.error?.message ?? ''}`);
  }
  return {
    prompt,
    t0At,
    firstAt: firstAt || endAt,
    endAt,
    chars: result.text.length,
    messages,
    exact: result.text === expectedAnswer(prompt),
  };
}

/** Two RTCPeerConnections in this page, signalled by hand (trickle ICE): link setup's baseline. */
async function bareLinkSetup(): Promise<LinkSetupSample> {
  const constructedAt = now();
  const a = new RTCPeerConnection({ iceServers: [] });
  const b = new RTCPeerConnection({ iceServers: [] });
  try {
    // Candidates wait until their connection has a remote description.
    const queued: { to: RTCPeerConnection; candidate: RTCIceCandidate }[] = [];
    const hand = (to: RTCPeerConnection) => (event: RTCPeerConnectionIceEvent) => {
      if (!event.candidate) return;
      if (to.remoteDescription) void to.addIceCandidate(event.candidate).catch(() => {});
      else queued.push({ to, candidate: event.candidate });
    };
    const flushQueued = (pc: RTCPeerConnection) => {
      for (const item of queued.filter((q) => q.to === pc))
        void pc.addIceCandidate(item.candidate).catch(() => {});
      queued.splice(0, queued.length, ...queued.filter((q) => q.to !== pc));
    };
    a.onicecandidate = hand(b);
    b.onicecandidate = hand(a);
    const channel = a.createDataChannel('bench', { ordered: true });
    const opened = new Promise<number>((resolve) => {
      channel.onopen = () => resolve(now());
    });
    const offeredAt = now();
    const offer = await a.createOffer();
    await a.setLocalDescription(offer);
    const offerSetAt = now();
    await b.setRemoteDescription(offer);
    flushQueued(b);
    const answer = await b.createAnswer();
    await b.setLocalDescription(answer);
    const answerSetAt = now();
    await a.setRemoteDescription(answer);
    flushQueued(a);
    const openAt = await opened;
    // On the checkpoints of Handoff's trace (bench/browser.bench.ts), where they have a match.
    const origin = performance.timeOrigin;
    return {
      openMs: openAt - offeredAt,
      otherMs: openAt - constructedAt,
      trace: {
        t0: origin + offeredAt,
        'requester rtc.description': origin + offerSetAt,
        'server rtc.description': origin + answerSetAt,
        'requester rtc.channelOpen': origin + openAt,
      },
    };
  } finally {
    a.close();
    b.close();
  }
}

/** Resolves once `pc` has gathered every candidate (bounded by the caller's timeout). */
function gathered(pc: RTCPeerConnection): Promise<void> {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
  });
}

/** Sends BODY's first `total` characters in `chunk`-character messages, paced like Handoff's link. */
function pump(channel: RTCDataChannel, chunk: number, total: number): void {
  let offset = 0;
  channel.bufferedAmountLowThreshold = CHANNEL_LOW_WATER;
  const send = () => {
    while (offset < total && channel.readyState === 'open' && channel.bufferedAmount <= CHANNEL_HIGH_WATER) {
      channel.send(BODY.slice(offset, Math.min(total, offset + chunk)));
      offset += chunk;
    }
    channel.onbufferedamountlow = offset < total ? send : null;
  };
  send();
}

/** This page's long-lived pieces. */
const state: {
  requester?: Handoff;
  server?: Handoff;
  serverId?: string;
  bareRequester?: RTCPeerConnection;
  bareServer?: RTCPeerConnection;
  channel?: RTCDataChannel;
  /** The requester end's current listener. */
  listener?: (data: string) => void;
} = {};

const realSend = RTCDataChannel.prototype.send;
let sends: { calls: number; totalMs: number; maxMs: number; chars: number } | undefined;

const realSign = crypto.subtle.sign;
const realVerify = crypto.subtle.verify;
const isEd25519 = (algorithm: AlgorithmIdentifier) =>
  (typeof algorithm === 'string' ? algorithm : algorithm.name) === 'Ed25519';

const api: HandoffBenchApi = {
  ready: true,

  clock() {
    let smallest = Number.POSITIVE_INFINITY;
    let last = performance.now();
    for (let i = 0; i < 200_000 && smallest > 0.001; i++) {
      const t = performance.now();
      if (t > last) {
        smallest = Math.min(smallest, t - last);
        last = t;
      }
    }
    return { resolutionMs: smallest, crossOriginIsolated: globalThis.crossOriginIsolated === true };
  },

  async linkSetupHandoff({ signalingUrl, timeoutMs }): Promise<LinkSetupSample> {
    const clients: Handoff[] = [];
    try {
      return await withTimeout(
        (async () => {
          const b = await createHandoff({
            inspect: tracer('server'),
            provider: benchProvider(),
            security: benchSecurity(),
          });
          clients.push(b);
          const a = await createHandoff({ inspect: tracer('requester') });
          clients.push(a);
          const bId = await b.connect(signalingUrl);
          await a.connect(signalingUrl);
          await discover(a, bId, timeoutMs);
          // Trace the delegation only: when the offer, the answer and the open channel pass the actors.
          trace.clear();
          tracing = true;
          const run = await delegate(a, unique('quick'), bId);
          tracing = false;
          const points = Object.fromEntries(trace);
          const openAt = points['requester rtc.channelOpen'];
          if (openAt === undefined) throw new Error('the requester never saw its data channel open');
          return {
            openMs: openAt - run.t0At,
            otherMs: run.firstAt - run.t0At,
            trace: { ...points, t0: run.t0At },
          };
        })(),
        timeoutMs,
        'Handoff link setup',
      );
    } finally {
      tracing = false;
      trace.clear();
      for (const client of clients) client.stop();
    }
  },

  linkSetupBare: ({ timeoutMs }) => withTimeout(bareLinkSetup(), timeoutMs, 'bare link setup'),

  async startClient({ role, signalingUrl, timeoutMs }) {
    const handoff = await createHandoff({
      inspect: tracer(role),
      ...(role === 'server' ? { provider: benchProvider(), security: benchSecurity() } : {}),
    });
    state[role] = handoff;
    return withTimeout(handoff.connect(signalingUrl), timeoutMs, `connecting the ${role}`);
  },

  async warm({ serverId, timeoutMs }) {
    const requester = state.requester;
    if (!requester) throw new Error('no requester in this page');
    state.serverId = serverId;
    await withTimeout(
      (async () => {
        await discover(requester, serverId, timeoutMs);
        // Opens the link (and warms every path) before anything is measured over it.
        for (let i = 0; i < 3; i++) await delegate(requester, unique('quick'), serverId);
      })(),
      timeoutMs,
      'warming the link',
    );
  },

  async delegate({ ask, timeoutMs }) {
    const { requester, serverId } = state;
    if (!requester || !serverId) throw new Error('warm the requester first');
    return withTimeout(delegate(requester, unique(ask), serverId), timeoutMs, `delegating ${ask}`);
  },

  startTrace() {
    trace.clear();
    tracing = true;
  },

  providerRun(prompt) {
    const run = runs.get(prompt);
    runs.delete(prompt);
    return run;
  },

  takeTrace() {
    tracing = false;
    const out = Object.fromEntries(trace);
    trace.clear();
    return out;
  },

  async bareOffer({ timeoutMs }) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    state.bareRequester = pc;
    const channel = pc.createDataChannel('bench', { ordered: true });
    state.channel = channel;
    channel.onmessage = (event) => state.listener?.(String(event.data));
    await pc.setLocalDescription(await pc.createOffer());
    await withTimeout(gathered(pc), timeoutMs, 'gathering the offer');
    return pc.localDescription?.sdp ?? '';
  },

  async bareAnswer({ sdp, timeoutMs }) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    state.bareServer = pc;
    pc.ondatachannel = (event) => {
      const channel = event.channel;
      // Attached synchronously: attaching after an await loses early messages.
      channel.onmessage = (message) => {
        const data = String(message.data);
        if (data === 'ping') channel.send('pong');
        else if (data === 'clock') channel.send(`clock ${at()}`);
        else if (data.startsWith('bulk ')) {
          const [, chunk, total] = data.split(' ');
          pump(channel, Number(chunk), Number(total));
        }
      };
    };
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await withTimeout(gathered(pc), timeoutMs, 'gathering the answer');
    return pc.localDescription?.sdp ?? '';
  },

  async bareFinish({ sdp, timeoutMs }) {
    const { bareRequester: pc, channel } = state;
    if (!pc || !channel) throw new Error('bareOffer first');
    await pc.setRemoteDescription({ type: 'answer', sdp });
    if (channel.readyState !== 'open') {
      await withTimeout(
        new Promise<void>((resolve) => channel.addEventListener('open', () => resolve(), { once: true })),
        timeoutMs,
        'opening the bare channel',
      );
    }
  },

  async roundTripBare({ timeoutMs }) {
    const channel = state.channel;
    if (!channel) throw new Error('no bare channel in this page');
    const t0 = now();
    const reply = new Promise<number>((resolve) => {
      state.listener = (data) => {
        if (data === 'pong') resolve(now());
      };
    });
    channel.send('ping');
    try {
      return { rttMs: (await withTimeout(reply, timeoutMs, 'bare round trip')) - t0 };
    } finally {
      state.listener = undefined;
    }
  },

  async clockOffset({ probes, timeoutMs }) {
    const channel = state.channel;
    if (!channel) throw new Error('no bare channel in this page');
    let best = { rttMs: Number.POSITIVE_INFINITY, offsetMs: 0 };
    for (let i = 0; i < probes; i++) {
      const sentAt = at();
      const reply = new Promise<number>((resolve) => {
        state.listener = (data) => {
          if (data.startsWith('clock ')) resolve(Number(data.slice(6)));
        };
      });
      channel.send('clock');
      const remoteAt = await withTimeout(reply, timeoutMs, 'clock probe');
      const receivedAt = at();
      // The remote read its clock halfway through the round trip (symmetric paths assumed).
      if (receivedAt - sentAt < best.rttMs)
        best = { rttMs: receivedAt - sentAt, offsetMs: remoteAt - (sentAt + receivedAt) / 2 };
    }
    state.listener = undefined;
    return best;
  },

  async throughputBare({ chunkChars, totalChars, timeoutMs }): Promise<ThroughputSample> {
    const channel = state.channel;
    if (!channel) throw new Error('no bare channel in this page');
    const parts: string[] = [];
    let received = 0;
    const t0 = now();
    const done = new Promise<void>((resolve) => {
      state.listener = (data) => {
        parts.push(data);
        received += data.length;
        if (received >= totalChars) resolve();
      };
    });
    channel.send(`bulk ${chunkChars} ${totalChars}`);
    try {
      await withTimeout(done, timeoutMs, 'bare throughput trial');
    } finally {
      state.listener = undefined;
    }
    // Like Handoff's requester, which holds the whole text at the end: joined and checked.
    const text = parts.join('');
    return {
      ms: now() - t0,
      chars: text.length,
      messages: parts.length,
      exact: text === BODY.slice(0, totalChars),
    };
  },

  async closeAll() {
    state.requester?.stop();
    state.server?.stop();
    state.channel?.close();
    state.bareRequester?.close();
    state.bareServer?.close();
    for (const key of Object.keys(state)) delete state[key as keyof typeof state];
  },

  async micro({ chunkChars, ops }): Promise<MicroSample[]> {
    const identity = await createIdentity();
    const key = await importPublicKey(identity.publicKey);
    const message: PromptResponse = {
      type: 'prompt-response',
      taskId: 'task-mbm1x2y3-0-abc123',
      seq: 17,
      chunk: BODY.slice(0, chunkChars),
      isComplete: false,
    };
    const from = 'peer-aaaaaaaaaaaaaaaaaaaa';
    const to = 'peer-bbbbbbbbbbbbbbbbbbbb';
    const signed = await identity.sign(message, from, to);
    const text = encodeMessage(signed);
    const bytes = new TextEncoder().encode(canonicalJson(message));
    const out: MicroSample[] = [];
    const time = async (what: string, n: number, body: () => unknown) => {
      await body(); // warm
      const t0 = now();
      for (let i = 0; i < n; i++) await body();
      out.push({ what, perOpUs: ((now() - t0) * 1000) / n, ops: n });
    };
    const timeAtOnce = async (what: string, n: number, body: () => Promise<unknown>) => {
      const t0 = now();
      await Promise.all(Array.from({ length: n }, body));
      out.push({ what, perOpUs: ((now() - t0) * 1000) / n, ops: n });
    };
    await time(
      'identity.sign (canonical JSON + TextEncoder + WebCrypto Ed25519 + base64), awaited',
      ops,
      () => identity.sign(message, from, to),
    );
    await time(
      'verifyMessage (canonical JSON + TextEncoder + base64 + WebCrypto Ed25519), awaited',
      ops,
      () => verifyMessage(signed, from, to, key),
    );
    await timeAtOnce(`identity.sign, ${ops} at once (per message)`, ops, () =>
      identity.sign(message, from, to),
    );
    await timeAtOnce(`verifyMessage, ${ops} at once (per message)`, ops, () =>
      verifyMessage(signed, from, to, key),
    );
    const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    await time('crypto.subtle.sign Ed25519 of the bytes alone, awaited', ops, () =>
      crypto.subtle.sign({ name: 'Ed25519' }, pair.privateKey, bytes),
    );
    const tiny = new Uint8Array(32);
    await time('crypto.subtle.digest SHA-256 of 32 bytes, awaited (a WebCrypto call alone)', ops, () =>
      crypto.subtle.digest('SHA-256', tiny),
    );
    await time('canonicalJson of the chunk message', ops * 10, () => canonicalJson(message));
    await time('JSON.stringify of the signed chunk message', ops * 10, () => encodeMessage(signed));
    await time('decodeTaskMessage (JSON.parse + valibot) of it', ops * 10, () => decodeTaskMessage(text));
    return out;
  },

  stubEd25519(on) {
    const subtle = crypto.subtle as unknown as {
      sign: typeof crypto.subtle.sign;
      verify: typeof crypto.subtle.verify;
    };
    if (!on) {
      subtle.sign = realSign;
      subtle.verify = realVerify;
      return;
    }
    subtle.sign = ((algorithm: AlgorithmIdentifier, key: CryptoKey, data: BufferSource) =>
      isEd25519(algorithm)
        ? Promise.resolve(new Uint8Array(64).buffer)
        : realSign.call(crypto.subtle, algorithm, key, data)) as typeof crypto.subtle.sign;
    subtle.verify = ((
      algorithm: AlgorithmIdentifier,
      key: CryptoKey,
      signature: BufferSource,
      data: BufferSource,
    ) =>
      isEd25519(algorithm)
        ? Promise.resolve(true)
        : realVerify.call(crypto.subtle, algorithm, key, signature, data)) as typeof crypto.subtle.verify;
  },

  measureSends(on) {
    if (on) {
      const stats = { calls: 0, totalMs: 0, maxMs: 0, chars: 0 };
      sends = stats;
      RTCDataChannel.prototype.send = function (this: RTCDataChannel, data: never) {
        const t0 = now();
        try {
          return realSend.call(this, data);
        } finally {
          const ms = now() - t0;
          stats.calls++;
          stats.totalMs += ms;
          stats.maxMs = Math.max(stats.maxMs, ms);
          stats.chars += typeof data === 'string' ? (data as string).length : 0;
        }
      } as typeof realSend;
      return undefined;
    }
    RTCDataChannel.prototype.send = realSend;
    const out = sends;
    sends = undefined;
    return out;
  },

  linkCounters() {
    const link = state.requester?.actor.getSnapshot().children[`link-${state.serverId}`] as
      | { getSnapshot(): { context: { bytesSent: number; bytesReceived: number } } }
      | undefined;
    const context = link?.getSnapshot().context;
    return context ? { bytesSent: context.bytesSent, bytesReceived: context.bytesReceived } : undefined;
  },
};

window.handoffBench = api;
