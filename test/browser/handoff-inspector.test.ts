import axe from 'axe-core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { userEvent } from 'vitest/browser';
import { type AnyActorRef, createActor, enqueueActions, sendTo, setup } from 'xstate';
import '../../elements/handoff-inspector/handoff-inspector.ts';
import type { HandoffInspector } from '../../elements/handoff-inspector/handoff-inspector.ts';
import {
  createInspectorSource,
  type InspectedActor,
  type InspectorSource,
  type InspectorSourceOptions,
} from '../../elements/handoff-inspector/inspector-source.ts';
import { createHandoff } from '../../machines/create-handoff.ts';
import { discoveryMachine } from '../../machines/discovery.machine.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import { quotaMachine } from '../../machines/quota.machine.ts';
import { taskServeMachine } from '../../machines/task-serve.machine.ts';
import type { PromptDelegation } from '../../protocol/index.ts';

/**
 * A small client-like tree of the project's real machines: discovery and the quota monitor run
 * for the whole life of the root; each `serve` event spawns a real serve task that runs the demo
 * provider (which invokes its own provider-stream actor) and finishes.
 */
type HarnessEvent =
  | { type: 'quota.consume'; usage: undefined }
  | { type: 'serve'; id: string; prompt: string }
  | { type: 'noise'; n: number };

const provider = createDemoProvider({ wordsPerSecond: 0, answerWords: 3 });

const harnessMachine = setup({
  types: { events: {} as HarnessEvent },
  actors: { discovery: discoveryMachine, quota: quotaMachine, taskServe: taskServeMachine },
}).createMachine({
  id: 'harness',
  invoke: [
    { id: 'discovery', systemId: 'discovery', src: 'discovery', input: {} },
    { id: 'quota', src: 'quota', input: { totalQuota: 5, provider: 'demo', announceEveryMs: 60_000 } },
  ],
  on: {
    'quota.consume': { actions: sendTo('quota', ({ event }) => event) },
    serve: {
      actions: enqueueActions(({ event, enqueue }) => {
        const delegation: PromptDelegation = {
          type: 'prompt-delegation',
          taskId: event.id,
          prompt: event.prompt,
          requesterCapabilities: { hasAI: false, models: [] },
          priority: 5,
          timeout: 60_000,
        };
        enqueue.spawnChild('taskServe', {
          id: event.id,
          input: { requesterPeerId: 'peer-a', delegation, admission: { admitted: true }, provider },
        });
      }),
    },
    noise: {},
  },
});

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function start(options: InspectorSourceOptions = {}) {
  const source = createInspectorSource(options);
  const actor = createActor(harnessMachine, { inspect: source.inspect }).start();
  cleanups.push(() => actor.stop());
  return { source, actor };
}

async function mount(source: InspectorSource): Promise<HandoffInspector> {
  const element = document.createElement('handoff-inspector');
  element.source = source;
  document.body.append(element);
  cleanups.push(() => element.remove());
  await settle(element);
  return element;
}

/** Two animation frames (the inspector renders once per frame), then Lit's update. */
async function settle(element: HandoffInspector): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise<void>((resolve) => requestAnimationFrame(() => resolve()));
  await element.updateComplete;
}

const shadow = (element: HandoffInspector) => element.shadowRoot as ShadowRoot;
const treeItems = (element: HandoffInspector) => [
  ...shadow(element).querySelectorAll<HTMLLIElement>('[role="treeitem"]'),
];
const rowOf = (element: HandoffInspector, id: string) => {
  const item = treeItems(element).find((li) => li.querySelector(':scope > .row > .id')?.textContent === id);
  if (!item) throw new Error(`no tree item for ${id}`);
  const text = (selector: string) => item.querySelector(`:scope > .row > ${selector}`)?.textContent?.trim();
  return { item, id: text('.id'), state: text('.state'), status: text('.status') };
};
const childIdsOf = (element: HandoffInspector, id: string) =>
  [...rowOf(element, id).item.querySelectorAll(':scope > [role="group"] > [role="treeitem"]')].map(
    (li) => li.querySelector('.id')?.textContent,
  );
const find = (source: InspectorSource, id: string): InspectedActor | undefined =>
  [...source.snapshot().actors.values()].find((actor) => actor.id === id);

describe('<handoff-inspector>', () => {
  it('shows the tree of a running actor system with each actor’s state and status', async () => {
    const { source } = start();
    const element = await mount(source);

    expect(treeItems(element).map((li) => li.getAttribute('aria-level'))).toEqual(['1', '2', '2']);
    expect(rowOf(element, 'harness').status).toBe('running');
    expect(childIdsOf(element, 'harness')).toEqual(['discovery', 'quota']);
    expect(rowOf(element, 'discovery')).toMatchObject({ state: 'idle', status: 'running' });
    expect(rowOf(element, 'quota')).toMatchObject({
      state: 'period.counting, announcing.idle',
      status: 'running',
    });
    expect(shadow(element).querySelector('.summary')?.textContent).toMatch(/3 actors,\s+3 running/);
  });

  it('moves a node when its actor changes state and shows the selected actor’s context as JSON', async () => {
    const { source, actor } = start();
    const element = await mount(source);

    actor.send({ type: 'quota.consume', usage: undefined });
    await settle(element);
    expect(rowOf(element, 'quota').state).toBe('period.counting, announcing.cooling');

    rowOf(element, 'quota').item.querySelector<HTMLElement>('.row')?.click();
    await settle(element);
    expect(rowOf(element, 'quota').item.getAttribute('aria-selected')).toBe('true');
    const pre = shadow(element).querySelector('[part="context"]');
    const context = JSON.parse(pre?.textContent ?? 'null');
    expect(context.quota).toMatchObject({ totalQuota: 5, usedQuota: 1, availableQuota: 4, provider: 'demo' });
    // Functions in the context are named, not copied.
    expect(context.now).toBe('[function now]');
  });

  it('marks finished and stopped actors, and shows a finished task’s output', async () => {
    const { source, actor } = start();
    const element = await mount(source);

    actor.send({ type: 'serve', id: 'serve-1', prompt: 'What is WebRTC?' });
    await vi.waitFor(() => expect(find(source, 'serve-1')?.status).toBe('done'));
    await settle(element);

    expect(rowOf(element, 'serve-1')).toMatchObject({ state: 'completed', status: 'done' });
    // The provider stream it invoked while streaming was stopped when it left that state.
    expect(childIdsOf(element, 'serve-1')).toEqual(['stream']);
    expect(rowOf(element, 'stream').status).toBe('stopped');
    expect(find(source, 'serve-1')?.output).toMatchObject({
      outcome: 'completed',
      requesterPeerId: 'peer-a',
    });

    actor.stop();
    await settle(element);
    expect(rowOf(element, 'harness').status).toBe('stopped');
    expect(rowOf(element, 'quota').status).toBe('stopped');
    expect(rowOf(element, 'serve-1').status).toBe('done');
    expect(shadow(element).querySelector('.summary')?.textContent).toMatch(/0 running/);
  });

  it('drops the oldest stopped actors beyond the bound and keeps the running ones', async () => {
    const { source, actor } = start({ maxStoppedActors: 3 });
    for (let i = 1; i <= 4; i++) {
      actor.send({ type: 'serve', id: `serve-${i}`, prompt: `prompt ${i}` });
      await vi.waitFor(() => expect(find(source, `serve-${i}`)?.status).toBe('done'));
    }

    const actors = [...source.snapshot().actors.values()];
    expect(actors.filter((a) => a.status !== 'active').length).toBeLessThanOrEqual(3);
    expect(find(source, 'serve-1')).toBeUndefined();
    expect(find(source, 'serve-4')?.status).toBe('done');
    expect(actors.filter((a) => a.status === 'active').map((a) => a.id)).toEqual([
      'harness',
      'discovery',
      'quota',
    ]);
  });

  it('keeps a bounded event log, newest first, filterable by actor', async () => {
    const { source, actor } = start({ maxEvents: 10 });
    for (let n = 0; n < 30; n++) actor.send({ type: 'noise', n });
    actor.send({ type: 'quota.consume', usage: undefined });
    const element = await mount(source);

    const { events, eventsSeen } = source.snapshot();
    expect(events).toHaveLength(10);
    expect(eventsSeen).toBeGreaterThanOrEqual(31);
    // The caller's event, forwarded by the root to the quota monitor, which announces the change.
    expect(events.slice(0, 3)).toMatchObject([
      { type: 'quota.changed', sourceId: 'quota', targetId: 'harness' },
      { type: 'quota.consume', sourceId: 'harness', targetId: 'quota' },
      { type: 'quota.consume', sourceId: undefined, targetId: 'harness' },
    ]);
    expect(events[3]).toMatchObject({ type: 'noise', targetId: 'harness' });
    expect(events.map((event) => event.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => b - a));

    const logItems = () => [...shadow(element).querySelectorAll('[part="log"] li')];
    expect(logItems()).toHaveLength(10);
    expect(logItems()[0]?.textContent).toMatch(/quota\.changed\s+quota → harness/);
    expect(logItems()[2]?.textContent).toMatch(/quota\.consume\s+send\(\) → harness/);

    const select = shadow(element).querySelector<HTMLSelectElement>('#event-filter') as HTMLSelectElement;
    const quotaKey = find(source, 'quota')?.key as string;
    select.value = quotaKey;
    select.dispatchEvent(new Event('change'));
    await element.updateComplete;
    expect(logItems().map((li) => li.querySelector('.route')?.textContent)).toEqual([
      'quota → harness',
      'harness → quota',
    ]);
  });

  it('keeps a huge context within its size bound, as JSON', async () => {
    const { source, actor } = start({ maxContextChars: 2_000 });
    actor.send({ type: 'serve', id: 'serve-big', prompt: 'x'.repeat(30_000) });
    await vi.waitFor(() => expect(find(source, 'serve-big')?.status).toBe('done'));

    const context = find(source, 'serve-big')?.context;
    const text = JSON.stringify(context);
    expect(text.length).toBeLessThanOrEqual(2_000);
    const { delegation, provider: shown } = context as {
      delegation: { prompt: string };
      provider: Record<string, string>;
    };
    expect(delegation.prompt).toMatch(/^x+… \(30000 chars\)$/);
    expect(shown.stream).toBe('[function stream]');
  });

  it('redraws once per animation frame however many events arrive', async () => {
    const { source, actor } = start();
    const element = await mount(source);
    let renders = 0;
    const original = (element as unknown as { updated: (changed: unknown) => void }).updated.bind(element);
    (element as unknown as { updated: (changed: unknown) => void }).updated = (changed) => {
      renders++;
      original(changed);
    };

    // idle → cooling → dirty: three changes, one redraw.
    for (let i = 0; i < 3; i++) actor.send({ type: 'quota.consume', usage: undefined });
    await element.updateComplete;
    expect(renders).toBe(0); // nothing yet: the redraw waits for the next frame
    await settle(element);
    expect(renders).toBe(1);
    expect(rowOf(element, 'quota').state).toBe('period.counting, announcing.dirty');
  });

  it('is navigable with the keyboard like a tree', async () => {
    const { source } = start();
    const element = await mount(source);
    const focused = () => (shadow(element).activeElement as HTMLElement | null)?.dataset.key;
    const keyOf = (id: string) => rowOf(element, id).item.dataset.key;

    // One tab stop: the selected actor (the root at first).
    expect(
      treeItems(element)
        .filter((li) => li.tabIndex === 0)
        .map((li) => li.dataset.key),
    ).toEqual([keyOf('harness')]);
    rowOf(element, 'harness').item.focus();
    await userEvent.keyboard('{ArrowDown}');
    await element.updateComplete;
    expect(focused()).toBe(keyOf('discovery'));
    expect(rowOf(element, 'discovery').item.getAttribute('aria-selected')).toBe('true');
    await userEvent.keyboard('{End}');
    await element.updateComplete;
    expect(focused()).toBe(keyOf('quota'));
    await userEvent.keyboard('{ArrowLeft}');
    await element.updateComplete;
    expect(focused()).toBe(keyOf('harness'));
    await userEvent.keyboard('{ArrowLeft}');
    await element.updateComplete;
    expect(rowOf(element, 'harness').item.getAttribute('aria-expanded')).toBe('false');
    expect(treeItems(element)).toHaveLength(1);
    await userEvent.keyboard('{ArrowRight}');
    await element.updateComplete;
    expect(rowOf(element, 'harness').item.getAttribute('aria-expanded')).toBe('true');
    expect(treeItems(element)).toHaveLength(3);
  });

  it('passes axe-core’s accessibility checks with a task tree, a selection and events', async () => {
    const { source, actor } = start();
    actor.send({ type: 'serve', id: 'serve-1', prompt: 'hello' });
    await vi.waitFor(() => expect(find(source, 'serve-1')?.status).toBe('done'));
    const element = await mount(source);
    rowOf(element, 'serve-1').item.querySelector<HTMLElement>('.row')?.click();
    await settle(element);

    const results = await axe.run(element);
    expect(results.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(' ')}`)).toEqual([]);
  });

  it('shows the Handoff client’s own tree without its secrets, and every actor stopped once the manager stops', async () => {
    const source = createInspectorSource();
    const handoff = await createHandoff({
      inspect: source.inspect,
      provider: createDemoProvider(),
      quota: { totalQuota: 1, usedQuota: 1 },
      connection: { token: 'access-token-s3cret' },
    });
    const element = await mount(source);

    expect(childIdsOf(element, 'handoff').sort()).toEqual(['connection', 'discovery', 'quota']);
    expect(rowOf(element, 'connection').state).toBe('disconnected');
    rowOf(element, 'quota').item.querySelector<HTMLElement>('.row')?.click();
    await settle(element);
    const context = JSON.parse(shadow(element).querySelector('[part="context"]')?.textContent ?? 'null');
    expect(context.quota).toMatchObject({ totalQuota: 1, usedQuota: 1, availableQuota: 0 });
    // The access token in the root's context is never shown.
    rowOf(element, 'handoff').item.querySelector<HTMLElement>('.row')?.click();
    await settle(element);
    const root = JSON.parse(shadow(element).querySelector('[part="context"]')?.textContent ?? 'null');
    expect(root.connectionOptions.token).toBe('[redacted]');
    expect(shadow(element).textContent).not.toContain('access-token-s3cret');

    handoff.stop();
    await settle(element);
    expect([...source.snapshot().actors.values()].filter((a) => a.status === 'active')).toEqual([]);
    expect(shadow(element).querySelector('.summary')?.textContent).toMatch(/0 running/);
    expect((handoff.actor as AnyActorRef).getSnapshot().status).toBe('stopped');
  });
});
