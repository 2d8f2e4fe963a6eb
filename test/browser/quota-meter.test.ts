import { afterEach, describe, expect, it } from 'vitest';
import '../../elements/handoff-panel.ts';
import type { HandoffQuotaMeter } from '../../elements/handoff-quota-meter/handoff-quota-meter.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import { cleanUp, expectNoAxeViolations, mount, Network, part, textOf } from '../support/element-harness.ts';

let network: Network | undefined;
afterEach(() => {
  cleanUp(network);
  network = undefined;
});

async function meterFor(actor: HandoffQuotaMeter['actor']): Promise<HandoffQuotaMeter> {
  const meter = document.createElement('handoff-quota-meter');
  meter.actor = actor;
  return mount(meter);
}

describe('<handoff-quota-meter>', () => {
  it('shows used / total on a meter, what is left, and the reset time in local time', async () => {
    network = new Network();
    const resetTime = new Date();
    resetTime.setHours(resetTime.getHours() + 2, 30, 0, 0);
    const me = await network.requester({
      provider: createDemoProvider({ wordsPerSecond: 0, answerWords: 5 }),
      quota: { totalQuota: 3, resetTime: resetTime.getTime() },
    });
    const element = await meterFor(me.actor);
    const meter = part<HTMLMeterElement>(element, 'meter');
    expect(meter.localName).toBe('meter');
    expect(meter.labels?.[0]?.textContent).toBe('Used');
    expect([meter.min, meter.max, meter.value]).toEqual([0, 3, 0]);
    expect(textOf(part(element, 'value'))).toBe('0 / 3 used · 3 left');
    const time = part(element, 'reset').querySelector('time');
    expect(time?.getAttribute('datetime')).toBe(resetTime.toISOString());
    const expected =
      resetTime.toDateString() === new Date().toDateString()
        ? resetTime.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
        : resetTime.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
    expect(textOf(time)).toBe(expected);
    expect(textOf(part(element, 'demo-badge'))).toBe('Demo');

    // A prompt run on this peer's own AI spends one request of its quota.
    const task = me.prompt('Count me');
    expect(task.plan.route).toBe('local');
    expect((await task.result).status).toBe('completed');
    await expect.poll(() => textOf(part(element, 'value'))).toBe('1 / 3 used · 2 left');
    expect(part<HTMLMeterElement>(element, 'meter').value).toBe(1);
    await expectNoAxeViolations(element);
  });

  it('follows a quota set by the owner', async () => {
    network = new Network();
    const me = await network.requester({ provider: createDemoProvider(), quota: { totalQuota: 5 } });
    const element = await meterFor(me.actor);
    me.setQuota(10, 4);
    await expect.poll(() => textOf(part(element, 'value'))).toBe('4 / 10 used · 6 left');
    expect(part<HTMLMeterElement>(element, 'meter').max).toBe(10);
  });

  it('says unmetered when the client has no quota monitor', async () => {
    network = new Network();
    const me = await network.requester();
    const element = await meterFor(me.actor);
    expect(textOf(part(element, 'value'))).toBe('Unmetered');
    expect(element.shadowRoot?.querySelector('meter')).toBeNull();
    await expectNoAxeViolations(element);
  });
});
