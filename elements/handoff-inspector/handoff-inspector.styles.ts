import { css } from 'lit';

/**
 * Colours meet WCAG AA (4.5:1) on the default surface and on the selected row; every one can be
 * themed through a `--handoff-*` custom property.
 */
export const styles = css`
  :host {
    display: block;
    container-type: inline-size;
    font-family: var(--handoff-font-family, system-ui, sans-serif);
    font-size: var(--handoff-font-size, 0.875rem);
    line-height: 1.45;
    color: var(--handoff-color-text, #1f2328);
    background: var(--handoff-color-surface, #ffffff);
    border: 1px solid var(--handoff-color-border, #d1d9e0);
    border-radius: var(--handoff-radius, 8px);
    --_muted: var(--handoff-color-muted, #59636e);
    --_selected: var(--handoff-color-selected, #ddf4ff);
    --_focus: var(--handoff-focus-ring, #0969da);
    --_mono: var(--handoff-font-mono, ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace);
    --_state: var(--handoff-color-state, #6639ba);
  }

  :host([hidden]) {
    display: none;
  }

  [part='base'] {
    padding: 0.75rem;
  }

  header {
    display: flex;
    flex-wrap: wrap;
    align-items: baseline;
    justify-content: space-between;
    gap: 0.25rem 1rem;
    margin-bottom: 0.5rem;
  }

  h2,
  h3 {
    margin: 0;
    font-size: 1rem;
    font-weight: 600;
  }

  h3 {
    font-size: 0.9rem;
    margin-bottom: 0.35rem;
  }

  .summary,
  .empty,
  .hint {
    margin: 0;
    color: var(--_muted);
  }

  .columns {
    display: grid;
    gap: 0.75rem;
  }

  @container (min-width: 46rem) {
    .columns {
      grid-template-columns: minmax(13rem, 1fr) minmax(0, 1.3fr);
    }
    .log-section {
      grid-column: 1 / -1;
    }
  }

  section {
    min-width: 0;
  }

  /* The actor tree */
  [role='tree'],
  [role='group'] {
    list-style: none;
    margin: 0;
    padding: 0;
  }

  [role='tree'] {
    max-height: var(--handoff-inspector-tree-height, 22rem);
    overflow: auto;
    border: 1px solid var(--handoff-color-border, #d1d9e0);
    border-radius: 6px;
    padding: 0.25rem;
  }

  [role='group'] {
    margin-left: 1rem;
    border-left: 1px dotted var(--handoff-color-border, #d1d9e0);
  }

  [role='treeitem'] {
    outline: none;
  }

  .row {
    display: flex;
    flex-wrap: wrap;
    align-items: baseline;
    gap: 0 0.4rem;
    padding: 0.15rem 0.35rem;
    border-radius: 4px;
    cursor: pointer;
  }

  [role='treeitem'][aria-selected='true'] > .row {
    background: var(--_selected);
  }

  [role='treeitem']:focus-visible > .row {
    outline: 2px solid var(--_focus);
    outline-offset: -2px;
  }

  .toggle {
    display: inline-block;
    width: 0.9rem;
    text-align: center;
    color: var(--_muted);
    transition: transform 120ms ease;
  }

  [aria-expanded='false'] > .row .toggle {
    transform: rotate(-90deg);
  }

  .id {
    font-weight: 600;
    overflow-wrap: anywhere;
  }

  .state {
    font-family: var(--_mono);
    font-size: 0.8rem;
    color: var(--_state);
    overflow-wrap: anywhere;
    border-radius: 3px;
    animation: changed 700ms ease-out;
  }

  @keyframes changed {
    from {
      background: var(--handoff-color-changed, #fff8c5);
    }
    to {
      background: transparent;
    }
  }

  .status {
    font-size: 0.75rem;
    padding: 0 0.35rem;
    border-radius: 999px;
    border: 1px solid currentColor;
  }

  .status-active {
    color: var(--handoff-color-status-active, #116329);
    background: var(--handoff-color-status-active-bg, #dafbe1);
  }
  .status-done {
    color: var(--handoff-color-status-done, #0550ae);
    background: var(--handoff-color-status-done-bg, #ddf4ff);
  }
  .status-error {
    color: var(--handoff-color-status-error, #a40e26);
    background: var(--handoff-color-status-error-bg, #ffebe9);
  }
  .status-stopped {
    color: var(--handoff-color-status-stopped, #4b535d);
    background: var(--handoff-color-status-stopped-bg, #f6f8fa);
  }

  .ended > .row .id {
    font-weight: 400;
    text-decoration: line-through;
    text-decoration-color: var(--_muted);
  }

  /* The selected actor */
  dl {
    display: grid;
    grid-template-columns: max-content minmax(0, 1fr);
    gap: 0.1rem 0.75rem;
    margin: 0 0 0.5rem;
  }

  dt {
    color: var(--_muted);
  }

  dd {
    margin: 0;
    overflow-wrap: anywhere;
  }

  code,
  pre {
    font-family: var(--_mono);
    font-size: 0.8rem;
  }

  pre {
    margin: 0;
    max-height: var(--handoff-inspector-context-height, 20rem);
    overflow: auto;
    padding: 0.5rem;
    border: 1px solid var(--handoff-color-border, #d1d9e0);
    border-radius: 6px;
    background: var(--handoff-color-code-bg, #f6f8fa);
    white-space: pre-wrap;
    overflow-wrap: anywhere;
  }

  pre + h3,
  pre + p {
    margin-top: 0.5rem;
  }

  /* The event log */
  .log-tools {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.25rem 0.5rem;
    margin-bottom: 0.35rem;
  }

  select {
    font: inherit;
    color: inherit;
    background: var(--handoff-color-surface, #ffffff);
    border: 1px solid var(--handoff-color-control-border, #818b98);
    border-radius: 4px;
    padding: 0.1rem 0.25rem;
    max-width: 100%;
  }

  select:focus-visible,
  pre:focus-visible,
  .log:focus-visible {
    outline: 2px solid var(--_focus);
    outline-offset: 1px;
  }

  .log {
    list-style: none;
    margin: 0;
    padding: 0.25rem 0.5rem;
    max-height: var(--handoff-inspector-log-height, 16rem);
    overflow: auto;
    border: 1px solid var(--handoff-color-border, #d1d9e0);
    border-radius: 6px;
  }

  .log li {
    display: flex;
    flex-wrap: wrap;
    gap: 0 0.5rem;
    padding: 0.05rem 0;
    border-bottom: 1px solid var(--handoff-color-rule, #eef1f4);
  }

  .log time {
    color: var(--_muted);
    font-family: var(--_mono);
    font-size: 0.75rem;
  }

  .log .type {
    font-family: var(--_mono);
    font-size: 0.8rem;
    overflow-wrap: anywhere;
  }

  .log .route {
    color: var(--_muted);
    overflow-wrap: anywhere;
  }

  .visually-hidden {
    position: absolute;
    width: 1px;
    height: 1px;
    overflow: hidden;
    clip-path: inset(50%);
    white-space: nowrap;
  }

  @media (prefers-reduced-motion: reduce) {
    .state {
      animation: none;
    }
    .toggle {
      transition: none;
    }
  }

  @media (forced-colors: active) {
    [role='treeitem'][aria-selected='true'] > .row {
      outline: 1px solid Highlight;
    }
  }
`;
