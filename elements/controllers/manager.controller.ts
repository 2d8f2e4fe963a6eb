import type { ReactiveController, ReactiveControllerHost } from 'lit';
import type { Handoff } from '../../machines/create-handoff.ts';

/**
 * Holds the Handoff manager an element works with: one the page gives it (`adopt`), or one it creates
 * itself when the page gave none (`ensure`). It owns only the one it created: that one is stopped
 * when the host is really removed (still detached a microtask after `hostDisconnected`, so a DOM
 * move does not kill the session) or when the page hands over its own. A manager the page gave is
 * never stopped here.
 */
export class ManagerController implements ReactiveController {
  readonly #host: ReactiveControllerHost & { readonly isConnected: boolean };
  readonly #create: () => Promise<Handoff>;
  readonly #changed: (manager: Handoff | undefined) => void;
  #current: Handoff | undefined;
  #own: Handoff | undefined;
  #creating: Promise<Handoff> | undefined;
  /** Bumped on every change: a creation that finishes after one is dropped. */
  #generation = 0;

  constructor(
    host: ReactiveControllerHost & { readonly isConnected: boolean },
    options: { create: () => Promise<Handoff>; changed: (manager: Handoff | undefined) => void },
  ) {
    this.#host = host;
    this.#create = options.create;
    this.#changed = options.changed;
    host.addController(this);
  }

  get current(): Handoff | undefined {
    return this.#current;
  }

  /** True when the current manager was created here (and is stopped here). */
  get owned(): boolean {
    return this.#current !== undefined && this.#current === this.#own;
  }

  /** Uses the page's manager (undefined: none); a manager created here makes way for it. */
  adopt(manager: Handoff | undefined): void {
    if (manager === this.#current) return;
    this.#generation++;
    this.#creating = undefined;
    if (this.#own && this.#own !== manager) this.#stopOwn();
    this.#current = manager;
    this.#changed(manager);
  }

  /** The current manager, or a new one created here if there is none. */
  async ensure(): Promise<Handoff> {
    if (this.#current) return this.#current;
    if (!this.#creating) {
      const generation = this.#generation;
      this.#creating = this.#create().then((manager) => {
        if (generation !== this.#generation || !this.#host.isConnected) {
          // The page handed over a manager meanwhile, or the host was removed: not needed.
          manager.stop();
          if (this.#current) return this.#current;
          throw new Error('the element was removed before its manager was ready');
        }
        this.#creating = undefined;
        this.#own = manager;
        this.#current = manager;
        this.#changed(manager);
        return manager;
      });
    }
    return this.#creating;
  }

  hostConnected(): void {}

  hostDisconnected(): void {
    if (!this.#own) return;
    queueMicrotask(() => {
      if (this.#host.isConnected || !this.#own) return;
      this.#generation++;
      const wasCurrent = this.#current === this.#own;
      this.#stopOwn();
      if (wasCurrent) {
        this.#current = undefined;
        this.#changed(undefined);
      }
    });
  }

  #stopOwn(): void {
    this.#own?.stop();
    this.#own = undefined;
  }
}
