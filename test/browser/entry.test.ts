import { expect, it } from 'vitest';
import * as entry from '../../elements/handoff-panel.ts';

it('registers every element from the one module entry, and exports their classes and events', () => {
  const elements = {
    'handoff-panel': entry.HandoffPanel,
    'handoff-status-bar': entry.HandoffStatusBar,
    'handoff-peer-grid': entry.HandoffPeerGrid,
    'handoff-quota-meter': entry.HandoffQuotaMeter,
    'handoff-delegation-form': entry.HandoffDelegationForm,
    'handoff-response': entry.HandoffResponse,
    'handoff-history': entry.HandoffHistory,
    'handoff-network-quality': entry.HandoffNetworkQuality,
  };
  for (const [tag, element] of Object.entries(elements)) {
    expect(customElements.get(tag), tag).toBe(element);
    expect(document.createElement(tag)).toBeInstanceOf(element);
  }
  const events = [
    [
      new entry.HandoffConnectionChangeEvent({ state: 'Connected', previous: 'Signaling' }),
      'handoff-connection-change',
    ],
    [
      new entry.HandoffPeerDiscoveredEvent({
        peer: { peerId: 'p', capabilities: { hasAI: false, models: [] }, score: 1 },
      }),
      'handoff-peer-discovered',
    ],
    [
      new entry.HandoffDelegateEvent({ prompt: 'x', targetPeerId: undefined, priority: 5, timeoutMs: 1 }),
      'handoff-delegate',
    ],
  ] as const;
  for (const [event, type] of events) {
    expect(event.type).toBe(type);
    expect([event.bubbles, event.composed]).toEqual([true, true]);
  }
  expect(events[2][0].cancelable).toBe(true);
  expect(events[0][0].cancelable).toBe(false);
});
