/**
 * Fault schedules for the chaos property test (test/integration/fault-chaos.test.ts): what a schedule
 * is, how fast-check generates one, and a harness that plays one against real peers and reports what
 * every task came to. The harness observes; the test decides what is allowed.
 *
 * One run: a signaling server (with a resume secret, so it can restart on the same port), two or three
 * serving peers with the demo provider (child processes, which can be SIGKILLed, and in-process peers on
 * recording WebRTC, whose channels can be closed from outside), and an in-process requester on recording
 * WebRTC delegating one to three prompts. Faults are applied one after another, each after its delay.
 */
import fc from 'fast-check';
import type { SnapshotFrom } from 'xstate';
import type { connectionMachine } from '../../machines/connection.machine.ts';
import { createHandoff, type DelegatedTask, type Handoff } from '../../machines/create-handoff.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import type { TaskRequestOutput } from '../../machines/task-request.machine.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { demoAnswer, type PeerProcess, startPeerProcess } from './peers.ts';
import { recordingEnvironment } from './recording-rtc.ts';
import { startTestServer } from './signaling-server.ts';
import { sleep, waitUntil } from './wait.ts';

/** Words per second every serving peer streams: slow enough that faults land mid-stream. */
export const WORDS_PER_SECOND = 40;
/** The requester's own deadline for each task (its machine ends it `timedOut` after this). */
export const TASK_TIMEOUT_MS = 20_000;
/** The harness's bound on a task ending at all: past the task's own deadline, it hangs. */
export const HANG_BOUND_MS = TASK_TIMEOUT_MS + 5_000;
/** How long a restarted server may retry binding its port (held in TIME_WAIT) before giving up. */
export const REBIND_BOUND_MS = 8_000;
/** How long the requester may take to be back online (same peer id) after the last fault. */
export const ONLINE_BOUND_MS = 10_000;

export type Fault =
  /**
   * The signaling server closes; after `downMs` a new one listens on the same port, same resume
   * secret. The schedule goes on meanwhile (a later fault can land while the server is down).
   */
  | { kind: 'restart-server'; afterMs: number; downMs: number }
  /**
   * The peer serving task `task` (or, if that task is over, the first one still running) dies: a
   * process peer by SIGKILL, an in-process peer by `stop()`. Nothing happens if no task is running.
   */
  | { kind: 'kill-serving'; afterMs: number; task: number }
  /** Every data channel of the requester (or of the in-process serving peers, if any) is closed. */
  | { kind: 'drop-channels'; afterMs: number; side: 'requester' | 'serving' }
  /** Nothing: the schedule only waits. */
  | { kind: 'delay'; afterMs: number };

export interface Schedule {
  /** The serving peers, best-effort ranked by the server; the first is always a process. */
  serving: ('process' | 'inproc')[];
  /** Words in each demo answer (every peer uses the same, so a resumed answer matches). */
  words: number;
  prompts: number;
  /** Between one delegation and the next. */
  staggerMs: number;
  /** Started in order; `afterMs` counts from the start of the previous one (the first: from the first delegation). */
  faults: Fault[];
}

const gap = fc.integer({ min: 100, max: 1_400 });
export const faultArbitrary: fc.Arbitrary<Fault> = fc.oneof(
  fc.record({
    kind: fc.constant('restart-server' as const),
    afterMs: gap,
    downMs: fc.integer({ min: 50, max: 800 }),
  }),
  fc.record({ kind: fc.constant('kill-serving' as const), afterMs: gap, task: fc.nat({ max: 2 }) }),
  fc.record({
    kind: fc.constant('drop-channels' as const),
    afterMs: gap,
    side: fc.constantFrom('requester' as const, 'serving' as const),
  }),
  fc.record({ kind: fc.constant('delay' as const), afterMs: gap }),
);

export const scheduleArbitrary: fc.Arbitrary<Schedule> = fc.record({
  serving: fc
    .array(fc.constantFrom('process' as const, 'inproc' as const), { minLength: 1, maxLength: 2 })
    .map((rest): Schedule['serving'] => ['process', ...rest]),
  words: fc.integer({ min: 60, max: 120 }),
  prompts: fc.integer({ min: 1, max: 3 }),
  staggerMs: fc.integer({ min: 0, max: 300 }),
  faults: fc.array(faultArbitrary, { minLength: 0, maxLength: 2 }),
});

export function describeFault(fault: Fault): string {
  switch (fault.kind) {
    case 'restart-server':
      return `+${fault.afterMs}ms restart-server(down ${fault.downMs}ms)`;
    case 'kill-serving':
      return `+${fault.afterMs}ms kill-serving(task ${fault.task})`;
    case 'drop-channels':
      return `+${fault.afterMs}ms drop-channels(${fault.side})`;
    case 'delay':
      return `+${fault.afterMs}ms delay`;
  }
}

export function describeSchedule(schedule: Schedule): string {
  const peers = schedule.serving.map((kind) => (kind === 'process' ? 'P' : 'I')).join('');
  const faults = schedule.faults.length ? schedule.faults.map(describeFault).join(', ') : 'no faults';
  return `serving=${peers} words=${schedule.words} prompts=${schedule.prompts} stagger=${schedule.staggerMs}ms; ${faults}`;
}

/** What one delegated task came to, as seen from outside. */
export interface TaskObservation {
  index: number;
  prompt: string;
  expected: string;
  /** The peers the task could use, best first (fixed when it started). */
  candidates: string[];
  /** `hung`: no result within HANG_BOUND_MS (`hungState` says where it was). */
  status: TaskRequestOutput['status'] | 'hung';
  result: TaskRequestOutput | undefined;
  /** What the `chunks` iterator yielded, in order. */
  chunks: string[];
  /** The first `task.chunk` event whose offset was not the length of the text before it. */
  offsetError: string | undefined;
  hungState: string | undefined;
  /** Each hand-over to another peer: when (ms since the first delegation) and at which offset. */
  redelegations: string[];
  elapsedMs: number;
}

export interface RunReport {
  tasks: TaskObservation[];
  /** Serving peers killed (or stopped), by peer id. */
  gone: Set<string>;
  /** What each fault did, when (ms since the first delegation). */
  applied: string[];
  /** The requester is online again after the faults, under the peer id it started with. */
  backOnline: boolean;
  onlineDetail: string;
  /**
   * Set when a restarted server could not bind its port again (an environment limit, not the
   * client's): signaling stayed down, so a task may fail with a live candidate it can no longer reach.
   */
  serverLost: string | undefined;
  elapsedMs: number;
}

interface ServingPeer {
  kind: 'process' | 'inproc';
  peerId: string;
  process?: PeerProcess;
  handoff?: Handoff;
  environment?: ReturnType<typeof recordingEnvironment>;
  gone: boolean;
}

const connectionOf = (handoff: Handoff) =>
  handoff.actor.system.get('connection')?.getSnapshot() as SnapshotFrom<typeof connectionMachine> | undefined;

/** Resolves with `promise`'s value, or `fallback()` if it has not settled after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, fallback: () => T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback()), ms);
  });
  try {
    return await Promise.race([promise, bound]);
  } finally {
    clearTimeout(timer);
  }
}

/** Sleeps `ms`, or less if `signal` aborts first. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Plays `schedule` against real peers; every wait is bounded and everything started is torn down. */
export async function runSchedule(schedule: Schedule, runId: string): Promise<RunReport> {
  const resumeSecret = `chaos-${runId}`;
  const quick = { baseDelayMs: 50, maxDelayMs: 200 };
  let server: SignalingServer | undefined = await startTestServer({ resumeSecret });
  const port = server.port;
  const url = server.url;
  const serving: ServingPeer[] = [];
  const handoffs: Handoff[] = [];
  const stopFaults = new AbortController();
  let faultsDone: Promise<void> = Promise.resolve();
  /** Server restarts under way, one after another. */
  let restarts: Promise<void> = Promise.resolve();
  let serverLost: string | undefined;
  const started = Date.now();
  try {
    // The serving peers, in parallel (a process takes a second or so to start).
    const peers = await Promise.allSettled(
      schedule.serving.map(async (kind): Promise<ServingPeer> => {
        if (kind === 'process') {
          const process = await startPeerProcess(url, WORDS_PER_SECOND, schedule.words);
          return { kind, peerId: process.peerId, process, gone: false };
        }
        const environment = recordingEnvironment();
        const handoff = await createHandoff({
          environment,
          provider: createDemoProvider({ wordsPerSecond: WORDS_PER_SECOND, answerWords: schedule.words }),
          // The default reconnect backoff, as the process peers have: after a server restart the
          // requester (quicker) is usually back before the serving peers.
        });
        handoffs.push(handoff);
        return { kind, peerId: await handoff.connect(url), handoff, environment, gone: false };
      }),
    );
    for (const peer of peers) if (peer.status === 'fulfilled') serving.push(peer.value);
    const failedToStart = peers.find((peer) => peer.status === 'rejected');
    if (failedToStart) throw (failedToStart as PromiseRejectedResult).reason;

    const requesterEnvironment = recordingEnvironment();
    const requester = await createHandoff({ environment: requesterEnvironment, connection: quick });
    handoffs.push(requester);
    const requesterId = await requester.connect(url);
    const servingIds = serving.map((peer) => peer.peerId);
    await waitUntil(
      async () => {
        const found = await requester.discoverPeers({ needsAI: true, minQuota: 0, preferredModels: [] });
        return servingIds.every((id) => found.some((peer) => peer.peerId === id));
      },
      'the requester discovers every serving peer',
      5_000,
      100,
    );

    // Delegate, and follow each task: its chunks, their offsets, its result (all bounded).
    const t0 = Date.now();
    // CHAOS_DEBUG=1: the requester's connection, links and server errors, as they change.
    let lastTrace = '';
    const trace =
      process.env.CHAOS_DEBUG === '1'
        ? setInterval(() => {
            const root = requester.actor.getSnapshot();
            const links = Object.entries(root.children)
              .filter(([id]) => id.startsWith('link-'))
              .map(([id, child]) => {
                const link = child?.getSnapshot() as
                  | { value: { active?: { path?: string } }; context: { transport: string } }
                  | undefined;
                return `${id.slice(5, 13)}:${link?.value.active?.path ?? JSON.stringify(link?.value)}`;
              });
            const line = `conn=${JSON.stringify(connectionOf(requester)?.value)} ${links.join(' ')} err=${root.context.lastServerError?.message ?? '-'}`;
            if (line === lastTrace) return;
            lastTrace = line;
            console.log(`  @${Date.now() - t0}ms ${line}`);
          }, 10)
        : undefined;
    const tasks: { task: DelegatedTask; observation: TaskObservation; settled: Promise<void> }[] = [];
    const startTask = async (index: number) => {
      const prompt = `chaos ${runId} prompt ${index}: what survives a fault?`;
      const expected = await demoAnswer(prompt, { answerWords: schedule.words });
      const task = requester.delegatePrompt(prompt, undefined, { timeoutMs: TASK_TIMEOUT_MS });
      const observation: TaskObservation = {
        index,
        prompt,
        expected,
        candidates: [...(task.actor?.getSnapshot().context.candidates ?? [])],
        status: 'hung',
        result: undefined,
        chunks: [],
        offsetError: undefined,
        hungState: undefined,
        redelegations: [],
        elapsedMs: 0,
      };
      const handovers = task.actor?.on('task.redelegated', (event) =>
        observation.redelegations.push(`@${Date.now() - t0}ms→${event.to.slice(0, 8)}@${event.offset}ch`),
      );
      let offset = 0;
      const offsets = task.actor?.on('task.chunk', (event) => {
        if (event.offset !== offset && !observation.offsetError) {
          observation.offsetError = `chunk ${JSON.stringify(event.text)} at offset ${event.offset}, expected ${offset}`;
        }
        offset = event.offset + event.text.length;
      });
      const consume = (async () => {
        for await (const chunk of task.chunks) observation.chunks.push(chunk);
      })();
      const settled = within(
        Promise.all([task.result, consume]).then(([result]) => result),
        HANG_BOUND_MS,
        () => undefined,
      ).then((result) => {
        offsets?.unsubscribe();
        handovers?.unsubscribe();
        observation.elapsedMs = Date.now() - t0;
        if (result) {
          observation.result = result;
          observation.status = result.status;
        } else {
          const snapshot = task.actor?.getSnapshot();
          observation.hungState = snapshot
            ? `${JSON.stringify(snapshot.value)} (${snapshot.status}), peer ${snapshot.context.candidates[snapshot.context.current]}, ${snapshot.context.text.length} chars`
            : 'no actor';
        }
      });
      tasks.push({ task, observation, settled });
    };
    const allSettled = (async () => {
      for (let index = 0; index < schedule.prompts; index++) {
        if (index > 0 && schedule.staggerMs > 0) await sleep(schedule.staggerMs);
        await startTask(index);
      }
      // Tasks are only pushed above, so this waits for every one of them.
      await Promise.all(tasks.map((t) => t.settled));
    })();

    // The faults, one after another, until the schedule or the tasks end.
    const applied: string[] = [];
    const at = () => `@${Date.now() - t0}ms`;
    const running = () => tasks.filter((t) => t.task.actor?.getSnapshot().status === 'active');
    /** The peer serving task `t`, or, if that one is already gone, the next the task will turn to. */
    const servingPeerOf = (t: (typeof tasks)[number]) => {
      const context = t.task.actor?.getSnapshot().context;
      if (!context) return undefined;
      for (const peerId of context.candidates.slice(context.current)) {
        const peer = serving.find((candidate) => candidate.peerId === peerId);
        if (peer && !peer.gone) return peer;
      }
      return undefined;
    };
    faultsDone = (async () => {
      for (const fault of schedule.faults) {
        await pause(fault.afterMs, stopFaults.signal);
        if (stopFaults.signal.aborted) return;
        if (running().length === 0 && tasks.length === schedule.prompts) {
          applied.push(`${fault.kind} skipped (every task over) ${at()}`);
          continue;
        }
        switch (fault.kind) {
          case 'delay':
            applied.push(`delay ${at()}`);
            break;
          case 'restart-server': {
            // In the background, after any restart still under way; the schedule goes on.
            applied.push(`server restarting ${at()}`);
            restarts = restarts.then(async () => {
              const closing = server;
              server = undefined;
              await closing?.close();
              applied.push(`server closed ${at()}`);
              await pause(fault.downMs, stopFaults.signal);
              try {
                server = await startTestServer({ resumeSecret, port, bindRetryMs: REBIND_BOUND_MS });
                applied.push(`server back ${at()}`);
              } catch (error) {
                // uWS sets no SO_REUSEADDR: a server-side TIME_WAIT can hold the port for a minute.
                serverLost = `the server could not listen on port ${port} again (${(error as Error).message})`;
                applied.push(`server NOT back ${at()}`);
              }
            });
            break;
          }
          case 'kill-serving': {
            const live = running();
            const target = tasks[fault.task % schedule.prompts];
            const chosen = target && live.includes(target) ? target : live[0];
            const victim = chosen ? servingPeerOf(chosen) : undefined;
            if (!chosen || !victim) {
              applied.push(`kill-serving: no live serving peer ${at()}`);
              break;
            }
            const chars = chosen.task.actor?.getSnapshot().context.text.length ?? 0;
            victim.gone = true;
            if (victim.process) await victim.process.kill('SIGKILL');
            else victim.handoff?.stop();
            applied.push(
              `${victim.kind === 'process' ? 'SIGKILL' : 'stop'} ${victim.peerId.slice(0, 8)} (serving task ${chosen.observation.index} at ${chars}/${chosen.observation.expected.length} chars) ${at()}`,
            );
            break;
          }
          case 'drop-channels': {
            const inproc = serving.filter((peer) => peer.environment && !peer.gone);
            const environments =
              fault.side === 'serving' && inproc.length
                ? inproc.map((peer) => peer.environment as NonNullable<ServingPeer['environment']>)
                : [requesterEnvironment];
            let closed = 0;
            for (const environment of environments) {
              for (const channel of environment.channels) {
                if (channel.readyState === 'open' || channel.readyState === 'connecting') {
                  channel.close();
                  closed++;
                }
              }
            }
            const side = environments[0] === requesterEnvironment ? 'requester' : 'serving';
            applied.push(`closed ${closed} ${side} channel(s) ${at()}`);
            break;
          }
        }
      }
    })();

    await allSettled;
    clearInterval(trace);
    stopFaults.abort();
    await faultsDone;
    // A restart under way finishes (its pause cut short): the requester must then be back online.
    await restarts;
    let backOnline = true;
    let onlineDetail = 'online';
    if (serverLost) {
      backOnline = false;
      onlineDetail = serverLost;
    } else {
      try {
        await waitUntil(
          () => connectionOf(requester)?.hasTag('online') === true,
          'the requester is back online',
          ONLINE_BOUND_MS,
          20,
        );
        const peerId = connectionOf(requester)?.context.peerId;
        if (peerId !== requesterId) {
          backOnline = false;
          onlineDetail = `online as ${peerId}, was ${requesterId}`;
        }
      } catch (error) {
        backOnline = false;
        onlineDetail = `${(error as Error).message}; connection is ${JSON.stringify(connectionOf(requester)?.value)}`;
      }
    }
    return {
      tasks: tasks.map((t) => t.observation),
      gone: new Set(serving.filter((peer) => peer.gone).map((peer) => peer.peerId)),
      applied,
      backOnline,
      onlineDetail,
      serverLost,
      elapsedMs: Date.now() - started,
    };
  } finally {
    stopFaults.abort();
    await faultsDone.catch(() => undefined);
    await restarts.catch(() => undefined);
    const stopped = new Set(serving.filter((peer) => peer.gone).map((peer) => peer.handoff));
    for (const handoff of handoffs) if (!stopped.has(handoff)) handoff.stop();
    await Promise.all(serving.map((peer) => peer.process?.kill('SIGKILL')));
    await server?.close();
  }
}
