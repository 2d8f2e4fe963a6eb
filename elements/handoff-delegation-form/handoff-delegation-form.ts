import { consume } from '@lit/context';
import { html, LitElement } from 'lit';
import { property, state } from 'lit/decorators.js';
import type { AnyActorRef } from 'xstate';
import type { Handoff } from '../../machines/create-handoff.ts';
import type { HandoffActor } from '../../machines/handoff.machine.ts';
import { MAX_PROMPT_LENGTH, MAX_TASK_TIMEOUT_MS } from '../../protocol/index.ts';
import { handoffActorContext, handoffManagerContext } from '../context.ts';
import { SelectController } from '../controllers/select.controller.ts';
import { define } from '../define.ts';
import { HandoffDelegateEvent } from '../events.ts';
import { sharedStyles, surfaceStyles } from '../shared.styles.ts';
import { peersOf } from '../snapshots.ts';
import { delegationFormStyles } from './handoff-delegation-form.styles.ts';

const DEFAULT_PRIORITY = 5;
const DEFAULT_TIMEOUT_S = 120;
const MAX_TIMEOUT_S = MAX_TASK_TIMEOUT_MS / 1000;

const clamp = (value: number, min: number, max: number, fallback: number) =>
  Number.isFinite(value) ? Math.min(max, Math.max(min, Math.round(value))) : fallback;

/**
 * @summary The form that sends a prompt: a Prompt field, the peer to send it to (Automatic lets the
 * route planner choose this peer's own AI or the best peer), priority and timeout. Submitting fires
 * a cancelable `handoff-delegate`; unless it is cancelled, the prompt goes to `manager.prompt()`
 * (automatic) or `manager.delegatePrompt()` (a chosen peer). When no route exists the planner's
 * reason is shown, and nothing has left this peer. Ctrl+Enter (⌘+Enter) in the prompt submits.
 *
 * @fires handoff-delegate - {HandoffDelegateEvent} Before a prompt is sent; cancelable.
 *
 * @csspart form - The form.
 * @csspart heading - The "Send a prompt" heading.
 * @csspart prompt - The prompt textarea.
 * @csspart target - The peer select.
 * @csspart priority - The priority input.
 * @csspart timeout - The timeout input (seconds).
 * @csspart submit - The Delegate button.
 * @csspart notice - Why nothing was sent (the route planner's reason); an alert.
 *
 * @cssprop --handoff-color-danger - Text colour of the notice.
 * @cssprop --handoff-color-danger-surface - Background of the notice.
 */
export class HandoffDelegationForm extends LitElement {
  static override styles = [sharedStyles, surfaceStyles, delegationFormStyles];

  /** The Handoff manager prompts go to; provided by <handoff-panel> when inside one. */
  @consume({ context: handoffManagerContext, subscribe: true })
  @property({ attribute: false })
  manager: Handoff | undefined;

  /** The client's root actor (for the list of peers); defaults to `manager.actor`. */
  @consume({ context: handoffActorContext, subscribe: true })
  @property({ attribute: false })
  actor: HandoffActor | undefined;

  /** Why the last prompt went nowhere (view state only). */
  @state() private notice = '';

  get #root(): HandoffActor | undefined {
    return this.actor ?? this.manager?.actor;
  }

  /** Re-render when the set of known peers changes (not on every capability update). */
  readonly #peers = new SelectController(this, {
    actor: () => (this.#root?.getSnapshot().children as Record<string, AnyActorRef | undefined>)?.discovery,
    select: (snapshot: { context: { known?: Record<string, unknown> } }) =>
      Object.keys(snapshot.context.known ?? {})
        .sort()
        .join('\n'),
  });

  override render() {
    void this.#peers.value;
    const root = this.#root?.getSnapshot();
    const peers = root ? peersOf(root).filter((peer) => peer.capabilities.hasAI) : [];
    return html`
      <form part="form" class="surface" aria-labelledby="heading" @submit=${this.#submit}>
        <h2 id="heading" part="heading">Send a prompt</h2>
        <div class="field">
          <label for="prompt">Prompt</label>
          <textarea
            id="prompt"
            name="prompt"
            part="prompt"
            required
            rows="4"
            maxlength=${MAX_PROMPT_LENGTH}
            aria-describedby="prompt-hint"
            @keydown=${this.#keydown}
          ></textarea>
          <span id="prompt-hint" class="hint muted">Ctrl+Enter sends it.</span>
        </div>
        <div class="options">
          <div class="field">
            <label for="target">Peer</label>
            <select id="target" name="target" part="target">
              <option value="">Automatic</option>
              ${peers.map(
                (peer) =>
                  html`<option value=${peer.peerId}>${peer.peerId}${peer.demo ? ' (demo)' : ''}</option>`,
              )}
            </select>
          </div>
          <div class="field">
            <label for="priority">Priority (0–10)</label>
            <input
              id="priority"
              name="priority"
              part="priority"
              type="number"
              inputmode="numeric"
              min="0"
              max="10"
              step="1"
              value=${DEFAULT_PRIORITY}
            />
          </div>
          <div class="field">
            <label for="timeout">Timeout (seconds)</label>
            <input
              id="timeout"
              name="timeout"
              part="timeout"
              type="number"
              inputmode="numeric"
              min="1"
              max=${MAX_TIMEOUT_S}
              step="1"
              value=${DEFAULT_TIMEOUT_S}
            />
          </div>
        </div>
        <div class="actions">
          <button type="submit" part="submit">Delegate</button>
        </div>
        <p part="notice" class="notice" role="alert">${this.notice}</p>
      </form>
    `;
  }

  /** Sends the prompt now, as a click on Delegate would (validation included). */
  submit(): void {
    this.renderRoot.querySelector('form')?.requestSubmit();
  }

  #keydown = (event: KeyboardEvent) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      this.submit();
    }
  };

  #submit = (event: SubmitEvent) => {
    event.preventDefault();
    const data = new FormData(event.currentTarget as HTMLFormElement);
    const prompt = String(data.get('prompt') ?? '');
    if (prompt.trim() === '') {
      this.notice = 'Write a prompt first.';
      return;
    }
    const target = String(data.get('target') ?? '') || undefined;
    const priority = clamp(Number(data.get('priority')), 0, 10, DEFAULT_PRIORITY);
    const timeoutMs = clamp(Number(data.get('timeout')), 1, MAX_TIMEOUT_S, DEFAULT_TIMEOUT_S) * 1000;
    const request = new HandoffDelegateEvent({ prompt, targetPeerId: target, priority, timeoutMs });
    if (!this.dispatchEvent(request)) return;
    const manager = this.manager;
    if (!manager) {
      this.notice = 'Not ready yet: there is no Handoff client to send it with.';
      return;
    }
    if (target) {
      manager.delegatePrompt(prompt, target, { priority, timeoutMs });
      this.notice = '';
      return;
    }
    const { plan } = manager.prompt(prompt, { priority, timeoutMs });
    this.notice = plan?.route === 'none' ? `Not sent: ${plan.reason}.` : '';
  };
}

define('handoff-delegation-form', HandoffDelegationForm);

declare global {
  interface HTMLElementTagNameMap {
    'handoff-delegation-form': HandoffDelegationForm;
  }
}
