/**
 * `npm run bench:failover`: how long a requester's stream stalls when its serving peer dies.
 * Run inside the loopback-only network namespace (WebRTC over 127.0.0.1 only):
 *   sh test/support/in-loopback-namespace.sh npx tsx bench/failover.bench.ts
 *
 * One Handoff signaling server (in this process, 127.0.0.1, default settings) for the whole run. Each
 * trial starts two serving peers in child processes (test/support/peer-process.ts: the demo provider,
 * `wordsPerSecond` words a second), and a requester (in this process, node-datachannel) that
 * discovers both and delegates a prompt. After `killAfterChunks` chunks it SIGKILLs the peer serving
 * the task and records:
 * - detection: kill → `task.redelegated` (the requester gave up on the dead peer);
 * - failover: kill → the first chunk from the next peer (the first chunk after `task.redelegated`);
 * and checks that the task completed with exactly the text the demo provider streams.
 * Prints a markdown table, writes bench/results/failover.json. Every wait is bounded; every child is
 * killed at the end, also on error.
 */
import { performance } from 'node:perf_hooks';
import { createHandoff, type Handoff } from '../machines/create-handoff.ts';
import { createLogger } from '../signaling/logger.ts';
import { type SignalingServer, startSignalingServer } from '../signaling/server.ts';
import { demoAnswer, type PeerProcess, startPeerProcess } from '../test/support/peers.ts';
import { loopbackNodeEnvironment } from '../worker/node-environment.ts';
import { runBench, sleep, withTimeout, writeResults } from './bench-run.ts';

const SETTINGS = {
  trials: Number(process.env.BENCH_FAILOVER_TRIALS ?? 5),
  wordsPerSecond: 40,
  answerWords: 200,
  killAfterChunks: 12,
  /** Upper bound for one trial (start peers, discover, stream, fail over, finish). */
  trialTimeoutMs: 45_000,
  discoverTimeoutMs: 10_000,
  /** The whole run is aborted after this. */
  runTimeoutMs: 300_000,
};
const TARGET_MS = 2_000;

const processes = new Set<PeerProcess>();
const killAllSync = () => {
  for (const peer of processes) {
    if (peer.child.exitCode === null && peer.child.signalCode === null) peer.child.kill('SIGKILL');
  }
};
process.on('exit', killAllSync);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllSync();
    process.exit(130);
  });
}

interface Trial {
  trial: number;
  /** SIGKILL → the requester re-delegated. */
  detectMs: number;
  /** SIGKILL → first chunk from the next peer. */
  failoverMs: number;
  /** Chunks received before the kill / from the killed peer after it / from the next peer. */
  chunksBeforeKill: number;
  chunksFromKilledAfterKill: number;
  chunksFromNext: number;
  status: string;
  outcomes: string[];
  textExact: boolean;
  redelegations: number;
}

async function trial(
  server: SignalingServer,
  index: number,
  prompt: string,
  expected: string,
): Promise<Trial> {
  const started: PeerProcess[] = [];
  let requester: Handoff | undefined;
  try {
    for (let i = 0; i < 2; i++) {
      const peer = await startPeerProcess(server.url, SETTINGS.wordsPerSecond, SETTINGS.answerWords);
      processes.add(peer);
      started.push(peer);
    }
    const [first, second] = started as [PeerProcess, PeerProcess];
    requester = await createHandoff({ environment: loopbackNodeEnvironment() });
    await requester.connect(server.url);
    // Both serving peers must be known to the requester, so the task has a next candidate.
    const deadline = performance.now() + SETTINGS.discoverTimeoutMs;
    for (;;) {
      const found = await requester.discoverPeers({ needsAI: true, minQuota: 0, preferredModels: [] });
      const ids = new Set(found.map((p) => p.peerId));
      if (ids.has(first.peerId) && ids.has(second.peerId)) break;
      if (performance.now() > deadline) throw new Error('the requester did not discover both serving peers');
      await sleep(50);
    }

    const task = requester.delegatePrompt(prompt);
    const request = task.actor;
    let redelegatedAt: number | undefined;
    let redelegations = 0;
    request?.on('task.redelegated', () => {
      redelegations++;
      redelegatedAt ??= performance.now();
    });
    const chunks: string[] = [];
    let killedAt: number | undefined;
    let firstResumedAt: number | undefined;
    let chunksFromKilledAfterKill = 0;
    let chunksFromNext = 0;
    for await (const chunk of task.chunks) {
      const now = performance.now();
      chunks.push(chunk);
      if (killedAt !== undefined) {
        if (redelegatedAt === undefined) chunksFromKilledAfterKill++;
        else {
          chunksFromNext++;
          firstResumedAt ??= now;
        }
      }
      if (chunks.length === SETTINGS.killAfterChunks && killedAt === undefined) {
        const context = request?.getSnapshot().context;
        const serving = context?.candidates[context.current];
        const victim = serving === first.peerId ? first : serving === second.peerId ? second : undefined;
        if (!victim) throw new Error(`serving peer ${serving} is neither of the two started`);
        killedAt = performance.now();
        victim.child.kill('SIGKILL');
      }
    }
    const result = await task.result;
    if (killedAt === undefined) throw new Error('the stream ended before the kill');
    if (redelegatedAt === undefined || firstResumedAt === undefined) {
      throw new Error(`no resumed chunk after the kill (status ${result.status})`);
    }
    return {
      trial: index,
      detectMs: redelegatedAt - killedAt,
      failoverMs: firstResumedAt - killedAt,
      chunksBeforeKill: SETTINGS.killAfterChunks,
      chunksFromKilledAfterKill,
      chunksFromNext,
      status: result.status,
      outcomes: result.attempts.map((a) => a.outcome),
      textExact: result.text === expected && chunks.join('') === expected,
      redelegations,
    };
  } finally {
    requester?.stop();
    await Promise.all(
      started.map(async (peer) => {
        await peer.kill('SIGKILL');
        processes.delete(peer);
      }),
    );
  }
}

const fmt = (value: number, digits = 0) =>
  value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

async function main(): Promise<void> {
  if (process.env.HANDOFF_IN_NETNS !== '1') {
    console.error(
      'bench:failover: not inside the loopback namespace; run `sh test/support/in-loopback-namespace.sh npx tsx bench/failover.bench.ts`',
    );
  }
  const server = await startSignalingServer(
    { host: '127.0.0.1', port: 0, logLevel: 'silent' },
    { log: createLogger('silent') },
  );
  const started = performance.now();
  const trials: Trial[] = [];
  try {
    const prompt = 'Explain peer-to-peer handoff';
    const expected = await demoAnswer(prompt, { answerWords: SETTINGS.answerWords });
    for (let i = 1; i <= SETTINGS.trials; i++) {
      const result = await withTimeout(
        trial(server, i, prompt, expected),
        SETTINGS.trialTimeoutMs,
        `trial ${i}`,
      );
      trials.push(result);
      console.error(
        `trial ${i}: detected ${fmt(result.detectMs)} ms, first resumed chunk ${fmt(result.failoverMs)} ms after SIGKILL; ` +
          `${result.status} (${result.outcomes.join(' → ')}), text ${result.textExact ? 'exact' : 'WRONG'}`,
      );
    }
  } finally {
    await server.close();
  }
  const failover = trials.map((t) => t.failoverMs);
  const detect = trials.map((t) => t.detectMs);
  const p50 = percentile(failover, 0.5);
  const max = Math.max(...failover);
  const verdict = (ok: boolean) => (ok ? '**met**' : '**MISSED**');
  const rows = [
    '| failover (serving peer SIGKILLed mid-stream) | p50 | max | target |',
    '|---|---:|---:|---|',
    `| SIGKILL → first chunk from the next peer (ms), ${trials.length} trials | ${fmt(p50)} | ${fmt(max)} | ≤ ${fmt(TARGET_MS)} ms: ${verdict(max <= TARGET_MS)} |`,
    `| SIGKILL → requester re-delegates (ms) | ${fmt(percentile(detect, 0.5))} | ${fmt(Math.max(...detect))} | |`,
    `| tasks completed with the exact text | ${trials.filter((t) => t.status === 'completed' && t.textExact).length} / ${trials.length} | | all |`,
  ];
  const seconds = (performance.now() - started) / 1000;
  console.log(`\n## Failover benchmark (${new Date().toISOString()})\n`);
  console.log(rows.join('\n'));
  console.log(
    `\nPer trial (ms, SIGKILL → first resumed chunk): ${failover.map((v) => fmt(v)).join(', ')}. ` +
      `Demo provider at ${SETTINGS.wordsPerSecond} words/s, ${SETTINGS.answerWords} words, kill after chunk ${SETTINGS.killAfterChunks}; ` +
      `signaling server defaults (resume grace, heartbeats) on 127.0.0.1; ${process.env.HANDOFF_IN_NETNS === '1' ? 'inside' : 'NOT inside'} the loopback namespace. Runtime ${fmt(seconds, 1)} s.`,
  );
  writeResults('failover', {
    inLoopbackNamespace: process.env.HANDOFF_IN_NETNS === '1',
    settings: SETTINGS,
    targetMs: TARGET_MS,
    failoverP50Ms: p50,
    failoverMaxMs: max,
    detectP50Ms: percentile(detect, 0.5),
    detectMaxMs: Math.max(...detect),
    runtimeSeconds: seconds,
    trials,
  });
}

runBench('failover', SETTINGS.runTimeoutMs, main, killAllSync);
