/**
 * `npm run bench:browser`: Handoff in Debian's Chromium, each figure beside a bare-WebRTC baseline
 * measured in the same run, in the same browser and pages. Run inside the loopback-only network
 * namespace (no STUN/TURN; WebRTC over 127.0.0.1 only):
 *   sh test/support/in-loopback-namespace.sh tsx bench/browser.bench.ts
 *
 * Node starts a signaling server (127.0.0.1, port 0, accepting the page's origin) and Vite serving
 * bench/browser/ (so the page imports machines/ as TypeScript; cross-origin isolated, for a 5 µs
 * clock), launches Chromium through Playwright (flags and permissions from test/support/chromium.ts)
 * and drives the page (bench/browser/main.ts) trial by trial:
 * 1. peer link setup — delegatePrompt → the requester's data channel open (two fresh clients a
 *    trial, real signaling), beside a bare RTCPeerConnection pair signalled in-page (createOffer →
 *    channel open). Both in one page, so both sides of the comparison share thread and clock.
 * 2. overhead over an open link — the requester's time to first chunk minus the provider's own time
 *    to first token (recorded inside the serving peer), beside a bare request/reply round trip;
 * 3. throughput — a 1 MiB answer streamed as fast as the provider yields it, beside a bare
 *    RTCDataChannel sending the same bytes in the same chunk sizes with bufferedAmount backpressure.
 * 2 and 3 run in two layouts: "one page" (both peers on one renderer thread: each peer's CPU work
 * delays the other's) and "two tabs" (each peer in its own browser context, so its own renderer
 * process, as two browsers on one machine). Then, to see where Handoff's time goes: a per-stage trace
 * of the first chunk's path (XState inspection events), per-message costs in this browser (Ed25519,
 * canonical JSON, encode/decode), throughput and overhead with Ed25519 stubbed out (profiling only),
 * wire bytes per chunk, CPU profiles of the pages and Chromium's CPU time per MiB.
 * Prints markdown tables, writes bench/results/browser.json. Every wait is bounded; the browser and
 * both servers are closed on error too.
 */
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { type Browser, type CDPSession, chromium, type Page } from 'playwright';
import { createServer, type ViteDevServer } from 'vite';
import { createLogger } from '../signaling/logger.ts';
import { type SignalingServer, startSignalingServer } from '../signaling/server.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH, CHROMIUM_PERMISSIONS } from '../test/support/chromium.ts';
import { runBench, withTimeout, writeResults } from './bench-run.ts';
import type { DelegationRun, HandoffBenchApi, LinkSetupSample, ThroughputSample } from './browser/api.ts';
import { type CpuProfile, type ProfileSummary, summariseProfile } from './browser/profile.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const env = process.env;

const SETTINGS = {
  setupTrials: Number(env.BENCH_BROWSER_SETUP_TRIALS ?? 30),
  overheadTrials: Number(env.BENCH_BROWSER_OVERHEAD_TRIALS ?? 30),
  /** Extra overhead trials with the per-stage trace on (kept apart: tracing costs a little). */
  tracedTrials: 10,
  /** The bench provider waits this long before its first token (its own TTFT)… */
  providerTtftMs: 20,
  /**
   * …and this long after it before the next (a model streaming ~50 tokens a second). The overhead
   * is also measured with the rest of the answer at once (0), interleaved.
   */
  providerGapMs: 20,
  throughputTrials: Number(env.BENCH_BROWSER_THROUGHPUT_TRIALS ?? 8),
  /** The answer: 1 MiB of ASCII text. */
  answerChars: 1024 * 1024,
  /**
   * The provider's piece sizes; the bare channel sends each piece as one message. Handoff merges
   * pieces that are ready together into chunks of up to 15 KiB (provider-stream.actor.ts), so at
   * 4,096 and 1,024 it sends fewer, longer messages than the bare channel; at 15 KiB both send the
   * same messages. The target applies to the first.
   */
  chunkChars: [4096, 1024, 15 * 1024],
  microOps: 200,
  /** Trials with Ed25519 stubbed out, each beside a real one (profiling). */
  ablationTrials: 8,
  /** Transfers under the CPU profiler (and Chromium's CPU accounting), per kind and layout. */
  profiledTransfers: 3,
  /** V8 sampling interval for the CPU profile (µs). */
  profileIntervalUs: 200,
  trialTimeoutMs: 20_000,
  startTimeoutMs: 30_000,
  /** The whole run is aborted after this. */
  runTimeoutMs: 240_000,
};
const TARGETS = { overheadP50Ms: 5, throughputRatio: 0.9 };

type Api = HandoffBenchApi;
type Result<K extends keyof Api> = Api[K] extends (...args: never[]) => infer R ? Awaited<R> : never;
type Arg<K extends keyof Api> = Api[K] extends (arg: infer A) => unknown ? A : undefined;

const closers: (() => Promise<unknown>)[] = [];
async function closeAll(): Promise<void> {
  for (const close of closers.splice(0).reverse())
    await withTimeout(close(), 10_000, 'closing').catch(() => {});
}

/** Calls one method of a page's `window.handoffBench`, bounded. */
function call<K extends keyof Api>(
  page: Page,
  method: K,
  arg: Arg<K>,
  timeoutMs = SETTINGS.trialTimeoutMs + 5_000,
): Promise<Result<K>> {
  return withTimeout(
    page.evaluate(
      ([name, value]) => {
        const bench = window.handoffBench as unknown as Record<string, (v: unknown) => unknown>;
        return bench[name as string]?.(value);
      },
      [method, arg] as const,
    ) as Promise<Result<K>>,
    timeoutMs,
    `page ${String(method)}`,
  );
}

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}
const stats = (values: number[]) => ({
  n: values.length,
  min: Math.min(...values),
  p50: percentile(values, 0.5),
  p95: percentile(values, 0.95),
  max: Math.max(...values),
  mean: values.reduce((a, b) => a + b, 0) / values.length,
});
type Stats = ReturnType<typeof stats>;
const fmt = (value: number, digits = 1) =>
  Number.isFinite(value)
    ? value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '–';
/** MB/s with MB = 10^6 bytes (the text is ASCII: a byte a character). */
const mbps = (sample: { chars: number; ms: number }) => sample.chars / sample.ms / 1000;
const handoffSample = (run: DelegationRun): ThroughputSample => ({
  ms: run.endAt - run.t0At,
  chars: run.chars,
  messages: run.messages,
  exact: run.exact,
});

async function startVite(): Promise<ViteDevServer> {
  const vite = await createServer({
    configFile: false,
    root: join(HERE, 'browser'),
    server: {
      host: '127.0.0.1',
      port: 0,
      strictPort: false,
      // No watcher, no HMR: others edit machines/ while this runs, and a reload would end the run.
      hmr: false,
      watch: null,
      // Cross-origin isolated: performance.now() resolves 5 µs instead of 100 µs.
      headers: {
        'Cross-Origin-Opener-Policy': 'same-origin',
        'Cross-Origin-Embedder-Policy': 'require-corp',
      },
    },
    optimizeDeps: { include: ['xstate', 'valibot'] },
    logLevel: 'warn',
    clearScreen: false,
  });
  await vite.listen();
  return vite;
}

/** Checkpoints of one traced delegation, in order (see `trace` in bench/browser/main.ts). */
const CHECKPOINTS = [
  ['t0', 'requester: delegatePrompt called'],
  ['requester task.send prompt-delegation', 'requester: task actor sends the delegation'],
  ['requester link.send prompt-delegation', 'requester: root routes it to the link'],
  ['requester seal.out prompt-delegation', 'requester: link hands it to the seal'],
  ['requester seal.sealed prompt-delegation', 'requester: signed (Ed25519)'],
  ['requester rtc.send prompt-delegation', 'requester: handed to the RTC actor'],
  ['server rtc.message prompt-delegation', 'server: received and decoded'],
  ['server seal.in prompt-delegation', 'server: link hands it to the seal'],
  ['server seal.opened prompt-delegation', 'server: verified (Ed25519)'],
  ['server link.message prompt-delegation', 'server: delivered to the root'],
  ['providerStarted', 'server: admitted, serve task spawned, provider started'],
  ['providerFirstToken', "server: provider's first token (its TTFT, not overhead)"],
  ['server provider.text', 'server: provider-stream actor passes it on'],
  ['server task.send prompt-response', 'server: serve task sends the chunk'],
  ['server link.send prompt-response', 'server: root routes it to the link'],
  ['server seal.out prompt-response', 'server: link hands it to the seal'],
  ['server seal.sealed prompt-response', 'server: signed (Ed25519)'],
  ['server rtc.send prompt-response', 'server: handed to the RTC actor'],
  ['requester rtc.message prompt-response', 'requester: received and decoded'],
  ['requester seal.in prompt-response', 'requester: link hands it to the seal'],
  ['requester seal.opened prompt-response', 'requester: verified (Ed25519)'],
  ['requester link.message prompt-response', 'requester: delivered to the root'],
  ['requester task.message prompt-response', 'requester: routed to the task actor'],
  ['firstChunk', 'requester: first chunk out of task.chunks'],
] as const;

/** Checkpoints of a fresh link's setup (one page, one clock). */
const SETUP_CHECKPOINTS = [
  ['t0', 'requester: delegatePrompt called'],
  ['requester rtc.description', 'requester: link spawned, offer created and set'],
  ['requester link.signal offer', 'requester: offer handed to the signaling connection'],
  ['server offer', 'server: offer arrived through the signaling server'],
  ['server rtc.description', 'server: link spawned, answer created and set'],
  ['server link.signal answer', 'server: answer handed to its signaling connection'],
  ['requester answer', 'requester: answer arrived through the signaling server'],
  ['requester rtc.channelOpen', 'requester: ICE, DTLS, SCTP: data channel open'],
] as const;

/** For each checkpoint after the first, the median time since the previous one present. */
function stageMedians(
  checkpoints: readonly (readonly [string, string])[],
  traces: Record<string, number>[],
): { checkpoint: string; label: string; p50Ms: number; n: number }[] {
  const deltas = new Map<string, number[]>();
  for (const points of traces) {
    let previous: number | undefined;
    for (const [checkpoint] of checkpoints) {
      const time = points[checkpoint];
      if (time === undefined) continue;
      if (previous !== undefined)
        deltas.set(checkpoint, [...(deltas.get(checkpoint) ?? []), time - previous]);
      previous = time;
    }
  }
  return checkpoints.slice(1).map(([checkpoint, label]) => {
    const values = deltas.get(checkpoint) ?? [];
    return {
      checkpoint,
      label,
      p50Ms: values.length ? percentile(values, 0.5) : Number.NaN,
      n: values.length,
    };
  });
}

interface OverheadTrial {
  ttfcMs: number;
  providerTtftMs: number;
  overheadMs: number;
}

interface ThroughputRow {
  chunkChars: number;
  handoff: ThroughputSample[];
  bare: ThroughputSample[];
  handoffMBps: number;
  bareMBps: number;
  ratio: number;
}

interface LayoutResult {
  name: string;
  /** The server page's clock minus the requester's, and the round trip it was read in (ms). */
  clock: { rttMs: number; offsetMs: number };
  overhead: OverheadTrial[];
  overheadStats: Stats;
  /** The same, the provider streaming the rest of its answer at once after the first token. */
  overheadAtOnce: Stats;
  roundTrip: Stats;
  /** Per checkpoint: the median time since the previous checkpoint (ms), over the traced trials. */
  stages: { checkpoint: string; label: string; p50Ms: number; n: number }[];
  throughput: ThroughputRow[];
  /** Ed25519 stubbed out, alternating with real trials (`real…`). */
  stubbed: { mbps: number[]; overheadMs: number[]; realMbps: number[]; realOverheadMs: number[] };
  wire: { bytesReceived: number; bytesSent: number; messages: number; bytesPerChunk: number } | undefined;
  /** RTCDataChannel.send calls during one transfer: how long they held each page's main thread. */
  sendTiming: Record<
    'handoff' | 'bare',
    { role: string; calls: number; totalMs: number; maxMs: number; chars: number }[]
  >;
  profiles: Record<'handoff' | 'bare', { mbps: number; pages: { role: string; summary: ProfileSummary }[] }>;
  chromiumCpu: Record<'handoff' | 'bare', { cpuMsPerMiB: number; wallMsPerMiB: number }> | undefined;
}

/** CPU seconds of every Chromium process so far (browser, renderers, GPU, network), from CDP. */
async function chromiumCpuSeconds(session: CDPSession): Promise<number | undefined> {
  try {
    const info = (await session.send('SystemInfo.getProcessInfo')) as { processInfo: { cpuTime: number }[] };
    return info.processInfo.reduce((sum, p) => sum + p.cpuTime, 0);
  } catch {
    return undefined;
  }
}

async function overheadTrial(requester: Page, server: Page, trace = false, gapMs = SETTINGS.providerGapMs) {
  if (trace) for (const page of new Set([requester, server])) await call(page, 'startTrace', undefined);
  const run = await call(requester, 'delegate', {
    ask: `ttft ${SETTINGS.providerTtftMs} ${gapMs}`,
    timeoutMs: SETTINGS.trialTimeoutMs,
  });
  const provider = await call(server, 'providerRun', run.prompt);
  if (!provider?.firstTokenAt) throw new Error('the provider did not record its run');
  if (!run.exact) throw new Error('the short answer arrived wrong');
  const ttfcMs = run.firstAt - run.t0At;
  const providerTtftMs = provider.firstTokenAt - provider.startedAt;
  return { run, provider, trial: { ttfcMs, providerTtftMs, overheadMs: ttfcMs - providerTtftMs } };
}

/** Overhead and throughput for one layout: `requester` and `server` may be the same page. */
async function measureLayout(
  name: string,
  requester: Page,
  server: Page,
  signalingUrl: string,
  browserSession: CDPSession,
  log: (line: string) => void,
): Promise<LayoutResult> {
  const pages = requester === server ? [requester] : [requester, server];
  const timeoutMs = SETTINGS.trialTimeoutMs;
  try {
    const serverId = await call(server, 'startClient', { role: 'server', signalingUrl, timeoutMs });
    await call(requester, 'startClient', { role: 'requester', signalingUrl, timeoutMs });
    await call(requester, 'warm', { serverId, timeoutMs });
    const offer = await call(requester, 'bareOffer', { timeoutMs });
    const answer = await call(server, 'bareAnswer', { sdp: offer, timeoutMs });
    await call(requester, 'bareFinish', { sdp: answer, timeoutMs });

    // Overhead: warm-up, then interleaved with the bare round trip.
    for (let i = 0; i < 2; i++) {
      await overheadTrial(requester, server);
      await call(requester, 'roundTripBare', { timeoutMs });
      await overheadTrial(requester, server, false, 0);
    }
    const overhead: OverheadTrial[] = [];
    const atOnce: OverheadTrial[] = [];
    const roundTrips: number[] = [];
    for (let i = 0; i < SETTINGS.overheadTrials; i++) {
      overhead.push((await overheadTrial(requester, server)).trial);
      roundTrips.push((await call(requester, 'roundTripBare', { timeoutMs })).rttMs);
      atOnce.push((await overheadTrial(requester, server, false, 0)).trial);
    }
    const overheadStats = stats(overhead.map((t) => t.overheadMs));
    const overheadAtOnce = stats(atOnce.map((t) => t.overheadMs));
    const roundTrip = stats(roundTrips);
    log(
      `${name}: overhead p50 ${fmt(overheadStats.p50, 2)} ms (rest at once: ${fmt(overheadAtOnce.p50, 2)} ms), bare round trip p50 ${fmt(roundTrip.p50, 2)} ms`,
    );

    // The first chunk's path, stage by stage. Across tabs, the server tab's times are moved onto
    // the requester's clock (offset from the bare channel's quickest round trip).
    const clock =
      server === requester
        ? { rttMs: 0, offsetMs: 0 }
        : await call(requester, 'clockOffset', { probes: 50, timeoutMs });
    const traces: Record<string, number>[] = [];
    for (let i = 0; i < SETTINGS.tracedTrials; i++) {
      const { run, provider } = await overheadTrial(requester, server, true);
      const points: Record<string, number> = { ...(await call(requester, 'takeTrace', undefined)) };
      if (server !== requester) {
        for (const [key, time] of Object.entries(await call(server, 'takeTrace', undefined)))
          points[key] = time - clock.offsetMs;
      }
      traces.push({
        ...points,
        t0: run.t0At,
        providerStarted: provider.startedAt - clock.offsetMs,
        providerFirstToken: provider.firstTokenAt - clock.offsetMs,
        firstChunk: run.firstAt,
      });
    }
    const stages = stageMedians(CHECKPOINTS, traces);

    // Throughput, per chunk size: a warm-up each, then interleaved trials.
    const throughput: ThroughputRow[] = [];
    for (const chunkChars of SETTINGS.chunkChars) {
      const ask = `bulk ${chunkChars} ${SETTINGS.answerChars}`;
      const bareArgs = { chunkChars, totalChars: SETTINGS.answerChars, timeoutMs };
      await call(requester, 'delegate', { ask, timeoutMs });
      await call(requester, 'throughputBare', bareArgs);
      const handoff: ThroughputSample[] = [];
      const bare: ThroughputSample[] = [];
      for (let i = 0; i < SETTINGS.throughputTrials; i++) {
        handoff.push(handoffSample(await call(requester, 'delegate', { ask, timeoutMs })));
        bare.push(await call(requester, 'throughputBare', bareArgs));
      }
      const wrong = [...handoff, ...bare].filter((s) => !s.exact || s.chars !== SETTINGS.answerChars);
      if (wrong.length)
        throw new Error(`${wrong.length} transfers in ${chunkChars}-char chunks got the wrong text`);
      const handoffMBps = percentile(handoff.map(mbps), 0.5);
      const bareMBps = percentile(bare.map(mbps), 0.5);
      throughput.push({ chunkChars, handoff, bare, handoffMBps, bareMBps, ratio: handoffMBps / bareMBps });
      log(
        `${name}: throughput in ${chunkChars}-char chunks: Handoff ${fmt(handoffMBps)} MB/s, bare ${fmt(bareMBps)} MB/s (${fmt(handoffMBps / bareMBps, 2)}×)`,
      );
    }

    // Profiling from here on: none of it is in the figures above.
    const primary = SETTINGS.chunkChars[0] as number;
    const ask = `bulk ${primary} ${SETTINGS.answerChars}`;
    const bareArgs = { chunkChars: primary, totalChars: SETTINGS.answerChars, timeoutMs };
    // Wire bytes the requester's link received for one answer (framing, ids, signatures; pings too).
    const before = await call(requester, 'linkCounters', undefined);
    const counted = await call(requester, 'delegate', { ask, timeoutMs });
    const after = await call(requester, 'linkCounters', undefined);
    const wire =
      before && after
        ? {
            bytesReceived: after.bytesReceived - before.bytesReceived,
            bytesSent: after.bytesSent - before.bytesSent,
            messages: counted.messages,
            bytesPerChunk: (after.bytesReceived - before.bytesReceived) / counted.messages,
          }
        : undefined;

    // How long each RTCDataChannel.send holds the main thread, one transfer of each kind.
    const roleOf = (index: number) =>
      pages.length === 1 ? 'page (both peers)' : index === 0 ? 'requester tab' : 'server tab';
    const sendTiming = {} as LayoutResult['sendTiming'];
    for (const kind of ['handoff', 'bare'] as const) {
      for (const page of pages) await call(page, 'measureSends', true);
      try {
        if (kind === 'handoff') await call(requester, 'delegate', { ask, timeoutMs });
        else await call(requester, 'throughputBare', bareArgs);
      } finally {
        sendTiming[kind] = [];
        for (const [index, page] of pages.entries()) {
          const tally = await call(page, 'measureSends', false);
          if (tally) sendTiming[kind].push({ role: roleOf(index), ...tally });
        }
      }
    }

    // CPU profiles of every page's main thread, and Chromium's CPU time, over a few transfers.
    const sessions = await Promise.all(pages.map((page) => page.context().newCDPSession(page)));
    const profiles = {} as LayoutResult['profiles'];
    const cpu: Partial<Record<'handoff' | 'bare', { cpuMsPerMiB: number; wallMsPerMiB: number }>> = {};
    try {
      for (const session of sessions) {
        await session.send('Profiler.enable');
        await session.send('Profiler.setSamplingInterval', { interval: SETTINGS.profileIntervalUs });
      }
      for (const kind of ['handoff', 'bare'] as const) {
        for (const session of sessions) await session.send('Profiler.start');
        const cpuBefore = await chromiumCpuSeconds(browserSession);
        const samples: ThroughputSample[] = [];
        for (let i = 0; i < SETTINGS.profiledTransfers; i++) {
          samples.push(
            kind === 'handoff'
              ? handoffSample(await call(requester, 'delegate', { ask, timeoutMs }))
              : await call(requester, 'throughputBare', bareArgs),
          );
        }
        const cpuAfter = await chromiumCpuSeconds(browserSession);
        const summaries = [];
        for (const [index, session] of sessions.entries()) {
          const { profile } = (await session.send('Profiler.stop')) as unknown as { profile: CpuProfile };
          summaries.push({
            role: roleOf(index),
            summary: summariseProfile(profile),
          });
        }
        const mib = (SETTINGS.profiledTransfers * SETTINGS.answerChars) / (1024 * 1024);
        const wallMs = samples.reduce((sum, s) => sum + s.ms, 0);
        profiles[kind] = {
          mbps: (SETTINGS.profiledTransfers * SETTINGS.answerChars) / wallMs / 1000,
          pages: summaries,
        };
        if (cpuBefore !== undefined && cpuAfter !== undefined) {
          cpu[kind] = { cpuMsPerMiB: ((cpuAfter - cpuBefore) * 1000) / mib, wallMsPerMiB: wallMs / mib };
        }
      }
    } finally {
      await Promise.allSettled(sessions.map((session) => session.detach()));
    }

    // Ed25519 stubbed out in every page: what signing costs (the rest of Handoff unchanged).
    // Stubbed and real trials alternate, so the machine's noise falls on both alike.
    const stubbed: LayoutResult['stubbed'] = { mbps: [], overheadMs: [], realMbps: [], realOverheadMs: [] };
    const stub = async (on: boolean) => {
      for (const page of pages) await call(page, 'stubEd25519', on);
    };
    try {
      for (let i = 0; i < SETTINGS.ablationTrials; i++) {
        await stub(true);
        stubbed.mbps.push(mbps(handoffSample(await call(requester, 'delegate', { ask, timeoutMs }))));
        stubbed.overheadMs.push((await overheadTrial(requester, server)).trial.overheadMs);
        await stub(false);
        stubbed.realMbps.push(mbps(handoffSample(await call(requester, 'delegate', { ask, timeoutMs }))));
        stubbed.realOverheadMs.push((await overheadTrial(requester, server)).trial.overheadMs);
      }
    } finally {
      await stub(false);
    }
    return {
      name,
      clock,
      overhead,
      overheadStats,
      overheadAtOnce,
      roundTrip,
      stages,
      throughput,
      stubbed,
      wire,
      sendTiming,
      profiles,
      chromiumCpu: cpu.handoff && cpu.bare ? { handoff: cpu.handoff, bare: cpu.bare } : undefined,
    };
  } finally {
    for (const page of pages) await call(page, 'closeAll', undefined).catch(() => {});
  }
}

async function main(): Promise<void> {
  const inNamespace = env.HANDOFF_IN_NETNS === '1';
  if (!inNamespace) {
    console.error(
      'bench:browser: not inside the loopback namespace; run `sh test/support/in-loopback-namespace.sh tsx bench/browser.bench.ts`',
    );
  }
  const started = performance.now();
  const log = (line: string) => console.error(line);
  const vite = await startVite();
  closers.push(() => vite.close());
  const address = vite.httpServer?.address();
  if (!address || typeof address !== 'object') throw new Error('vite has no address');
  const origin = `http://127.0.0.1:${address.port}`;
  const signaling: SignalingServer = await startSignalingServer(
    { host: '127.0.0.1', port: 0, allowedOrigins: [origin], logLevel: 'silent' },
    { log: createLogger('silent') },
  );
  closers.push(() => signaling.close());
  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  closers.push(() => browser.close());
  const chromiumVersion = browser.version();
  const browserSession = await browser.newBrowserCDPSession();
  const pageErrors: string[] = [];
  /** A page in its own browser context: its own renderer process. */
  const openPage = async () => {
    const context = await browser.newContext({ permissions: CHROMIUM_PERMISSIONS });
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${origin}/`, { timeout: SETTINGS.startTimeoutMs });
    await page.waitForFunction(() => window.handoffBench?.ready === true, undefined, {
      timeout: SETTINGS.startTimeoutMs,
    });
    return page;
  };
  const single = await openPage();
  const clock = await call(single, 'clock', undefined);
  const signalingUrl = signaling.url;
  log(
    `bench:browser: Chromium ${chromiumVersion}, page ${origin}/ (clock ${fmt(clock.resolutionMs * 1000, 0)} µs, ` +
      `${clock.crossOriginIsolated ? '' : 'not '}cross-origin isolated), signaling ${signalingUrl}`,
  );

  // 1. Peer link setup, in one page. A warm-up of each, then interleaved trials.
  const timeoutMs = SETTINGS.trialTimeoutMs;
  await call(single, 'linkSetupBare', { timeoutMs });
  await call(single, 'linkSetupHandoff', { signalingUrl, timeoutMs });
  const setupHandoff: LinkSetupSample[] = [];
  const setupBare: LinkSetupSample[] = [];
  for (let i = 0; i < SETTINGS.setupTrials; i++) {
    setupBare.push(await call(single, 'linkSetupBare', { timeoutMs }));
    setupHandoff.push(await call(single, 'linkSetupHandoff', { signalingUrl, timeoutMs }));
  }
  const setupH = stats(setupHandoff.map((s) => s.openMs));
  const setupStages = stageMedians(
    SETUP_CHECKPOINTS,
    setupHandoff.map((s) => s.trace ?? {}),
  );
  const bareSetupStages = stageMedians(
    SETUP_CHECKPOINTS,
    setupBare.map((s) => s.trace ?? {}),
  );
  const setupB = stats(setupBare.map((s) => s.openMs));
  log(`link setup: Handoff p50 ${fmt(setupH.p50)} ms, bare p50 ${fmt(setupB.p50)} ms`);

  // 2 and 3, in both layouts.
  const onePage = await measureLayout('one page', single, single, signalingUrl, browserSession, log);
  const tabA = await openPage();
  const tabB = await openPage();
  const twoTabs = await measureLayout('two tabs', tabA, tabB, signalingUrl, browserSession, log);
  const layouts = [onePage, twoTabs];
  const primary = SETTINGS.chunkChars[0] as number;
  const micro = await call(single, 'micro', { chunkChars: primary, ops: SETTINGS.microOps }, 60_000);
  if (pageErrors.length) log(`page errors: ${pageErrors.join(' | ')}`);

  // Report.
  const seconds = (performance.now() - started) / 1000;
  const verdict = (ok: boolean) => (ok ? '**met**' : '**MISSED**');
  const chunkLabel = (n: number) => n.toLocaleString('en-US');
  const rows = [
    '| measurement | layout | Handoff | bare WebRTC baseline | ratio | target |',
    '|---|---|---:|---:|---:|---|',
    `| peer link setup: ask → data channel open, p50 / p95 (ms), ${setupH.n} trials | one page | ${fmt(setupH.p50)} / ${fmt(setupH.p95)} | ${fmt(setupB.p50)} / ${fmt(setupB.p95)} | ${fmt(setupH.p50 / setupB.p50, 2)}× | |`,
    ...layouts.map(
      (l) =>
        `| overhead over an open link: TTFC − provider TTFT, p50 / p95 (ms), ${l.overheadStats.n} trials; baseline: request/reply round trip | ${l.name} | ${fmt(l.overheadStats.p50, 2)} / ${fmt(l.overheadStats.p95, 2)} | ${fmt(l.roundTrip.p50, 2)} / ${fmt(l.roundTrip.p95, 2)} | ${fmt(l.overheadStats.p50 / l.roundTrip.p50, 1)}× | ≤ ${TARGETS.overheadP50Ms} ms (p50): ${verdict(l.overheadStats.p50 <= TARGETS.overheadP50Ms)} |`,
    ),
    ...layouts.map(
      (l) =>
        `| the same, provider streaming the rest of its answer at once after the first token | ${l.name} | ${fmt(l.overheadAtOnce.p50, 2)} / ${fmt(l.overheadAtOnce.p95, 2)} | ${fmt(l.roundTrip.p50, 2)} / ${fmt(l.roundTrip.p95, 2)} | ${fmt(l.overheadAtOnce.p50 / l.roundTrip.p50, 1)}× | ≤ ${TARGETS.overheadP50Ms} ms (p50): ${verdict(l.overheadAtOnce.p50 <= TARGETS.overheadP50Ms)} |`,
    ),
    ...SETTINGS.chunkChars.flatMap((chunkChars, index) =>
      layouts.map((l) => {
        const row = l.throughput.find((r) => r.chunkChars === chunkChars) as ThroughputRow;
        return `| throughput, 1 MiB answer in ${chunkLabel(chunkChars)}-char provider pieces, median of ${row.handoff.length} (MB/s) | ${l.name} | ${fmt(row.handoffMBps)} | ${fmt(row.bareMBps)} | ${fmt(row.ratio, 2)}× | ${index === 0 ? `≥ ${TARGETS.throughputRatio}×: ${verdict(row.ratio >= TARGETS.throughputRatio)}` : ''} |`;
      }),
    ),
  ];
  console.log(`\n## Browser benchmark (${new Date().toISOString()})\n`);
  console.log(rows.join('\n'));
  console.log(
    `\nChromium ${chromiumVersion}, Node ${process.version}, ${os.cpus().length} CPUs, ${inNamespace ? 'inside' : 'NOT inside'} the loopback namespace, no STUN/TURN; ` +
      `page clock ${fmt(clock.resolutionMs * 1000, 0)} µs. "one page": both peers on one renderer thread; "two tabs": each peer in its own browser context (own renderer process). ` +
      `Runtime ${fmt(seconds)} s.`,
  );
  console.log(
    `Link setup: Handoff = delegatePrompt → the requester's rtc.channelOpen (two fresh clients a trial; offer, answer and ICE through the signaling server); ` +
      `its first chunk over the fresh link p50 ${fmt(
        percentile(
          setupHandoff.map((s) => s.otherMs),
          0.5,
        ),
      )} ms. ` +
      `Bare = createOffer → channel open (from new RTCPeerConnection: p50 ${fmt(
        percentile(
          setupBare.map((s) => s.otherMs),
          0.5,
        ),
      )} ms).`,
  );
  for (const l of layouts) {
    const ttft = stats(l.overhead.map((t) => t.providerTtftMs));
    const ttfc = stats(l.overhead.map((t) => t.ttfcMs));
    console.log(
      `Overhead, ${l.name}: TTFC p50 ${fmt(ttfc.p50, 2)} ms, provider TTFT p50 ${fmt(ttft.p50, 2)} ms.`,
    );
  }

  console.log("\n### Where Handoff's time goes (profiling; none of it is in the figures above)\n");
  console.log(
    `The first chunk's path, median of ${SETTINGS.tracedTrials} traced trials (time since the previous line, ms; XState inspection events):\n`,
  );
  console.log(`| checkpoint | ${layouts.map((l) => l.name).join(' | ')} |`);
  console.log(`|---|${layouts.map(() => '---:').join('|')}|`);
  for (const [index, stage] of (layouts[0] as LayoutResult).stages.entries()) {
    console.log(
      `| ${stage.label} | ${layouts.map((l) => fmt(l.stages[index]?.p50Ms ?? Number.NaN, 2)).join(' | ')} |`,
    );
  }
  for (const l of layouts.filter((x) => x.clock.rttMs > 0)) {
    console.log(
      `\n${l.name}: the server tab's times are moved onto the requester's clock by ${fmt(-l.clock.offsetMs, 3)} ms ` +
        `(read over a ${fmt(l.clock.rttMs, 3)} ms bare round trip; lines crossing tabs are good to about half of that).`,
    );
  }
  console.log(
    `\nA fresh link's setup, one page, median of ${setupHandoff.length} trials (time since the previous line, ms; bare: createOffer → …, no signaling hops):\n\n| checkpoint | Handoff | bare |\n|---|---:|---:|`,
  );
  for (const [index, stage] of setupStages.entries()) {
    const bare = bareSetupStages[index];
    console.log(`| ${stage.label} | ${fmt(stage.p50Ms, 2)} | ${bare?.n ? fmt(bare.p50Ms, 2) : '–'} |`);
  }
  console.log(
    `\n| per-message cost in this browser, ${chunkLabel(primary)}-char chunk message | µs |\n|---|---:|`,
  );
  for (const m of micro) console.log(`| ${m.what} | ${fmt(m.perOpUs)} |`);
  console.log(
    `\n| 1 MiB in ${chunkLabel(primary)}-char chunks (MB/s) | ${layouts.map((l) => l.name).join(' | ')} |\n|---|${layouts.map(() => '---:').join('|')}|`,
  );
  const firstRow = (l: LayoutResult) => l.throughput[0] as ThroughputRow;
  console.log(
    `| Handoff (the table above) | ${layouts.map((l) => fmt(firstRow(l).handoffMBps)).join(' | ')} |`,
  );
  const p50 = (values: number[]) => percentile(values, 0.5);
  console.log(
    `| Handoff, alternating with the next line (median of ${SETTINGS.ablationTrials}) | ${layouts.map((l) => fmt(p50(l.stubbed.realMbps))).join(' | ')} |`,
  );
  console.log(
    `| Handoff, Ed25519 sign/verify stubbed out (median of ${SETTINGS.ablationTrials}) | ${layouts.map((l) => `${fmt(p50(l.stubbed.mbps))} (${fmt(p50(l.stubbed.mbps) / p50(l.stubbed.realMbps), 2)}× real)`).join(' | ')} |`,
  );
  console.log(
    `| overhead (ms, p50), real / Ed25519 stubbed out, alternating | ${layouts.map((l) => `${fmt(p50(l.stubbed.realOverheadMs), 2)} / ${fmt(p50(l.stubbed.overheadMs), 2)}`).join(' | ')} |`,
  );
  console.log(`| bare RTCDataChannel | ${layouts.map((l) => fmt(firstRow(l).bareMBps)).join(' | ')} |`);
  // Time per MiB = perMessage × messages + perMiB, fitted through the two chunk sizes' medians.
  const costModel = (l: LayoutResult, pick: (row: ThroughputRow) => number) => {
    const [a, b] = l.throughput;
    if (!a || !b) return undefined;
    const mib = SETTINGS.answerChars / (1024 * 1024);
    const points = [a, b].map((row) => ({
      messages: Math.ceil(SETTINGS.answerChars / row.chunkChars) / mib,
      ms: ((SETTINGS.answerChars / (pick(row) * 1e6)) * 1000) / mib,
    })) as [{ messages: number; ms: number }, { messages: number; ms: number }];
    const perMessageMs = (points[1].ms - points[0].ms) / (points[1].messages - points[0].messages);
    return { perMessageUs: perMessageMs * 1000, perMiBMs: points[0].ms - perMessageMs * points[0].messages };
  };
  const fits = layouts.map((l) => ({
    handoff: costModel(l, (r) => r.handoffMBps),
    bare: costModel(l, (r) => r.bareMBps),
  }));
  const cpuRows = layouts.filter((l) => l.chromiumCpu);
  if (cpuRows.length) {
    console.log(
      `| Chromium CPU time per MiB, all processes, Handoff / bare (ms) | ${layouts.map((l) => (l.chromiumCpu ? `${fmt(l.chromiumCpu.handoff.cpuMsPerMiB, 0)} / ${fmt(l.chromiumCpu.bare.cpuMsPerMiB, 0)}` : '–')).join(' | ')} |`,
    );
  }
  if (fits.every((f) => f.handoff && f.bare)) {
    console.log(
      `\nFitted through the two chunk sizes: time per MiB = per-message cost × messages + per-byte part.\n\n| | ${layouts.map((l) => l.name).join(' | ')} |\n|---|${layouts.map(() => '---:').join('|')}|`,
    );
    for (const kind of ['handoff', 'bare'] as const) {
      console.log(
        `| ${kind === 'handoff' ? 'Handoff' : 'bare'}: per message (µs) / per MiB (ms) | ${fits.map((f) => `${fmt(f[kind]?.perMessageUs ?? Number.NaN, 0)} / ${fmt(f[kind]?.perMiBMs ?? Number.NaN, 0)}`).join(' | ')} |`,
      );
    }
  }
  const wire = onePage.wire;
  if (wire) {
    console.log(
      `\nWire: ${wire.messages} chunks, ${fmt(wire.bytesPerChunk, 0)} bytes received per ${chunkLabel(primary)}-char chunk ` +
        `(${fmt(wire.bytesPerChunk - primary, 0)} of JSON framing, ids and signature: ${fmt((100 * (wire.bytesPerChunk - primary)) / primary, 1)} %); ` +
        `${fmt(wire.bytesSent, 0)} bytes of acks and pings sent back.`,
    );
  }
  console.log(
    `\n| RTCDataChannel.send during one 1 MiB transfer | calls | main thread held, total (ms) | mean (µs) | max (ms) |\n|---|---:|---:|---:|---:|`,
  );
  for (const l of layouts) {
    for (const kind of ['handoff', 'bare'] as const) {
      for (const t of l.sendTiming[kind]) {
        console.log(
          `| ${kind === 'handoff' ? 'Handoff' : 'bare'}, ${l.name}, ${t.role} | ${t.calls} | ${fmt(t.totalMs)} | ${fmt((1000 * t.totalMs) / Math.max(1, t.calls), 0)} | ${fmt(t.maxMs, 2)} |`,
        );
      }
    }
  }
  for (const l of layouts) {
    for (const kind of ['handoff', 'bare'] as const) {
      const profile = l.profiles[kind];
      for (const { role, summary } of profile.pages) {
        console.log(
          `\nCPU profile, ${l.name}, ${role}, ${SETTINGS.profiledTransfers} ${kind === 'handoff' ? 'Handoff' : 'bare'} transfers (${fmt(profile.mbps)} MB/s while profiled): ` +
            `main thread busy ${fmt(summary.busyMs)} ms of ${fmt(summary.sampledMs)} ms sampled.\n`,
        );
        console.log('| self time | ms | share of busy |\n|---|---:|---:|');
        for (const c of summary.categories.slice(0, kind === 'handoff' ? 10 : 4)) {
          console.log(`| ${c.name} | ${fmt(c.ms)} | ${fmt(100 * c.share, 0)} % |`);
        }
      }
    }
  }

  const summariseLayout = (l: LayoutResult) => ({
    name: l.name,
    overhead: {
      overheadMs: l.overheadStats,
      ttfcMs: stats(l.overhead.map((t) => t.ttfcMs)),
      providerTtftMs: stats(l.overhead.map((t) => t.providerTtftMs)),
      bareRoundTripMs: l.roundTrip,
      ratioP50ToBareRoundTrip: l.overheadStats.p50 / l.roundTrip.p50,
      met: l.overheadStats.p50 <= TARGETS.overheadP50Ms,
      restAtOnceOverheadMs: l.overheadAtOnce,
      restAtOnceMet: l.overheadAtOnce.p50 <= TARGETS.overheadP50Ms,
      rawOverheadMs: l.overhead.map((t) => t.overheadMs),
      firstChunkStagesP50Ms: l.stages,
      serverClockOffset: l.clock,
    },
    throughput: l.throughput.map((row) => ({
      chunkChars: row.chunkChars,
      handoffMBps: row.handoffMBps,
      bareMBps: row.bareMBps,
      ratio: row.ratio,
      met: row.chunkChars === primary ? row.ratio >= TARGETS.throughputRatio : undefined,
      handoffMBpsAll: row.handoff.map(mbps),
      bareMBpsAll: row.bare.map(mbps),
      handoffMessages: row.handoff[0]?.messages,
      bareMessages: row.bare[0]?.messages,
    })),
    profiling: {
      ed25519Stubbed: {
        mbps: l.stubbed.mbps,
        mbpsP50: percentile(l.stubbed.mbps, 0.5),
        realMbps: l.stubbed.realMbps,
        realMbpsP50: percentile(l.stubbed.realMbps, 0.5),
        gain: percentile(l.stubbed.mbps, 0.5) / percentile(l.stubbed.realMbps, 0.5),
        overheadMs: stats(l.stubbed.overheadMs),
        realOverheadMs: stats(l.stubbed.realOverheadMs),
      },
      wire: l.wire,
      sendTiming: l.sendTiming,
      chromiumCpu: l.chromiumCpu,
      cpuProfiles: l.profiles,
    },
  });
  writeResults('browser', {
    cpuModel: os.cpus()[0]?.model,
    chromium: chromiumVersion,
    inLoopbackNamespace: inNamespace,
    pageClock: clock,
    settings: SETTINGS,
    targets: TARGETS,
    linkSetup: {
      layout: 'one page',
      handoffOpenMs: setupH,
      handoffFirstChunkMs: stats(setupHandoff.map((s) => s.otherMs)),
      bareOpenMs: setupB,
      bareFromConstructMs: stats(setupBare.map((s) => s.otherMs)),
      ratioP50: setupH.p50 / setupB.p50,
      handoffStagesP50Ms: setupStages,
      bareStagesP50Ms: bareSetupStages,
      rawHandoffOpenMs: setupHandoff.map((s) => s.openMs),
      rawBareOpenMs: setupBare.map((s) => s.openMs),
    },
    layouts: layouts.map(summariseLayout),
    costModel: layouts.map((l, index) => ({ layout: l.name, ...fits[index] })),
    micro,
    pageErrors,
    runtimeSeconds: seconds,
  });
}

runBench('browser', SETTINGS.runTimeoutMs, main, closeAll);
