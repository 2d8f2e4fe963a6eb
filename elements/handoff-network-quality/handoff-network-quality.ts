import { consume } from '@lit/context';
import { html, LitElement } from 'lit';
import { property } from 'lit/decorators.js';
import { repeat } from 'lit/directives/repeat.js';
import type { HandoffActor } from '../../machines/handoff.machine.ts';
import { handoffActorContext } from '../context.ts';
import { ActorTreeController } from '../controllers/select.controller.ts';
import { define } from '../define.ts';
import { ms, rate, TRANSPORT_TEXT } from '../format.ts';
import { sharedStyles, surfaceStyles } from '../shared.styles.ts';
import { type LinkView, linksOf } from '../snapshots.ts';
import { networkQualityStyles } from './handoff-network-quality.styles.ts';
import { sparkline } from './sparkline.ts';

/** The charts' coordinate space (the viewBox below); CSS sizes them. */
const WIDTH = 160;
const HEIGHT = 40;

/**
 * @summary Network quality per peer link over time: round-trip time and throughput (sent and
 * received), each a small inline SVG sparkline from the link's samples, with a text alternative
 * (now, lowest and highest over the period shown) as the chart's caption.
 *
 * @csspart base - The section.
 * @csspart heading - The "Network quality" heading.
 * @csspart link - One link's card (`data-transport` is direct, relayed or none).
 * @csspart chart - A chart (figure with its caption).
 * @csspart empty - The text shown when no link is open.
 *
 * @cssprop --handoff-chart-rtt - Colour of the RTT line.
 * @cssprop --handoff-chart-sent - Colour of the bytes-sent line.
 * @cssprop --handoff-chart-received - Colour of the bytes-received line (dashed).
 * @cssprop --handoff-chart-width - Widest a chart gets (16rem).
 * @cssprop --handoff-chart-height - Height of a chart (2.5rem).
 * @cssprop --handoff-chart-card-min-width - Narrowest a link card gets before the grid drops a column.
 */
export class HandoffNetworkQuality extends LitElement {
  static override styles = [sharedStyles, surfaceStyles, networkQualityStyles];

  /** The client's root actor (`manager.actor`); provided by <handoff-panel> when inside one. */
  @consume({ context: handoffActorContext, subscribe: true })
  @property({ attribute: false })
  actor: HandoffActor | undefined;

  readonly #tree = new ActorTreeController(this, () => this.actor);

  override render() {
    const snapshot = this.#tree.snapshot;
    const links = snapshot ? linksOf(snapshot) : [];
    return html`
      <section part="base" class="surface" aria-labelledby="heading">
        <h2 id="heading" part="heading">Network quality</h2>
        ${
          links.length === 0
            ? html`<p part="empty" class="muted">No peer links open.</p>`
            : html`<ul class="links" role="list">
              ${repeat(
                links,
                (link) => link.peerId,
                (link, index) => this.#link(link, index),
              )}
            </ul>`
        }
      </section>
    `;
  }

  #link(link: LinkView, index: number) {
    const samples = link.samples;
    const rtts = samples.map((sample) => sample.rttMs);
    const sent = samples.map((sample) => sample.sentBytesPerSecond);
    const received = samples.map((sample) => sample.receivedBytesPerSecond);
    const seconds =
      samples.length > 1 ? Math.round(((samples.at(-1)?.at ?? 0) - (samples[0]?.at ?? 0)) / 1000) : 0;
    const period = samples.length === 0 ? 'no samples yet' : `over ${seconds} s (${samples.length} samples)`;
    const definedRtts = rtts.filter((value): value is number => value !== undefined);
    const rttText =
      definedRtts.length === 0
        ? `Round-trip time: ${ms(link.rttMs)}, ${period}.`
        : `Round-trip time: now ${ms(link.rttMs ?? definedRtts.at(-1))}, lowest ${ms(Math.min(...definedRtts))}, highest ${ms(Math.max(...definedRtts))}, ${period}.`;
    const throughputText =
      samples.length === 0
        ? `Throughput: ${period}.`
        : `Throughput: now ${rate(sent.at(-1) ?? 0)} sent, ${rate(received.at(-1) ?? 0)} received; highest ${rate(Math.max(...sent))} sent, ${rate(Math.max(...received))} received, ${period}.`;
    const status =
      link.transport === 'none' && link.connecting ? 'connecting…' : TRANSPORT_TEXT[link.transport];
    return html`
      <li part="link" class="link" data-transport=${link.transport} data-peer-id=${link.peerId}>
        <div class="title">
          <h3>${link.peerId}</h3>
          <span class="badge">${status}</span>
        </div>
        <figure part="chart">
          <svg role="img" aria-labelledby=${`rtt-${index}`} viewBox="0 0 160 40" preserveAspectRatio="none">
            ${sparkline([{ values: rtts, className: 'rtt' }], WIDTH, HEIGHT)}
          </svg>
          <figcaption id=${`rtt-${index}`}>${rttText}</figcaption>
        </figure>
        <figure part="chart">
          <svg role="img" aria-labelledby=${`throughput-${index}`} viewBox="0 0 160 40" preserveAspectRatio="none">
            ${sparkline(
              [
                { values: sent, className: 'sent' },
                { values: received, className: 'received' },
              ],
              WIDTH,
              HEIGHT,
            )}
          </svg>
          <figcaption id=${`throughput-${index}`}>
            ${throughputText}
            <span class="muted">(<span class="legend-sent">sent</span>, <span class="legend-received">received</span>)</span>
          </figcaption>
        </figure>
      </li>
    `;
  }
}

define('handoff-network-quality', HandoffNetworkQuality);

declare global {
  interface HTMLElementTagNameMap {
    'handoff-network-quality': HandoffNetworkQuality;
  }
}
