import { consume } from '@lit/context';
import { html, LitElement, nothing } from 'lit';
import { property } from 'lit/decorators.js';
import type { AnyActorRef } from 'xstate';
import type { HandoffActor } from '../../machines/handoff.machine.ts';
import type { QuotaStatus } from '../../protocol/index.ts';
import { handoffActorContext } from '../context.ts';
import { SelectController } from '../controllers/select.controller.ts';
import { define } from '../define.ts';
import { localTime } from '../format.ts';
import { sharedStyles, surfaceStyles } from '../shared.styles.ts';
import { quotaMeterStyles } from './handoff-quota-meter.styles.ts';

/**
 * @summary This peer's own AI quota: used / total on a native `<meter>`, what is left, and when it
 * resets (local time). "Unmetered" when the client runs no quota monitor. A Demo label marks quota
 * of the demo provider.
 *
 * @csspart base - The section.
 * @csspart heading - The "AI quota" heading.
 * @csspart meter - The `<meter>` (used out of total).
 * @csspart value - "used / total used · N left", or "Unmetered".
 * @csspart reset - When the quota resets.
 * @csspart demo-badge - The Demo label.
 *
 * @cssprop --handoff-meter-height - Height of the meter (1rem).
 */
export class HandoffQuotaMeter extends LitElement {
  static override styles = [sharedStyles, surfaceStyles, quotaMeterStyles];

  /** The client's root actor (`manager.actor`); provided by <handoff-panel> when inside one. */
  @consume({ context: handoffActorContext, subscribe: true })
  @property({ attribute: false })
  actor: HandoffActor | undefined;

  /** The quota monitor is the root's `quota` child (spawned at start when the client has a quota). */
  readonly #quota = new SelectController(this, {
    actor: () => (this.actor?.getSnapshot().children as Record<string, AnyActorRef | undefined>)?.quota,
    select: (snapshot: { context: { quota: QuotaStatus } }) => snapshot.context.quota,
  });

  override render() {
    const quota = this.#quota.value;
    return html`
      <section part="base" class="base surface" aria-labelledby="heading">
        <div class="header">
          <h2 id="heading" part="heading">AI quota</h2>
          ${quota?.provider === 'demo' ? html`<span part="demo-badge" class="badge demo">Demo</span>` : nothing}
        </div>
        ${quota ? this.#metered(quota) : html`<p part="value">Unmetered</p>`}
      </section>
    `;
  }

  #metered(quota: QuotaStatus) {
    const max = Math.max(quota.totalQuota, 1);
    return html`
      <div class="row">
        <label for="meter">Used</label>
        <meter
          id="meter"
          part="meter"
          min="0"
          max=${max}
          .value=${Math.min(quota.usedQuota, max)}
          low=${max * 0.7}
          high=${max * 0.9}
          optimum="0"
        >
          ${quota.usedQuota} of ${quota.totalQuota}
        </meter>
      </div>
      <p part="value">
        <strong>${quota.usedQuota} / ${quota.totalQuota}</strong> used · ${quota.availableQuota} left
      </p>
      <p part="reset" class="muted">
        Resets at <time datetime=${new Date(quota.resetTime).toISOString()}>${localTime(quota.resetTime)}</time>
      </p>
    `;
  }
}

define('handoff-quota-meter', HandoffQuotaMeter);

declare global {
  interface HTMLElementTagNameMap {
    'handoff-quota-meter': HandoffQuotaMeter;
  }
}
