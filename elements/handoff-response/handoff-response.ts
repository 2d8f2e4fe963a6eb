import { consume } from '@lit/context';
import { html, LitElement, nothing, type PropertyValues } from 'lit';
import { property } from 'lit/decorators.js';
import type { HandoffActor } from '../../machines/handoff.machine.ts';
import { handoffActorContext } from '../context.ts';
import { ActorTreeController } from '../controllers/select.controller.ts';
import { define } from '../define.ts';
import { PHASE_TEXT, plural } from '../format.ts';
import { sharedStyles, surfaceStyles } from '../shared.styles.ts';
import { type TaskView, taskOf } from '../snapshots.ts';
import { responseStyles } from './handoff-response.styles.ts';

/**
 * @summary The answer to a prompt, as it streams: shown as text (never parsed as HTML), re-rendered
 * at most once per animation frame however fast chunks arrive. Says who answers (this peer's own
 * AI, or which peer, over a direct or relayed link), marks demo answers, and shows progress while
 * the task runs. Cancel (or Escape anywhere in the element) asks the client to cancel the task.
 * The text area is `aria-busy="true"` while the answer streams; the status line (a polite live
 * region) announces the task's phases, not its tokens.
 *
 * Shows the task `task-id` names, or (without it) the newest task of the client: the newest one
 * running, else the last one finished.
 *
 * @csspart base - The region.
 * @csspart heading - The "Response" heading.
 * @csspart route - Who answers: this peer, or which peer and how it is reached.
 * @csspart demo-badge - The Demo label (the answer comes from the demo provider, not an AI).
 * @csspart status - The task's phase; a polite live region.
 * @csspart progress - The progress bar while the task runs.
 * @csspart output - The answer text.
 * @csspart cancel - The Cancel button (while the task runs).
 * @csspart count - Characters received.
 *
 * @cssprop --handoff-response-min-height - Smallest height of the text area (6rem).
 * @cssprop --handoff-response-max-height - Height past which the text area scrolls (24rem).
 * @cssprop --handoff-response-font-family - Font of the answer text (inherited).
 */
export class HandoffResponse extends LitElement {
  static override styles = [sharedStyles, surfaceStyles, responseStyles];

  /** The client's root actor (`manager.actor`); provided by <handoff-panel> when inside one. */
  @consume({ context: handoffActorContext, subscribe: true })
  @property({ attribute: false })
  actor: HandoffActor | undefined;

  /** The task to show; unset follows the newest task. */
  @property({ attribute: 'task-id' })
  taskId: string | undefined;

  readonly #tree = new ActorTreeController(this, () => this.actor);
  #cancelHadFocus = false;

  constructor() {
    super();
    this.addEventListener('keydown', this.#keydown);
  }

  /** The task shown now (undefined: none yet). */
  get task(): TaskView | undefined {
    const snapshot = this.#tree.snapshot;
    return snapshot ? taskOf(snapshot, this.taskId) : undefined;
  }

  /** Asks the client to cancel the task shown, if it is still running. */
  cancel(): boolean {
    const task = this.task;
    if (!task?.busy || !this.actor) return false;
    this.actor.send({ type: 'user.cancel', taskId: task.taskId });
    return true;
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    super.willUpdate(changed);
    this.#cancelHadFocus = this.shadowRoot?.activeElement?.getAttribute('part') === 'cancel';
  }

  override render() {
    const task = this.task;
    const busy = task?.busy ?? false;
    return html`
      <section part="base" class="surface" aria-labelledby="heading">
        <div class="header">
          <h2 id="heading" part="heading">Response</h2>
          ${task ? html`<span part="route" class="route muted">${routeText(task)}</span>` : nothing}
          ${task?.demo ? html`<span part="demo-badge" class="badge demo">Demo</span>` : nothing}
        </div>
        <p part="status" class="status" role="status" data-phase=${task?.phase ?? 'none'}>
          ${task ? statusText(task) : 'No prompt sent yet.'}
        </p>
        ${busy ? html`<progress part="progress" aria-label="Receiving the response"></progress>` : nothing}
        <div
          part="output"
          class="output"
          role="region"
          aria-label="Response text"
          tabindex="0"
          aria-busy=${busy ? 'true' : 'false'}
        >${task?.text ?? ''}</div>
        <div class="actions">
          ${
            busy
              ? html`<button part="cancel" class="secondary" type="button" @click=${this.cancel}>Cancel</button>
                  <span class="muted">or press Escape</span>`
              : nothing
          }
          <span part="count" class="count muted">${plural(task?.text.length ?? 0, 'character')}</span>
        </div>
      </section>
    `;
  }

  protected override updated(changed: PropertyValues<this>): void {
    super.updated(changed);
    // The Cancel button goes when the task ends: keep keyboard focus in the element.
    if (this.#cancelHadFocus && !this.task?.busy) {
      this.renderRoot.querySelector<HTMLElement>('[part="output"]')?.focus();
    }
    this.#cancelHadFocus = false;
  }

  #keydown = (event: KeyboardEvent) => {
    if (event.key !== 'Escape' || event.defaultPrevented) return;
    if (this.cancel()) event.preventDefault();
  };
}

function routeText(task: TaskView): string {
  if (task.servedBy === 'local') return "Served by this peer's own AI (local)";
  if (!task.servedBy) return 'No peer took it';
  const via = task.transport === 'relayed' ? ', relayed' : task.transport === 'direct' ? ', direct' : '';
  const attempt = task.attempts.length > 1 ? `, attempt ${task.attempts.length}` : '';
  return `Served by ${task.servedBy}${via}${attempt}`;
}

function statusText(task: TaskView): string {
  switch (task.phase) {
    case 'queued':
      return `Queued (position ${task.queuePosition})`;
    case 'failed':
    case 'timedOut':
      return task.error ? `${PHASE_TEXT[task.phase]}: ${task.error}` : PHASE_TEXT[task.phase];
    default:
      return PHASE_TEXT[task.phase];
  }
}

define('handoff-response', HandoffResponse);

declare global {
  interface HTMLElementTagNameMap {
    'handoff-response': HandoffResponse;
  }
}
