import { afterEach, describe, expect, it } from 'vitest';
import type { LinkMessage } from '../../machines/link-framing.ts';
import {
  type TaskRequestEmitted,
  type TaskRequestEvent,
  type TaskRequestInput,
  type TaskRequestOutput,
  taskRequestMachine,
} from '../../machines/task-request.machine.ts';
import type { PromptResponse, TaskMessage } from '../../protocol/index.ts';
import { NO_AI, type ParentHarness, runUnderParent } from '../support/client-fakes.ts';

const TASK = 'task-1';

type Inbound = Extract<TaskRequestEvent, { type: 'task.message' }>['message'];
type Sent = { type: 'task.send'; peerId: string; message: LinkMessage };
type Standby = { type: 'task.standby'; taskId: string; peerId: string };

let h: ParentHarness<typeof taskRequestMachine> | undefined;
afterEach(() => {
  h?.stop();
  h = undefined;
});

function startRequest(input: Partial<TaskRequestInput> = {}) {
  const harness = runUnderParent(taskRequestMachine, {
    taskId: TASK,
    prompt: 'Summarise the handoff protocol',
    candidates: ['peer-a', 'peer-b', 'peer-c'],
    requesterCapabilities: NO_AI,
    acceptTimeoutMs: 1_000,
    timeoutMs: 60_000,
    ...input,
  });
  h = harness;
  const emitted: TaskRequestEmitted[] = [];
  harness.child.on('*', (event) => emitted.push(event));
  const from = (peerId: string, message: Inbound) =>
    harness.child.send({ type: 'task.message', peerId, message });
  const snapshot = () => harness.child.getSnapshot();
  /** Task messages for peers (the parent sends them over their links). */
  const sent = () =>
    (harness.toParent as (Sent | Standby)[]).filter((e): e is Sent => e.type === 'task.send');
  /** The standby links the task asked its parent for, in order. */
  const standbys = () =>
    (harness.toParent as (Sent | Standby)[]).filter((e): e is Standby => e.type === 'task.standby');
  return {
    ...harness,
    emitted,
    snapshot,
    sent,
    standbys,
    from,
    accept: (peerId: string) => from(peerId, { type: 'task-accepted', taskId: TASK, queuePosition: 0 }),
    chunk: (peerId: string, seq: number, text: string, isComplete = false) =>
      from(peerId, response(seq, text, isComplete)),
    /** Messages of one type the task sent, with their peers. */
    sentOf: <T extends TaskMessage['type']>(type: T) =>
      sent()
        .filter((event) => event.message.type === type)
        .map((event) => ({
          peerId: event.peerId,
          message: event.message as Extract<TaskMessage, { type: T }>,
        })),
    /** The output once the task is done (from the snapshot and from the parent's done event). */
    output: (): TaskRequestOutput => {
      const done = harness.received.find((event) => event.type === 'xstate.done.actor.child');
      expect(done, 'the task finished').toBeDefined();
      expect(snapshot().output).toEqual((done as unknown as { output: TaskRequestOutput }).output);
      return snapshot().output as TaskRequestOutput;
    },
  };
}

function response(seq: number, chunk: string, isComplete = false, metadata?: PromptResponse['metadata']) {
  return {
    type: 'prompt-response' as const,
    taskId: TASK,
    seq,
    chunk,
    isComplete,
    ...(metadata ? { metadata } : {}),
  };
}

const words = (count: number, prefix = 'w') =>
  Array.from({ length: count }, (_, index) => `${prefix}${index} `);

describe('task request machine', () => {
  it('delegates to the best candidate and streams its answer, in order, to completion', () => {
    const t = startRequest({ priority: 7, model: 'demo-1' });
    expect(t.snapshot().value).toBe('delegating');
    expect(t.sent()).toEqual([
      {
        type: 'task.send',
        peerId: 'peer-a',
        message: {
          type: 'prompt-delegation',
          taskId: TASK,
          prompt: 'Summarise the handoff protocol',
          requesterCapabilities: NO_AI,
          priority: 7,
          timeout: 60_000,
          model: 'demo-1',
        },
      },
    ]);

    t.from('peer-a', { type: 'task-accepted', taskId: TASK, queuePosition: 2 });
    expect(t.snapshot().value).toBe('streaming');
    expect(t.snapshot().hasTag('streaming')).toBe(true);
    expect(t.snapshot().context.queuePosition).toBe(2);

    const pieces = words(20);
    pieces.forEach((text, seq) => {
      t.chunk('peer-a', seq, text);
    });
    expect(t.snapshot().context.text).toBe(pieces.join(''));
    t.from('peer-a', response(20, '', true, { provider: 'demo', inputTokens: 4, outputTokens: 20 }));

    expect(t.snapshot().status).toBe('done');
    expect(t.snapshot().value).toBe('completed');
    let offset = 0;
    expect(t.emitted).toEqual(
      pieces.map((text) => {
        const event = { type: 'task.chunk', taskId: TASK, text, offset };
        offset += text.length;
        return event;
      }),
    );
    expect(t.output()).toEqual({
      taskId: TASK,
      status: 'completed',
      text: pieces.join(''),
      attempts: [{ peerId: 'peer-a', outcome: 'completed', chars: pieces.join('').length }],
      usage: { inputTokens: 4, outputTokens: 20 },
      metadata: { provider: 'demo', inputTokens: 4, outputTokens: 20 },
      error: undefined,
    });
  });

  it('acknowledges cumulatively, never backwards, and acknowledges the final chunk', () => {
    const t = startRequest();
    t.accept('peer-a');
    words(20).forEach((text, seq) => {
      t.chunk('peer-a', seq, text);
    });
    t.chunk('peer-a', 20, '', true);
    const acks = t.sentOf('chunk-ack');
    expect(acks.every((ack) => ack.peerId === 'peer-a' && ack.message.taskId === TASK)).toBe(true);
    const seqs = acks.map((ack) => ack.message.seq);
    expect(seqs.length).toBeGreaterThan(0);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(seqs.every((seq) => seq <= 20)).toBe(true);
    expect(seqs.at(-1)).toBe(20);
  });

  it('shows a duplicate or out-of-order chunk never twice, and re-acknowledges a duplicate', () => {
    const t = startRequest();
    t.accept('peer-a');
    t.chunk('peer-a', 0, 'The ');
    t.chunk('peer-a', 1, 'quick ');
    const acksBefore = t.sentOf('chunk-ack').length;
    t.chunk('peer-a', 1, 'quick ');
    expect(t.sentOf('chunk-ack').slice(acksBefore)).toEqual([
      { peerId: 'peer-a', message: { type: 'chunk-ack', taskId: TASK, seq: 1 } },
    ]);
    t.chunk('peer-a', 0, 'The ');
    t.chunk('peer-a', 3, 'fox');
    expect(t.snapshot().context.text).toBe('The quick ');
    t.chunk('peer-a', 2, 'brown ');
    t.chunk('peer-a', 3, 'fox');
    t.chunk('peer-a', 2, 'brown ');
    t.chunk('peer-a', 4, '', true);
    expect(t.output().text).toBe('The quick brown fox');
    expect(t.emitted.map((event) => (event.type === 'task.chunk' ? event.text : '?'))).toEqual([
      'The ',
      'quick ',
      'brown ',
      'fox',
    ]);
  });

  it('ignores task traffic and losses from peers that are not serving it', () => {
    const t = startRequest();
    t.accept('peer-b');
    expect(t.snapshot().value).toBe('delegating');
    t.accept('peer-a');
    t.chunk('peer-b', 0, 'intruder ');
    t.child.send({ type: 'peer.lost', peerId: 'peer-c', reason: 'gone' });
    expect(t.snapshot().value).toBe('streaming');
    t.chunk('peer-a', 0, 'real ');
    expect(t.snapshot().context.text).toBe('real ');
  });

  it('asks the next candidate when a peer refuses', () => {
    const t = startRequest();
    t.from('peer-a', { type: 'task-rejected', taskId: TASK, reason: 'busy', message: 'serving 2 tasks' });
    expect(t.snapshot().value).toBe('delegating');
    const delegations = t.sentOf('prompt-delegation');
    expect(delegations.map((d) => d.peerId)).toEqual(['peer-a', 'peer-b']);
    expect(delegations[1]?.message.continueFrom).toBeUndefined();
    expect(t.emitted).toEqual([
      { type: 'task.redelegated', taskId: TASK, from: 'peer-a', to: 'peer-b', offset: 0 },
    ]);
    expect(t.snapshot().context.attempts).toEqual([
      { peerId: 'peer-a', outcome: 'rejected', reason: 'busy', chars: 0 },
      { peerId: 'peer-b', outcome: 'pending', chars: 0 },
    ]);
  });

  it('resumes on the next peer with the partial answer when the serving peer vanishes mid-stream', () => {
    const t = startRequest();
    t.accept('peer-a');
    t.chunk('peer-a', 0, 'The ');
    t.chunk('peer-a', 1, 'quick ');
    t.chunk('peer-a', 2, 'brown ');
    t.child.send({ type: 'peer.lost', peerId: 'peer-a', reason: 'link closed' });

    expect(t.snapshot().value).toBe('delegating');
    const handover = t.sentOf('prompt-delegation')[1];
    expect(handover).toEqual({
      peerId: 'peer-b',
      message: expect.objectContaining({ taskId: TASK, continueFrom: 'The quick brown ' }),
    });
    expect(t.emitted.at(-1)).toEqual({
      type: 'task.redelegated',
      taskId: TASK,
      from: 'peer-a',
      to: 'peer-b',
      offset: 'The quick brown '.length,
    });

    // A late chunk from the vanished peer changes nothing.
    t.chunk('peer-a', 3, 'LATE ');
    t.accept('peer-b');
    t.chunk('peer-b', 0, 'fox ');
    t.chunk('peer-b', 1, 'jumps');
    t.chunk('peer-b', 2, '', true);

    const output = t.output();
    expect(output.status).toBe('completed');
    expect(output.text).toBe('The quick brown fox jumps');
    expect(output.attempts).toEqual([
      { peerId: 'peer-a', outcome: 'lost', reason: 'link closed', chars: 'The quick brown '.length },
      { peerId: 'peer-b', outcome: 'completed', chars: 'fox jumps'.length },
    ]);
    const chunkEvents = t.emitted.filter((event) => event.type === 'task.chunk');
    expect(chunkEvents.map((event) => event.text).join('')).toBe('The quick brown fox jumps');
    expect(chunkEvents.map((event) => event.offset)).toEqual([0, 4, 10, 16, 20]);
  });

  it('hands the partial answer on past a refusal after a peer vanished mid-stream', () => {
    const t = startRequest();
    t.accept('peer-a');
    t.chunk('peer-a', 0, 'Once ');
    t.child.send({ type: 'peer.lost', peerId: 'peer-a', reason: 'closed' });
    t.from('peer-b', { type: 'task-rejected', taskId: TASK, reason: 'no-model', message: 'no AI here' });
    const delegations = t.sentOf('prompt-delegation');
    expect(delegations.map((d) => [d.peerId, d.message.continueFrom])).toEqual([
      ['peer-a', undefined],
      ['peer-b', 'Once '],
      ['peer-c', 'Once '],
    ]);
    expect(t.emitted.filter((event) => event.type === 'task.redelegated')).toEqual([
      { type: 'task.redelegated', taskId: TASK, from: 'peer-a', to: 'peer-b', offset: 5 },
      { type: 'task.redelegated', taskId: TASK, from: 'peer-b', to: 'peer-c', offset: 5 },
    ]);
  });

  it('hands over to the next peer when the serving peer fails mid-stream', () => {
    const t = startRequest();
    t.accept('peer-a');
    t.chunk('peer-a', 0, 'Half ');
    t.from('peer-a', { type: 'task-failed', taskId: TASK, code: 'provider-error', message: 'model crashed' });
    expect(t.snapshot().value).toBe('delegating');
    expect(t.sentOf('prompt-delegation')[1]).toEqual({
      peerId: 'peer-b',
      message: expect.objectContaining({ continueFrom: 'Half ' }),
    });
    expect(t.snapshot().context.attempts[0]).toEqual({
      peerId: 'peer-a',
      outcome: 'failed',
      reason: 'provider-error',
      chars: 5,
    });
  });

  it('asks for a standby link to the next candidate once a peer accepts, and none behind the last', () => {
    const t = startRequest();
    const standby = (peerId: string): Standby => ({ type: 'task.standby', taskId: TASK, peerId });
    expect(t.standbys()).toEqual([]);
    t.accept('peer-a');
    expect(t.standbys()).toEqual([standby('peer-b')]);
    t.chunk('peer-a', 0, 'Half ');
    expect(t.standbys()).toHaveLength(1);
    // A failover delegates to peer-b (over the standby link); peer-b's acceptance prepares peer-c.
    t.child.send({ type: 'peer.lost', peerId: 'peer-a', reason: 'peer stopped answering' });
    expect(t.standbys()).toHaveLength(1);
    t.accept('peer-b');
    expect(t.standbys()).toEqual([standby('peer-b'), standby('peer-c')]);
    // peer-c is the last candidate: nothing to prepare behind it.
    t.child.send({ type: 'peer.lost', peerId: 'peer-b', reason: 'peer stopped answering' });
    t.accept('peer-c');
    expect(t.sentOf('prompt-delegation').map((d) => d.peerId)).toEqual(['peer-a', 'peer-b', 'peer-c']);
    expect(t.standbys()).toEqual([standby('peer-b'), standby('peer-c')]);
  });

  it('asks for no standby link while peers refuse, nor with a single candidate', () => {
    const t = startRequest();
    t.from('peer-a', { type: 'task-rejected', taskId: TASK, reason: 'busy', message: 'busy' });
    expect(t.sentOf('prompt-delegation')).toHaveLength(2);
    expect(t.standbys()).toEqual([]);
    t.stop();
    const single = startRequest({ candidates: ['peer-a'] });
    single.accept('peer-a');
    expect(single.standbys()).toEqual([]);
  });

  it('tries the next peer when one does not answer within acceptTimeoutMs', () => {
    const t = startRequest({ acceptTimeoutMs: 1_000 });
    t.clock.increment(999);
    expect(t.sentOf('prompt-delegation')).toHaveLength(1);
    t.clock.increment(1);
    expect(t.sentOf('prompt-delegation').map((d) => d.peerId)).toEqual(['peer-a', 'peer-b']);
    expect(t.snapshot().context.attempts[0]).toEqual({ peerId: 'peer-a', outcome: 'unanswered', chars: 0 });
    // Accepting stops that clock.
    t.accept('peer-b');
    t.clock.increment(5_000);
    expect(t.snapshot().value).toBe('streaming');
  });

  it('fails with the last reason once every candidate has refused', () => {
    const t = startRequest();
    t.from('peer-a', { type: 'task-rejected', taskId: TASK, reason: 'busy', message: 'busy' });
    t.from('peer-b', { type: 'task-failed', taskId: TASK, code: 'timeout', message: 'too slow' });
    t.from('peer-c', {
      type: 'task-rejected',
      taskId: TASK,
      reason: 'quota-exhausted',
      message: 'no quota left',
    });
    const output = t.output();
    expect(output.status).toBe('failed');
    expect(output.error).toEqual({ reason: 'quota-exhausted', message: 'no quota left' });
    expect(output.attempts.map((attempt) => [attempt.peerId, attempt.outcome, attempt.reason])).toEqual([
      ['peer-a', 'rejected', 'busy'],
      ['peer-b', 'failed', 'timeout'],
      ['peer-c', 'rejected', 'quota-exhausted'],
    ]);
  });

  it('fails at once with no-peers when there is nobody to ask', () => {
    const t = startRequest({ candidates: [] });
    const output = t.output();
    expect(output).toEqual({
      taskId: TASK,
      status: 'failed',
      text: '',
      attempts: [],
      usage: undefined,
      metadata: undefined,
      error: { reason: 'no-peers', message: 'no peer can take this task' },
    });
    expect(t.sent()).toEqual([]);
  });

  it('cancels on the user’s word: tells the serving peer and ends cancelled', () => {
    const t = startRequest();
    t.accept('peer-a');
    t.chunk('peer-a', 0, 'partial');
    t.child.send({ type: 'user.cancel' });
    expect(t.sentOf('task-cancel')).toEqual([
      { peerId: 'peer-a', message: { type: 'task-cancel', taskId: TASK, reason: 'cancelled by requester' } },
    ]);
    const output = t.output();
    expect(output.status).toBe('cancelled');
    expect(output.text).toBe('partial');
  });

  it('cancels while still waiting for a verdict', () => {
    const t = startRequest();
    t.child.send({ type: 'user.cancel' });
    expect(t.sentOf('task-cancel').map((c) => c.peerId)).toEqual(['peer-a']);
    expect(t.output().status).toBe('cancelled');
  });

  it('times out as a whole: cancels on the serving peer and reports timedOut', () => {
    const t = startRequest({ timeoutMs: 5_000 });
    t.accept('peer-a');
    t.chunk('peer-a', 0, 'slow ');
    t.clock.increment(4_999);
    expect(t.snapshot().value).toBe('streaming');
    t.clock.increment(1);
    expect(t.sentOf('task-cancel')).toEqual([
      { peerId: 'peer-a', message: { type: 'task-cancel', taskId: TASK, reason: 'timed out' } },
    ]);
    const output = t.output();
    expect(output.status).toBe('timedOut');
    expect(output.error).toEqual({ reason: 'timeout', message: 'the task ran out of time' });
    expect(output.text).toBe('slow ');
  });

  it('times out while a slow peer has not yet answered, and cancels on that peer', () => {
    const t = startRequest({ timeoutMs: 5_000, acceptTimeoutMs: 10_000 });
    t.clock.increment(5_000);
    expect(t.sentOf('task-cancel')).toEqual([
      { peerId: 'peer-a', message: { type: 'task-cancel', taskId: TASK, reason: 'timed out' } },
    ]);
    expect(t.output()).toMatchObject({ status: 'timedOut', text: '' });
    expect(t.sentOf('prompt-delegation')).toHaveLength(1);
  });

  it('sends nothing more once completed, even when its timeout would have passed', () => {
    const t = startRequest({ timeoutMs: 5_000 });
    t.accept('peer-a');
    t.chunk('peer-a', 0, 'done', true);
    const sent = t.sent().length;
    t.clock.increment(10_000);
    expect(t.sent()).toHaveLength(sent);
    expect(t.output().status).toBe('completed');
  });
});

describe('task request acknowledgements', () => {
  it('acknowledges cumulatively: one ack every ACK_EVERY chunks and one for the final chunk', () => {
    const t = startRequest();
    t.accept('peer-a');
    const texts = words(20);
    for (const [seq, text] of texts.entries()) t.chunk('peer-a', seq, text, seq === texts.length - 1);
    expect(t.snapshot().value).toBe('completed');
    expect(t.sentOf('chunk-ack').map((ack) => ack.message.seq)).toEqual([7, 15, 19]);
    expect(t.output().text).toBe(texts.join(''));
  });
});
