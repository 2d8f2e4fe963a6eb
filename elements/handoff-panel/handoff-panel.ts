import { ContextProvider } from '@lit/context';
import { html, LitElement, type PropertyValues } from 'lit';
import { property } from 'lit/decorators.js';
import type { AnyActorRef } from 'xstate';
import { createHandoff, type Handoff } from '../../machines/create-handoff.ts';
import type { HandoffActor } from '../../machines/handoff.machine.ts';
import { handoffActorContext, handoffManagerContext } from '../context.ts';
import { HandoffEventsController } from '../controllers/events.controller.ts';
import { ManagerController } from '../controllers/manager.controller.ts';
import { define } from '../define.ts';
import '../handoff-delegation-form/handoff-delegation-form.ts';
import '../handoff-history/handoff-history.ts';
import '../handoff-network-quality/handoff-network-quality.ts';
import '../handoff-peer-grid/handoff-peer-grid.ts';
import '../handoff-quota-meter/handoff-quota-meter.ts';
import type { HandoffResponse } from '../handoff-response/handoff-response.ts';
import '../handoff-response/handoff-response.ts';
import '../handoff-status-bar/handoff-status-bar.ts';
import { sharedStyles } from '../shared.styles.ts';
import { panelStyles } from './handoff-panel.styles.ts';

/** `auto-connect` is on unless the attribute says "false". */
const onUnlessFalse = {
  fromAttribute: (value: string | null) => value !== 'false',
  toAttribute: (value: boolean) => (value ? '' : 'false'),
};

/**
 * @summary Handoff in one element: connection status, the prompt form, the streamed response,
 * this peer's quota, the known peers, network quality per link and the history of tasks.
 *
 * It works with a Handoff manager: set `panel.manager = await createHandoff({...})` (before or
 * after the panel is attached) and the panel uses that one, and never stops it. Without one, when
 * it is attached it creates its own with `createHandoff()` (a requester: browser WebSocket and
 * WebRTC, no AI of its own), and stops it when the panel is removed from the page for good. With
 * `signaling-url` set and `auto-connect` on (the default), a manager that is not connected yet is
 * connected to that URL, and then asks for peers; the panel does this once per manager (it does
 * not undo a later `disconnect()`), and a changed `signaling-url` does not move a manager that is
 * connected already (`disconnect()`, then `connect()`). The manager and its root actor are shared with the elements inside through
 * @lit/context. Escape anywhere in the panel cancels the task shown in the response.
 *
 * @fires handoff-connection-change - {HandoffConnectionChangeEvent} The design state changed.
 * @fires handoff-task-complete - {HandoffTaskCompleteEvent} A task finished with the whole answer.
 * @fires handoff-task-error - {HandoffTaskErrorEvent} A task failed, was cancelled or timed out.
 * @fires handoff-peer-discovered - {HandoffPeerDiscoveredEvent} Discovery found a new peer.
 * @fires handoff-delegate - {HandoffDelegateEvent} From the form, before a prompt is sent; cancelable.
 *
 * @csspart base - The panel's layout box.
 * @csspart status-bar - The <handoff-status-bar>.
 * @csspart delegation-form - The <handoff-delegation-form>.
 * @csspart response - The <handoff-response>.
 * @csspart quota-meter - The <handoff-quota-meter>.
 * @csspart peer-grid - The <handoff-peer-grid>.
 * @csspart network-quality - The <handoff-network-quality>.
 * @csspart history - The <handoff-history>.
 * @csspart status-text, status-state, status-indicator - Exported from the status bar.
 * @csspart prompt, submit, notice - Exported from the form (the textarea, Delegate, the notice).
 * @csspart output, cancel, response-status - Exported from the response.
 * @csspart peer-card, demo-badge - Exported from the peer grid (cards, Demo labels).
 *
 * @cssprop --handoff-gap - Space between the panel's sections (1rem).
 * @cssprop --handoff-color-background - Behind the sections (transparent).
 * @cssprop --handoff-color-surface - Background of sections and fields (#ffffff).
 * @cssprop --handoff-color-text - Text (#1f2328).
 * @cssprop --handoff-color-muted - Secondary text (#57606a).
 * @cssprop --handoff-color-border - Section borders (#d0d7de).
 * @cssprop --handoff-color-control-border - Field borders (#6e7781).
 * @cssprop --handoff-color-accent - Buttons and links (#0550ae).
 * @cssprop --handoff-color-on-accent - Text on the accent (#ffffff).
 * @cssprop --handoff-focus-ring - The focus outline (#0969da).
 * @cssprop --handoff-font-family - Font (system UI).
 * @cssprop --handoff-radius - Corner radius of fields and buttons.
 */
export class HandoffPanel extends LitElement {
  static override styles = [sharedStyles, panelStyles];

  /** The signaling server's WebSocket URL, e.g. `ws://127.0.0.1:8083/`. */
  @property({ attribute: 'signaling-url' })
  signalingUrl = '';

  /** Connect to `signaling-url` when attached (default). `auto-connect="false"` turns it off. */
  @property({ attribute: 'auto-connect', converter: onUnlessFalse })
  autoConnect = true;

  readonly #managers = new ManagerController(this, {
    create: () => createHandoff(),
    changed: (manager) => this.#managerChanged(manager),
  });
  readonly #managerContext = new ContextProvider(this, { context: handoffManagerContext });
  readonly #actorContext = new ContextProvider(this, { context: handoffActorContext });
  /** Managers this panel has connected (or found connected) on its own. */
  readonly #autoConnected = new WeakSet<Handoff>();

  constructor() {
    super();
    // Machine emits → handoff-* DOM events on the panel (the controller registers itself).
    new HandoffEventsController(this, () => this.actor);
    this.addEventListener('keydown', this.#keydown);
  }

  /**
   * The Handoff manager the panel works with. Set it to use your own (the panel never stops a
   * manager it was given); read it to reach the one the panel created.
   */
  get manager(): Handoff | undefined {
    return this.#managers.current;
  }

  set manager(manager: Handoff | undefined) {
    this.#managers.adopt(manager);
  }

  /** The manager's root actor (what every part renders from). */
  get actor(): HandoffActor | undefined {
    return this.#managers.current?.actor;
  }

  /**
   * Connects to `url` (default: `signaling-url`), creating a manager first if there is none.
   * Resolves with this peer's id once registered.
   */
  async connect(url: string = this.signalingUrl): Promise<string> {
    if (!url) throw new Error('handoff-panel: no signaling URL');
    const manager = await this.#managers.ensure();
    return manager.connect(url);
  }

  /** Leaves the signaling server (the manager keeps running; `connect()` comes back). */
  disconnect(): void {
    this.manager?.disconnect();
  }

  override connectedCallback(): void {
    super.connectedCallback();
    // After the current task: a page that sets `manager` right after attaching is not raced.
    queueMicrotask(() => this.#autoConnect());
  }

  protected override updated(changed: PropertyValues<this>): void {
    super.updated(changed);
    if (changed.has('signalingUrl') || changed.has('autoConnect')) this.#autoConnect();
  }

  override render() {
    return html`
      <div part="base" class="panel">
        <handoff-status-bar
          part="status-bar"
          exportparts="text: status-text, state: status-state, indicator: status-indicator"
        ></handoff-status-bar>
        <div class="layout">
          <div class="column">
            <handoff-delegation-form
              part="delegation-form"
              exportparts="prompt, submit, notice"
            ></handoff-delegation-form>
            <handoff-response
              part="response"
              exportparts="output, cancel, status: response-status"
            ></handoff-response>
          </div>
          <div class="column">
            <handoff-quota-meter part="quota-meter"></handoff-quota-meter>
            <handoff-peer-grid part="peer-grid" exportparts="card: peer-card, demo-badge"></handoff-peer-grid>
            <handoff-network-quality part="network-quality"></handoff-network-quality>
          </div>
        </div>
        <handoff-history part="history"></handoff-history>
      </div>
    `;
  }

  #managerChanged(manager: Handoff | undefined): void {
    this.#managerContext.setValue(manager);
    this.#actorContext.setValue(manager?.actor);
    this.requestUpdate();
    if (manager) this.#autoConnect();
  }

  /**
   * With auto-connect on, connects the manager (creating one if needed) unless it is connected
   * already. Once per manager: one the page (or the user) disconnected later stays disconnected,
   * even when the panel is moved and attached again.
   */
  async #autoConnect(): Promise<void> {
    if (!this.isConnected || !this.autoConnect || !this.signalingUrl) return;
    let manager: Handoff;
    try {
      manager = await this.#managers.ensure();
    } catch {
      return; // removed before it was ready
    }
    if (manager !== this.manager || !this.isConnected || this.#autoConnected.has(manager)) return;
    this.#autoConnected.add(manager);
    const connection = (manager.actor.getSnapshot().children as Record<string, AnyActorRef | undefined>)
      .connection;
    if (connection?.getSnapshot().value !== 'disconnected') return;
    // Connected, it looks for peers at once. Failures show in the status bar (and as
    // handoff-connection-change events); there is no one to throw them to here.
    manager
      .connect(this.signalingUrl)
      .then(() => (manager === this.manager ? manager.discoverPeers() : undefined))
      .catch(() => {});
  }

  #keydown = (event: KeyboardEvent) => {
    if (event.key !== 'Escape' || event.defaultPrevented) return;
    const response = this.renderRoot.querySelector<HandoffResponse>('handoff-response');
    if (response?.cancel()) event.preventDefault();
  };
}

define('handoff-panel', HandoffPanel);

declare global {
  interface HTMLElementTagNameMap {
    'handoff-panel': HandoffPanel;
  }
}
