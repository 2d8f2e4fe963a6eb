import { afterEach, describe, expect, it } from 'vitest';
import { and, assign, type SnapshotFrom, setup } from 'xstate';
import { createTestModel, type TestPath } from 'xstate/graph';
import type { LinkMessage } from '../../machines/link-framing.ts';
import { type TaskServeOutput, taskServeMachine } from '../../machines/task-serve.machine.ts';
import {
  delegation,
  observed,
  type ParentHarness,
  runUnderParent,
  ScriptedProvider,
  serializeVia,
  settle,
  specActions,
  specCoverage,
  specTakes,
  took,
} from '../support/client-fakes.ts';

const TASK = 'task-1';
const REQUESTER = 'peer-r';
const TIMEOUT = 10_000;
/** Unacknowledged chunks in flight before the provider is paused. */
const WINDOW = 2;
/** Pieces of text the provider produces at most in the model. */
const MAX_PIECES = 3;

type SpecEvent =
  | { type: 'serve.start'; admitted: boolean }
  | { type: 'provider.text' }
  | { type: 'provider.done' }
  | { type: 'provider.error' }
  | { type: 'chunk-ack' }
  | { type: 'task-cancel' }
  | { type: 'requester.lost' }
  | { type: 'requester.pathChanged' }
  | { type: 'serve.shutdown' }
  | { type: 'clock.taskTimeout' };

interface SpecContext {
  admitted: boolean;
  /** Chunks sent (the next one's seq). */
  sent: number;
  /** Chunks the requester acknowledged. */
  acked: number;
  /** Text the provider produced that waits for the window to open. */
  held: number;
}

const piece = (index: number) => `p${index} `;
const releasable = (context: SpecContext) => Math.min(context.held, WINDOW);

/** What the serving side of one task should do, without timers (time passing is an event). */
const taskServeSpec = setup({
  types: { context: {} as SpecContext, events: {} as SpecEvent },
  actions: {
    took: observed,
    accept: observed,
    reject: observed,
    sendChunk: observed,
    sendReleased: observed,
    retransmit: observed,
    sendComplete: observed,
    sendFailure: observed,
    sendTimeout: observed,
    sendShuttingDown: observed,
    abortProvider: observed,
  },
  guards: {
    admitted: ({ context }) => context.admitted,
    moreText: ({ context }) => context.sent + context.held < MAX_PIECES,
    windowOpen: ({ context }) => context.sent - context.acked < WINDOW,
    unacknowledged: ({ context }) => context.sent > context.acked,
    textHeld: ({ context }) => context.held > 0,
    nothingHeld: ({ context }) => context.held === 0,
  },
}).createMachine({
  id: 'spec',
  context: { admitted: false, sent: 0, acked: 0, held: 0 },
  initial: 'unstarted',
  states: {
    unstarted: {
      on: {
        'serve.start': {
          target: 'checking',
          actions: [
            took('unstarted.start'),
            assign({ admitted: ({ event }) => event.type === 'serve.start' && event.admitted }),
          ],
        },
      },
    },
    checking: {
      always: [
        { guard: 'admitted', target: 'streaming', actions: [took('checking.admitted'), 'accept'] },
        { target: 'rejected', actions: [took('checking.refused'), 'reject'] },
      ],
    },
    streaming: {
      exit: 'abortProvider',
      on: {
        'provider.text': [
          {
            guard: and(['moreText', 'windowOpen']),
            actions: [
              took('streaming.text sent'),
              'sendChunk',
              assign({ sent: ({ context }) => context.sent + 1 }),
            ],
          },
          {
            guard: 'moreText',
            actions: [took('streaming.text held back'), assign({ held: ({ context }) => context.held + 1 })],
          },
        ],
        'chunk-ack': [
          {
            guard: and(['unacknowledged', 'textHeld']),
            actions: [
              took('streaming.ack releases held text'),
              assign({ acked: ({ context }) => context.sent }),
              'sendReleased',
              assign(({ context }) => ({
                sent: context.sent + releasable(context),
                held: context.held - releasable(context),
              })),
            ],
          },
          {
            guard: 'unacknowledged',
            actions: [took('streaming.ack'), assign({ acked: ({ context }) => context.sent })],
          },
        ],
        'requester.pathChanged': { actions: [took('streaming.path changed'), 'retransmit'] },
        'provider.done': {
          guard: 'nothingHeld',
          target: 'completed',
          actions: [took('streaming.done'), 'sendComplete'],
        },
        'provider.error': {
          guard: 'nothingHeld',
          target: 'failed',
          actions: [took('streaming.provider error'), 'sendFailure'],
        },
        'task-cancel': { target: 'cancelled', actions: took('streaming.cancelled') },
        'requester.lost': { target: 'aborted', actions: took('streaming.requester lost') },
        'serve.shutdown': { target: 'aborted', actions: [took('streaming.shutdown'), 'sendShuttingDown'] },
        'clock.taskTimeout': { target: 'timedOut', actions: [took('streaming.timeout'), 'sendTimeout'] },
      },
    },
    completed: { type: 'final' },
    rejected: { type: 'final' },
    cancelled: { type: 'final' },
    failed: { type: 'final' },
    timedOut: { type: 'final' },
    aborted: { type: 'final' },
  },
});

type SpecSnapshot = SnapshotFrom<typeof taskServeSpec>;

const SPEC_EVENTS: SpecEvent[] = [
  { type: 'serve.start', admitted: true },
  { type: 'serve.start', admitted: false },
  { type: 'provider.text' },
  { type: 'provider.done' },
  { type: 'provider.error' },
  { type: 'chunk-ack' },
  { type: 'task-cancel' },
  { type: 'requester.lost' },
  { type: 'requester.pathChanged' },
  { type: 'serve.shutdown' },
  { type: 'clock.taskTimeout' },
];

const model = createTestModel(taskServeSpec, {
  events: SPEC_EVENTS,
  filterEvents: specTakes(taskServeSpec),
  serializeState: serializeVia(taskServeSpec),
});
const paths = model.getShortestPaths();

type Sent = { type: 'task.send'; peerId: string; message: LinkMessage };

/** The real serve actor under a recording parent, with a provider the spec's events script. */
class TaskServeUnderTest {
  readonly provider = new ScriptedProvider();
  harness: ParentHarness<typeof taskServeMachine> | undefined;

  get h(): ParentHarness<typeof taskServeMachine> {
    if (!this.harness) throw new Error('the serve task was never started');
    return this.harness;
  }

  get snapshot() {
    return this.h.child.getSnapshot();
  }

  get sent(): Sent[] {
    return this.harness ? (this.harness.toParent as Sent[]) : [];
  }

  async drive(event: SpecEvent, before: SpecSnapshot): Promise<void> {
    const { sent, held } = before.context;
    switch (event.type) {
      case 'serve.start':
        this.harness = runUnderParent(taskServeMachine, {
          requesterPeerId: REQUESTER,
          delegation: delegation({ taskId: TASK, timeout: TIMEOUT }),
          provider: this.provider,
          admission: event.admitted
            ? { admitted: true }
            : { admitted: false, reason: 'busy', message: 'busy' },
          window: WINDOW,
        });
        break;
      case 'provider.text':
        this.provider.text(piece(sent + held));
        break;
      case 'provider.done':
        this.provider.usage({ inputTokens: 2, outputTokens: sent }).end();
        break;
      case 'provider.error':
        this.provider.fail('boom');
        break;
      case 'chunk-ack':
        this.h.child.send({ type: 'chunk-ack', taskId: TASK, seq: sent - 1 });
        break;
      case 'task-cancel':
        this.h.child.send({ type: 'task-cancel', taskId: TASK, reason: 'cancelled by requester' });
        break;
      case 'clock.taskTimeout':
        this.h.clock.increment(TIMEOUT - 1);
        expect(this.snapshot.value, `still streaming 1 ms before ${TIMEOUT} ms`).toBe('streaming');
        this.h.clock.increment(1);
        break;
      default:
        this.h.child.send(event);
    }
    await settle();
  }
}

function chunk(seq: number): LinkMessage {
  return { type: 'prompt-response', taskId: TASK, seq, chunk: piece(seq), isComplete: false };
}

const range = (from: number, to: number) =>
  Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/** What the spec's actions say the requester receives, in order. */
function expectedMessages(actions: string[], before: SpecSnapshot, after: SpecSnapshot): LinkMessage[] {
  return actions.flatMap((type): LinkMessage[] => {
    switch (type) {
      case 'accept':
        return [{ type: 'task-accepted', taskId: TASK, queuePosition: 0 }];
      case 'reject':
        return [{ type: 'task-rejected', taskId: TASK, reason: 'busy', message: 'busy' }];
      case 'sendChunk':
        return [chunk(before.context.sent)];
      case 'sendReleased':
        return range(before.context.sent, after.context.sent).map(chunk);
      case 'retransmit':
        return range(before.context.acked, before.context.sent).map(chunk);
      case 'sendComplete':
        return [
          {
            type: 'prompt-response',
            taskId: TASK,
            seq: before.context.sent,
            chunk: '',
            isComplete: true,
            metadata: {
              provider: 'scripted',
              demo: false,
              inputTokens: 2,
              outputTokens: before.context.sent,
            },
          },
        ];
      case 'sendFailure':
        return [{ type: 'task-failed', taskId: TASK, code: 'provider-error', message: 'boom' }];
      case 'sendTimeout':
        return [{ type: 'task-failed', taskId: TASK, code: 'timeout', message: 'the task ran out of time' }];
      case 'sendShuttingDown':
        return [
          {
            type: 'task-failed',
            taskId: TASK,
            code: 'internal',
            message: 'the serving peer is shutting down',
          },
        ];
      default:
        return [];
    }
  });
}

function checkStep(
  sut: TaskServeUnderTest,
  mark: number,
  before: SpecSnapshot,
  event: SpecEvent,
  after: SpecSnapshot,
): void {
  const actions = specActions(taskServeSpec, before, event).map((action) => action.type);
  const real = sut.snapshot;
  expect(real.value).toBe(after.value);
  const sent = sut.sent.slice(mark);
  expect(sent.every((message) => message.type === 'task.send' && message.peerId === REQUESTER)).toBe(true);
  expect(
    sent.map((message) => message.message),
    'messages to the requester',
  ).toEqual(expectedMessages(actions, before, after));
  if (actions.includes('abortProvider')) expect(sut.provider.signal.aborted).toBe(true);
  expect(sut.h.errors).toEqual([]);
}

function finished(sut: TaskServeUnderTest, outcome: TaskServeOutput['outcome'], state: SpecSnapshot): void {
  expect(sut.snapshot.status).toBe('done');
  expect(sut.snapshot.output).toEqual({
    taskId: TASK,
    requesterPeerId: REQUESTER,
    outcome,
    usage: outcome === 'completed' ? { inputTokens: 2, outputTokens: state.context.sent } : undefined,
    chars: range(0, state.context.sent).map(piece).join('').length,
    error: outcome === 'failed' ? 'boom' : undefined,
  });
  if (outcome === 'rejected') expect(sut.provider.requests).toEqual([]);
  else expect(sut.provider.signal.aborted).toBe(true);
}

function scenario(path: TestPath<SpecSnapshot, SpecEvent>): string {
  const events = path.steps
    .slice(1)
    .map((step) =>
      step.event.type === 'serve.start'
        ? step.event.admitted
          ? 'start(admitted)'
          : 'start(refused)'
        : step.event.type,
    );
  return `${events.join(' → ')} ⇒ ${String(path.state.value)}`;
}

describe('task serve actor against its spec', () => {
  let sut: TaskServeUnderTest | undefined;
  afterEach(() => {
    sut?.harness?.stop();
    sut = undefined;
  });

  it('generated paths reach every state and transition of the spec', () => {
    const coverage = specCoverage('task-serve', taskServeSpec, paths);
    console.log(coverage.line);
    expect(coverage.missingStates).toEqual([]);
    expect(coverage.missingTransitions).toEqual([]);
  });

  for (const path of paths) {
    it(scenario(path), async () => {
      const harness = new TaskServeUnderTest();
      sut = harness;
      let before = path.steps[0]!.state;
      const step = async ({ event, state }: { event: SpecEvent; state: SpecSnapshot }) => {
        const mark = harness.sent.length;
        await harness.drive(event, before);
        checkStep(harness, mark, before, event, state);
        before = state;
      };
      await path.test({
        events: Object.fromEntries(SPEC_EVENTS.map((event) => [event.type, step])),
        states: {
          unstarted: () => expect(harness.harness).toBeUndefined(),
          streaming: (state) => {
            expect(harness.snapshot.hasTag('busy')).toBe(true);
            expect(harness.provider.signal.aborted).toBe(false);
            expect(harness.snapshot.context.seq).toBe(state.context.sent);
            expect(harness.snapshot.context.acked).toBe(state.context.acked);
            expect(harness.snapshot.context.inFlight.map((message) => message.seq)).toEqual(
              range(state.context.acked, state.context.sent),
            );
          },
          completed: (state) => finished(harness, 'completed', state),
          rejected: (state) => finished(harness, 'rejected', state),
          cancelled: (state) => finished(harness, 'cancelled', state),
          failed: (state) => finished(harness, 'failed', state),
          timedOut: (state) => finished(harness, 'timedOut', state),
          aborted: (state) => finished(harness, 'aborted', state),
        },
      });
    });
  }
});
