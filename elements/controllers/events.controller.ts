import type { ReactiveController, ReactiveControllerHost } from 'lit';
import type { AnyActorRef } from 'xstate';
import { type DesignState, designState } from '../../machines/design-state.ts';
import type { HandoffActor } from '../../machines/handoff.machine.ts';
import type { DiscoveredPeer } from '../../protocol/index.ts';
import {
  HandoffConnectionChangeEvent,
  HandoffPeerDiscoveredEvent,
  HandoffTaskCompleteEvent,
  HandoffTaskErrorEvent,
} from '../events.ts';
import { observeTree } from './select.controller.ts';

/**
 * The one place where the client's machine emits become DOM events on the host:
 * - the design state derived from the tree → `handoff-connection-change` (every change, unbatched);
 * - the root's `handoff.taskDone` → `handoff-task-complete` or `handoff-task-error`;
 * - discovery's `discovery.peerFound` → `handoff-peer-discovered`.
 * Observes while the host is attached; the actor may change (a new manager) at any update.
 */
export class HandoffEventsController implements ReactiveController {
  readonly #host: ReactiveControllerHost & EventTarget;
  readonly #root: () => HandoffActor | undefined;
  #observed: HandoffActor | undefined;
  #subscriptions: { unsubscribe(): void }[] = [];
  #connected = false;
  /** The last state announced for the observed actor (kept across a detach: no repeats). */
  #state: DesignState | undefined;

  constructor(host: ReactiveControllerHost & EventTarget, root: () => HandoffActor | undefined) {
    this.#host = host;
    this.#root = root;
    host.addController(this);
  }

  hostConnected(): void {
    this.#connected = true;
    this.#observe(this.#root());
  }

  hostUpdate(): void {
    if (!this.#connected) return;
    const root = this.#root();
    if (root !== this.#observed) this.#observe(root);
  }

  hostDisconnected(): void {
    this.#connected = false;
    this.#stop();
  }

  #stop(): void {
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
    this.#subscriptions = [];
  }

  #observe(root: HandoffActor | undefined): void {
    this.#stop();
    if (root !== this.#observed) this.#state = undefined;
    this.#observed = root;
    if (!root) return;
    const host = this.#host;
    const checkState = () => {
      const state = designState(root.getSnapshot());
      if (state === this.#state) return;
      const previous = this.#state;
      this.#state = state;
      host.dispatchEvent(new HandoffConnectionChangeEvent({ state, previous }));
    };
    this.#subscriptions.push(observeTree(root, checkState));
    this.#subscriptions.push(
      root.on('handoff.taskDone', ({ output }) => {
        if (output.status === 'completed') {
          host.dispatchEvent(new HandoffTaskCompleteEvent({ taskId: output.taskId, output }));
        } else {
          host.dispatchEvent(
            new HandoffTaskErrorEvent({
              taskId: output.taskId,
              output,
              status: output.status,
              message: output.error?.message ?? output.status,
            }),
          );
        }
      }),
    );
    const discovery = (root.getSnapshot().children as Record<string, AnyActorRef | undefined>).discovery;
    if (discovery) {
      this.#subscriptions.push(
        discovery.on('discovery.peerFound', (event: { peer: DiscoveredPeer }) =>
          host.dispatchEvent(new HandoffPeerDiscoveredEvent({ peer: event.peer })),
        ),
      );
    }
    checkState();
  }
}
