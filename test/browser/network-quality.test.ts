import { afterEach, describe, expect, it } from 'vitest';
import '../../elements/handoff-panel.ts';
import type { HandoffNetworkQuality } from '../../elements/handoff-network-quality/handoff-network-quality.ts';
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

async function chartsFor(actor: HandoffNetworkQuality['actor']): Promise<HandoffNetworkQuality> {
  const element = document.createElement('handoff-network-quality');
  element.actor = actor;
  return mount(element);
}

const linkCard = (element: HandoffNetworkQuality, peerId: string) => {
  const card = element.shadowRoot?.querySelector<HTMLElement>(`[part~="link"][data-peer-id="${peerId}"]`);
  if (!card) throw new Error(`no link card for ${peerId}`);
  return card;
};

describe('<handoff-network-quality>', () => {
  it('draws RTT and throughput sparklines from a real link’s samples, with text alternatives', async () => {
    network = new Network();
    const server = await network.server({ demo: { wordsPerSecond: 200, answerWords: 40 } });
    const me = await network.requester();
    await me.connect(SIGNALING_URL);
    await me.discoverPeers();
    const element = await chartsFor(me.actor);
    expect(textOf(part(element, 'empty'))).toBe('No peer links open.');

    await me.prompt('Measure me').result;
    // Samples come every ping interval (100 ms here): wait for a few.
    await expect
      .poll(() => element.shadowRoot?.querySelector('path.rtt')?.getAttribute('d')?.split('L').length ?? 0)
      .toBeGreaterThanOrEqual(3);
    const card = linkCard(element, server.peerId);
    expect(card.dataset.transport).toBe('direct');
    const [rtt, throughput] = [...card.querySelectorAll('svg')];
    expect(rtt?.getAttribute('role')).toBe('img');
    expect(textOf(card.querySelector(`#${rtt?.getAttribute('aria-labelledby')}`))).toMatch(
      /^Round-trip time: now \d+ ms, lowest \d+ ms, highest \d+ ms, over \d+ s \(\d+ samples\)\.$/,
    );
    expect(textOf(card.querySelector(`#${throughput?.getAttribute('aria-labelledby')}`))).toMatch(
      /^Throughput: now [\d.]+ (B|KiB|MiB)\/s sent, [\d.]+ (B|KiB|MiB)\/s received; highest .* sent, .* received, over \d+ s \(\d+ samples\)\. \(sent, received\)$/,
    );
    expect(throughput?.querySelector('path.sent')?.getAttribute('d')).toMatch(/^M[\d.]+ [\d.]+/);
    expect(throughput?.querySelector('path.received')?.getAttribute('d')).toMatch(/^M[\d.]+ [\d.]+/);
    await expectNoAxeViolations(element);
  });

  it('plots exactly the samples the link holds, with a gap where RTT was unknown', async () => {
    fake = startFakeRoot([demoPeer('peer-a')]);
    fake.actor.send({ type: 'user.delegate', taskId: 't', prompt: 'Open a link', options: {} });
    const element = await chartsFor(fake.actor);
    fake.link('peer-a', {
      transport: 'relayed',
      rttMs: 30,
      samples: [
        { at: 0, rttMs: 10, sentBytesPerSecond: 100, receivedBytesPerSecond: 2048 },
        { at: 1000, rttMs: undefined, sentBytesPerSecond: 200, receivedBytesPerSecond: 0 },
        { at: 2000, rttMs: 20, sentBytesPerSecond: 0, receivedBytesPerSecond: 1024 },
        { at: 3000, rttMs: 30, sentBytesPerSecond: 50, receivedBytesPerSecond: 512 },
      ],
    });
    await frames();
    const card = linkCard(element, 'peer-a');
    expect(card.dataset.transport).toBe('relayed');
    expect(textOf(card.querySelector('.badge'))).toBe('relayed');
    const captions = [...card.querySelectorAll('figcaption')].map((caption) => textOf(caption));
    expect(captions).toEqual([
      'Round-trip time: now 30 ms, lowest 10 ms, highest 30 ms, over 3 s (4 samples).',
      'Throughput: now 50 B/s sent, 512 B/s received; highest 200 B/s sent, 2.0 KiB/s received, over 3 s (4 samples). (sent, received)',
    ]);
    // Four samples across 3..157; 0 ms at the bottom (y 37), the highest value at the top (y 3).
    expect(card.querySelector('path.rtt')?.getAttribute('d')).toBe('M3.0 25.7 M105.7 14.3 L157.0 3.0');
    expect(card.querySelectorAll('path.sent, path.received')).toHaveLength(2);
    expect(card.querySelector('circle.rtt')?.getAttribute('cx')).toBe('157');
  });
});
