import { afterEach, describe, expect, it } from 'vitest';
import { page, userEvent } from 'vitest/browser';
import {
  HandoffConnectionChangeEvent,
  type HandoffPanel,
  HandoffPeerDiscoveredEvent,
  HandoffTaskCompleteEvent,
  HandoffTaskErrorEvent,
} from '../../elements/handoff-panel.ts';
import type { HandoffStatusBar } from '../../elements/handoff-status-bar/handoff-status-bar.ts';
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

/** Nothing listens here (port 9, discard): a panel creating its own manager keeps trying. */
const DEAD_URL = 'ws://127.0.0.1:9/';

let network: Network | undefined;
const created: Handoff[] = [];
afterEach(() => {
  cleanUp(network);
  network = undefined;
  for (const manager of created.splice(0)) {
    if (manager.actor.getSnapshot().status === 'active') manager.stop();
  }
});

function newPanel(attributes: Record<string, string> = {}): HandoffPanel {
  const panel = document.createElement('handoff-panel');
  for (const [name, value] of Object.entries(attributes)) panel.setAttribute(name, value);
  return panel;
}

const inner = <K extends keyof HTMLElementTagNameMap>(panel: HandoffPanel, tag: K) => {
  const element = panel.shadowRoot?.querySelector(tag);
  if (!element) throw new Error(`the panel has no <${tag}>`);
  return element as HTMLElementTagNameMap[K];
};
const stateOf = (panel: HandoffPanel) => textOf(part(inner(panel, 'handoff-status-bar'), 'state'));

/** A panel on the page's manager, connected (by the panel) to a network with one demo server. */
async function panelWithServer(demo = { wordsPerSecond: 100, answerWords: 30 }) {
  network = new Network();
  const server = await network.server({ demo, quota: 20 });
  const me = await network.requester();
  const panel = newPanel({ 'signaling-url': SIGNALING_URL });
  panel.manager = me;
  const events = recordEvents(
    document,
    'handoff-connection-change',
    'handoff-peer-discovered',
    'handoff-task-complete',
    'handoff-task-error',
  );
  await mount(panel);
  await expect.poll(() => stateOf(panel)).toBe('PeerFound'); // connected, then discovered
  return { panel, me, server, events };
}

describe('<handoff-panel>', () => {
  it('uses the manager the page set, connects it, finds peers and shares it with every part', async () => {
    const { panel, me, server, events } = await panelWithServer();
    expect(panel.manager).toBe(me);
    expect(panel.actor).toBe(me.actor);
    for (const tag of [
      'handoff-status-bar',
      'handoff-peer-grid',
      'handoff-quota-meter',
      'handoff-response',
      'handoff-history',
      'handoff-network-quality',
    ] as const) {
      expect(inner(panel, tag).actor, tag).toBe(me.actor);
    }
    expect(inner(panel, 'handoff-delegation-form').manager).toBe(me);

    const changes = events.filter((event) => event.type === 'handoff-connection-change');
    expect(changes.every((event) => event instanceof HandoffConnectionChangeEvent)).toBe(true);
    expect(changes.map((event) => (event as HandoffConnectionChangeEvent).detail)).toEqual([
      { state: 'Disconnected', previous: undefined },
      { state: 'Signaling', previous: 'Disconnected' },
      { state: 'Connected', previous: 'Signaling' },
      { state: 'Discovering', previous: 'Connected' },
      { state: 'PeerFound', previous: 'Discovering' },
    ]);
    const first = changes[0] as HandoffConnectionChangeEvent;
    expect([first.bubbles, first.composed, first.cancelable]).toEqual([true, true, false]);
    expect(first.target).toBe(panel);

    const found = events.filter((event) => event.type === 'handoff-peer-discovered');
    expect(found).toHaveLength(1);
    expect(found[0]).toBeInstanceOf(HandoffPeerDiscoveredEvent);
    expect((found[0] as HandoffPeerDiscoveredEvent).detail.peer.peerId).toBe(server.peerId);
    await expect
      .poll(() => textOf(inner(panel, 'handoff-peer-grid').shadowRoot?.querySelector('h3')))
      .toBe(server.peerId);
  });

  it('streams the answer to a prompt typed into it and fires handoff-task-complete', async () => {
    const { panel, me, server, events } = await panelWithServer();
    await userEvent.fill(page.getByRole('textbox', { name: 'Prompt' }), 'What is a data channel?');
    await userEvent.click(page.getByRole('button', { name: 'Delegate' }));
    const response = inner(panel, 'handoff-response');
    await expect.poll(() => part(response, 'output').getAttribute('aria-busy')).toBe('true');
    await expect.poll(() => events.some((event) => event.type === 'handoff-task-complete')).toBe(true);
    const complete = events.find(
      (event) => event.type === 'handoff-task-complete',
    ) as HandoffTaskCompleteEvent;
    expect(complete).toBeInstanceOf(HandoffTaskCompleteEvent);
    expect([complete.bubbles, complete.composed]).toEqual([true, true]);
    expect(complete.detail.output.status).toBe('completed');
    expect(complete.detail.output.text).toMatch(/^Demo answer to "What is a data channel\?":/);
    expect(complete.detail.taskId).toBe(me.actor.getSnapshot().context.history.at(-1)?.taskId);
    await expect.poll(() => part(response, 'output').textContent).toBe(complete.detail.output.text);
    expect(textOf(part(response, 'route'))).toBe(`Served by ${server.peerId}, direct`);
    await expect
      .poll(() => inner(panel, 'handoff-history').shadowRoot?.querySelectorAll('tbody tr').length)
      .toBe(1);
    // Every part showing something, the whole panel passes axe.
    await expectNoAxeViolations(panel);
  });

  it('cancels the streaming task on Escape from anywhere in it and fires handoff-task-error', async () => {
    const { panel, events } = await panelWithServer({ wordsPerSecond: 20, answerWords: 400 });
    await userEvent.fill(page.getByRole('textbox', { name: 'Prompt' }), 'Go on and on');
    await userEvent.click(page.getByRole('button', { name: 'Delegate' }));
    const response = inner(panel, 'handoff-response');
    await expect.poll(() => textOf(part(response, 'status'))).toBe('Streaming…');
    await userEvent.click(page.getByRole('textbox', { name: 'Prompt' })); // focus in the form
    await userEvent.keyboard('{Escape}');
    await expect.poll(() => events.some((event) => event.type === 'handoff-task-error')).toBe(true);
    const error = events.find((event) => event.type === 'handoff-task-error') as HandoffTaskErrorEvent;
    expect(error).toBeInstanceOf(HandoffTaskErrorEvent);
    expect([error.bubbles, error.composed]).toEqual([true, true]);
    expect(error.detail.status).toBe('cancelled');
    expect(error.detail.output.text.length).toBeGreaterThan(0);
    await expect.poll(() => textOf(part(response, 'status'))).toBe('Cancelled');
  });

  it('creates its own requester when the page gives it none, and stops it only when removed for good', async () => {
    const panel = newPanel({ 'signaling-url': DEAD_URL });
    await mount(panel);
    await expect.poll(() => panel.manager).toBeDefined();
    const own = panel.manager as Handoff;
    created.push(own);
    expect(own.actor.getSnapshot().context.capabilities.hasAI).toBe(false);
    await expect.poll(() => stateOf(panel)).toBe('Signaling'); // trying the dead URL, again and again

    // A move in the DOM is not a removal.
    const elsewhere = document.createElement('section');
    document.body.append(elsewhere);
    elsewhere.append(panel);
    await frames();
    expect(own.actor.getSnapshot().status).toBe('active');
    expect(panel.manager).toBe(own);
    expect(stateOf(panel)).toBe('Signaling');

    panel.remove();
    elsewhere.remove();
    await expect.poll(() => own.actor.getSnapshot().status).toBe('stopped');
    expect(panel.manager).toBeUndefined();
  });

  it('hands over to a manager set after it created its own, and never stops the page’s manager', async () => {
    network = new Network();
    const mine = await network.requester();
    const panel = newPanel({ 'signaling-url': DEAD_URL });
    await mount(panel);
    await expect.poll(() => panel.manager).toBeDefined();
    const own = panel.manager as Handoff;
    created.push(own);

    panel.manager = mine;
    expect(own.actor.getSnapshot().status).toBe('stopped');
    expect(panel.manager).toBe(mine);
    await expect.poll(() => stateOf(panel)).toBe('Connected'); // connected by the panel (in-page server)
    expect(inner(panel, 'handoff-delegation-form').manager).toBe(mine);

    panel.remove();
    await frames();
    expect(mine.actor.getSnapshot().status).toBe('active');
  });

  it('with auto-connect="false" waits for connect()', async () => {
    network = new Network();
    await network.server();
    const me = await network.requester();
    const panel = newPanel({ 'signaling-url': SIGNALING_URL, 'auto-connect': 'false' });
    panel.manager = me;
    await mount(panel);
    expect(panel.autoConnect).toBe(false);
    await frames(3);
    expect(stateOf(panel)).toBe('Disconnected');
    expect(network.signaling.peerIds).toHaveLength(1); // only the server
    const peerId = await panel.connect();
    expect(network.signaling.peerIds).toContain(peerId);
    await expect.poll(() => stateOf(panel)).toBe('Connected');
  });

  it('keeps following the client after it is moved to another place in the page', async () => {
    const { panel, me } = await panelWithServer();
    const elsewhere = document.createElement('div');
    document.body.append(elsewhere);
    try {
      elsewhere.append(panel);
      await panel.updateComplete;
      me.disconnect();
      await expect.poll(() => stateOf(panel)).toBe('Disconnected');
      const bar = inner(panel, 'handoff-status-bar') as HandoffStatusBar;
      expect(bar.actor).toBe(me.actor);
    } finally {
      elsewhere.remove();
    }
  });

  it('is themeable through ::part and --handoff-* custom properties', async () => {
    const { panel } = await panelWithServer();
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(`
      handoff-panel { --handoff-color-accent: rgb(1, 2, 3); --handoff-color-surface: rgb(250, 250, 240); }
      handoff-panel::part(prompt) { border-color: rgb(200, 0, 0); }
      handoff-panel::part(status-text) { font-style: italic; }
      handoff-panel::part(peer-card) { border-radius: 0px; }
    `);
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    try {
      const form = inner(panel, 'handoff-delegation-form');
      expect(getComputedStyle(part(form, 'submit')).backgroundColor).toBe('rgb(1, 2, 3)');
      expect(getComputedStyle(part(form, 'prompt')).borderTopColor).toBe('rgb(200, 0, 0)');
      expect(getComputedStyle(part(form, 'form')).backgroundColor).toBe('rgb(250, 250, 240)');
      expect(getComputedStyle(part(inner(panel, 'handoff-status-bar'), 'text')).fontStyle).toBe('italic');
      await expect
        .poll(() => inner(panel, 'handoff-peer-grid').shadowRoot?.querySelector('[part~="card"]'))
        .not.toBeNull();
      const card = part(inner(panel, 'handoff-peer-grid'), 'card');
      expect(getComputedStyle(card).borderTopLeftRadius).toBe('0px');
    } finally {
      document.adoptedStyleSheets = document.adoptedStyleSheets.filter((other) => other !== sheet);
    }
  });

  it('puts its sections in one column when narrow and two when wide', async () => {
    network = new Network();
    const panel = newPanel({ 'auto-connect': 'false' });
    panel.manager = await network.requester();
    await mount(panel);
    const layout = panel.shadowRoot?.querySelector('.layout') as HTMLElement;
    const columns = () => getComputedStyle(layout).gridTemplateColumns.split(' ').length;
    panel.style.width = '360px';
    expect(columns()).toBe(1);
    panel.style.width = '1100px';
    expect(columns()).toBe(2);
    await expectNoAxeViolations(panel);
  });
});
