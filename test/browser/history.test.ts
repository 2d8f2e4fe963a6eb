import { afterEach, describe, expect, it } from 'vitest';
import '../../elements/handoff-panel.ts';
import type { HandoffHistory } from '../../elements/handoff-history/handoff-history.ts';
import {
  cleanUp,
  expectNoAxeViolations,
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

async function historyFor(actor: HandoffHistory['actor']): Promise<HandoffHistory> {
  const history = document.createElement('handoff-history');
  history.actor = actor;
  return mount(history);
}

/** Each row's cells as text. */
const rows = (history: HandoffHistory) =>
  [...(history.shadowRoot?.querySelectorAll('tbody tr') ?? [])].map((row) =>
    [...row.querySelectorAll('td')].map((cell) => textOf(cell)),
  );

describe('<handoff-history>', () => {
  it('lists finished tasks newest first: prompt, outcome, peers, characters and when', async () => {
    network = new Network();
    const server = await network.server({ demo: { wordsPerSecond: 20, answerWords: 300 } });
    const me = await network.requester();
    await me.connect(SIGNALING_URL);
    await me.discoverPeers();
    const history = await historyFor(me.actor);
    expect(textOf(part(history, 'empty'))).toBe('No finished tasks yet.');

    const slow = me.prompt('Take your time');
    await expect.poll(() => (slow.actor?.getSnapshot().context.text.length ?? 0) > 0).toBe(true);
    slow.cancel();
    const cancelled = await slow.result;
    const missing = await me.prompt('Use a model nobody has', { model: 'gpt-9' }).result;
    expect(missing.status).toBe('failed');

    await expect.poll(() => rows(history).length).toBe(2);
    const time = /^\d{1,2}:\d{2}( [AP]M)?$/;
    const [newest, oldest] = rows(history);
    expect(newest?.slice(0, 4)).toEqual([
      '—', // the planner refused it before it ran: the history has no prompt for it
      'Failed: this peer has no AI, and no peer has model gpt-9 (offered: demo-1)',
      'none',
      '0',
    ]);
    expect(newest?.[4]).toMatch(time);
    expect(oldest?.slice(0, 4)).toEqual([
      'Take your time',
      'Cancelled',
      server.peerId,
      String(cancelled.text.length),
    ]);
    expect(oldest?.[4]).toMatch(time);
    expect(Number(oldest?.[3])).toBeGreaterThan(0);
    await expectNoAxeViolations(history);
  });

  it('shows tasks that finished before it was attached, with a dash where it cannot know the time', async () => {
    network = new Network();
    const server = await network.server({ demo: { wordsPerSecond: 0, answerWords: 4 } });
    const me = await network.requester();
    await me.connect(SIGNALING_URL);
    await me.discoverPeers();
    const done = await me.prompt('Earlier').result;
    const history = await historyFor(me.actor);
    expect(rows(history)).toEqual([['—', 'Completed', server.peerId, String(done.text.length), '—']]);
    const later = await me.prompt('Later').result;
    await expect.poll(() => rows(history).length).toBe(2);
    expect(rows(history)[0]?.slice(0, 4)).toEqual([
      'Later',
      'Completed',
      server.peerId,
      String(later.text.length),
    ]);
  });
});
