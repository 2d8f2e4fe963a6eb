/**
 * `npm run bench:signaling`: Handoff's signaling server against a bare uWS relay, same run, same
 * load generator, side by side. Not part of `npm test`.
 *
 * Each server runs alone in a child process (`bench/server-child.ts`, `node --expose-gc --import tsx`)
 * that reports its own `process.memoryUsage()` / `process.cpuUsage()` over IPC; this process is the
 * load generator (Node `ws` clients, 127.0.0.1 only). Prints a markdown table and writes
 * `bench/results/signaling.json`.
 *
 * Environment knobs (all optional; profiling slows the server, so such runs are marked as such):
 *   BENCH_ONLY=handoff|bare   run one server only
 *   BENCH_PHASES=relay,memory,accept   run only these phases (default: all three)
 *   BENCH_CHILD_FLAGS='--max-semi-space-size=1'   extra node/V8 flags for the server children
 *   BENCH_PIN=0                        do not pin the load generator to CPU 0 and servers to CPU 1
 *   BENCH_PAIRS=32 BENCH_WINDOW=128    sender/receiver pairs and in-flight messages per pair
 *   BENCH_CPU_PROF=1          CPU-profile each server during the throughput window and the accept phase
 *                             (bench/results/profiles/<kind>-<phase>.cpuprofile; summarise with
 *                             `npx tsx bench/profile-report.ts <file>`)
 *   BENCH_HEAP_SNAPSHOT=1     heap snapshots of each server before and after the idle peers connect
 *                             (=after: only the second, so the phase's timing is unchanged)
 *                             (compare with `npx tsx bench/heap-report.ts <before> <after> <peers>`)
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { BARE_RELAY_MODE } from './bare-uws-relay.ts';
import {
  type ChildMessage,
  type ChildStats,
  HANDOFF_BENCH_CONFIG,
  type HeapSpace,
  type ParentRequest,
  type ServerKind,
} from './server-protocol.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const CHILD = join(HERE, 'server-child.ts');
const RESULTS = join(HERE, 'results');
const PROFILES = join(RESULTS, 'profiles');
const CPU_PROFILE = process.env.BENCH_CPU_PROF === '1';
/**
 * Load generator on CPU 0, server on CPU 1, so the two chatty processes never share a core. (On the
 * 2-vCPU VM this was written on, some rounds still ran with both processes well under 100 % busy,
 * pinned or not; the alternating rounds' median and the server-CPU-per-message figure absorb that.)
 */
const PIN =
  process.env.BENCH_PIN !== '0' &&
  os.cpus().length >= 2 &&
  (() => {
    try {
      execFileSync('taskset', ['-V'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
/** '1': heap snapshots before and after the idle peers connect; 'after': only after (keeps the timing). */
const HEAP_SNAPSHOT =
  process.env.BENCH_HEAP_SNAPSHOT === 'after' ? 'after' : process.env.BENCH_HEAP_SNAPSHOT === '1';

const SETTINGS = {
  /** Sender/receiver pairs for throughput and latency. */
  pairs: Number(process.env.BENCH_PAIRS ?? 32),
  /** Relay messages in flight per pair (sent, not yet received). */
  window: Number(process.env.BENCH_WINDOW ?? 128),
  /** Throughput rounds per server, alternating between the servers; the median is reported. */
  throughputRounds: 5,
  throughputWarmupMs: 500,
  throughputMs: 2_000,
  /** Total relay messages per second across all pairs in the latency phase. */
  latencyRate: 2_000,
  latencyWarmupMs: 500,
  latencyMs: 4_000,
  idlePeers: 5_000,
  acceptConnections: 10_000,
  acceptConcurrency: 500,
  /** Upper bound for one connection to be greeted. */
  connectTimeoutMs: 20_000,
  /** Upper bound for any wait on the server. */
  settleTimeoutMs: 10_000,
  /** After a relay phase, how long a message may still be under way before it counts as lost. */
  lossWaitMs: 3_000,
  /** The whole run is aborted after this. */
  runTimeoutMs: 240_000,
};

const TARGETS = { throughputRatio: 0.8, bytesPerIdlePeer: 8 * 1024 };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `done` every 10 ms for at most `ms`; false if it never became true. */
async function until(done: () => boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!done()) {
    if (performance.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

// ------------------------------------------------------------------------------------ server children

const children = new Set<ChildProcess>();
const killChildren = () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
};
process.on('exit', killChildren);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killChildren();
    process.exit(130);
  });
}

type Request = ParentRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;
type Reply = Extract<ChildMessage, { type: 'reply' }>;

class ServerChild {
  readonly kind: ServerKind;
  readonly #proc: ChildProcess;
  readonly #pending = new Map<number, (reply: Reply) => void>();
  #nextId = 1;
  port = 0;

  private constructor(kind: ServerKind, proc: ChildProcess) {
    this.kind = kind;
    this.#proc = proc;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  static async start(kind: ServerKind): Promise<ServerChild> {
    const extra = (process.env.BENCH_CHILD_FLAGS ?? '').split(' ').filter(Boolean);
    const node = [process.execPath, '--expose-gc', ...extra, '--import', 'tsx', CHILD, kind];
    const [command, ...args] = PIN ? ['taskset', '-c', '1', ...node] : node;
    const proc = spawn(command as string, args, {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.add(proc);
    proc.on('exit', () => children.delete(proc));
    const child = new ServerChild(kind, proc);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${kind} server did not start within 30 s`)), 30_000);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${kind} server exited with ${code} before it was ready`));
      });
      proc.on('message', (message: ChildMessage) => {
        if (message.type === 'ready') {
          child.port = message.port;
          clearTimeout(timer);
          resolve();
        } else if (message.type === 'reply') {
          child.#pending.get(message.id)?.(message);
          child.#pending.delete(message.id);
        }
      });
    });
    return child;
  }

  #request(request: Request, timeoutMs = 60_000): Promise<Reply> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.kind} server did not answer ${request.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, (reply) => {
        clearTimeout(timer);
        if (reply.error) reject(new Error(`${this.kind} server: ${request.type}: ${reply.error}`));
        else resolve(reply);
      });
      this.#proc.send({ ...request, id } as ParentRequest);
    });
  }

  /** The server's own memory and CPU counters (after two full GCs when `gc`). */
  async stats(gc: boolean): Promise<ChildStats> {
    const reply = await this.#request({ type: 'stats', gc });
    if (!reply.stats) throw new Error('stats reply without stats');
    return reply.stats;
  }

  async profileStart(): Promise<void> {
    if (CPU_PROFILE) await this.#request({ type: 'profile-start' });
  }

  async profileStop(phase: string): Promise<void> {
    if (!CPU_PROFILE) return;
    mkdirSync(PROFILES, { recursive: true });
    const file = join(PROFILES, `${this.kind}-${phase}.cpuprofile`);
    await this.#request({ type: 'profile-stop', file });
    console.error(`  cpu profile: ${file}`);
  }

  async heapSnapshot(name: string, when: 'before' | 'after'): Promise<void> {
    if (!HEAP_SNAPSHOT || (HEAP_SNAPSHOT === 'after' && when === 'before')) return;
    mkdirSync(PROFILES, { recursive: true });
    const file = join(PROFILES, `${this.kind}-${name}.heapsnapshot`);
    await this.#request({ type: 'heap-snapshot', file });
    console.error(`  heap snapshot: ${file}`);
  }

  /** Asks the child to exit; kills it if it does not within 10 s. */
  async stop(): Promise<void> {
    const proc = this.#proc;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    if (proc.connected) proc.send({ type: 'exit' } satisfies ParentRequest);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Stops the server after marking its clients as closing (their closes are then expected). */
async function teardown(child: ServerChild, opened: BenchClient[]): Promise<void> {
  for (const client of opened) client.closing = true;
  await child.stop();
  dropAll(opened);
}

// ------------------------------------------------------------------------------------ clients

const LETTER = { e: 0x65, h: 0x68 } as const;
/** Every live client, so a failing run can still drop them all. */
const clients = new Set<BenchClient>();
let unexpectedCloses = 0;

/**
 * One `ws` client. Waits for the greeting (`peer-id`), answers server heartbeats like a real client,
 * and hands every other frame to `handler`. Frames are told apart by the first letter of their
 * `type` (`{"type":"` is 9 bytes): both servers stringify `type` first.
 */
class BenchClient {
  readonly ws: WebSocket;
  readonly greeted: Promise<void>;
  id = '';
  handler: ((data: Buffer) => void) | undefined;
  closing = false;

  constructor(url: string) {
    clients.add(this);
    this.ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, maxPayload: 1 << 20 });
    this.greeted = new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no peer-id within ${SETTINGS.connectTimeoutMs} ms`)),
        SETTINGS.connectTimeoutMs,
      );
      this.ws.on('message', (data: Buffer) => {
        if (!this.id) {
          const hello = JSON.parse(data.toString()) as { type: string; peerId?: string };
          if (hello.type === 'peer-id' && hello.peerId) {
            this.id = hello.peerId;
            clearTimeout(timer);
            resolve();
          }
          return;
        }
        if (data[9] === LETTER.h && data.toString('latin1', 0, 20) === '{"type":"heartbeat",') {
          const { ts } = JSON.parse(data.toString()) as { ts: number };
          this.ws.send(`{"type":"heartbeat","ts":${ts}}`);
          return;
        }
        this.handler?.(data);
      });
      this.ws.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      this.ws.on('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`upgrade refused: HTTP ${res.statusCode}`));
      });
      this.ws.on('close', (code) => {
        clients.delete(this);
        clearTimeout(timer);
        if (!this.id) reject(new Error(`closed with ${code} before peer-id`));
        else if (!this.closing) unexpectedCloses++;
      });
    });
  }

  /** Closes with 1000 and waits for the close (bounded). */
  async close(): Promise<void> {
    this.closing = true;
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => this.ws.once('close', () => resolve()));
    this.ws.close(1000);
    await Promise.race([closed, sleep(SETTINGS.settleTimeoutMs)]);
    this.ws.terminate();
  }

  terminate(): void {
    this.closing = true;
    this.ws.terminate();
    clients.delete(this);
  }
}

/** Opens `count` greeted clients with at most `concurrency` connecting at once. */
async function connectMany(url: string, count: number, concurrency: number): Promise<BenchClient[]> {
  const opened: BenchClient[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const client = new BenchClient(url);
      opened.push(client);
      await client.greeted;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return opened;
}

function dropAll(list: Iterable<BenchClient>): void {
  for (const client of [...list]) client.terminate();
}

// ------------------------------------------------------------------------------------ measurements

const cpuMicros = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => b.user - a.user + (b.system - a.system);
const loadGenCpu = () => process.cpuUsage();

interface Pair {
  sender: BenchClient;
  receiver: BenchClient;
  inFlight: number;
}

interface ThroughputRound {
  messagesPerSecond: number;
  messages: number;
  seconds: number;
  serverCpuMicros: number;
  serverWallMs: number;
  loadGeneratorCpuMicros: number;
  /** Relay messages the server answered with an error frame. */
  rejected: number;
  /** Relay messages that never arrived and drew no error. */
  lost: number;
  /** Messages delivered in each 100 ms of the window: stalls show as near-empty buckets. */
  timeline: number[];
}

interface ThroughputResult {
  /** Median over the rounds. */
  messagesPerSecond: number;
  minMessagesPerSecond: number;
  maxMessagesPerSecond: number;
  /** Server CPU over all rounds / messages over all rounds. */
  serverCpuMicrosPerMessage: number;
  serverCpuUtilisation: number;
  loadGeneratorCpuUtilisation: number;
  rejected: number;
  lost: number;
  rounds: ThroughputRound[];
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

function summariseThroughput(rounds: ThroughputRound[]): ThroughputResult {
  const sum = (pick: (r: ThroughputRound) => number) => rounds.reduce((total, r) => total + pick(r), 0);
  const rates = rounds.map((r) => r.messagesPerSecond);
  return {
    messagesPerSecond: median(rates),
    minMessagesPerSecond: Math.min(...rates),
    maxMessagesPerSecond: Math.max(...rates),
    serverCpuMicrosPerMessage: sum((r) => r.serverCpuMicros) / sum((r) => r.messages),
    serverCpuUtilisation: sum((r) => r.serverCpuMicros) / 1000 / sum((r) => r.serverWallMs),
    loadGeneratorCpuUtilisation: sum((r) => r.loadGeneratorCpuMicros) / 1000 / sum((r) => r.seconds * 1000),
    rejected: sum((r) => r.rejected),
    lost: sum((r) => r.lost),
    rounds,
  };
}

/** Polls `value` every 50 ms until it has not changed for `quietMs` (or `maxMs` passed). */
async function untilStable(value: () => number, quietMs: number, maxMs: number): Promise<void> {
  const deadline = performance.now() + maxMs;
  let last = value();
  let since = performance.now();
  while (performance.now() < deadline && last !== 0) {
    await sleep(50);
    const now = value();
    if (now !== last) {
      last = now;
      since = performance.now();
    } else if (performance.now() - since >= quietMs) return;
  }
}

/** Every pair keeps `window` relay messages in flight; counts deliveries over a fixed window. */
async function throughputRound(child: ServerChild, pairs: Pair[], round: number): Promise<ThroughputRound> {
  let running = true;
  let received = 0;
  let rejected = 0;
  const pump = (pair: Pair, frame: Buffer) => {
    while (running && pair.inFlight < SETTINGS.window) {
      pair.sender.ws.send(frame, { binary: false });
      pair.inFlight++;
    }
  };
  for (const pair of pairs) {
    const frame = Buffer.from(
      JSON.stringify({
        type: 'relay',
        targetPeerId: pair.receiver.id,
        payload: { type: 'link-ping', ts: 0 },
      }),
    );
    pair.receiver.handler = () => {
      pair.inFlight--;
      received++;
      pump(pair, frame);
    };
    pair.sender.handler = (data) => {
      if (data[9] !== LETTER.e) return;
      // Handoff refused a relay (e.g. target congested): it will never arrive.
      rejected++;
      pair.inFlight--;
      pump(pair, frame);
    };
    pump(pair, frame);
  }
  await sleep(SETTINGS.throughputWarmupMs);
  await child.profileStart();
  const before = await child.stats(false);
  const received0 = received;
  const cpu0 = loadGenCpu();
  const t0 = performance.now();
  const timeline: number[] = [];
  let mark = received;
  const sampler = setInterval(() => {
    timeline.push(received - mark);
    mark = received;
  }, 100);
  await sleep(SETTINGS.throughputMs);
  clearInterval(sampler);
  const after = await child.stats(false);
  const received1 = received;
  const cpu1 = loadGenCpu();
  const t1 = performance.now();
  running = false;
  await child.profileStop(`throughput-${round}`);
  const inFlight = () => pairs.reduce((total, pair) => total + pair.inFlight, 0);
  await untilStable(inFlight, 500, SETTINGS.lossWaitMs);
  const lost = inFlight();
  for (const pair of pairs) pair.inFlight = 0;
  const messages = received1 - received0;
  const seconds = (t1 - t0) / 1000;
  return {
    messagesPerSecond: messages / seconds,
    messages,
    seconds,
    serverCpuMicros: cpuMicros(before.cpu, after.cpu),
    serverWallMs: after.atMs - before.atMs,
    loadGeneratorCpuMicros: cpuMicros(cpu0, cpu1),
    rejected,
    lost,
    timeline,
  };
}

interface LatencyResult {
  rate: number;
  samples: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  serverCpuUtilisation: number;
  serverCpuMicrosPerMessage: number;
  sent: number;
  rejected: number;
  /** Never arrived, no error frame either; `lostByPair` says which pairs (index: count). */
  lost: number;
  lostByPair: Record<string, number>;
  /** The first few non-heartbeat frames the senders received (errors), for diagnosis. */
  senderFrames: string[];
}

/**
 * Sends `latencyRate` messages per second in total, round-robin over the pairs, each carrying
 * `performance.now()` as `payload.ts`; the receiver (same process, same clock) records now - ts.
 * A 1 ms timer sends whatever is due, so messages leave evenly, at most ~2-3 per tick.
 */
async function measureLatency(child: ServerChild, pairs: Pair[]): Promise<LatencyResult> {
  const total = Math.round((SETTINGS.latencyRate * (SETTINGS.latencyWarmupMs + SETTINGS.latencyMs)) / 1000);
  const samples = new Float64Array(total);
  let count = 0;
  let received = 0;
  let rejected = 0;
  const start = performance.now();
  const measureFrom = start + SETTINGS.latencyWarmupMs;
  const prefixes = pairs.map(
    (pair) => `{"type":"relay","targetPeerId":"${pair.receiver.id}","payload":{"type":"link-ping","ts":`,
  );
  const receivedBy = new Uint32Array(pairs.length);
  const unexpected: string[] = [];
  pairs.forEach((pair, i) => {
    pair.receiver.handler = (data) => {
      const now = performance.now();
      const { payload } = JSON.parse(data.toString()) as { payload: { ts: number } };
      received++;
      receivedBy[i] = (receivedBy[i] ?? 0) + 1;
      if (payload.ts >= measureFrom && count < total) samples[count++] = now - payload.ts;
    };
    pair.sender.handler = (data) => {
      if (data[9] === LETTER.e) rejected++;
      if (unexpected.length < 10) unexpected.push(data.toString().slice(0, 200));
    };
  });
  let sent = 0;
  let before: ChildStats | undefined;
  let beforeRequested = false;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - start) * SETTINGS.latencyRate) / 1000));
      while (sent < due) {
        const i = sent % pairs.length;
        const ts = performance.now();
        (pairs[i] as Pair).sender.ws.send(`${prefixes[i]}${ts}}}`);
        sent++;
      }
      if (!beforeRequested && now >= measureFrom) {
        beforeRequested = true;
        void child.stats(false).then((stats) => (before = stats));
      }
      if (sent < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  const after = await child.stats(false);
  await until(() => received + rejected >= total, SETTINGS.lossWaitMs);
  const expected = (i: number) => Math.floor(total / pairs.length) + (i < total % pairs.length ? 1 : 0);
  const lostByPair: Record<string, number> = {};
  receivedBy.forEach((n, i) => {
    if (n < expected(i)) lostByPair[i] = expected(i) - n;
  });
  if (!before) throw new Error('latency phase: no CPU reading at the start of the window');
  if (count === 0) throw new Error('latency phase: no relay message arrived');
  const sorted = samples.subarray(0, count).sort();
  const at = (q: number) => sorted[Math.min(count - 1, Math.max(0, Math.ceil(q * count) - 1))] as number;
  const serverCpu = cpuMicros(before.cpu, after.cpu);
  return {
    rate: SETTINGS.latencyRate,
    samples: count,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    p999Ms: at(0.999),
    maxMs: sorted[count - 1] as number,
    serverCpuUtilisation: serverCpu / 1000 / (after.atMs - before.atMs),
    serverCpuMicrosPerMessage: serverCpu / ((SETTINGS.latencyRate * (after.atMs - before.atMs)) / 1000),
    sent: total,
    rejected,
    lost: total - received - rejected,
    lostByPair,
    senderFrames: unexpected,
  };
}

/**
 * Both servers up at once, each with its own pairs; throughput rounds alternate between them
 * (H B, B H, H B, …) so drift in the machine's speed hits both alike. Then latency, one at a time.
 */
async function relayPhases(kinds: ServerKind[]) {
  const servers: { kind: ServerKind; child: ServerChild; opened: BenchClient[]; pairs: Pair[] }[] = [];
  try {
    for (const kind of kinds) {
      const child = await ServerChild.start(kind);
      const server = { kind, child, opened: [] as BenchClient[], pairs: [] as Pair[] };
      servers.push(server);
      server.opened.push(...(await connectMany(child.url, SETTINGS.pairs * 2, 64)));
      for (let i = 0; i < SETTINGS.pairs; i++) {
        server.pairs.push({
          sender: server.opened[2 * i] as BenchClient,
          receiver: server.opened[2 * i + 1] as BenchClient,
          inFlight: 0,
        });
      }
    }
    const rounds = new Map<ServerKind, ThroughputRound[]>(kinds.map((kind) => [kind, []]));
    for (let round = 0; round < SETTINGS.throughputRounds; round++) {
      const order = round % 2 ? [...servers].reverse() : servers;
      for (const server of order) {
        const result = await throughputRound(server.child, server.pairs, round);
        console.error(
          `[${server.kind}] throughput round ${round + 1}: ${fmt(result.messagesPerSecond)} msg/s, ` +
            `server CPU ${fmt(result.serverCpuMicros / result.messages, 1)} µs/msg ` +
            `(${fmt((100 * result.serverCpuMicros) / 1000 / result.serverWallMs)} % busy, load generator ${fmt(result.loadGeneratorCpuMicros / 10 / (result.seconds * 1000))} % busy); per 100 ms: ${result.timeline.join(' ')}`,
        );
        rounds.get(server.kind)?.push(result);
        await sleep(200);
      }
    }
    const out: Partial<Record<ServerKind, { throughput: ThroughputResult; latency: LatencyResult }>> = {};
    for (const server of servers) {
      console.error(`[${server.kind}] latency at ${fmt(SETTINGS.latencyRate)} msg/s …`);
      const latency = await measureLatency(server.child, server.pairs);
      out[server.kind] = { throughput: summariseThroughput(rounds.get(server.kind) ?? []), latency };
    }
    return out;
  } finally {
    for (const server of servers) await teardown(server.child, server.opened);
  }
}

interface MemoryResult {
  peers: number;
  rssBytesPerPeer: number;
  heapUsedBytesPerPeer: number;
  heapTotalBytesPerPeer: number;
  externalBytesPerPeer: number;
  /** Per V8 heap space: growth of its committed and of its used size, per peer. */
  heapSpacesPerPeer: Record<string, { size: number; used: number }>;
  /** The same figures between N/2 and N peers: the cost of one more peer, without one-off growth. */
  marginal: Omit<MemoryResult, 'peers' | 'marginal' | 'baseline' | 'halfway' | 'loaded'>;
  baseline: ChildStats;
  halfway: ChildStats;
  loaded: ChildStats;
}

function perPeer(before: ChildStats, after: ChildStats, peers: number) {
  const b = before.memory;
  const a = after.memory;
  const spaces: Record<string, { size: number; used: number }> = {};
  for (const space of after.heapSpaces) {
    const old = before.heapSpaces.find((s: HeapSpace) => s.name === space.name);
    spaces[space.name] = {
      size: (space.size - (old?.size ?? 0)) / peers,
      used: (space.used - (old?.used ?? 0)) / peers,
    };
  }
  return {
    rssBytesPerPeer: (a.rss - b.rss) / peers,
    heapUsedBytesPerPeer: (a.heapUsed - b.heapUsed) / peers,
    heapTotalBytesPerPeer: (a.heapTotal - b.heapTotal) / peers,
    externalBytesPerPeer: (a.external - b.external) / peers,
    heapSpacesPerPeer: spaces,
  };
}

/** N idle, greeted peers; the server's RSS and heapUsed after GC, before and after, divided by N. */
async function memoryPhase(kind: ServerKind): Promise<MemoryResult> {
  const child = await ServerChild.start(kind);
  const opened: BenchClient[] = [];
  try {
    // Warm the code paths (JIT, uWS pools), then leave cleanly so the baseline holds no peer.
    const warm = await connectMany(child.url, 200, 100);
    await Promise.all(warm.map((client) => client.close()));
    let peersLeft = -1;
    const deadline = performance.now() + SETTINGS.settleTimeoutMs;
    while (peersLeft !== 0 && performance.now() < deadline) {
      peersLeft = (await child.stats(false)).peers;
      if (peersLeft) await sleep(50);
    }
    if (peersLeft !== 0) throw new Error(`${peersLeft} warm-up peers never left the ${kind} server`);
    const baseline = await child.stats(true);
    await child.heapSnapshot('idle-baseline', 'before');
    const half = Math.floor(SETTINGS.idlePeers / 2);
    opened.push(...(await connectMany(child.url, half, SETTINGS.acceptConcurrency)));
    await sleep(1_000);
    const halfway = await child.stats(true);
    opened.push(...(await connectMany(child.url, SETTINGS.idlePeers - half, SETTINGS.acceptConcurrency)));
    await sleep(1_000);
    const loaded = await child.stats(true);
    await child.heapSnapshot(`idle-${SETTINGS.idlePeers}`, 'after');
    if (loaded.peers !== SETTINGS.idlePeers) {
      throw new Error(`${kind} server holds ${loaded.peers} peers, expected ${SETTINGS.idlePeers}`);
    }
    return {
      peers: SETTINGS.idlePeers,
      ...perPeer(baseline, loaded, SETTINGS.idlePeers),
      marginal: perPeer(halfway, loaded, SETTINGS.idlePeers - half),
      baseline,
      halfway,
      loaded,
    };
  } finally {
    await teardown(child, opened);
  }
}

interface AcceptResult {
  connections: number;
  concurrency: number;
  ms: number;
  perSecond: number;
  serverCpuMicrosPerConnection: number;
  rssBytesPerPeerAt10k: number;
  heapUsedBytesPerPeerAt10k: number;
}

/** A fresh server; time from the first connect to the last of N greetings, N/concurrency at a time. */
async function acceptPhase(kind: ServerKind): Promise<AcceptResult> {
  const child = await ServerChild.start(kind);
  const opened: BenchClient[] = [];
  try {
    const before = await child.stats(true);
    await child.profileStart();
    const t0 = performance.now();
    opened.push(...(await connectMany(child.url, SETTINGS.acceptConnections, SETTINGS.acceptConcurrency)));
    const ms = performance.now() - t0;
    const after = await child.stats(false);
    await child.profileStop('accept');
    const settled = await child.stats(true);
    if (settled.peers !== SETTINGS.acceptConnections) {
      throw new Error(`${kind} server holds ${settled.peers} peers, expected ${SETTINGS.acceptConnections}`);
    }
    const memory = perPeer(before, settled, SETTINGS.acceptConnections);
    return {
      connections: SETTINGS.acceptConnections,
      concurrency: SETTINGS.acceptConcurrency,
      ms,
      perSecond: (SETTINGS.acceptConnections * 1000) / ms,
      serverCpuMicrosPerConnection: cpuMicros(before.cpu, after.cpu) / SETTINGS.acceptConnections,
      rssBytesPerPeerAt10k: memory.rssBytesPerPeer,
      heapUsedBytesPerPeerAt10k: memory.heapUsedBytesPerPeer,
    };
  } finally {
    await teardown(child, opened);
  }
}

// ------------------------------------------------------------------------------------ report

interface KindResults {
  throughput?: ThroughputResult;
  latency?: LatencyResult;
  memory?: MemoryResult;
  accept?: AcceptResult;
}
type Results = Partial<Record<ServerKind, KindResults>>;

const fmt = (value: number, digits = 0) =>
  value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function table(results: Results): string {
  const h = results.handoff;
  const b = results.bare;
  const rows: string[] = [
    '| metric | Handoff | bare uWS | ratio (Handoff / bare) | target |',
    '|---|---:|---:|---:|---|',
  ];
  const row = (
    name: string,
    pick: (r: KindResults) => number | undefined,
    digits: number,
    target = (_ratio: number, _value: number) => '',
  ) => {
    const hv = h && pick(h);
    const bv = b && pick(b);
    if (hv === undefined && bv === undefined) return;
    const ratio = hv !== undefined && bv !== undefined ? hv / bv : Number.NaN;
    rows.push(
      `| ${name} | ${hv !== undefined ? fmt(hv, digits) : '–'} | ${bv !== undefined ? fmt(bv, digits) : '–'} | ${
        Number.isFinite(ratio) ? `${fmt(ratio, 2)}×` : '–'
      } | ${hv !== undefined ? target(ratio, hv) : ''} |`,
    );
  };
  const verdict = (ok: boolean) => (ok ? '**met**' : '**MISSED**');
  row(
    `relay throughput, median of ${SETTINGS.throughputRounds} rounds (msg/s)`,
    (r) => r.throughput?.messagesPerSecond,
    0,
    (ratio) =>
      Number.isFinite(ratio)
        ? `≥ ${TARGETS.throughputRatio}× bare: ${verdict(ratio >= TARGETS.throughputRatio)}`
        : `≥ ${TARGETS.throughputRatio}× bare`,
  );
  row('  slowest round (msg/s)', (r) => r.throughput?.minMessagesPerSecond, 0);
  row('  fastest round (msg/s)', (r) => r.throughput?.maxMessagesPerSecond, 0);
  row('server CPU per relayed msg (µs, user+sys)', (r) => r.throughput?.serverCpuMicrosPerMessage, 1);
  row(
    'CPU-bound relay capacity of one server core (msg/s = 10⁶ / µs per msg)',
    (r) => r.throughput && 1e6 / r.throughput.serverCpuMicrosPerMessage,
    0,
    (ratio) =>
      Number.isFinite(ratio)
        ? `≥ ${TARGETS.throughputRatio}× bare: ${verdict(ratio >= TARGETS.throughputRatio)}`
        : `≥ ${TARGETS.throughputRatio}× bare`,
  );
  row(
    'server CPU busy during throughput (% of 1 core)',
    (r) => r.throughput && 100 * r.throughput.serverCpuUtilisation,
    0,
  );
  row(
    'load generator CPU during throughput (% of 1 core)',
    (r) => r.throughput && 100 * r.throughput.loadGeneratorCpuUtilisation,
    0,
  );
  row(
    'relay messages lost without an error (throughput + latency phases)',
    (r) => r.throughput && r.latency && r.throughput.lost + r.latency.lost,
    0,
    (_r, v) => (v === 0 ? 'none: **met**' : 'none: **MISSED**'),
  );
  row(
    'relay messages refused with an error (throughput + latency phases)',
    (r) => r.throughput && r.latency && r.throughput.rejected + r.latency.rejected,
    0,
  );
  row(`relay latency p50 @ ${fmt(SETTINGS.latencyRate)} msg/s (ms)`, (r) => r.latency?.p50Ms, 3);
  row(`relay latency p99 @ ${fmt(SETTINGS.latencyRate)} msg/s (ms)`, (r) => r.latency?.p99Ms, 3);
  row(`relay latency p99.9 @ ${fmt(SETTINGS.latencyRate)} msg/s (ms)`, (r) => r.latency?.p999Ms, 3);
  row(
    `server CPU @ ${fmt(SETTINGS.latencyRate)} msg/s (% of 1 core)`,
    (r) => r.latency && 100 * r.latency.serverCpuUtilisation,
    1,
  );
  row(
    `RSS per idle registered peer, N=${fmt(SETTINGS.idlePeers)} (bytes)`,
    (r) => r.memory?.rssBytesPerPeer,
    0,
    (_r, v) => `≤ ${fmt(TARGETS.bytesPerIdlePeer)} B: ${verdict(v <= TARGETS.bytesPerIdlePeer)}`,
  );
  row(
    `heapUsed per idle registered peer, N=${fmt(SETTINGS.idlePeers)} (bytes)`,
    (r) => r.memory?.heapUsedBytesPerPeer,
    0,
    (_r, v) => `≤ ${fmt(TARGETS.bytesPerIdlePeer)} B: ${verdict(v <= TARGETS.bytesPerIdlePeer)}`,
  );
  row(
    `heapTotal (committed V8 heap) per idle registered peer, N=${fmt(SETTINGS.idlePeers)} (bytes)`,
    (r) => r.memory?.heapTotalBytesPerPeer,
    0,
  );
  row(
    `  of which V8 new space (one-off growth, not per peer) (bytes)`,
    (r) => r.memory?.heapSpacesPerPeer['new_space']?.size,
    0,
  );
  row(
    `marginal RSS per idle peer, N/2 → N (bytes)`,
    (r) => r.memory?.marginal.rssBytesPerPeer,
    0,
    (_r, v) => `≤ ${fmt(TARGETS.bytesPerIdlePeer)} B: ${verdict(v <= TARGETS.bytesPerIdlePeer)}`,
  );
  row(`marginal heapUsed per idle peer, N/2 → N (bytes)`, (r) => r.memory?.marginal.heapUsedBytesPerPeer, 0);
  row(`accept ${fmt(SETTINGS.acceptConnections)} connections to greeting (ms)`, (r) => r.accept?.ms, 0);
  row('accept rate (connections/s)', (r) => r.accept?.perSecond, 0);
  row('server CPU per accepted connection (µs)', (r) => r.accept?.serverCpuMicrosPerConnection, 0);
  row(
    `RSS per peer at ${fmt(SETTINGS.acceptConnections)} peers (bytes)`,
    (r) => r.accept?.rssBytesPerPeerAt10k,
    0,
  );
  return rows.join('\n');
}

// ------------------------------------------------------------------------------------ main

/** Needs a descriptor per client here (and per socket in the child): raise the soft limit if low. */
function ensureFileLimit(): void {
  const need = SETTINGS.acceptConnections + 2_000;
  const raw = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  const limit = raw === 'unlimited' ? Number.POSITIVE_INFINITY : Number(raw);
  if (limit >= need) return;
  if (process.env.HANDOFF_BENCH_REEXEC === '1') {
    console.error(
      `open-file limit is ${raw}, the benchmark needs ${need} (${SETTINGS.acceptConnections} sockets). ` +
        `Raise it (ulimit -n ${need * 2}, as root or within the hard limit) and run again.`,
    );
    process.exit(1);
  }
  console.error(`open-file limit ${raw} < ${need}: re-running under sh with a raised ulimit -n`);
  const result = spawn(
    'sh',
    [
      '-c',
      `ulimit -n ${need * 2} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`,
      'sh',
      process.execPath,
      ...process.execArgv,
      ...process.argv.slice(1),
    ],
    { stdio: 'inherit', env: { ...process.env, HANDOFF_BENCH_REEXEC: '1' } },
  );
  result.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  throw new ReexecSignal();
}

class ReexecSignal extends Error {}

async function main(): Promise<void> {
  ensureFileLimit();
  // Every thread of this process (main, libuv pool, V8 helpers) to CPU 0; threads made later inherit it.
  if (PIN) execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  const only = process.env.BENCH_ONLY as ServerKind | undefined;
  const kinds: ServerKind[] = only ? [only] : ['handoff', 'bare'];
  const started = performance.now();
  const results: Results = {};
  const phases = new Set((process.env.BENCH_PHASES ?? 'relay,memory,accept').split(','));
  console.error(
    `bench:signaling — ${kinds.join(' vs ')}; node ${process.version}, ${os.cpus().length} CPUs; load generator: ws clients in this process` +
      (PIN ? ' (pinned to CPU 0, servers to CPU 1)' : ' (not pinned)'),
  );
  for (const kind of kinds) results[kind] = {};
  if (phases.has('relay')) {
    const relay = await relayPhases(kinds);
    for (const kind of kinds) Object.assign(results[kind] as KindResults, relay[kind]);
  }
  for (const kind of kinds) {
    const result = results[kind] as KindResults;
    if (phases.has('memory')) {
      console.error(`[${kind}] idle memory (${SETTINGS.idlePeers} peers) …`);
      result.memory = await memoryPhase(kind);
    }
    if (phases.has('accept')) {
      console.error(`[${kind}] accept ${SETTINGS.acceptConnections} connections …`);
      result.accept = await acceptPhase(kind);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const markdown = table(results);
  console.log(`\n## Signaling benchmark (${new Date().toISOString()})\n`);
  console.log(markdown);
  console.log(
    `\nbare uWS relay: ${BARE_RELAY_MODE}. Handoff: full server (valibot decode, XState socket actor, registry), ` +
      `limits raised: ${JSON.stringify(HANDOFF_BENCH_CONFIG)}.`,
  );
  console.log(
    `${SETTINGS.pairs} pairs × window ${SETTINGS.window}; ${SETTINGS.throughputRounds} throughput rounds per server (alternating servers), each ${SETTINGS.throughputMs} ms after ${SETTINGS.throughputWarmupMs} ms warm-up; ` +
      `latency ${SETTINGS.latencyMs} ms at ${SETTINGS.latencyRate} msg/s; accept concurrency ${SETTINGS.acceptConcurrency}. ` +
      `Runtime ${fmt(seconds, 1)} s. Unexpected client closes: ${unexpectedCloses}.`,
  );
  if (CPU_PROFILE || HEAP_SNAPSHOT) {
    console.log(
      '\n**Profiling was on (BENCH_CPU_PROF / BENCH_HEAP_SNAPSHOT): these figures are not comparable.**',
    );
  }
  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, 'signaling.json');
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model,
        settings: SETTINGS,
        targets: TARGETS,
        bareRelayMode: BARE_RELAY_MODE,
        handoffConfig: HANDOFF_BENCH_CONFIG,
        unexpectedCloses,
        profiling: { cpu: CPU_PROFILE, heapSnapshot: HEAP_SNAPSHOT },
        pinned: PIN,
        runtimeSeconds: seconds,
        results,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nJSON: ${file}`);
}

const watchdog = setTimeout(() => {
  console.error(`bench:signaling exceeded ${SETTINGS.runTimeoutMs / 1000} s; aborting`);
  killChildren();
  process.exit(1);
}, SETTINGS.runTimeoutMs);

main()
  .then(() => {
    clearTimeout(watchdog);
    dropAll(clients);
    killChildren();
    process.exit(0);
  })
  .catch((error) => {
    if (error instanceof ReexecSignal) {
      clearTimeout(watchdog);
      return; // the re-run under sh owns the terminal now
    }
    console.error('bench:signaling failed:', error);
    dropAll(clients);
    killChildren();
    process.exit(1);
  });
