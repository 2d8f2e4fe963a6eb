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
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { BARE_RELAY_MODE } from './bare-uws-relay.ts';
import { RESULTS_DIR, runBench, sleep, writeResults } from './bench-run.ts';
import { PEERJS_KEY, PEERJS_PATH, PEERJS_SERVER_MODE } from './peerjs-server.ts';
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
const PROFILES = join(RESULTS_DIR, 'profiles');
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
  /** Discover phase (Handoff only): announced peers, and the small baseline in the same run. */
  discoverPeers: 10_000,
  discoverBaselinePeers: 10,
  discoverConcurrency: 200,
  discoverLimit: 10,
  discoverWarmup: 50,
  discoverRoundTrips: 500,
  /** Upper bound for timing one sample's round trips. */
  discoverMaxMs: 30_000,
  /** Upper bound for announcing the peers, and again for the broadcast to drain. */
  discoverAnnounceTimeoutMs: 180_000,
  /** The whole run is aborted after this. */
  runTimeoutMs: 900_000,
};

const TARGETS = { throughputRatio: 0.8, bytesPerIdlePeer: 6 * 1024 };

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
    return this.kind === 'peerjs'
      ? `ws://127.0.0.1:${this.port}${PEERJS_PATH}`
      : `ws://127.0.0.1:${this.port}/`;
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

const LETTER = { e: 0x65, h: 0x68, E: 0x45, L: 0x4c } as const;
/** PeerJS clients pick their own id; PeerJS clients send `HEARTBEAT` this often (peerjs default). */
let nextPeerJsId = 0;
const PEERJS_HEARTBEAT_MS = 5_000;

/**
 * A frame the server sent a relay *sender* that means "this relay message will not arrive":
 * Handoff's `error`; PeerJS's `ERROR`, `EXPIRE` or `LEAVE` (all servers stringify `type` first).
 */
function isRefusal(kind: ServerKind, data: Buffer): boolean {
  if (kind === 'peerjs') return data[9] === LETTER.E || data[9] === LETTER.L;
  return data[9] === LETTER.e;
}

/** A relay frame up to its timestamp (`…"ts":`): Handoff/bare `relay`, PeerJS `CANDIDATE`; same payload. */
function relayPrefix(kind: ServerKind, targetId: string): string {
  return kind === 'peerjs'
    ? `{"type":"CANDIDATE","dst":"${targetId}","payload":{"type":"link-ping","ts":`
    : `{"type":"relay","targetPeerId":"${targetId}","payload":{"type":"link-ping","ts":`;
}
/** Every live client, so a failing run can still drop them all. */
const clients = new Set<BenchClient>();
let unexpectedCloses = 0;

/**
 * One `ws` client. Waits for the greeting (Handoff/bare: `peer-id`; PeerJS: `OPEN`, the id being the
 * client's own), keeps alive like a real client (answers Handoff's heartbeats; sends PeerJS's
 * `HEARTBEAT` every 5 s), and hands every other frame to `handler`. Frames are told apart by the
 * first letter of their `type` (`{"type":"` is 9 bytes): all three servers stringify `type` first.
 */
class BenchClient {
  readonly ws: WebSocket;
  readonly greeted: Promise<void>;
  id = '';
  handler: ((data: Buffer) => void) | undefined;
  closing = false;
  #beat: NodeJS.Timeout | undefined;

  constructor(kind: ServerKind, url: string) {
    clients.add(this);
    const peerJsId = kind === 'peerjs' ? `b${++nextPeerJsId}` : '';
    const target = peerJsId ? `${url}?key=${PEERJS_KEY}&id=${peerJsId}&token=t${peerJsId}` : url;
    this.ws = new WebSocket(target, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      maxPayload: 1 << 20,
    });
    this.greeted = new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no greeting within ${SETTINGS.connectTimeoutMs} ms`)),
        SETTINGS.connectTimeoutMs,
      );
      this.ws.on('message', (data: Buffer) => {
        if (!this.id) {
          const hello = JSON.parse(data.toString()) as { type: string; peerId?: string };
          if (hello.type === 'peer-id' && hello.peerId) this.id = hello.peerId;
          else if (peerJsId && hello.type === 'OPEN') {
            this.id = peerJsId;
            this.#beat = setInterval(() => {
              if (this.ws.readyState === WebSocket.OPEN) this.ws.send('{"type":"HEARTBEAT"}');
            }, PEERJS_HEARTBEAT_MS);
          } else return;
          clearTimeout(timer);
          resolve();
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
        clearInterval(this.#beat);
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
    clearInterval(this.#beat);
    this.ws.terminate();
    clients.delete(this);
  }
}

/** Opens `count` greeted clients with at most `concurrency` connecting at once. */
async function connectMany(child: ServerChild, count: number, concurrency: number): Promise<BenchClient[]> {
  const opened: BenchClient[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const client = new BenchClient(child.kind, child.url);
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
  const kind = child.kind;
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
    const frame = Buffer.from(`${relayPrefix(kind, pair.receiver.id)}0}}`);
    pair.receiver.handler = () => {
      pair.inFlight--;
      received++;
      pump(pair, frame);
    };
    pair.sender.handler = (data) => {
      if (!isRefusal(kind, data)) return;
      // The server refused a relay (e.g. target congested): it will never arrive.
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
  const prefixes = pairs.map((pair) => relayPrefix(child.kind, pair.receiver.id));
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
      if (isRefusal(child.kind, data)) rejected++;
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
      server.opened.push(...(await connectMany(child, SETTINGS.pairs * 2, 64)));
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
      // Rotate the order every round (H B P, B P H, P H B, …) so drift hits every server alike.
      const shift = round % servers.length;
      const order = [...servers.slice(shift), ...servers.slice(0, shift)];
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
    const warm = await connectMany(child, 200, 100);
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
    opened.push(...(await connectMany(child, half, SETTINGS.acceptConcurrency)));
    await sleep(1_000);
    const halfway = await child.stats(true);
    opened.push(...(await connectMany(child, SETTINGS.idlePeers - half, SETTINGS.acceptConcurrency)));
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
    opened.push(...(await connectMany(child, SETTINGS.acceptConnections, SETTINGS.acceptConcurrency)));
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

// ------------------------------------------------------------------------------------ discover

/**
 * A minimal WebSocket client on a raw TCP socket for the announced peers of the discover phase.
 * Handoff sends every `peer-capability-update` to every live peer, so announcing N peers makes the
 * server send ~N²/2 frames (50 M for 10,000): `ws` clients could not parse that in any sensible time,
 * so these sockets never parse what they receive (they count the bytes and drop them). They send
 * masked text frames (zero mask key) and keep alive with a client `heartbeat` every 4 s (the server
 * takes any frame as the answer to its own heartbeat).
 */
class RawPeer {
  readonly socket: net.Socket;
  readonly ready: Promise<void>;
  received = 0;
  greeted = false;
  destroyed = false;

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.setNoDelay(true);
    rawPeers.add(this);
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`raw peer: no peer-id within ${SETTINGS.discoverAnnounceTimeoutMs} ms`)),
        // The server may be busy broadcasting earlier announcements: as long as announcing may take.
        SETTINGS.discoverAnnounceTimeoutMs,
      );
      let head = '';
      this.socket.on('connect', () => {
        this.socket.write(
          `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        );
      });
      this.socket.on('data', (chunk: Buffer) => {
        this.received += chunk.length;
        if (this.greeted) return;
        head += chunk.toString('latin1');
        if (head.includes('"type":"peer-id"')) {
          this.greeted = true;
          head = '';
          clearTimeout(timer);
          resolve();
        } else if (head.length > 64 * 1024) {
          reject(new Error('raw peer: no greeting in the first 64 KB'));
        }
      });
      this.socket.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      this.socket.on('close', () => {
        rawPeers.delete(this);
        clearTimeout(timer);
        if (!this.greeted) reject(new Error('raw peer closed before peer-id'));
        else if (!this.destroyed) rawPeersDropped++;
      });
    });
  }

  sendText(text: string): void {
    const payload = Buffer.from(text);
    const length = payload.length;
    const header =
      length < 126
        ? Buffer.from([0x81, 0x80 | length, 0, 0, 0, 0])
        : Buffer.from([0x81, 0x80 | 126, length >> 8, length & 0xff, 0, 0, 0, 0]);
    this.socket.write(Buffer.concat([header, payload]));
  }

  destroy(): void {
    this.destroyed = true;
    this.socket.destroy();
    rawPeers.delete(this);
  }
}

const rawPeers = new Set<RawPeer>();
/** Raw peers the server closed after greeting them (the phase fails if any did). */
let rawPeersDropped = 0;
const RAW_HEARTBEAT = '{"type":"heartbeat","ts":0}';

/** Every raw peer sends a client heartbeat every 4 s (the server allows 5 s) while the discover phase runs. */
function rawHeartbeats(): () => void {
  const timer = setInterval(() => {
    for (const peer of rawPeers) if (peer.greeted) peer.sendText(RAW_HEARTBEAT);
  }, 4_000);
  return () => clearInterval(timer);
}

interface DiscoverSample {
  announcedPeers: number;
  roundTrips: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** Peers in each answer (the requirements ask for at most `discoverLimit`). */
  peersPerAnswer: number;
  serverCpuMicrosPerDiscover: number;
}

interface DiscoverResult {
  baseline: DiscoverSample;
  loaded: DiscoverSample;
  p50Ratio: number;
  p99Ratio: number;
  /** Announcing the extra peers: wall time until the server counted them all announced. */
  announceMs: number;
  /** Until the server's CPU went quiet after that (the capability-update broadcast drained). */
  broadcastDrainMs: number;
  /** Bytes the raw peers received (mostly `peer-capability-update` frames). */
  bytesToAnnouncedPeers: number;
  serverCpuSecondsAnnouncing: number;
  serverRssAfterAnnounce: number;
}

function announceFrame(i: number): string {
  return JSON.stringify({
    type: 'capability-announce',
    capabilities: { hasAI: true, models: ['bench-model'], performance: { latency: 50 + (i % 950) } },
  });
}

/** Announces `count` more raw peers, at most `concurrency` connecting at once; bounded in time. */
async function announceMany(
  child: ServerChild,
  count: number,
  concurrency: number,
  offset: number,
): Promise<RawPeer[]> {
  const peers: RawPeer[] = [];
  let next = 0;
  const started = performance.now();
  const deadline = started + SETTINGS.discoverAnnounceTimeoutMs;
  const worker = async () => {
    while (next < count) {
      if (performance.now() > deadline)
        throw new Error(`announcing ${count} peers took over ${SETTINGS.discoverAnnounceTimeoutMs} ms`);
      const i = offset + next++;
      if (next % 1000 === 0) {
        console.error(
          `  ${fmt(next)} / ${fmt(count)} connecting (${fmt((performance.now() - started) / 1000, 1)} s)`,
        );
      }
      const peer = new RawPeer(child.port);
      peers.push(peer);
      await peer.ready;
      peer.sendText(announceFrame(i));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return peers;
}

/** Polls the server until it counts `announced` announced peers (bounded). */
async function untilAnnounced(child: ServerChild, announced: number, ms: number): Promise<ChildStats> {
  const deadline = performance.now() + ms;
  for (;;) {
    const stats = await child.stats(false);
    if ((stats.detail['announced'] ?? 0) >= announced) return stats;
    if (performance.now() > deadline) {
      throw new Error(`server counts ${stats.detail['announced']} announced peers, expected ${announced}`);
    }
    await sleep(100);
  }
}

/** Waits (bounded) until the server used < 5 % of a core over 500 ms: its broadcast backlog is sent. */
async function untilServerQuiet(child: ServerChild, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  let last = await child.stats(false);
  while (performance.now() < deadline) {
    await sleep(500);
    const now = await child.stats(false);
    if (cpuMicros(last.cpu, now.cpu) / 1000 / (now.atMs - last.atMs) < 0.05) return;
    last = now;
  }
  console.error(`  server still busy after ${ms} ms; measuring anyway`);
}

/** `roundTrips` discover requests from one client, one at a time; p50/p99 of the round-trip time. */
async function timeDiscover(
  child: ServerChild,
  client: BenchClient,
  announced: number,
): Promise<DiscoverSample> {
  const frame = JSON.stringify({
    type: 'discover',
    requirements: {
      needsAI: true,
      minQuota: 0,
      preferredModels: ['bench-model'],
      limit: SETTINGS.discoverLimit,
    },
  });
  let waiting: ((data: Buffer) => void) | undefined;
  client.handler = (data) => {
    if (data.toString('latin1', 0, 26) === '{"type":"peers-discovered"') waiting?.(data);
  };
  const once = () =>
    new Promise<{ ms: number; peers: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('discover: no answer within 10 s')), 10_000);
      const t0 = performance.now();
      waiting = (data) => {
        const ms = performance.now() - t0;
        waiting = undefined;
        clearTimeout(timer);
        resolve({ ms, peers: (JSON.parse(data.toString()) as { peers: unknown[] }).peers.length });
      };
      client.ws.send(frame);
    });
  for (let i = 0; i < SETTINGS.discoverWarmup; i++) await once();
  const before = await child.stats(false);
  const times: number[] = [];
  let peers = 0;
  const deadline = performance.now() + SETTINGS.discoverMaxMs;
  while (times.length < SETTINGS.discoverRoundTrips && performance.now() < deadline) {
    const answer = await once();
    times.push(answer.ms);
    peers = answer.peers;
  }
  const after = await child.stats(false);
  const sorted = times.sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
  return {
    announcedPeers: announced,
    roundTrips: sorted.length,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: sorted[sorted.length - 1] as number,
    meanMs: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    peersPerAnswer: peers,
    // Includes the two stats requests and any heartbeats: negligible next to the round trips.
    serverCpuMicrosPerDiscover: cpuMicros(before.cpu, after.cpu) / sorted.length,
  };
}

/**
 * Handoff only (the others have no `discover`): one server; announce `discoverBaselinePeers`, time
 * discover; announce the rest up to `discoverPeers`, wait for the broadcast to drain, time again.
 * Same server process, same requester.
 */
async function discoverPhase(): Promise<DiscoverResult> {
  const child = await ServerChild.start('handoff');
  const opened: BenchClient[] = [];
  const announced: RawPeer[] = [];
  const stopHeartbeats = rawHeartbeats();
  try {
    announced.push(...(await announceMany(child, SETTINGS.discoverBaselinePeers, 10, 0)));
    await untilAnnounced(child, SETTINGS.discoverBaselinePeers, SETTINGS.settleTimeoutMs);
    opened.push(...(await connectMany(child, 1, 1)));
    const requester = opened[0] as BenchClient;
    const baseline = await timeDiscover(child, requester, SETTINGS.discoverBaselinePeers);
    console.error(
      `[handoff] discover with ${SETTINGS.discoverBaselinePeers} peers: p50 ${fmt(baseline.p50Ms, 3)} ms, p99 ${fmt(baseline.p99Ms, 3)} ms`,
    );
    const more = SETTINGS.discoverPeers - SETTINGS.discoverBaselinePeers;
    console.error(
      `[handoff] announcing ${fmt(more)} more peers (concurrency ${SETTINGS.discoverConcurrency}) …`,
    );
    const cpu0 = await child.stats(false);
    const t0 = performance.now();
    announced.push(
      ...(await announceMany(child, more, SETTINGS.discoverConcurrency, SETTINGS.discoverBaselinePeers)),
    );
    await untilAnnounced(child, SETTINGS.discoverPeers, SETTINGS.discoverAnnounceTimeoutMs);
    const announceMs = performance.now() - t0;
    await untilServerQuiet(child, SETTINGS.discoverAnnounceTimeoutMs);
    const broadcastDrainMs = performance.now() - t0 - announceMs;
    const cpu1 = await child.stats(false);
    console.error(
      `[handoff] announced in ${fmt(announceMs / 1000, 1)} s, broadcast drained ${fmt(broadcastDrainMs / 1000, 1)} s later ` +
        `(${fmt(cpuMicros(cpu0.cpu, cpu1.cpu) / 1e6, 1)} s server CPU)`,
    );
    const loaded = await timeDiscover(child, requester, SETTINGS.discoverPeers);
    const live = await child.stats(false);
    if (rawPeersDropped) throw new Error(`the server closed ${rawPeersDropped} announced peers`);
    if ((live.detail['announced'] ?? 0) !== SETTINGS.discoverPeers) {
      throw new Error(
        `server counts ${live.detail['announced']} announced peers after timing, expected ${SETTINGS.discoverPeers}`,
      );
    }
    console.error(
      `[handoff] discover with ${fmt(SETTINGS.discoverPeers)} peers: p50 ${fmt(loaded.p50Ms, 3)} ms, p99 ${fmt(loaded.p99Ms, 3)} ms`,
    );
    return {
      baseline,
      loaded,
      p50Ratio: loaded.p50Ms / baseline.p50Ms,
      p99Ratio: loaded.p99Ms / baseline.p99Ms,
      announceMs,
      broadcastDrainMs,
      bytesToAnnouncedPeers: announced.reduce((total, peer) => total + peer.received, 0),
      serverCpuSecondsAnnouncing: cpuMicros(cpu0.cpu, cpu1.cpu) / 1e6,
      serverRssAfterAnnounce: cpu1.memory.rss,
    };
  } finally {
    stopHeartbeats();
    for (const peer of announced) peer.destroy();
    await teardown(child, opened);
  }
}

function discoverTable(d: DiscoverResult): string {
  const line = (name: string, pick: (s: DiscoverSample) => number, digits: number, ratio = true) =>
    `| ${name} | ${fmt(pick(d.baseline), digits)} | ${fmt(pick(d.loaded), digits)} | ${
      ratio ? `${fmt(pick(d.loaded) / pick(d.baseline), 2)}×` : ''
    } |`;
  return [
    `| Handoff \`discover\` (limit ${SETTINGS.discoverLimit}), one requester, one at a time | ${fmt(d.baseline.announcedPeers)} announced peers | ${fmt(d.loaded.announcedPeers)} announced peers | ratio |`,
    '|---|---:|---:|---:|',
    line('round trips timed', (s) => s.roundTrips, 0, false),
    line('round trip p50 (ms)', (s) => s.p50Ms, 3),
    line('round trip p99 (ms)', (s) => s.p99Ms, 3),
    line('round trip max (ms)', (s) => s.maxMs, 3),
    line('server CPU per discover (µs)', (s) => s.serverCpuMicrosPerDiscover, 0),
    line('peers in each answer', (s) => s.peersPerAnswer, 0, false),
    `| announcing the extra peers: to all announced / broadcast drained (s) | | ${fmt(d.announceMs / 1000, 1)} / ${fmt(d.broadcastDrainMs / 1000, 1)} | |`,
    `| server CPU announcing them (s); \`peer-capability-update\` bytes the peers received | | ${fmt(d.serverCpuSecondsAnnouncing, 1)}; ${fmt(d.bytesToAnnouncedPeers / 1e9, 2)} GB | |`,
  ].join('\n');
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
  const p = results.peerjs;
  const rows: string[] = [
    '| metric | Handoff | bare uWS | PeerJS | Handoff / bare | Handoff / PeerJS | PeerJS / bare | target |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  const cell = (v: number | undefined, digits: number) => (v !== undefined ? fmt(v, digits) : '–');
  const ratio = (a: number | undefined, c: number | undefined) =>
    a !== undefined && c !== undefined && c !== 0 ? `${fmt(a / c, 2)}×` : '–';
  type Values = { h: number | undefined; b: number | undefined; p: number | undefined };
  const row = (
    name: string,
    pick: (r: KindResults) => number | undefined,
    digits: number,
    target: (values: Values) => string = () => '',
  ) => {
    const values = { h: h && pick(h), b: b && pick(b), p: p && pick(p) };
    if (values.h === undefined && values.b === undefined && values.p === undefined) return;
    rows.push(
      `| ${name} | ${cell(values.h, digits)} | ${cell(values.b, digits)} | ${cell(values.p, digits)} | ${ratio(
        values.h,
        values.b,
      )} | ${ratio(values.h, values.p)} | ${ratio(values.p, values.b)} | ${target(values)} |`,
    );
  };
  const verdict = (ok: boolean) => (ok ? '**met**' : '**MISSED**');
  const atLeastBare = ({ h: hv, b: bv }: Values) =>
    hv !== undefined && bv !== undefined
      ? `Handoff ≥ ${TARGETS.throughputRatio}× bare: ${verdict(hv / bv >= TARGETS.throughputRatio)}`
      : `Handoff ≥ ${TARGETS.throughputRatio}× bare`;
  const memoryTarget = ({ h: hv }: Values) =>
    hv !== undefined
      ? `Handoff ≤ ${fmt(TARGETS.bytesPerIdlePeer)} B: ${verdict(hv <= TARGETS.bytesPerIdlePeer)}`
      : '';
  row(
    `relay throughput, median of ${SETTINGS.throughputRounds} rounds (msg/s)`,
    (r) => r.throughput?.messagesPerSecond,
    0,
    atLeastBare,
  );
  row('  slowest round (msg/s)', (r) => r.throughput?.minMessagesPerSecond, 0);
  row('  fastest round (msg/s)', (r) => r.throughput?.maxMessagesPerSecond, 0);
  row(
    'server CPU per relayed msg (µs, user+sys)',
    (r) => r.throughput?.serverCpuMicrosPerMessage,
    1,
    ({ h: hv, p: pv }) =>
      hv !== undefined && pv !== undefined ? `Handoff < PeerJS: ${verdict(hv < pv)}` : 'Handoff < PeerJS',
  );
  row(
    'CPU-bound relay capacity of one server core (msg/s = 10⁶ / µs per msg)',
    (r) => r.throughput && 1e6 / r.throughput.serverCpuMicrosPerMessage,
    0,
    atLeastBare,
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
    (values) => {
      const all = [values.h, values.b, values.p].filter((v) => v !== undefined);
      return `none: ${verdict(all.every((v) => v === 0))}`;
    },
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
    memoryTarget,
  );
  row(
    `heapUsed per idle registered peer, N=${fmt(SETTINGS.idlePeers)} (bytes)`,
    (r) => r.memory?.heapUsedBytesPerPeer,
    0,
    memoryTarget,
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
    memoryTarget,
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

/**
 * Needs a descriptor per client here (and per socket in the child). If the soft limit is too low,
 * re-runs this benchmark under sh with it raised and returns true: the re-run owns the terminal.
 */
function reexecWithFileLimit(): boolean {
  const need = SETTINGS.acceptConnections + 2_000;
  const raw = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  const limit = raw === 'unlimited' ? Number.POSITIVE_INFINITY : Number(raw);
  if (limit >= need) return false;
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
  return true;
}

async function main(): Promise<void> {
  // Every thread of this process (main, libuv pool, V8 helpers) to CPU 0; threads made later inherit it.
  if (PIN) execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  const only = process.env.BENCH_ONLY?.split(',').filter(Boolean) as ServerKind[] | undefined;
  const kinds: ServerKind[] = only?.length ? only : ['handoff', 'bare', 'peerjs'];
  const started = performance.now();
  const results: Results = {};
  const phases = new Set((process.env.BENCH_PHASES ?? 'relay,memory,accept,discover').split(','));
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
  let discover: DiscoverResult | undefined;
  if (phases.has('discover') && kinds.includes('handoff')) {
    console.error(
      `[handoff] discover with ${SETTINGS.discoverBaselinePeers} and ${SETTINGS.discoverPeers} announced peers …`,
    );
    discover = await discoverPhase();
  }
  const seconds = (performance.now() - started) / 1000;
  const markdown = table(results);
  console.log(`\n## Signaling benchmark (${new Date().toISOString()})\n`);
  console.log(markdown);
  if (discover) console.log(`\n${discoverTable(discover)}`);
  console.log(
    `\nbare uWS relay: ${BARE_RELAY_MODE}. PeerJS: ${PEERJS_SERVER_MODE}. ` +
      `Handoff: full server (valibot decode, XState socket actor, registry), ` +
      `limits raised: ${JSON.stringify(HANDOFF_BENCH_CONFIG)}.`,
  );
  console.log(
    `${SETTINGS.pairs} pairs × window ${SETTINGS.window}; ${SETTINGS.throughputRounds} throughput rounds per server (rotating the server order), each ${SETTINGS.throughputMs} ms after ${SETTINGS.throughputWarmupMs} ms warm-up; ` +
      `latency ${SETTINGS.latencyMs} ms at ${SETTINGS.latencyRate} msg/s; accept concurrency ${SETTINGS.acceptConcurrency}. ` +
      `Runtime ${fmt(seconds, 1)} s. Unexpected client closes: ${unexpectedCloses}.`,
  );
  if (CPU_PROFILE || HEAP_SNAPSHOT) {
    console.log(
      '\n**Profiling was on (BENCH_CPU_PROF / BENCH_HEAP_SNAPSHOT): these figures are not comparable.**',
    );
  }
  writeResults('signaling', {
    cpuModel: os.cpus()[0]?.model,
    settings: SETTINGS,
    targets: TARGETS,
    bareRelayMode: BARE_RELAY_MODE,
    peerJsMode: PEERJS_SERVER_MODE,
    handoffConfig: HANDOFF_BENCH_CONFIG,
    unexpectedCloses,
    profiling: { cpu: CPU_PROFILE, heapSnapshot: HEAP_SNAPSHOT },
    pinned: PIN,
    runtimeSeconds: seconds,
    results,
    discover,
  });
}

if (!reexecWithFileLimit()) {
  runBench('signaling', SETTINGS.runTimeoutMs, main, () => {
    dropAll(clients);
    for (const peer of [...rawPeers]) peer.destroy();
    killChildren();
  });
}
