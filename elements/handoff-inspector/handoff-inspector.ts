import {
  html,
  LitElement,
  nothing,
  type PropertyValues,
  type ReactiveController,
  type TemplateResult,
} from 'lit';
import { property, state } from 'lit/decorators.js';
import { keyed } from 'lit/directives/keyed.js';
import { repeat } from 'lit/directives/repeat.js';
import { styles } from './handoff-inspector.styles.ts';
import type {
  InspectedActor,
  InspectedEvent,
  InspectorSnapshot,
  InspectorSource,
} from './inspector-source.ts';

export {
  createInspectorSource,
  type InspectedActor,
  type InspectedEvent,
  type InspectorSnapshot,
  type InspectorSource,
  type InspectorSourceOptions,
  type JsonValue,
} from './inspector-source.ts';

/**
 * Follows an inspector source and re-renders the host at most once per animation frame, however many
 * inspection events arrive in between. Observes only: never starts or stops actors.
 */
class SourceController implements ReactiveController {
  snapshot: InspectorSnapshot | undefined;
  #host: LitElement;
  #source: InspectorSource | undefined;
  #unsubscribe: (() => void) | undefined;
  #frame = 0;

  constructor(host: LitElement) {
    this.#host = host;
    host.addController(this);
  }

  set source(source: InspectorSource | undefined) {
    if (source === this.#source) return;
    this.#detach();
    this.#source = source;
    this.snapshot = source?.snapshot();
    if (this.#host.isConnected) this.#attach();
  }

  hostConnected(): void {
    this.#attach();
  }

  hostDisconnected(): void {
    this.#detach();
  }

  #attach(): void {
    const source = this.#source;
    if (!source || this.#unsubscribe) return;
    this.snapshot = source.snapshot();
    this.#unsubscribe = source.subscribe(() => this.#schedule());
  }

  #schedule(): void {
    if (this.#frame) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      const next = this.#source?.snapshot();
      if (next === this.snapshot) return;
      this.snapshot = next;
      this.#host.requestUpdate();
    });
  }

  #detach(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    if (this.#frame) cancelAnimationFrame(this.#frame);
    this.#frame = 0;
  }
}

interface VisibleItem {
  node: InspectedActor;
  parentKey: string | undefined;
}

const STATUS_LABEL: Record<InspectedActor['status'], string> = {
  active: 'running',
  done: 'done',
  error: 'failed',
  stopped: 'stopped',
};

/** Running systems first (a replaced manager's stopped tree goes below the live one). */
const rootsInOrder = (view: InspectorSnapshot): InspectedActor[] => [
  ...view.roots.filter((root) => root.status === 'active'),
  ...view.roots.filter((root) => root.status !== 'active'),
];

const contains = (node: InspectedActor, key: string): boolean =>
  node.children.some((child) => child.key === key || contains(child, key));

const pad = (n: number, width = 2) => String(n).padStart(width, '0');
const clock = (time: number) => {
  const d = new Date(time);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
};

/**
 * A live, self-hosted view of an XState v5 actor system: the actor tree (each actor's id, state and
 * status), the selected actor's context, and the latest events. It reads an `InspectorSource`
 * (`createInspectorSource()`) whose `inspect` function was given to `createActor` or `createHandoff`;
 * nothing leaves the page.
 *
 * In the event log, `send()` as the source means the event was sent with `actor.send()` (by the page or
 * from inside an actor's own callback) rather than by another actor.
 *
 * Keyboard: the tree is one tab stop; ↑/↓ move (and select), → expands or enters, ← collapses or
 * goes to the parent, Home/End jump, Enter/Space expand or collapse.
 *
 * @summary Live state inspector for Handoff's actors.
 *
 * @csspart base - The inspector's box.
 * @csspart tree - The actor tree (`role="tree"`).
 * @csspart node - One actor's row in the tree.
 * @csspart details - The selected actor's facts and context.
 * @csspart context - The selected actor's context, as JSON.
 * @csspart log - The event log.
 *
 * @cssprop --handoff-color-text - Text colour.
 * @cssprop --handoff-color-muted - Secondary text colour.
 * @cssprop --handoff-color-surface - Background.
 * @cssprop --handoff-color-border - Borders.
 * @cssprop --handoff-color-selected - Background of the selected actor.
 * @cssprop --handoff-focus-ring - Focus ring colour.
 * @cssprop --handoff-color-state - State values.
 * @cssprop --handoff-font-family - Text font.
 * @cssprop --handoff-font-mono - Code font.
 * @cssprop --handoff-inspector-tree-height - Tallest the tree gets before it scrolls.
 * @cssprop --handoff-inspector-log-height - Tallest the event log gets before it scrolls.
 */
export class HandoffInspector extends LitElement {
  static override styles = styles;

  /** Where the actors and events come from. */
  @property({ attribute: false }) source: InspectorSource | undefined;

  /** The inspector's heading. */
  @property() heading = 'Live state';

  /** The selected actor's key (`InspectedActor.key`); unset (or dropped): the newest running root. */
  @property({ attribute: false }) selectedKey: string | undefined;

  /** Show only events to or from this actor (a key), or every event when empty. */
  @property({ attribute: false }) eventFilter = '';

  @state() private collapsed: ReadonlySet<string> = new Set();

  #source = new SourceController(this);

  /** The snapshot being shown (updated at most once per animation frame). */
  get view(): InspectorSnapshot | undefined {
    return this.#source.snapshot;
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has('source')) this.#source.source = this.source;
    const view = this.view;
    if (!view) return;
    if (this.eventFilter && !view.actors.has(this.eventFilter)) this.eventFilter = '';
  }

  /** The selected actor: the chosen one while it is kept, else the newest running root. */
  get selected(): InspectedActor | undefined {
    const view = this.view;
    if (!view) return undefined;
    const chosen = this.selectedKey ? view.actors.get(this.selectedKey) : undefined;
    if (chosen) return chosen;
    const roots = view.roots;
    return [...roots].reverse().find((root) => root.status === 'active') ?? roots[roots.length - 1];
  }

  protected override render(): TemplateResult {
    const view = this.view;
    const actors = view ? [...view.actors.values()] : [];
    const running = actors.filter((actor) => actor.status === 'active').length;
    return html`
      <div part="base">
        <header>
          <h2 id="heading">${this.heading}</h2>
          <p class="summary" role="status">
            ${actors.length} ${actors.length === 1 ? 'actor' : 'actors'}, ${running} running
          </p>
        </header>
        ${
          view && view.roots.length > 0
            ? html`<div class="columns">
              ${this.#renderTree(view)} ${this.#renderDetails()} ${this.#renderLog(view)}
            </div>`
            : html`<p class="empty">
              No actors yet. Pass <code>source.inspect</code> as XState's <code>inspect</code> option.
            </p>`
        }
      </div>
    `;
  }

  #renderTree(view: InspectorSnapshot): TemplateResult {
    const selected = this.selected;
    const roots = rootsInOrder(view);
    const renderNode = (node: InspectedActor, level: number, index: number, size: number): TemplateResult => {
      const hasChildren = node.children.length > 0;
      const expanded = hasChildren ? !this.collapsed.has(node.key) : undefined;
      const isSelected = node.key === selected?.key;
      const ended = node.status !== 'active';
      return html`<li
        role="treeitem"
        data-key=${node.key}
        aria-level=${level}
        aria-posinset=${index + 1}
        aria-setsize=${size}
        aria-selected=${isSelected ? 'true' : 'false'}
        aria-expanded=${expanded === undefined ? nothing : String(expanded)}
        tabindex=${isSelected ? 0 : -1}
        class=${ended ? 'ended' : ''}
      >
        <span class="row" part="node" @click=${(event: Event) => this.#onRowClick(event, node)}>
          <span class="toggle" aria-hidden="true" data-toggle=${hasChildren ? 'true' : nothing}
            >${hasChildren ? '▾' : ''}</span
          >
          <span class="id">${node.id}</span>
          ${keyed(
            `${node.key} ${node.state}`,
            html`<span class="state">${node.state || (node.kind !== node.id ? node.kind : '')}</span>`,
          )}
          <span class="status status-${node.status}">${STATUS_LABEL[node.status]}</span>
        </span>
        ${
          hasChildren && expanded
            ? html`<ul role="group">
              ${repeat(
                node.children,
                (child) => child.key,
                (child, i) => renderNode(child, level + 1, i, node.children.length),
              )}
            </ul>`
            : nothing
        }
      </li>`;
    };
    return html`<section class="tree-section" aria-labelledby="tree-heading">
      <h3 id="tree-heading">Actors</h3>
      <ul role="tree" part="tree" aria-labelledby="tree-heading" @keydown=${this.#onTreeKeydown}>
        ${repeat(
          roots,
          (root) => root.key,
          (root, i) => renderNode(root, 1, i, roots.length),
        )}
      </ul>
    </section>`;
  }

  #renderDetails(): TemplateResult {
    const node = this.selected;
    if (!node) return html`<section part="details"></section>`;
    const json = (value: unknown) => JSON.stringify(value, null, 2);
    return html`<section part="details" aria-labelledby="details-heading">
      <h3 id="details-heading">Actor <code>${node.id}</code></h3>
      <dl>
        <dt>Runs</dt>
        <dd>${node.kind}</dd>
        ${node.systemId ? html`<dt>System id</dt><dd>${node.systemId}</dd>` : nothing}
        <dt>Status</dt>
        <dd>${STATUS_LABEL[node.status]}</dd>
        ${node.state ? html`<dt>State</dt><dd><code>${node.state}</code></dd>` : nothing}
        <dt>Session</dt>
        <dd>${node.sessionId}</dd>
        <dt>Started</dt>
        <dd>${clock(node.startedAt)}</dd>
        ${node.endedAt !== undefined ? html`<dt>Ended</dt><dd>${clock(node.endedAt)}</dd>` : nothing}
        ${node.error ? html`<dt>Error</dt><dd>${node.error}</dd>` : nothing}
      </dl>
      ${
        node.context === undefined
          ? html`<p class="hint">No context (${node.state ? 'none set' : 'not a state machine'}).</p>`
          : html`<pre part="context" tabindex="0" aria-label="Context of ${node.id} (JSON)">${json(
              node.context,
            )}</pre>`
      }
      ${
        node.output === undefined
          ? nothing
          : html`<h3 id="output-heading">Output</h3>
            <pre tabindex="0" aria-labelledby="output-heading">${json(node.output)}</pre>`
      }
    </section>`;
  }

  #renderLog(view: InspectorSnapshot): TemplateResult {
    const filter = this.eventFilter;
    const events = filter
      ? view.events.filter((event) => event.sourceKey === filter || event.targetKey === filter)
      : view.events;
    const options = [...view.actors.values()];
    return html`<section class="log-section" aria-labelledby="log-heading">
      <h3 id="log-heading">Events</h3>
      <div class="log-tools">
        <label for="event-filter">Show events of</label>
        <select id="event-filter" .value=${filter} @change=${this.#onFilterChange}>
          <option value="" ?selected=${filter === ''}>all actors</option>
          ${repeat(
            options,
            (actor) => actor.key,
            (actor) =>
              html`<option value=${actor.key} ?selected=${actor.key === filter}>
                ${actor.id}${actor.status === 'active' ? '' : ` (${STATUS_LABEL[actor.status]})`}
              </option>`,
          )}
        </select>
        <span class="hint"
          >${events.length} shown, newest first; ${view.eventsSeen.toLocaleString('en')} seen</span
        >
      </div>
      <ol class="log" part="log" tabindex="0" aria-label="Events, newest first">
        ${repeat(
          events,
          (event) => event.seq,
          (event) => this.#renderEvent(event),
        )}
      </ol>
    </section>`;
  }

  #renderEvent(event: InspectedEvent): TemplateResult {
    return html`<li>
      <time datetime=${new Date(event.time).toISOString()}>${clock(event.time)}</time>
      <span class="type">${event.type}</span>
      <span class="route">${event.sourceId ?? 'send()'} → ${event.targetId}</span>
    </li>`;
  }

  #onFilterChange(event: Event): void {
    this.eventFilter = (event.target as HTMLSelectElement).value;
  }

  #onRowClick(event: Event, node: InspectedActor): void {
    const toggle = (event.target as HTMLElement).closest('[data-toggle]');
    if (toggle) this.#toggle(node.key);
    this.#select(node.key);
  }

  #toggle(key: string, expand?: boolean): void {
    const collapsed = new Set(this.collapsed);
    const open = expand ?? collapsed.has(key);
    if (open) collapsed.delete(key);
    else collapsed.add(key);
    this.collapsed = collapsed;
    // Collapsing hides the selection: it moves up to the collapsed actor.
    const node = this.view?.actors.get(key);
    const selected = this.selected?.key;
    if (!open && node && selected && selected !== key && contains(node, selected)) void this.#select(key);
  }

  async #select(key: string): Promise<void> {
    this.selectedKey = key;
    await this.updateComplete;
    this.renderRoot.querySelector<HTMLElement>(`[role="treeitem"][data-key="${key}"]`)?.focus();
  }

  /** The tree's items in display order, skipping the children of collapsed actors. */
  #visible(): VisibleItem[] {
    const items: VisibleItem[] = [];
    const walk = (nodes: readonly InspectedActor[], parentKey: string | undefined) => {
      for (const node of nodes) {
        items.push({ node, parentKey });
        if (!this.collapsed.has(node.key)) walk(node.children, node.key);
      }
    };
    if (this.view) walk(rootsInOrder(this.view), undefined);
    return items;
  }

  #onTreeKeydown(event: KeyboardEvent): void {
    const items = this.#visible();
    if (items.length === 0) return;
    const current = this.selected?.key;
    const index = Math.max(
      0,
      items.findIndex((item) => item.node.key === current),
    );
    const item = items[index] as VisibleItem;
    const hasChildren = item.node.children.length > 0;
    const open = hasChildren && !this.collapsed.has(item.node.key);
    let target: string | undefined;
    switch (event.key) {
      case 'ArrowDown':
        target = items[Math.min(items.length - 1, index + 1)]?.node.key;
        break;
      case 'ArrowUp':
        target = items[Math.max(0, index - 1)]?.node.key;
        break;
      case 'Home':
        target = items[0]?.node.key;
        break;
      case 'End':
        target = items[items.length - 1]?.node.key;
        break;
      case 'ArrowRight':
        if (hasChildren && !open) this.#toggle(item.node.key, true);
        else if (open) target = item.node.children[0]?.key;
        break;
      case 'ArrowLeft':
        if (open) this.#toggle(item.node.key, false);
        else target = item.parentKey;
        break;
      case 'Enter':
      case ' ':
        if (hasChildren) this.#toggle(item.node.key);
        break;
      default:
        return;
    }
    event.preventDefault();
    if (target) void this.#select(target);
  }
}

// Defined once: importing the module twice (two bundles on one page) is harmless.
if (!customElements.get('handoff-inspector')) customElements.define('handoff-inspector', HandoffInspector);

declare global {
  interface HTMLElementTagNameMap {
    'handoff-inspector': HandoffInspector;
  }
}
