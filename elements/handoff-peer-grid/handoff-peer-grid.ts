import { consume } from '@lit/context';
import { html, LitElement, nothing } from 'lit';
import { property } from 'lit/decorators.js';
import { repeat } from 'lit/directives/repeat.js';
import { DEFAULT_REQUIREMENTS } from '../../machines/discovery.machine.ts';
import type { HandoffActor } from '../../machines/handoff.machine.ts';
import { handoffActorContext } from '../context.ts';
import { ActorTreeController } from '../controllers/select.controller.ts';
import { define } from '../define.ts';
import { ms, plural, quotaText, TRANSPORT_TEXT } from '../format.ts';
import { sharedStyles } from '../shared.styles.ts';
import { type PeerView, peersOf } from '../snapshots.ts';
import { peerGridStyles } from './handoff-peer-grid.styles.ts';

/**
 * @summary A capability card for every peer this client knows of: its models, its quota (available
 * / total), the round-trip time we measured, our trust in it (once known), the link to it (direct,
 * relayed or none), and a Demo label when its quota comes from the demo provider (not an AI).
 * Ranked peers come first, best first. A responsive grid: one column on narrow screens. "Find
 * peers" asks the client to discover again.
 *
 * @csspart base - The section.
 * @csspart heading - The "Peers" heading.
 * @csspart discover - The "Find peers" button (asks the client to discover peers again).
 * @csspart grid - The list of cards.
 * @csspart card - One peer's card (`data-link` is direct, relayed or none).
 * @csspart demo-badge - The Demo label.
 * @csspart empty - The text shown when no peer is known.
 *
 * @cssprop --handoff-card-min-width - Narrowest a card gets before the grid drops a column (13rem).
 */
export class HandoffPeerGrid extends LitElement {
  static override styles = [sharedStyles, peerGridStyles];

  /** The client's root actor (`manager.actor`); provided by <handoff-panel> when inside one. */
  @consume({ context: handoffActorContext, subscribe: true })
  @property({ attribute: false })
  actor: HandoffActor | undefined;

  readonly #tree = new ActorTreeController(this, () => this.actor);

  override render() {
    const snapshot = this.#tree.snapshot;
    const peers = snapshot ? peersOf(snapshot) : [];
    return html`
      <section part="base" aria-labelledby="heading">
        <div class="header">
          <h2 id="heading" part="heading">Peers</h2>
          <span class="muted count">${plural(peers.length, 'peer')}</span>
          <button part="discover" class="secondary" type="button" @click=${this.#discover}>Find peers</button>
        </div>
        ${
          peers.length === 0
            ? html`<p part="empty" class="empty muted">No peers known yet.</p>`
            : html`<ul part="grid" class="grid" role="list">
              ${repeat(
                peers,
                (peer) => peer.peerId,
                (peer, index) => this.#card(peer, index),
              )}
            </ul>`
        }
      </section>
    `;
  }

  /** Asks the client to discover peers again (with the default requirements). */
  #discover = () => {
    this.actor?.send({ type: 'user.discover', requirements: DEFAULT_REQUIREMENTS });
  };

  #card(peer: PeerView, index: number) {
    const { capabilities } = peer;
    const id = `peer-${index}`;
    const link = peer.link === 'none' && peer.linkConnecting ? 'connecting…' : TRANSPORT_TEXT[peer.link];
    return html`
      <li part="card" class="card" data-link=${peer.link} data-peer-id=${peer.peerId}>
        <div class="title">
          <h3 id=${id}>${peer.peerId}</h3>
          ${peer.demo ? html`<span part="demo-badge" class="badge demo">Demo</span>` : nothing}
        </div>
        <dl>
          <dt>Models</dt>
          <dd>${capabilities.hasAI && capabilities.models.length > 0 ? capabilities.models.join(', ') : 'No AI'}</dd>
          <dt>Quota</dt>
          <dd>${quotaText(capabilities.quota)}</dd>
          <dt>RTT</dt>
          <dd>${ms(peer.rttMs)}</dd>
          ${peer.trust === undefined ? nothing : html`<dt>Trust</dt><dd>${Math.round(peer.trust * 100)}%</dd>`}
          <dt>Link</dt>
          <dd>${link}</dd>
          ${peer.score === undefined ? nothing : html`<dt>Score</dt><dd>${Math.round(peer.score)}</dd>`}
        </dl>
      </li>
    `;
  }
}

define('handoff-peer-grid', HandoffPeerGrid);

declare global {
  interface HTMLElementTagNameMap {
    'handoff-peer-grid': HandoffPeerGrid;
  }
}
