import { consume } from '@lit/context';
import { html, LitElement } from 'lit';
import { property } from 'lit/decorators.js';
import { repeat } from 'lit/directives/repeat.js';
import type { HandoffActor } from '../../machines/handoff.machine.ts';
import type { TaskRequestOutput } from '../../machines/task-request.machine.ts';
import { handoffActorContext } from '../context.ts';
import { SelectController } from '../controllers/select.controller.ts';
import { define } from '../define.ts';
import { localTime, PHASE_TEXT } from '../format.ts';
import { sharedStyles, surfaceStyles } from '../shared.styles.ts';
import { type RootSnapshot, runningPrompts } from '../snapshots.ts';
import { historyStyles } from './handoff-history.styles.ts';

const PROMPT_PREVIEW = 120;

/**
 * @summary The client's finished tasks (the root actor's `history`), newest first: the prompt, how
 * it ended, the peer or peers that worked on it, the characters received and when it finished.
 *
 * The history records outcomes, not prompts or times: the element shows the prompt of a task it
 * saw running, and the time at which it saw the task finish (a dash for tasks that ended before it
 * was attached, or that never ran, like a prompt no peer could take).
 *
 * @csspart base - The section.
 * @csspart table - The table.
 * @csspart row - One task's row.
 * @csspart empty - The text shown before any task finished.
 *
 * @cssprop --handoff-color-success - Colour of "Completed".
 * @cssprop --handoff-color-danger - Colour of "Failed" and "Timed out".
 * @cssprop --handoff-color-border - Lines between rows.
 */
export class HandoffHistory extends LitElement {
  static override styles = [sharedStyles, surfaceStyles, historyStyles];

  /** The client's root actor (`manager.actor`); provided by <handoff-panel> when inside one. */
  @consume({ context: handoffActorContext, subscribe: true })
  @property({ attribute: false })
  actor: HandoffActor | undefined;

  /** Prompts of tasks seen running, and when each task was seen finishing (display only). */
  readonly #prompts = new Map<string, string>();
  /** Undefined for tasks that had finished before the element looked. */
  readonly #finishedAt = new Map<string, number | undefined>();
  #primed = false;

  readonly #history = new SelectController(this, {
    actor: () => this.actor,
    // Runs on every root snapshot, so a task's prompt is caught while the task exists.
    select: (snapshot: RootSnapshot) => {
      this.#observe(snapshot);
      return snapshot.context.history;
    },
  });

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    // What finished while detached was not seen finishing.
    this.#primed = false;
  }

  override render() {
    const history = [...(this.#history.value ?? [])].reverse();
    return html`
      <section part="base" class="surface" aria-labelledby="caption">
        ${
          history.length === 0
            ? html`<h2 id="caption">History</h2><p part="empty" class="muted">No finished tasks yet.</p>`
            : html`
              <table part="table">
                <caption id="caption"><h2>History</h2></caption>
                <thead>
                  <tr>
                    <th scope="col">Prompt</th>
                    <th scope="col">Status</th>
                    <th scope="col">Peers</th>
                    <th scope="col">Characters</th>
                    <th scope="col" class="wide">Finished</th>
                  </tr>
                </thead>
                <tbody>
                  ${repeat(
                    history,
                    (entry) => entry.taskId,
                    (entry) => this.#row(entry),
                  )}
                </tbody>
              </table>
            `
        }
      </section>
    `;
  }

  #row(entry: TaskRequestOutput) {
    const prompt = this.#prompts.get(entry.taskId);
    const finished = this.#finishedAt.get(entry.taskId);
    const peers = [...new Set(entry.attempts.map((attempt) => attempt.peerId))].map((peer) =>
      peer === 'local' ? 'this peer' : peer,
    );
    return html`
      <tr part="row" data-task-id=${entry.taskId}>
        <td class="prompt">
          ${
            prompt === undefined
              ? html`<span class="muted">—</span>`
              : prompt.length > PROMPT_PREVIEW
                ? `${prompt.slice(0, PROMPT_PREVIEW)}…`
                : prompt
          }
        </td>
        <td data-status=${entry.status}>
          ${PHASE_TEXT[entry.status]}${
            entry.error && entry.status !== 'cancelled'
              ? html`<span class="visually-hidden">: </span><br /><span class="muted">${entry.error.message}</span>`
              : ''
          }
        </td>
        <td>${peers.length > 0 ? peers.join(', ') : 'none'}</td>
        <td class="number">${entry.text.length}</td>
        <td class="wide">
          ${finished === undefined ? html`<span class="muted">—</span>` : html`<time datetime=${new Date(finished).toISOString()}>${localTime(finished)}</time>`}
        </td>
      </tr>
    `;
  }

  #observe(snapshot: RootSnapshot): void {
    for (const [taskId, prompt] of Object.entries(runningPrompts(snapshot)))
      this.#prompts.set(taskId, prompt);
    const kept = new Set(snapshot.context.history.map((entry) => entry.taskId));
    for (const taskId of kept) {
      if (!this.#finishedAt.has(taskId)) this.#finishedAt.set(taskId, this.#primed ? Date.now() : undefined);
    }
    this.#primed = true;
    // Forget what left the (bounded) history; keep prompts of tasks still running.
    const running = new Set(Object.keys(runningPrompts(snapshot)));
    for (const taskId of this.#prompts.keys())
      if (!kept.has(taskId) && !running.has(taskId)) this.#prompts.delete(taskId);
    for (const taskId of this.#finishedAt.keys()) if (!kept.has(taskId)) this.#finishedAt.delete(taskId);
  }
}

define('handoff-history', HandoffHistory);

declare global {
  interface HTMLElementTagNameMap {
    'handoff-history': HandoffHistory;
  }
}
