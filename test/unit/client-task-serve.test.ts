import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_CHUNK_CHARS } from '../../machines/actors/provider-stream.actor.ts';
import type { LinkMessage } from '../../machines/link-framing.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import type { AIProvider } from '../../machines/providers/provider.ts';
import {
  type TaskServeInput,
  type TaskServeOutput,
  taskServeMachine,
} from '../../machines/task-serve.machine.ts';
import type { PromptResponse } from '../../protocol/index.ts';
import {
  delegation,
  EndlessProvider,
  type ParentHarness,
  runUnderParent,
  ScriptedProvider,
  settle,
} from '../support/client-fakes.ts';

const REQUESTER = 'peer-r';
const TASK = 'task-1';

type Sent = { type: 'task.send'; peerId: string; message: LinkMessage };

let h: ParentHarness<typeof taskServeMachine> | undefined;
afterEach(() => {
  h?.stop();
  h = undefined;
});

function startServe(provider: AIProvider, input: Partial<TaskServeInput> = {}) {
  const harness = runUnderParent(taskServeMachine, {
    requesterPeerId: REQUESTER,
    delegation: delegation({ taskId: TASK }),
    provider,
    admission: { admitted: true },
    ...input,
  });
  h = harness;
  const sent = () => {
    const events = harness.toParent as Sent[];
    for (const event of events) {
      expect(event.type).toBe('task.send');
      expect(event.peerId).toBe(REQUESTER);
    }
    return events.map((event) => event.message);
  };
  const sentOf = <T extends LinkMessage['type']>(type: T) =>
    sent().filter((message): message is Extract<LinkMessage, { type: T }> => message.type === type);
  const chunks = () => sentOf('prompt-response').filter((message) => !message.isComplete);
  const snapshot = () => harness.child.getSnapshot();
  return {
    ...harness,
    sent,
    sentOf,
    chunks,
    snapshot,
    ack: (seq: number) => harness.child.send({ type: 'chunk-ack', taskId: TASK, seq }),
    output: () => {
      expect(snapshot().status).toBe('done');
      return snapshot().output as TaskServeOutput;
    },
  };
}

/** What the demo provider streams for a prompt, read directly. */
async function demoPieces(provider: AIProvider, prompt: string, continueFrom?: string) {
  const pieces: string[] = [];
  const request = { prompt, signal: new AbortController().signal, ...(continueFrom ? { continueFrom } : {}) };
  for await (const event of provider.stream(request)) if (event.type === 'text') pieces.push(event.text);
  return pieces;
}

describe('task serve machine', () => {
  it('refuses a task the policy did not admit, without running the provider', async () => {
    const provider = new ScriptedProvider();
    const s = startServe(provider, {
      admission: { admitted: false, reason: 'busy', message: 'serving 2 tasks already', retryAfterMs: 1_000 },
    });
    await settle();
    expect(s.sent()).toEqual([
      {
        type: 'task-rejected',
        taskId: TASK,
        reason: 'busy',
        message: 'serving 2 tasks already',
        retryAfterMs: 1_000,
      },
    ]);
    expect(s.output()).toEqual({
      taskId: TASK,
      requesterPeerId: REQUESTER,
      outcome: 'rejected',
      usage: undefined,
      chars: 0,
      error: undefined,
    });
    expect(provider.requests).toEqual([]);
  });

  it('streams the demo provider’s answer in numbered chunks and completes with its usage', async () => {
    const provider = createDemoProvider({ wordsPerSecond: 0, answerWords: 12 });
    const prompt = 'What does the relay do?';
    const s = startServe(provider, {
      delegation: delegation({ taskId: TASK, prompt, model: 'demo-1' }),
      admission: { admitted: true, queuePosition: 3 },
    });
    await settle();
    // Queued behind three: accepted with its position, and nothing runs until it gets a slot.
    expect(s.sent()).toEqual([{ type: 'task-accepted', taskId: TASK, queuePosition: 3, model: 'demo-1' }]);
    expect(s.snapshot().value).toBe('queued');
    s.child.send({ type: 'serve.start' });
    await settle();
    const expected = await demoPieces(provider, prompt);

    const sent = s.sent();
    expect(sent[0]).toEqual({ type: 'task-accepted', taskId: TASK, queuePosition: 3, model: 'demo-1' });
    const chunks = s.chunks();
    expect(chunks.map((chunk) => chunk.seq)).toEqual(chunks.map((_, index) => index));
    expect(chunks.map((chunk) => chunk.chunk).join('')).toBe(expected.join(''));
    // An instant provider has its words ready together: they leave merged, not one message each.
    expect(chunks.length).toBeLessThan(expected.length);
    expect(sent.at(-1)).toEqual({
      type: 'prompt-response',
      taskId: TASK,
      seq: chunks.length,
      chunk: '',
      isComplete: true,
      metadata: { provider: 'demo', demo: true, inputTokens: 5, outputTokens: expected.length },
    });
    expect(sent).toHaveLength(chunks.length + 2);
    expect(s.output()).toEqual({
      taskId: TASK,
      requesterPeerId: REQUESTER,
      outcome: 'completed',
      usage: { inputTokens: 5, outputTokens: expected.length },
      chars: expected.join('').length,
      error: undefined,
    });
  });

  it('continues after the text a vanished peer already produced', async () => {
    const provider = createDemoProvider({ wordsPerSecond: 0, answerWords: 12 });
    const prompt = 'Continue me';
    const whole = await demoPieces(provider, prompt);
    const continueFrom = whole.slice(0, 5).join('');
    const s = startServe(provider, { delegation: delegation({ taskId: TASK, prompt, continueFrom }) });
    await settle();
    expect(
      s
        .chunks()
        .map((chunk) => chunk.chunk)
        .join(''),
    ).toBe(whole.slice(5).join(''));
    expect(s.output().outcome).toBe('completed');
  });

  it('holds text back while a window of chunks awaits acknowledgement, merging pieces into one pending chunk; the provider pauses once a whole chunk waits', async () => {
    const provider = new EndlessProvider();
    const window = 4;
    const s = startServe(provider, { window });
    const streamed = (pieces: number) => Array.from({ length: pieces }, (_, index) => `w${index} `).join('');
    const sentText = () =>
      s
        .chunks()
        .map((chunk) => chunk.chunk)
        .join('');
    await settle();
    // The provider has pieces ready faster than the link takes them: four whole chunks of merged pieces.
    expect(s.chunks().map((chunk) => chunk.chunk.length)).toEqual(Array(4).fill(DEFAULT_CHUNK_CHARS));
    const pulled = provider.pulled;
    // Then the provider was read on only until a whole chunk was pending (the piece that filled it included).
    const heldBack = streamed(pulled).length - sentText().length;
    expect(heldBack).toBeGreaterThanOrEqual(DEFAULT_CHUNK_CHARS);
    expect(heldBack).toBeLessThan(DEFAULT_CHUNK_CHARS + 8);
    await settle(10);
    expect(provider.pulled).toBe(pulled);
    expect(s.chunks()).toHaveLength(4);

    // Two credits: the pending chunk leaves, the reader resumes and fills the next.
    s.ack(1);
    await settle();
    expect(s.chunks().map((chunk) => chunk.seq)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(s.chunks()[4]?.chunk).toHaveLength(DEFAULT_CHUNK_CHARS);
    s.ack(5);
    await settle();
    expect(s.chunks().map((chunk) => chunk.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // A stale (lower) ack releases nothing more.
    s.ack(2);
    await settle();
    expect(s.chunks()).toHaveLength(10);
    // Nothing lost, nothing repeated: what went out is exactly the start of what the provider said.
    expect(streamed(provider.pulled).startsWith(sentText())).toBe(true);
    expect(s.chunks()[6]?.chunk).toHaveLength(DEFAULT_CHUNK_CHARS);
    expect(s.snapshot().value).toBe('streaming');
  });

  it("sends a slow provider's pieces one by one, and merges the pieces it has ready together", async () => {
    const provider = new ScriptedProvider();
    const s = startServe(provider);
    provider.text('Hel');
    await settle();
    provider.text('lo ');
    await settle();
    provider.text('wor', 'ld', '!');
    await settle();
    provider.end();
    await settle();
    expect(s.chunks().map((chunk) => chunk.chunk)).toEqual(['Hel', 'lo ', 'world!']);
    expect(s.sent().at(-1)).toMatchObject({ type: 'prompt-response', seq: 3, chunk: '', isComplete: true });
  });

  it('stops on task-cancel and aborts the provider', async () => {
    const provider = new ScriptedProvider().text('Hello ');
    const s = startServe(provider);
    await settle();
    expect(s.chunks().map((chunk) => chunk.chunk)).toEqual(['Hello ']);
    expect(provider.signal.aborted).toBe(false);

    s.child.send({ type: 'task-cancel', taskId: TASK, reason: 'cancelled by requester' });
    expect(provider.signal.aborted).toBe(true);
    const sent = s.sent().length;
    provider.text('ignored').end();
    await settle();
    expect(s.sent()).toHaveLength(sent);
    expect(provider.finished).toBe(true);
    expect(s.output()).toMatchObject({ outcome: 'cancelled', chars: 'Hello '.length });
  });

  it('ends a provider that is waiting on its AbortSignal when the task is cancelled', async () => {
    const provider = new ScriptedProvider();
    const s = startServe(provider);
    await settle();
    expect(provider.requests).toHaveLength(1);
    expect(provider.finished).toBe(false);
    s.child.send({ type: 'task-cancel', taskId: TASK });
    await settle();
    expect(provider.signal.aborted).toBe(true);
    expect(provider.finished).toBe(true);
    expect(s.output().outcome).toBe('cancelled');
    expect(s.sentOf('task-failed')).toEqual([]);
  });

  it('aborts quietly when the requester is lost', async () => {
    const provider = new ScriptedProvider().text('a ');
    const s = startServe(provider);
    await settle();
    const sent = s.sent().length;
    s.child.send({ type: 'requester.lost' });
    await settle();
    expect(provider.signal.aborted).toBe(true);
    expect(s.sent()).toHaveLength(sent);
    expect(s.output().outcome).toBe('aborted');
  });

  it('tells the requester it is shutting down', async () => {
    const provider = new ScriptedProvider();
    const s = startServe(provider);
    await settle();
    s.child.send({ type: 'serve.shutdown' });
    expect(s.sent().at(-1)).toEqual({
      type: 'task-failed',
      taskId: TASK,
      code: 'internal',
      message: 'the serving peer is shutting down',
    });
    expect(provider.signal.aborted).toBe(true);
    expect(s.output().outcome).toBe('aborted');
  });

  it('reports a provider error to the requester as task-failed', async () => {
    const provider = new ScriptedProvider().text('Partial ').fail('model exploded');
    const s = startServe(provider);
    await settle();
    expect(s.sent().slice(1)).toEqual([
      { type: 'prompt-response', taskId: TASK, seq: 0, chunk: 'Partial ', isComplete: false },
      { type: 'task-failed', taskId: TASK, code: 'provider-error', message: 'model exploded' },
    ]);
    expect(s.output()).toMatchObject({ outcome: 'failed', error: 'model exploded', chars: 8 });
  });

  it('gives up when the delegation’s timeout passes: task-failed with code timeout', async () => {
    const provider = new ScriptedProvider().text('slow ');
    const s = startServe(provider, { delegation: delegation({ taskId: TASK, timeout: 5_000 }) });
    await settle();
    s.clock.increment(4_999);
    expect(s.snapshot().value).toBe('streaming');
    s.clock.increment(1);
    expect(s.sent().at(-1)).toEqual({
      type: 'task-failed',
      taskId: TASK,
      code: 'timeout',
      message: 'the task ran out of time',
    });
    expect(provider.signal.aborted).toBe(true);
    expect(s.output().outcome).toBe('timedOut');
  });

  it('sends the unacknowledged chunks again, with the same seq, when the path to the requester changes', async () => {
    const provider = new ScriptedProvider();
    const s = startServe(provider, { window: 8 });
    for (const piece of ['a ', 'b ', 'c ', 'd ']) {
      provider.text(piece);
      await settle();
    }
    s.ack(1);
    const before = s.sent().length;
    s.child.send({ type: 'requester.pathChanged' });
    const again = s.sent().slice(before) as PromptResponse[];
    expect(again).toEqual([
      { type: 'prompt-response', taskId: TASK, seq: 2, chunk: 'c ', isComplete: false },
      { type: 'prompt-response', taskId: TASK, seq: 3, chunk: 'd ', isComplete: false },
    ]);
    expect(again).toEqual(s.chunks().slice(2, 4));

    s.ack(3);
    s.child.send({ type: 'requester.pathChanged' });
    expect(s.sent()).toHaveLength(before + 2);

    provider.text('e ').usage({ inputTokens: 1, outputTokens: 5 }).end();
    await settle();
    expect(s.sent().at(-1)).toMatchObject({ type: 'prompt-response', seq: 5, isComplete: true });
    expect(s.output().usage).toEqual({ inputTokens: 1, outputTokens: 5 });
  });

  it('reports progress as text goes out', async () => {
    const provider = new ScriptedProvider();
    const s = startServe(provider);
    const progress: number[] = [];
    s.child.on('serve.progress', (event) => progress.push(event.chars));
    provider.text('ab');
    await settle();
    provider.text('cde');
    await settle();
    expect(progress).toEqual([2, 5]);
  });
});
