import { html, render } from 'lit';
import { afterEach, describe, expect, it } from 'vitest';
import { cdp, page, userEvent } from 'vitest/browser';
import '../../elements/handoff-panel.ts';
import type { HandoffStatusBar } from '../../elements/handoff-status-bar/handoff-status-bar.ts';
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

let network: Network | undefined;
afterEach(() => {
  cleanUp(network);
  network = undefined;
});

async function statusBarFor(actor: HandoffStatusBar['actor']): Promise<HandoffStatusBar> {
  const bar = document.createElement('handoff-status-bar');
  bar.actor = actor;
  return mount(bar);
}

const stateOf = (bar: HandoffStatusBar) => textOf(part(bar, 'state'));

describe('<handoff-status-bar>', () => {
  it('follows the real client from Disconnected through Connected and PeerFound to P2PConnected', async () => {
    network = new Network();
    await network.server({ quota: 5 });
    const me = await network.requester();
    const bar = await statusBarFor(me.actor);
    expect(stateOf(bar)).toBe('Disconnected');
    expect(textOf(part(bar, 'text'))).toBe('Not connected');
    expect(part(bar, 'base').dataset.state).toBe('Disconnected');

    await me.connect(SIGNALING_URL);
    await expect.poll(() => stateOf(bar)).toBe('Connected');
    expect(textOf(part(bar, 'peers'))).toBe('0 peers');

    await me.discoverPeers();
    await expect.poll(() => stateOf(bar)).toBe('PeerFound');
    expect(textOf(part(bar, 'peers'))).toBe('1 peer');

    const task = me.prompt('Say hello');
    await task.result;
    await expect.poll(() => stateOf(bar)).toBe('P2PConnected');
    expect(textOf(part(bar, 'text'))).toBe('Linked to a peer');
    expect(textOf(part(bar, 'peers'))).toBe('1 peer · 1 open link');
  });

  it('announces state changes politely, not every streamed chunk', async () => {
    network = new Network();
    await network.server({ demo: { wordsPerSecond: 300, answerWords: 80 } });
    const me = await network.requester();
    await me.connect(SIGNALING_URL);
    await me.discoverPeers();
    const bar = await statusBarFor(me.actor);
    const live = part(bar, 'text');
    expect(live.getAttribute('role')).toBe('status'); // implicitly aria-live="polite"
    expect(live.getAttribute('aria-live')).toBeNull();
    const announced: string[] = [];
    const observer = new MutationObserver(() => announced.push(textOf(live)));
    observer.observe(live, { subtree: true, childList: true, characterData: true });
    let chunks = 0;
    const task = me.prompt('A long answer, please');
    for await (const _ of task.chunks) chunks++;
    await task.result;
    await frames(3);
    observer.disconnect();
    expect(chunks).toBeGreaterThan(40);
    // Connecting / Transferring / P2PConnected at most: a few announcements, none repeated.
    expect(announced.length).toBeGreaterThan(0);
    expect(announced.length).toBeLessThanOrEqual(4);
    expect(announced.at(-1)).toBe('Linked to a peer');
    expect(announced.filter((text, i) => text === announced[i - 1])).toEqual([]);
  });

  it('pulses while signaling, and holds still when the user prefers reduced motion', async () => {
    network = new Network();
    network.signaling.accepting = false; // the server is down: the client keeps trying
    const me = await network.requester({
      connection: { maxAttempts: 100, baseDelayMs: 50, maxDelayMs: 100 },
    });
    const bar = await statusBarFor(me.actor);
    void me.connect(SIGNALING_URL).catch(() => {});
    await expect.poll(() => stateOf(bar)).toBe('Signaling');
    const indicator = part(bar, 'indicator');
    expect(indicator.classList.contains('pulse')).toBe(true);
    expect(getComputedStyle(indicator).animationName).toBe('pulse');
    const session = cdp();
    await session.send('Emulation.setEmulatedMedia', {
      features: [{ name: 'prefers-reduced-motion', value: 'reduce' }],
    });
    try {
      expect(matchMedia('(prefers-reduced-motion: reduce)').matches).toBe(true);
      expect(getComputedStyle(indicator).animationName).toBe('none');
    } finally {
      await session.send('Emulation.setEmulatedMedia', { features: [] });
    }
  });

  it('offers Retry once the connection failed, and the click makes the client try again', async () => {
    network = new Network();
    network.signaling.accepting = false;
    const me = await network.requester({ connection: { maxAttempts: 0 } });
    const bar = await statusBarFor(me.actor);
    void me.connect(SIGNALING_URL).catch(() => {});
    await expect.poll(() => stateOf(bar)).toBe('Failed');
    expect(textOf(part(bar, 'text'))).toBe('Connection failed');
    await expectNoAxeViolations(bar);

    network.signaling.accepting = true;
    await userEvent.click(page.elementLocator(bar).getByRole('button', { name: 'Retry' }));
    await expect.poll(() => stateOf(bar)).toBe('Connected');
    expect(bar.shadowRoot?.querySelector('[part="retry"]')).toBeNull();
  });

  it('shows what changed while it was detached as soon as it is attached again', async () => {
    network = new Network();
    const me = await network.requester();
    const bar = await statusBarFor(me.actor);
    expect(stateOf(bar)).toBe('Disconnected');
    bar.remove();
    await me.connect(SIGNALING_URL);
    await frames();
    expect(stateOf(bar)).toBe('Disconnected'); // detached: it heard nothing
    document.body.append(bar);
    await bar.updateComplete;
    expect(stateOf(bar)).toBe('Connected');
    me.disconnect();
    await expect.poll(() => stateOf(bar)).toBe('Disconnected'); // and it follows again
  });

  it('shows Disconnected once the client it follows is stopped', async () => {
    network = new Network();
    const me = await network.requester();
    await me.connect(SIGNALING_URL);
    const bar = await statusBarFor(me.actor);
    expect(stateOf(bar)).toBe('Connected');
    me.stop();
    await expect.poll(() => stateOf(bar)).toBe('Disconnected');
  });

  it('has no axe violations while connected, and colours the state from a custom property', async () => {
    network = new Network();
    const me = await network.requester();
    await me.connect(SIGNALING_URL);
    const host = document.createElement('div');
    document.body.append(host);
    render(
      html`<handoff-status-bar style="--handoff-state-connected: rgb(1, 2, 3)" .actor=${me.actor}></handoff-status-bar>`,
      host,
    );
    const bar = host.querySelector('handoff-status-bar') as HandoffStatusBar;
    await bar.updateComplete;
    try {
      expect(stateOf(bar)).toBe('Connected');
      expect(getComputedStyle(part(bar, 'indicator')).backgroundColor).toBe('rgb(1, 2, 3)');
      await expectNoAxeViolations(bar);
    } finally {
      host.remove();
    }
  });
});
