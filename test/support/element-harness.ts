import axe from 'axe-core';
import { expect } from 'vitest';
import { createHandoff, type Handoff, type HandoffOptions } from '../../machines/create-handoff.ts';
import { createDemoProvider, type DemoProviderOptions } from '../../machines/providers/demo-provider.ts';
import type { AIProvider } from '../../machines/providers/provider.ts';
import { InPageSignaling } from './in-page-signaling.ts';

/*
 * Helpers for browser tests of the elements: real client managers on an in-page signaling server
 * (real machines, real WebRTC between them), mounting elements, waiting for frames, and axe.
 */

export const SIGNALING_URL = 'ws://in-page.test/';

/** A little Handoff network in the page: one in-page signaling server and the managers on it. */
export class Network {
  readonly signaling = new InPageSignaling();
  readonly managers: Handoff[] = [];

  /** A serving peer with the demo provider (or `provider`), connected; `quota` is announced. */
  async server(
    options: {
      demo?: DemoProviderOptions;
      provider?: AIProvider;
      quota?: number;
      extra?: Partial<HandoffOptions>;
    } = {},
  ): Promise<{ manager: Handoff; peerId: string }> {
    const manager = await createHandoff({
      environment: this.signaling.environment(),
      provider:
        options.provider ?? createDemoProvider({ wordsPerSecond: 200, answerWords: 30, ...options.demo }),
      link: { pingIntervalMs: 100, directTimeoutMs: 400 },
      ...(options.quota !== undefined ? { quota: { totalQuota: options.quota } } : {}),
      ...options.extra,
    });
    this.managers.push(manager);
    const peerId = await manager.connect(SIGNALING_URL);
    // The quota monitor announces on its first change: make the starting quota known at once.
    if (options.quota !== undefined) manager.setQuota(options.quota, 0);
    return { manager, peerId };
  }

  /** A requester (no AI of its own unless `options.provider`), not connected yet. */
  async requester(options: Partial<HandoffOptions> = {}): Promise<Handoff> {
    const manager = await createHandoff({
      environment: this.signaling.environment(),
      link: { pingIntervalMs: 100, directTimeoutMs: 400 },
      ...options,
    });
    this.managers.push(manager);
    return manager;
  }

  stop(): void {
    for (const manager of this.managers.splice(0)) {
      if (manager.actor.getSnapshot().status === 'active') manager.stop();
    }
  }
}

const mounted: HTMLElement[] = [];

/** Attaches `element` to the document (removed again by `cleanUp`) and waits for its first render. */
export async function mount<T extends HTMLElement>(element: T): Promise<T> {
  document.body.append(element);
  mounted.push(element);
  await (element as unknown as { updateComplete?: Promise<unknown> }).updateComplete;
  return element;
}

export function cleanUp(...networks: (Network | undefined)[]): void {
  for (const element of mounted.splice(0)) element.remove();
  for (const network of networks) network?.stop();
}

/** Resolves after `count` animation frames (element updates are batched to frames). */
export async function frames(count = 2): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => requestAnimationFrame(resolve));
}

/** The element in `host`'s shadow root with `part` among its parts. */
export function part<T extends Element = HTMLElement>(host: Element, name: string): T {
  const found = host.shadowRoot?.querySelector<T>(`[part~="${name}"]`);
  if (!found) throw new Error(`<${host.localName}> has no part "${name}"`);
  return found;
}

/** Text content with whitespace collapsed. */
export const textOf = (element: Element | null | undefined) =>
  (element?.textContent ?? '').replace(/\s+/g, ' ').trim();

/** Every axe-core violation within `context` (shadow roots included), one line each. */
export async function axeViolations(context: Element): Promise<string[]> {
  const results = await axe.run(context, { resultTypes: ['violations'] });
  return results.violations.map(
    (violation) =>
      `${violation.id} (${violation.impact}): ${violation.help} — ${violation.nodes
        .map((node) => JSON.stringify(node.target))
        .join(', ')}`,
  );
}

/** Fails with the violations listed when axe finds any. */
export async function expectNoAxeViolations(context: Element): Promise<void> {
  expect(await axeViolations(context)).toEqual([]);
}

/** Records events of the given types dispatched to (or through) `target`. */
export function recordEvents(target: EventTarget, ...types: string[]): Event[] {
  const events: Event[] = [];
  for (const type of types) target.addEventListener(type, (event) => events.push(event));
  return events;
}
