import { afterEach, describe, expect, it, vi } from 'vitest';
import { page, userEvent } from 'vitest/browser';
import '../../elements/handoff-panel.ts';
import type { HandoffDelegationForm } from '../../elements/handoff-delegation-form/handoff-delegation-form.ts';
import { HandoffDelegateEvent } from '../../elements/handoff-panel.ts';
import type { Handoff } from '../../machines/create-handoff.ts';
import {
  cleanUp,
  expectNoAxeViolations,
  frames,
  mount,
  Network,
  part,
  recordEvents,
  SIGNALING_URL,
  textOf,
} from '../support/element-harness.ts';

let network: Network | undefined;
afterEach(() => {
  cleanUp(network);
  network = undefined;
});

async function formFor(manager: Handoff): Promise<HandoffDelegationForm> {
  const form = document.createElement('handoff-delegation-form');
  form.manager = manager;
  return mount(form);
}

/** A requester that knows one demo peer. */
async function connectedWithOnePeer() {
  network = new Network();
  const server = await network.server();
  const me = await network.requester();
  await me.connect(SIGNALING_URL);
  await me.discoverPeers();
  return { me, server };
}

const promptField = () => page.getByRole('textbox', { name: 'Prompt' });
const delegateButton = () => page.getByRole('button', { name: 'Delegate' });

describe('<handoff-delegation-form>', () => {
  it('sends a prompt typed into the Prompt field to manager.prompt() when Delegate is clicked', async () => {
    const { me } = await connectedWithOnePeer();
    const prompt = vi.spyOn(me, 'prompt');
    await formFor(me);
    await userEvent.fill(promptField(), 'What is WebRTC?');
    await userEvent.click(delegateButton());
    expect(prompt).toHaveBeenCalledWith('What is WebRTC?', { priority: 5, timeoutMs: 120_000 });
    const task = prompt.mock.results[0]?.value as ReturnType<Handoff['prompt']>;
    expect(task.plan.route).toBe('delegate');
    expect((await task.result).status).toBe('completed');
  });

  it('sends to the chosen peer with delegatePrompt(), with the priority and timeout given', async () => {
    const { me, server } = await connectedWithOnePeer();
    const delegate = vi.spyOn(me, 'delegatePrompt');
    const prompt = vi.spyOn(me, 'prompt');
    const form = await formFor(me);
    await frames();
    const select = part<HTMLSelectElement>(form, 'target');
    expect([...select.options].map((option) => option.textContent)).toEqual(['Automatic', server.peerId]);
    expect(select.value).toBe(''); // automatic by default
    await userEvent.fill(promptField(), 'To you in particular');
    await userEvent.selectOptions(page.getByRole('combobox', { name: 'Peer' }), server.peerId);
    await userEvent.fill(page.getByRole('spinbutton', { name: 'Priority (0–10)' }), '8');
    await userEvent.fill(page.getByRole('spinbutton', { name: 'Timeout (seconds)' }), '30');
    await userEvent.click(delegateButton());
    expect(prompt).not.toHaveBeenCalled();
    expect(delegate).toHaveBeenCalledWith('To you in particular', server.peerId, {
      priority: 8,
      timeoutMs: 30_000,
    });
    const task = delegate.mock.results[0]?.value as ReturnType<Handoff['delegatePrompt']>;
    const result = await task.result;
    expect(result.status).toBe('completed');
    expect(result.attempts.map((attempt) => attempt.peerId)).toEqual([server.peerId]);
  });

  it('fires a cancelable, bubbling, composed handoff-delegate first; preventDefault keeps the prompt here', async () => {
    const { me } = await connectedWithOnePeer();
    const prompt = vi.spyOn(me, 'prompt');
    const form = await formFor(me);
    const events = recordEvents(document, 'handoff-delegate');
    const stop = (event: Event) => event.preventDefault();
    document.addEventListener('handoff-delegate', stop);
    try {
      await userEvent.fill(promptField(), 'Think twice');
      await userEvent.click(delegateButton());
    } finally {
      document.removeEventListener('handoff-delegate', stop);
    }
    expect(events).toHaveLength(1);
    const event = events[0] as HandoffDelegateEvent;
    expect(event).toBeInstanceOf(HandoffDelegateEvent);
    expect(event.type).toBe('handoff-delegate');
    expect([event.bubbles, event.composed, event.cancelable, event.defaultPrevented]).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(event.target).toBe(form);
    expect(event.detail).toEqual({
      prompt: 'Think twice',
      targetPeerId: undefined,
      priority: 5,
      timeoutMs: 120_000,
    });
    expect(prompt).not.toHaveBeenCalled();
    expect(me.actor.getSnapshot().context.history).toEqual([]);
  });

  it('shows the route planner’s reason when no peer can take the prompt, and nothing leaves this peer', async () => {
    network = new Network();
    const me = await network.requester();
    await me.connect(SIGNALING_URL);
    const form = await formFor(me);
    const sentBefore = network.signaling.log.length;
    await userEvent.fill(promptField(), 'Anyone?');
    await userEvent.click(delegateButton());
    const notice = part(form, 'notice');
    expect(notice.getAttribute('role')).toBe('alert');
    await expect
      .poll(() => textOf(notice))
      .toBe('Not sent: this peer has no AI, and no connected peer offers AI.');
    expect(network.signaling.log.slice(sentBefore)).toEqual([]); // not a byte about it left
    expect(me.actor.getSnapshot().context.history.at(-1)?.error?.reason).toBe('no-peers');
  });

  it('submits with Ctrl+Enter from the prompt, and not at all while the prompt is empty', async () => {
    const { me } = await connectedWithOnePeer();
    const prompt = vi.spyOn(me, 'prompt');
    await formFor(me);
    await userEvent.click(delegateButton()); // empty: the browser's own validation stops it
    expect(prompt).not.toHaveBeenCalled();
    await userEvent.click(promptField());
    await userEvent.keyboard('From the keyboard');
    await userEvent.keyboard('{Control>}{Enter}{/Control}');
    expect(prompt).toHaveBeenCalledWith('From the keyboard', { priority: 5, timeoutMs: 120_000 });
  });

  it('can be operated with the keyboard alone, with a visible focus ring, and has no axe violations', async () => {
    const { me } = await connectedWithOnePeer();
    const prompt = vi.spyOn(me, 'prompt');
    const form = await formFor(me);
    await userEvent.click(promptField());
    await userEvent.keyboard('Tabbing along');
    await userEvent.tab(); // Peer
    await userEvent.tab(); // Priority
    await userEvent.tab(); // Timeout
    await userEvent.tab(); // Delegate
    const button = part<HTMLButtonElement>(form, 'submit');
    expect(form.shadowRoot?.activeElement).toBe(button);
    const focus = getComputedStyle(button);
    expect(focus.outlineStyle).toBe('solid');
    expect(focus.outlineWidth).toBe('3px');
    await userEvent.keyboard('{Enter}');
    expect(prompt).toHaveBeenCalledWith('Tabbing along', { priority: 5, timeoutMs: 120_000 });
    await expectNoAxeViolations(form);
  });
});
