import { afterEach, describe, expect, it, vi } from 'vitest';
import { page, userEvent } from 'vitest/browser';
import '../../elements/handoff-panel.ts';
import type { HandoffPeerGrid } from '../../elements/handoff-peer-grid/handoff-peer-grid.ts';
import { DEFAULT_REQUIREMENTS } from '../../machines/discovery.machine.ts';
import type { AIProvider } from '../../machines/providers/provider.ts';
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

/** A real provider that is not the demo: it answers with the prompt. */
const echoProvider: AIProvider = {
  id: 'echo',
  label: 'Echo',
  isDemo: false,
  models: async () => ['echo-1'],
  async *stream(request) {
    yield { type: 'text', text: request.prompt };
    yield { type: 'usage', usage: { inputTokens: 1, outputTokens: 1 } };
  },
};

function card(grid: HandoffPeerGrid, peerId: string): HTMLElement {
  const found = grid.shadowRoot?.querySelector<HTMLElement>(`[part~="card"][data-peer-id="${peerId}"]`);
  if (!found) throw new Error(`no card for ${peerId}`);
  return found;
}

/** The card's facts as `term: value` pairs. */
function facts(element: HTMLElement): Record<string, string> {
  const result: Record<string, string> = {};
  for (const term of element.querySelectorAll('dt')) result[textOf(term)] = textOf(term.nextElementSibling);
  return result;
}

async function gridFor(actor: HandoffPeerGrid['actor']): Promise<HandoffPeerGrid> {
  const grid = document.createElement('handoff-peer-grid');
  grid.actor = actor;
  return mount(grid);
}

describe('<handoff-peer-grid>', () => {
  it('shows each peer’s models, quota, RTT, trust, link and a Demo label for the demo provider', async () => {
    network = new Network();
    const demo = await network.server({ quota: 10 });
    const echo = await network.server({ provider: echoProvider, quota: 3 });
    // No standby link to the task's next candidate: echo is never talked to, so it keeps no link.
    const me = await network.requester({ standbyLinks: false });
    await me.connect(SIGNALING_URL);
    const grid = await gridFor(me.actor);
    expect(textOf(part(grid, 'empty'))).toBe('No peers known yet.');

    await expect.poll(async () => (await me.discoverPeers()).length).toBe(2);
    await frames();
    const demoCard = card(grid, demo.peerId);
    const echoCard = card(grid, echo.peerId);
    expect(facts(demoCard)).toMatchObject({
      Models: 'demo-1',
      Quota: '10 / 10',
      RTT: 'unknown',
      Link: 'no link',
    });
    expect(facts(echoCard)).toMatchObject({ Models: 'echo-1', Quota: '3 / 3', Link: 'no link' });
    expect(facts(demoCard).Trust).toBeUndefined(); // nothing to trust it on yet
    expect(demoCard.querySelector('[part="demo-badge"]')?.textContent).toBe('Demo');
    expect(echoCard.querySelector('[part="demo-badge"]')).toBeNull();

    const task = me.delegatePrompt('How fast is the link?', demo.peerId);
    expect((await task.result).status).toBe('completed');
    await expect.poll(() => facts(card(grid, demo.peerId)).Link).toBe('direct');
    await expect.poll(() => facts(card(grid, demo.peerId)).RTT).toMatch(/^\d+ ms$/);
    await expect.poll(() => facts(card(grid, demo.peerId)).Trust).toMatch(/^\d+%$/);
    expect(card(grid, demo.peerId).dataset.link).toBe('direct');
    expect(facts(card(grid, echo.peerId)).Link).toBe('no link');
  });

  it('asks the client to discover peers when Find peers is clicked', async () => {
    network = new Network();
    const demo = await network.server();
    const me = await network.requester();
    await me.connect(SIGNALING_URL);
    const grid = await gridFor(me.actor);
    const send = vi.spyOn(me.actor, 'send');
    await userEvent.click(page.getByRole('button', { name: 'Find peers' }));
    expect(send).toHaveBeenCalledWith({ type: 'user.discover', requirements: DEFAULT_REQUIREMENTS });
    await expect.poll(() => grid.shadowRoot?.querySelector(`[data-peer-id="${demo.peerId}"]`)).not.toBeNull();
  });

  it('shows a relayed link when no direct path can be made', async () => {
    network = new Network();
    network.signaling.forwardRtcSignals = false;
    const demo = await network.server();
    const me = await network.requester();
    await me.connect(SIGNALING_URL);
    await me.discoverPeers();
    const grid = await gridFor(me.actor);
    const task = me.delegatePrompt('Through the relay', demo.peerId);
    expect((await task.result).status).toBe('completed');
    await expect.poll(() => facts(card(grid, demo.peerId)).Link).toBe('relayed');
    expect(card(grid, demo.peerId).dataset.link).toBe('relayed');
  });

  it('lays the cards out in one column on a narrow screen and several on a wide one', async () => {
    network = new Network();
    await network.server();
    await network.server();
    await network.server();
    const me = await network.requester();
    await me.connect(SIGNALING_URL);
    await me.discoverPeers();
    const grid = await gridFor(me.actor);
    await frames();
    const columns = () => getComputedStyle(part(grid, 'grid')).gridTemplateColumns.split(' ').length;
    grid.style.width = '320px';
    expect(columns()).toBe(1);
    grid.style.width = '960px';
    expect(columns()).toBeGreaterThanOrEqual(3);
    await expectNoAxeViolations(grid);
  });
});
