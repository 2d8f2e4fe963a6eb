import { consume } from '@lit/context';
import { html, LitElement, nothing } from 'lit';
import { property } from 'lit/decorators.js';
import { type DesignState, designState } from '../../machines/design-state.ts';
import type { HandoffActor } from '../../machines/handoff.machine.ts';
import { handoffActorContext } from '../context.ts';
import { ActorTreeController } from '../controllers/select.controller.ts';
import { define } from '../define.ts';
import { plural, STATE_TEXT } from '../format.ts';
import { sharedStyles } from '../shared.styles.ts';
import { linksOf, peersOf } from '../snapshots.ts';
import { statusBarStyles } from './handoff-status-bar.styles.ts';

/** States in which something is under way: the indicator pulses (unless motion is reduced). */
const PULSING: ReadonlySet<DesignState> = new Set(['Signaling', 'Connecting', 'Discovering']);

/**
 * @summary The live connection state: the design's state name, its colour and a plain sentence,
 * with the number of known peers and open links. State changes (not every update) are announced
 * politely to screen readers. When the connection failed, a Retry button asks the client to retry.
 *
 * @csspart base - The bar.
 * @csspart indicator - The coloured dot; it pulses while signaling, discovering or connecting.
 * @csspart state - The design state's name (e.g. `P2PConnected`).
 * @csspart text - The state in words: a polite `role="status"` live region.
 * @csspart peers - Known peers and open links.
 * @csspart retry - The Retry button (only when the connection failed).
 *
 * @cssprop --handoff-state-disconnected - Colour of the Disconnected state.
 * @cssprop --handoff-state-signaling - Colour of the Signaling state.
 * @cssprop --handoff-state-connected - Colour of the Connected state.
 * @cssprop --handoff-state-discovering - Colour of the Discovering state.
 * @cssprop --handoff-state-peer-found - Colour of the PeerFound state.
 * @cssprop --handoff-state-connecting - Colour of the Connecting state.
 * @cssprop --handoff-state-p2p-connected - Colour of the P2PConnected state.
 * @cssprop --handoff-state-transferring - Colour of the Transferring state.
 * @cssprop --handoff-state-failed - Colour of the Failed state.
 */
export class HandoffStatusBar extends LitElement {
  static override styles = [sharedStyles, statusBarStyles];

  /** The client's root actor (`manager.actor`); provided by <handoff-panel> when inside one. */
  @consume({ context: handoffActorContext, subscribe: true })
  @property({ attribute: false })
  actor: HandoffActor | undefined;

  readonly #tree = new ActorTreeController(this, () => this.actor);

  /** The design state shown now (Disconnected without a client, or once it was stopped). */
  get state(): DesignState {
    const snapshot = this.#tree.snapshot;
    return snapshot?.status === 'active' ? designState(snapshot) : 'Disconnected';
  }

  override render() {
    const snapshot = this.#tree.snapshot;
    const state = this.state;
    const peers = snapshot ? peersOf(snapshot).length : 0;
    const links = snapshot ? linksOf(snapshot).filter((link) => link.transport !== 'none').length : 0;
    return html`
      <div part="base" class="bar" data-state=${state}>
        <span part="indicator" class="indicator ${PULSING.has(state) ? 'pulse' : ''}" aria-hidden="true"></span>
        <span part="state" class="state">${state}</span>
        <span part="text" class="text" role="status">${STATE_TEXT[state]}</span>
        <span part="peers" class="peers muted">
          ${plural(peers, 'peer')}${links > 0 ? html` · ${plural(links, 'open link')}` : nothing}
        </span>
        ${
          state === 'Failed'
            ? html`<button part="retry" type="button" @click=${this.#retry}>Retry</button>`
            : nothing
        }
      </div>
    `;
  }

  #retry = () => {
    this.actor?.send({ type: 'user.retry' });
  };
}

define('handoff-status-bar', HandoffStatusBar);

declare global {
  interface HTMLElementTagNameMap {
    'handoff-status-bar': HandoffStatusBar;
  }
}
