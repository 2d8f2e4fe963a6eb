import { html, LitElement } from 'lit';
import { afterEach, describe, expect, it } from 'vitest';
import { type AnyActorRef, assign, createActor, enqueueActions, setup } from 'xstate';
import { ActorTreeController, SelectController } from '../../elements/controllers/select.controller.ts';
import { cleanUp, frames, mount } from '../support/element-harness.ts';

// ---------------------------------------------------------------- actors to observe

const counter = setup({
  types: {
    context: {} as { count: number; unrelated: number },
    events: {} as { type: 'inc' } | { type: 'touch' } | { type: 'explode' },
  },
}).createMachine({
  context: { count: 0, unrelated: 0 },
  on: {
    inc: { actions: assign({ count: ({ context }) => context.count + 1 }) },
    touch: { actions: assign({ unrelated: ({ context }) => context.unrelated + 1 }) },
    explode: {
      actions: () => {
        throw new Error('child exploded');
      },
    },
  },
});

/** A parent whose children come and go, like the client's links and tasks. */
const parent = setup({
  types: {
    context: {} as { next: number },
    events: {} as { type: 'add' } | { type: 'remove'; id: string } | { type: 'bump'; id: string },
  },
  actors: { counter },
}).createMachine({
  context: { next: 1 },
  on: {
    add: {
      actions: enqueueActions(({ context, enqueue }) => {
        enqueue.spawnChild('counter', { id: `child-${context.next}` });
        enqueue.assign({ next: context.next + 1 });
      }),
    },
    remove: { actions: enqueueActions(({ event, enqueue }) => enqueue.stopChild(event.id)) },
    bump: { actions: enqueueActions(({ event, enqueue }) => enqueue.sendTo(event.id, { type: 'inc' })) },
  },
});

// ---------------------------------------------------------------- hosts

class SelectProbe extends LitElement {
  actor: AnyActorRef | undefined;
  renders = 0;
  readonly count = new SelectController(this, {
    actor: () => this.actor,
    select: (snapshot: { context: { count: number } }) => snapshot.context.count,
  });
  override render() {
    this.renders++;
    return html`<span>${this.count.value ?? 'none'}</span>`;
  }
}
customElements.define('select-probe', SelectProbe);

class TreeProbe extends LitElement {
  actor: AnyActorRef | undefined;
  renders = 0;
  readonly tree = new ActorTreeController(this, () => this.actor);
  override render() {
    this.renders++;
    const children = (this.tree.snapshot?.children ?? {}) as Record<string, AnyActorRef>;
    return html`${Object.entries(children)
      .map(([id, child]) => `${id}=${child.getSnapshot().context.count}`)
      .join(' ')}`;
  }
}
customElements.define('tree-probe', TreeProbe);

const shown = (element: LitElement) => (element.shadowRoot?.textContent ?? '').trim();

afterEach(() => cleanUp());

// ---------------------------------------------------------------- SelectController

describe('SelectController', () => {
  it('shows the selected value and re-renders when it changes', async () => {
    const actor = createActor(counter).start();
    const probe = new SelectProbe();
    probe.actor = actor;
    await mount(probe);
    expect(shown(probe)).toBe('0');
    actor.send({ type: 'inc' });
    await frames();
    expect(shown(probe)).toBe('1');
  });

  it('does not re-render when only an unselected part of the snapshot changes', async () => {
    const actor = createActor(counter).start();
    const probe = new SelectProbe();
    probe.actor = actor;
    await mount(probe);
    const before = probe.renders;
    actor.send({ type: 'touch' });
    actor.send({ type: 'touch' });
    await frames(3);
    expect(probe.renders).toBe(before);
  });

  it('renders a synchronous burst of 500 changes once, after it', async () => {
    const actor = createActor(counter).start();
    const probe = new SelectProbe();
    probe.actor = actor;
    await mount(probe);
    const before = probe.renders;
    for (let i = 0; i < 500; i++) actor.send({ type: 'inc' });
    expect(probe.renders).toBe(before); // nothing rendered synchronously
    await frames(1);
    await probe.updateComplete;
    expect(probe.renders).toBe(before + 1);
    expect(shown(probe)).toBe('500');
  });

  it('renders at most once per animation frame while changes arrive in separate tasks', async () => {
    const actor = createActor(counter).start();
    const probe = new SelectProbe();
    probe.actor = actor;
    await mount(probe);
    const before = probe.renders;
    let painted = 0;
    let counting = true;
    const countFrames = () => {
      painted++;
      if (counting) requestAnimationFrame(countFrames);
    };
    requestAnimationFrame(countFrames);
    // Like chunks off a data channel: each change in a task of its own, many per frame.
    await new Promise<void>((resolve) => {
      let left = 200;
      for (let i = 0; i < 200; i++) {
        setTimeout(() => {
          actor.send({ type: 'inc' });
          if (--left === 0) resolve();
        }, 0);
      }
    });
    await frames(1);
    await probe.updateComplete;
    counting = false;
    expect(shown(probe)).toBe('200');
    expect(probe.renders - before).toBeLessThanOrEqual(painted + 1);
    expect(probe.renders - before).toBeLessThan(50);
  });

  it('resubscribes and resyncs when the element is removed and attached again', async () => {
    const actor = createActor(counter).start();
    const probe = new SelectProbe();
    probe.actor = actor;
    await mount(probe);
    probe.remove();
    const whileDetached = probe.renders;
    actor.send({ type: 'inc' });
    actor.send({ type: 'inc' });
    await frames();
    expect(probe.renders).toBe(whileDetached); // a detached element listens to nothing
    document.body.append(probe);
    await probe.updateComplete;
    expect(shown(probe)).toBe('2'); // what happened while detached, at once
    actor.send({ type: 'inc' });
    await frames();
    expect(shown(probe)).toBe('3'); // and it keeps following
  });

  it('follows a different actor when the property changes', async () => {
    const first = createActor(counter).start();
    const second = createActor(counter).start();
    second.send({ type: 'inc' });
    const probe = new SelectProbe();
    probe.actor = first;
    await mount(probe);
    probe.actor = second;
    probe.requestUpdate();
    await probe.updateComplete;
    expect(shown(probe)).toBe('1');
    first.send({ type: 'inc' });
    first.send({ type: 'inc' });
    second.send({ type: 'inc' });
    await frames();
    expect(shown(probe)).toBe('2');
  });
});

// ---------------------------------------------------------------- ActorTreeController

describe('ActorTreeController', () => {
  it('re-renders when children come and go and when a child changes', async () => {
    const root = createActor(parent).start();
    const probe = new TreeProbe();
    probe.actor = root;
    await mount(probe);
    expect(shown(probe)).toBe('');
    root.send({ type: 'add' });
    root.send({ type: 'add' });
    await frames();
    expect(shown(probe)).toBe('child-1=0 child-2=0');
    root.send({ type: 'bump', id: 'child-2' });
    await frames();
    expect(shown(probe)).toBe('child-1=0 child-2=1');
    root.send({ type: 'remove', id: 'child-1' });
    await frames();
    expect(shown(probe)).toBe('child-2=1');
  });

  it('hears a child added while it was detached once attached again', async () => {
    const root = createActor(parent).start();
    const probe = new TreeProbe();
    probe.actor = root;
    await mount(probe);
    probe.remove();
    root.send({ type: 'add' });
    document.body.append(probe);
    await probe.updateComplete;
    expect(shown(probe)).toBe('child-1=0');
    root.send({ type: 'bump', id: 'child-1' });
    await frames();
    expect(shown(probe)).toBe('child-1=1');
  });

  it('leaves a failing child to its parent instead of raising an unhandled error', async () => {
    const errors: unknown[] = [];
    const onError = (event: ErrorEvent) => {
      errors.push(event.error);
      event.preventDefault();
    };
    window.addEventListener('error', onError);
    try {
      const root = createActor(parent).start();
      const probe = new TreeProbe();
      probe.actor = root;
      await mount(probe);
      root.send({ type: 'add' });
      await frames();
      const child = (root.getSnapshot().children as Record<string, AnyActorRef>)['child-1'];
      child?.send({ type: 'explode' });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(child?.getSnapshot().status).toBe('error');
      expect(errors).toEqual([]);
    } finally {
      window.removeEventListener('error', onError);
    }
  });
});
