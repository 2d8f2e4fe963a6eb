import { afterEach, describe, expect, it } from 'vitest';
import { assign, type SnapshotFrom, setup, stateIn } from 'xstate';
import { createTestModel, type TestPath } from 'xstate/graph';
import type { LinkMessage } from '../../machines/link-framing.ts';
import {
  type TaskRequestEmitted,
  type TaskRequestOutput,
  taskRequestMachine,
} from '../../machines/task-request.machine.ts';
import {
  NO_AI,
  observed,
  type ParentHarness,
  runUnderParent,
  serializeVia,
  specActions,
  specCoverage,
  specTakes,
  took,
} from '../support/client-fakes.ts';

const TASK = 'task-1';
const PEERS = ['peer-a', 'peer-b'];
const TIMEOUT = 60_000;
const ACCEPT_TIMEOUT = 1_000;
/** Chunks one peer sends at most in the model (the next one is the final). */
const MAX_CHUNKS = 2;

type SpecEvent =
  | { type: 'task.start'; candidates: number }
  | { type: 'accepted' }
  | { type: 'rejected' }
  | { type: 'failed' }
  | { type: 'chunk' }
  | { type: 'chunk.duplicate' }
  | { type: 'chunk.ahead' }
  | { type: 'chunk.final' }
  | { type: 'peer.lost' }
  | { type: 'peer.lost.other' }
  | { type: 'user.cancel' }
  | { type: 'clock.acceptTimeout' }
  | { type: 'clock.taskTimeout' };

type Reason = 'no-peers' | 'busy' | 'provider-error' | 'lost' | 'timeout';

interface SpecContext {
  candidates: number;
  /** Index of the peer asked now. */
  current: number;
  /** Chunks the current peer sent (the next one's seq). */
  chunks: number;
  /** Chunks of answer text received in all (piece `i` is `t<i> `). */
  text: number;
  error: Reason | null;
}

const piece = (index: number) => `t${index} `;
const textOf = (count: number) => Array.from({ length: count }, (_, index) => piece(index)).join('');

/** What a requester should do with one task, without timers (time passing is an event). */
const taskRequestSpec = setup({
  types: { context: {} as SpecContext, events: {} as SpecEvent },
  actions: {
    took: observed,
    sendDelegation: observed,
    /** Once a peer accepted: the parent is asked for a link to the next candidate, if there is one. */
    requestStandby: observed,
    emitChunk: observed,
    acknowledgeFinal: observed,
    reacknowledge: observed,
    sendCancel: observed,
    sendTimeoutCancel: observed,
    emitRedelegated: observed,
  },
  guards: {
    hasCandidate: ({ context }) => context.candidates > 0,
    hasNext: ({ context }) => context.current + 1 < context.candidates,
    hasChunks: ({ context }) => context.chunks > 0,
    roomForChunk: ({ context }) => context.chunks < MAX_CHUNKS,
  },
}).createMachine({
  id: 'spec',
  context: { candidates: 0, current: 0, chunks: 0, text: 0, error: null },
  initial: 'unstarted',
  on: {
    // The whole task's clock runs from the start; with ACCEPT_TIMEOUT far shorter than TIMEOUT, the
    // accept timeout always ends a wait for a verdict first, so the task times out while streaming
    // (the unit tests time one out while delegating).
    'clock.taskTimeout': {
      guard: stateIn('streaming'),
      target: '.timedOut',
      actions: [took('anywhere.task timeout'), 'sendTimeoutCancel', assign({ error: 'timeout' as const })],
    },
  },
  states: {
    unstarted: {
      on: {
        'task.start': {
          target: 'starting',
          actions: [
            took('unstarted.start'),
            assign({ candidates: ({ event }) => (event.type === 'task.start' ? event.candidates : 0) }),
          ],
        },
      },
    },
    starting: {
      always: [
        { guard: 'hasCandidate', target: 'delegating', actions: took('starting.first candidate') },
        { target: 'failed', actions: [took('starting.nobody'), assign({ error: 'no-peers' as const })] },
      ],
    },
    delegating: {
      entry: [assign({ chunks: 0 }), 'sendDelegation'],
      on: {
        accepted: { target: 'streaming', actions: took('delegating.accepted') },
        rejected: {
          target: 'redelegating',
          actions: [took('delegating.rejected'), assign({ error: 'busy' as const })],
        },
        failed: {
          target: 'redelegating',
          actions: [took('delegating.failed'), assign({ error: 'provider-error' as const })],
        },
        'peer.lost': {
          target: 'redelegating',
          actions: [took('delegating.peer lost'), assign({ error: 'lost' as const })],
        },
        'peer.lost.other': { actions: took('delegating.other peer lost, ignored') },
        'user.cancel': { target: 'cancelled', actions: [took('delegating.cancel'), 'sendCancel'] },
        'clock.acceptTimeout': {
          target: 'redelegating',
          actions: [took('delegating.no answer'), assign({ error: 'lost' as const })],
        },
      },
    },
    streaming: {
      entry: 'requestStandby',
      on: {
        chunk: {
          guard: 'roomForChunk',
          actions: [
            took('streaming.next chunk'),
            'emitChunk',
            assign({ chunks: ({ context }) => context.chunks + 1, text: ({ context }) => context.text + 1 }),
          ],
        },
        'chunk.final': { target: 'completed', actions: [took('streaming.final chunk'), 'acknowledgeFinal'] },
        'chunk.duplicate': {
          guard: 'hasChunks',
          actions: [took('streaming.duplicate chunk'), 'reacknowledge'],
        },
        'chunk.ahead': { actions: took('streaming.chunk ahead, dropped') },
        failed: {
          target: 'redelegating',
          actions: [took('streaming.failed'), assign({ error: 'provider-error' as const })],
        },
        'peer.lost': {
          target: 'redelegating',
          actions: [took('streaming.peer lost'), assign({ error: 'lost' as const })],
        },
        'peer.lost.other': { actions: took('streaming.other peer lost, ignored') },
        'user.cancel': { target: 'cancelled', actions: [took('streaming.cancel'), 'sendCancel'] },
      },
    },
    redelegating: {
      always: [
        {
          guard: 'hasNext',
          target: 'delegating',
          actions: [
            took('redelegating.next candidate'),
            assign({ current: ({ context }) => context.current + 1 }),
            'emitRedelegated',
          ],
        },
        { target: 'failed', actions: took('redelegating.exhausted') },
      ],
    },
    completed: { type: 'final' },
    failed: { type: 'final' },
    cancelled: { type: 'final' },
    timedOut: { type: 'final' },
  },
});

type SpecSnapshot = SnapshotFrom<typeof taskRequestSpec>;

const SPEC_EVENTS: SpecEvent[] = [
  { type: 'task.start', candidates: 0 },
  { type: 'task.start', candidates: PEERS.length },
  { type: 'accepted' },
  { type: 'rejected' },
  { type: 'failed' },
  { type: 'chunk' },
  { type: 'chunk.duplicate' },
  { type: 'chunk.ahead' },
  { type: 'chunk.final' },
  { type: 'peer.lost' },
  { type: 'peer.lost.other' },
  { type: 'user.cancel' },
  { type: 'clock.acceptTimeout' },
  { type: 'clock.taskTimeout' },
];

const model = createTestModel(taskRequestSpec, {
  events: SPEC_EVENTS,
  filterEvents: specTakes(taskRequestSpec),
  serializeState: serializeVia(taskRequestSpec),
});
const paths = model.getShortestPaths();

type Sent =
  | { type: 'task.send'; peerId: string; message: LinkMessage }
  | { type: 'task.standby'; taskId: string; peerId: string };

/** The real task request actor under a recording parent, started by the spec's `task.start`. */
class TaskRequestUnderTest {
  harness: ParentHarness<typeof taskRequestMachine> | undefined;
  readonly emitted: TaskRequestEmitted[] = [];
  startedAt = 0;

  get h(): ParentHarness<typeof taskRequestMachine> {
    if (!this.harness) throw new Error('the task was never started');
    return this.harness;
  }

  get snapshot() {
    return this.h.child.getSnapshot();
  }

  get sent(): Sent[] {
    return this.harness ? (this.harness.toParent as Sent[]) : [];
  }

  drive(event: SpecEvent, before: SpecSnapshot): void {
    if (event.type === 'task.start') {
      this.harness = runUnderParent(taskRequestMachine, {
        taskId: TASK,
        prompt: 'Explain the relay',
        candidates: PEERS.slice(0, event.candidates),
        requesterCapabilities: NO_AI,
        timeoutMs: TIMEOUT,
        acceptTimeoutMs: ACCEPT_TIMEOUT,
      });
      this.harness.child.on('*', (emitted) => this.emitted.push(emitted));
      this.startedAt = this.harness.clock.now();
      return;
    }
    const { child, clock } = this.h;
    const peerId = PEERS[before.context.current] as string;
    const from = (message: Extract<LinkMessage, { taskId: string }>) =>
      child.send({ type: 'task.message', peerId, message: message as never });
    const response = (seq: number, chunk: string, isComplete = false) =>
      from({
        type: 'prompt-response',
        taskId: TASK,
        seq,
        chunk,
        isComplete,
        ...(isComplete ? { metadata: { inputTokens: 3, outputTokens: before.context.chunks } } : {}),
      });
    switch (event.type) {
      case 'accepted':
        from({ type: 'task-accepted', taskId: TASK, queuePosition: 0 });
        break;
      case 'rejected':
        from({ type: 'task-rejected', taskId: TASK, reason: 'busy', message: 'busy' });
        break;
      case 'failed':
        from({ type: 'task-failed', taskId: TASK, code: 'provider-error', message: 'crashed' });
        break;
      case 'chunk':
        response(before.context.chunks, piece(before.context.text));
        break;
      case 'chunk.duplicate':
        response(before.context.chunks - 1, piece(before.context.text - 1));
        break;
      case 'chunk.ahead':
        response(before.context.chunks + 1, 'AHEAD ');
        break;
      case 'chunk.final':
        response(before.context.chunks, '', true);
        break;
      case 'peer.lost':
        child.send({ type: 'peer.lost', peerId, reason: 'link closed' });
        break;
      case 'peer.lost.other':
        child.send({ type: 'peer.lost', peerId: 'peer-z', reason: 'link closed' });
        break;
      case 'user.cancel':
        child.send({ type: 'user.cancel' });
        break;
      case 'clock.acceptTimeout': {
        const delegations = this.sent.length;
        clock.increment(ACCEPT_TIMEOUT - 1);
        expect(this.snapshot.value, 'still waiting 1 ms before the accept timeout').toBe('delegating');
        expect(this.sent).toHaveLength(delegations);
        clock.increment(1);
        break;
      }
      case 'clock.taskTimeout': {
        const left = this.startedAt + TIMEOUT - clock.now();
        clock.increment(left - 1);
        expect(this.snapshot.status, 'still running 1 ms before the task timeout').toBe('active');
        clock.increment(1);
        break;
      }
    }
  }
}

/** What the spec's actions say the parent receives, in order. */
function expectedSent(actions: string[], before: SpecSnapshot, after: SpecSnapshot): Sent[] {
  const to = (index: number, message: LinkMessage): Sent => ({
    type: 'task.send',
    peerId: PEERS[index] as string,
    message,
  });
  return actions.flatMap((type): Sent[] => {
    switch (type) {
      case 'sendDelegation':
        return [
          to(after.context.current, {
            type: 'prompt-delegation',
            taskId: TASK,
            prompt: 'Explain the relay',
            requesterCapabilities: NO_AI,
            priority: 5,
            timeout: TIMEOUT,
            ...(after.context.text > 0 ? { continueFrom: textOf(after.context.text) } : {}),
          }),
        ];
      case 'requestStandby': {
        const next = after.context.current + 1;
        return next < after.context.candidates
          ? [{ type: 'task.standby', taskId: TASK, peerId: PEERS[next] as string }]
          : [];
      }
      case 'acknowledgeFinal':
        return [to(before.context.current, { type: 'chunk-ack', taskId: TASK, seq: before.context.chunks })];
      case 'reacknowledge':
        return [
          to(before.context.current, { type: 'chunk-ack', taskId: TASK, seq: before.context.chunks - 1 }),
        ];
      case 'sendCancel':
        return [
          to(before.context.current, { type: 'task-cancel', taskId: TASK, reason: 'cancelled by requester' }),
        ];
      case 'sendTimeoutCancel':
        return [to(before.context.current, { type: 'task-cancel', taskId: TASK, reason: 'timed out' })];
      default:
        return [];
    }
  });
}

function expectedEmitted(actions: string[], before: SpecSnapshot, after: SpecSnapshot): TaskRequestEmitted[] {
  return actions.flatMap((type): TaskRequestEmitted[] => {
    switch (type) {
      case 'emitChunk':
        return [
          {
            type: 'task.chunk',
            taskId: TASK,
            text: piece(before.context.text),
            offset: textOf(before.context.text).length,
          },
        ];
      case 'emitRedelegated':
        return [
          {
            type: 'task.redelegated',
            taskId: TASK,
            from: PEERS[before.context.current] as string,
            to: PEERS[after.context.current] as string,
            offset: textOf(after.context.text).length,
          },
        ];
      default:
        return [];
    }
  });
}

function checkStep(
  sut: TaskRequestUnderTest,
  mark: { sent: number; emitted: number },
  before: SpecSnapshot,
  event: SpecEvent,
  after: SpecSnapshot,
): void {
  const actions = specActions(taskRequestSpec, before, event).map((action) => action.type);
  const real = sut.snapshot;
  expect(real.value).toBe(after.value);
  expect(real.context.text).toBe(textOf(after.context.text));
  expect(real.context.current).toBe(after.context.current);
  if (!after.matches('completed')) expect(real.context.error?.reason ?? null).toBe(after.context.error);

  const sent = sut.sent.slice(mark.sent);
  expect(sent, 'messages to peers').toEqual(expectedSent(actions, before, after));
  expect(sut.emitted.slice(mark.emitted), 'emitted').toEqual(expectedEmitted(actions, before, after));
  expect(sut.h.errors).toEqual([]);
}

function finished(sut: TaskRequestUnderTest, status: TaskRequestOutput['status'], state: SpecSnapshot): void {
  expect(sut.snapshot.status).toBe('done');
  const output = sut.snapshot.output as TaskRequestOutput;
  expect(output.status).toBe(status);
  expect(output.text).toBe(textOf(state.context.text));
  // A completed task keeps the error of an earlier attempt (see the report); only failures are checked.
  if (status !== 'completed') expect(output.error?.reason ?? null).toBe(state.context.error);
  const done = sut.h.received.find((event) => event.type === 'xstate.done.actor.child');
  expect((done as { output?: unknown } | undefined)?.output).toEqual(output);
}

function scenario(path: TestPath<SpecSnapshot, SpecEvent>): string {
  const events = path.steps
    .slice(1)
    .map((step) =>
      step.event.type === 'task.start' ? `start(${step.event.candidates} candidates)` : step.event.type,
    );
  return `${events.join(' → ')} ⇒ ${String(path.state.value)}`;
}

describe('task request actor against its spec', () => {
  let sut: TaskRequestUnderTest | undefined;
  afterEach(() => {
    sut?.harness?.stop();
    sut = undefined;
  });

  it('generated paths reach every state and transition of the spec', () => {
    const coverage = specCoverage('task-request', taskRequestSpec, paths);
    console.log(coverage.line);
    expect(coverage.missingStates).toEqual([]);
    expect(coverage.missingTransitions).toEqual([]);
  });

  for (const path of paths) {
    it(scenario(path), async () => {
      const harness = new TaskRequestUnderTest();
      sut = harness;
      let before = path.steps[0]!.state;
      const step = ({ event, state }: { event: SpecEvent; state: SpecSnapshot }) => {
        const mark = { sent: harness.sent.length, emitted: harness.emitted.length };
        harness.drive(event, before);
        checkStep(harness, mark, before, event, state);
        before = state;
      };
      await path.test({
        events: Object.fromEntries(SPEC_EVENTS.map((event) => [event.type, step])),
        states: {
          unstarted: () => expect(harness.harness).toBeUndefined(),
          delegating: (state) => {
            expect(harness.snapshot.hasTag('busy')).toBe(true);
            expect(harness.snapshot.hasTag('streaming')).toBe(false);
            expect(harness.snapshot.context.attempts.at(-1)).toEqual({
              peerId: PEERS[state.context.current],
              outcome: 'pending',
              chars: 0,
            });
            expect(harness.snapshot.context.attempts).toHaveLength(state.context.current + 1);
          },
          streaming: (state) => {
            expect(harness.snapshot.hasTag('streaming')).toBe(true);
            expect(harness.snapshot.context.nextSeq).toBe(state.context.chunks);
            expect(harness.snapshot.context.attempts.at(-1)?.outcome).toBe('streamed');
          },
          completed: (state) => finished(harness, 'completed', state),
          failed: (state) => finished(harness, 'failed', state),
          cancelled: (state) => finished(harness, 'cancelled', state),
          timedOut: (state) => finished(harness, 'timedOut', state),
        },
      });
    });
  }
});
