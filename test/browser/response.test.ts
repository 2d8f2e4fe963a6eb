import { afterEach, describe, expect, it, vi } from 'vitest';
import { page, userEvent } from 'vitest/browser';
import '../../elements/handoff-panel.ts';
import type { HandoffResponse } from '../../elements/handoff-response/handoff-response.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import {
  cleanUp,
  expectNoAxeViolations,
  frames,
  mount,
  Network,
  part,
  SIGNALING_URL,
  textOf,
} from '../support/element-harness.ts';
import { demoPeer, type FakeRoot, startFakeRoot } from '../support/fake-root.ts';

let network: Network | undefined;
let fake: FakeRoot | undefined;
afterEach(() => {
  cleanUp(network);
  fake?.actor.stop();
  network = undefined;
  fake = undefined;
});

async function responseFor(actor: HandoffResponse['actor']): Promise<HandoffResponse> {
  const response = document.createElement('handoff-response');
  response.actor = actor;
  return mount(response);
}

/** A requester linked to one demo server answering at `wordsPerSecond`. */
async function requesterWithServer(wordsPerSecond: number, answerWords: number) {
  network = new Network();
  const server = await network.server({ demo: { wordsPerSecond, answerWords } });
  const me = await network.requester();
  await me.connect(SIGNALING_URL);
  await me.discoverPeers();
  return { me, server };
}

const busyOf = (response: HandoffResponse) => part(response, 'output').getAttribute('aria-busy');

describe('<handoff-response>', () => {
  it('shows the answer as it streams, aria-busy while it does, then who served it', async () => {
    const { me, server } = await requesterWithServer(60, 40);
    const response = await responseFor(me.actor);
    const region = page.getByRole('region', { name: 'Response', exact: true });
    await expect.element(region).toBeVisible();
    expect(textOf(part(response, 'status'))).toBe('No prompt sent yet.');
    expect(busyOf(response)).toBe('false');

    const task = me.prompt('Tell me about streams');
    await expect.poll(() => textOf(part(response, 'output')).length).toBeGreaterThan(0);
    const partial = part(response, 'output').textContent ?? '';
    expect(busyOf(response)).toBe('true');
    expect(textOf(part(response, 'status'))).toBe('Streaming…');
    expect(response.shadowRoot?.querySelector('progress')).not.toBeNull();

    const result = await task.result;
    await expect.poll(() => busyOf(response)).toBe('false');
    const output = part(response, 'output').textContent ?? '';
    expect(output).toBe(result.text);
    expect(output.length).toBeGreaterThan(partial.length);
    expect(output.startsWith(partial)).toBe(true);
    expect(textOf(part(response, 'status'))).toBe('Completed');
    expect(textOf(part(response, 'route'))).toBe(`Served by ${server.peerId}, direct`);
    expect(textOf(part(response, 'demo-badge'))).toBe('Demo');
    expect(textOf(part(response, 'count'))).toBe(`${result.text.length} characters`);
    expect(response.shadowRoot?.querySelector('progress')).toBeNull();
    await expectNoAxeViolations(response);
  });

  it('shows markup in a streamed chunk literally, as text, never as HTML', async () => {
    const { me } = await requesterWithServer(200, 5);
    const response = await responseFor(me.actor);
    const markup = '<img src=x onerror="window.__xss=1">';
    const task = me.prompt(markup); // the demo provider quotes the prompt back
    const result = await task.result;
    expect(result.text).toContain(markup);
    await expect.poll(() => part(response, 'output').textContent).toBe(result.text);
    const output = part(response, 'output');
    expect(output.querySelector('img')).toBeNull();
    expect(output.children).toHaveLength(0);
    expect((window as { __xss?: number }).__xss).toBeUndefined();
  });

  it('cancels the running task on Escape, on both peers', async () => {
    const { me, server } = await requesterWithServer(20, 400);
    const response = await responseFor(me.actor);
    const send = vi.spyOn(me.actor, 'send');
    const task = me.prompt('A very long answer');
    await expect.poll(() => textOf(part(response, 'status'))).toBe('Streaming…');
    await userEvent.click(page.getByRole('region', { name: 'Response text' }));
    await userEvent.keyboard('{Escape}');
    expect(send).toHaveBeenCalledWith({ type: 'user.cancel', taskId: task.taskId });
    expect((await task.result).status).toBe('cancelled');
    await expect.poll(() => textOf(part(response, 'status'))).toBe('Cancelled');
    expect(busyOf(response)).toBe('false');
    await expect
      .poll(() => server.manager.actor.getSnapshot().context.served.at(-1)?.outcome)
      .toBe('cancelled');
  });

  it('cancels with the Cancel button and keeps keyboard focus in the element when the button goes', async () => {
    const { me } = await requesterWithServer(20, 400);
    const response = await responseFor(me.actor);
    const task = me.prompt('Another long one');
    await expect.poll(() => textOf(part(response, 'status'))).toBe('Streaming…');
    const cancel = page.getByRole('button', { name: 'Cancel' });
    await expectNoAxeViolations(response); // while streaming, Cancel showing
    await userEvent.click(cancel);
    expect((await task.result).status).toBe('cancelled');
    await expect.poll(() => response.shadowRoot?.activeElement).toBe(part(response, 'output'));
    expect(response.shadowRoot?.querySelector('[part="cancel"]')).toBeNull();
  });

  it('renders at most once per animation frame while chunks stream in, however many', async () => {
    fake = startFakeRoot([demoPeer('peer-a')]);
    const response = await responseFor(fake.actor);
    fake.actor.send({ type: 'user.delegate', taskId: 'burst', prompt: 'Go', options: {} });
    fake.deliver('peer-a', { type: 'task-accepted', taskId: 'burst', queuePosition: 0 });
    await frames();
    let renders = 0;
    const render = response.render.bind(response);
    response.render = () => {
      renders++;
      return render();
    };
    let painted = 0;
    let counting = true;
    const countFrames = () => {
      painted++;
      if (counting) requestAnimationFrame(countFrames);
    };
    requestAnimationFrame(countFrames);
    // Each chunk in a task of its own, as a data channel delivers them: many per frame.
    await new Promise<void>((resolve) => {
      for (let seq = 0; seq < 200; seq++) {
        setTimeout(() => {
          fake?.deliver('peer-a', {
            type: 'prompt-response',
            taskId: 'burst',
            seq,
            chunk: `${seq} `,
            isComplete: false,
          });
          if (seq === 199) resolve();
        }, 0);
      }
    });
    await frames(1);
    await response.updateComplete;
    counting = false;
    expect(renders).toBeLessThanOrEqual(painted + 1);
    expect(renders).toBeLessThan(50);
    const expected = Array.from({ length: 200 }, (_, seq) => `${seq} `).join('');
    expect(part(response, 'output').textContent).toBe(expected);
    expect(busyOf(response)).toBe('true');
  });

  it('says when the serving peer queued the task, when it is relayed, and on which attempt', async () => {
    fake = startFakeRoot([demoPeer('peer-a'), demoPeer('peer-b', 5)]);
    const response = await responseFor(fake.actor);
    fake.actor.send({ type: 'user.delegate', taskId: 'q', prompt: 'Wait your turn', options: {} });
    await frames();
    expect(textOf(part(response, 'status'))).toBe('Waiting for a peer to accept…');
    fake.deliver('peer-a', { type: 'task-rejected', taskId: 'q', reason: 'busy', message: 'full' });
    fake.deliver('peer-b', { type: 'task-accepted', taskId: 'q', queuePosition: 2 });
    fake.link('peer-b', { transport: 'relayed' });
    await frames();
    expect(textOf(part(response, 'status'))).toBe('Queued (position 2)');
    expect(textOf(part(response, 'route'))).toBe('Served by peer-b, relayed, attempt 2');
    expect(busyOf(response)).toBe('true');
    fake.deliver('peer-b', { type: 'prompt-response', taskId: 'q', seq: 0, chunk: 'Now.', isComplete: true });
    await frames();
    expect(textOf(part(response, 'status'))).toBe('Completed');
    expect(part(response, 'output').textContent).toBe('Now.');
  });

  it('says when this peer answered with its own AI, and why a prompt went nowhere', async () => {
    network = new Network();
    const local = await network.requester({
      provider: createDemoProvider({ wordsPerSecond: 0, answerWords: 3 }),
    });
    const localResponse = await responseFor(local.actor);
    await local.prompt('Mine').result;
    await expect
      .poll(() => textOf(part(localResponse, 'route')))
      .toBe("Served by this peer's own AI (local)");
    expect(textOf(part(localResponse, 'demo-badge'))).toBe('Demo');

    const lonely = await network.requester();
    await lonely.connect(SIGNALING_URL);
    const lonelyResponse = await responseFor(lonely.actor);
    lonely.prompt('Hello?');
    await expect
      .poll(() => textOf(part(lonelyResponse, 'status')))
      .toBe('Failed: this peer has no AI, and no connected peer offers AI');
    expect(textOf(part(lonelyResponse, 'route'))).toBe('No peer took it');
  });

  it('stays on the task named by task-id when a newer one starts', async () => {
    const { me } = await requesterWithServer(200, 5);
    const first = me.prompt('First');
    await first.result;
    const response = document.createElement('handoff-response');
    response.actor = me.actor;
    response.setAttribute('task-id', first.taskId);
    await mount(response);
    const firstText = part(response, 'output').textContent;
    expect(firstText).toContain('Demo answer to "First"');
    await me.prompt('Second').result;
    await frames();
    expect(part(response, 'output').textContent).toBe(firstText);
  });
});
