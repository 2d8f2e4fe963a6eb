import type { ReactiveController, ReactiveControllerHost } from 'lit';
import type { AnyActorRef, SnapshotFrom } from 'xstate';

/*
 * Controllers that let an element observe actors it does not own. They never start or stop an
 * actor. Both subscribe in `hostConnected`, unsubscribe in `hostDisconnected`, and resync (read the
 * current snapshot and request an update) when the element is attached again: a detached element
 * hears nothing, so it must not trust what it saw before (RECIPES §9).
 *
 * Every observer passes an error listener. XState reports an actor's error as unhandled when any of
 * its observers lacks one, so a plain `actor.select(fn).subscribe(next)` would turn a child failure
 * its parent handles (the root reaps failed links and tasks) into a global error. That is why
 * selection is done here over `subscribe` rather than with `actor.select()`.
 */

interface Unsubscribable {
  unsubscribe(): void;
}

/** An actor that can be observed: anything with `getSnapshot` and XState's `subscribe`. */
type Observable = Pick<AnyActorRef, 'getSnapshot' | 'subscribe'>;

/**
 * Runs `callback` once on the next animation frame, however often it is scheduled before then, so a
 * fast stream (hundreds of chunks a second) costs one render per frame. A timer backs the frame up:
 * browsers pause animation frames in hidden tabs, and the view should still catch up there.
 */
export class FrameBatcher {
  #frame: number | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #callback: () => void;
  readonly #backstopMs: number;

  constructor(callback: () => void, backstopMs = 250) {
    this.#callback = callback;
    this.#backstopMs = backstopMs;
  }

  get pending(): boolean {
    return this.#frame !== undefined || this.#timer !== undefined;
  }

  schedule(): void {
    if (this.pending) return;
    this.#frame = requestAnimationFrame(this.#run);
    this.#timer = setTimeout(this.#run, this.#backstopMs);
  }

  cancel(): void {
    if (this.#frame !== undefined) cancelAnimationFrame(this.#frame);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#frame = undefined;
    this.#timer = undefined;
  }

  readonly #run = (): void => {
    this.cancel();
    this.#callback();
  };
}

/**
 * Observes an actor and the current set of its children: `onChange` runs when the actor's snapshot
 * changes or any child's does. Children come and go (peer links, tasks), so the set is re-read on
 * every change of the actor and each child is subscribed to while it is there.
 */
export function observeTree(root: Observable, onChange: () => void): Unsubscribable {
  const children = new Map<AnyActorRef, Unsubscribable>();
  const observer = { next: onChange, error: onChange, complete: onChange };
  const syncChildren = () => {
    const current = new Set(
      Object.values(
        (root.getSnapshot() as { children?: Record<string, AnyActorRef | undefined> }).children ?? {},
      ),
    );
    for (const [child, subscription] of children) {
      if (current.has(child)) continue;
      subscription.unsubscribe();
      children.delete(child);
    }
    for (const child of current) {
      if (child && !children.has(child)) children.set(child, child.subscribe(observer));
    }
  };
  syncChildren();
  const subscription = root.subscribe({
    next: () => {
      syncChildren();
      onChange();
    },
    error: onChange,
    complete: onChange,
  });
  return {
    unsubscribe() {
      subscription.unsubscribe();
      for (const child of children.values()) child.unsubscribe();
      children.clear();
    },
  };
}

export interface SelectOptions<TActor extends AnyActorRef, T> {
  /**
   * The actor to observe. Read again before every update of the host, so it may change (a property,
   * or a value from @lit/context); undefined observes nothing.
   */
  actor: () => TActor | undefined;
  /** What the host renders from the actor's snapshot. */
  select: (snapshot: SnapshotFrom<TActor>) => T;
  /** When two selections are the same (default `Object.is`): no re-render. */
  equal?: (a: T, b: T) => boolean;
}

/**
 * Re-renders the host when `select(snapshot)` of an actor changes, at most once per animation frame.
 * `value` is the latest selection (undefined while there is no actor).
 *
 * ```ts
 * #quota = new SelectController(this, {
 *   actor: () => this.actor?.getSnapshot().children.quota,
 *   select: (snapshot) => snapshot.context.quota,
 * });
 * render() { return html`${this.#quota.value?.availableQuota}`; }
 * ```
 */
export class SelectController<TActor extends AnyActorRef, T> implements ReactiveController {
  value: T | undefined;
  readonly #host: ReactiveControllerHost;
  readonly #options: SelectOptions<TActor, T>;
  readonly #frame: FrameBatcher;
  #observed: TActor | undefined;
  #subscription: Unsubscribable | undefined;
  #connected = false;

  constructor(host: ReactiveControllerHost, options: SelectOptions<TActor, T>) {
    this.#host = host;
    this.#options = options;
    this.#frame = new FrameBatcher(() => host.requestUpdate());
    host.addController(this);
  }

  /** The actor observed now. */
  get actor(): TActor | undefined {
    return this.#observed;
  }

  hostConnected(): void {
    this.#connected = true;
    this.#observe(this.#options.actor());
    this.#host.requestUpdate();
  }

  hostUpdate(): void {
    if (!this.#connected) return;
    const actor = this.#options.actor();
    if (actor !== this.#observed) this.#observe(actor);
  }

  hostDisconnected(): void {
    this.#connected = false;
    this.#subscription?.unsubscribe();
    this.#subscription = undefined;
    this.#observed = undefined;
    this.#frame.cancel();
  }

  #observe(actor: TActor | undefined): void {
    this.#subscription?.unsubscribe();
    this.#subscription = undefined;
    this.#observed = actor;
    if (!actor) {
      this.value = undefined;
      return;
    }
    const { select, equal = Object.is } = this.#options;
    this.value = select(actor.getSnapshot());
    const changed = () => {
      const next = select(actor.getSnapshot());
      if (equal(this.value as T, next)) return;
      this.value = next;
      this.#frame.schedule();
    };
    this.#subscription = actor.subscribe({ next: changed, error: changed, complete: changed });
  }
}

/**
 * Re-renders the host, at most once per animation frame, when a root actor's snapshot changes or
 * any of its children's does (children are dynamic: links and tasks come and go). The host reads
 * what it needs from `snapshot` when it renders.
 */
export class ActorTreeController<TActor extends AnyActorRef> implements ReactiveController {
  readonly #host: ReactiveControllerHost;
  readonly #root: () => TActor | undefined;
  readonly #frame: FrameBatcher;
  #observed: TActor | undefined;
  #subscription: Unsubscribable | undefined;
  #connected = false;

  constructor(host: ReactiveControllerHost, root: () => TActor | undefined) {
    this.#host = host;
    this.#root = root;
    this.#frame = new FrameBatcher(() => host.requestUpdate());
    host.addController(this);
  }

  /** The observed root actor's current snapshot. */
  get snapshot(): SnapshotFrom<TActor> | undefined {
    return this.#observed?.getSnapshot();
  }

  get actor(): TActor | undefined {
    return this.#observed;
  }

  hostConnected(): void {
    this.#connected = true;
    this.#observe(this.#root());
    this.#host.requestUpdate();
  }

  hostUpdate(): void {
    if (!this.#connected) return;
    const root = this.#root();
    if (root !== this.#observed) this.#observe(root);
  }

  hostDisconnected(): void {
    this.#connected = false;
    this.#subscription?.unsubscribe();
    this.#subscription = undefined;
    this.#observed = undefined;
    this.#frame.cancel();
  }

  #observe(root: TActor | undefined): void {
    this.#subscription?.unsubscribe();
    this.#observed = root;
    this.#subscription = root ? observeTree(root, () => this.#frame.schedule()) : undefined;
  }
}
