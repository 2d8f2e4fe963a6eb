import { css } from 'lit';

/**
 * Styles every Handoff element shares: the `--handoff-*` design tokens (with defaults that meet
 * WCAG 2.1 AA contrast on the default surface), a visible focus ring, native controls, badges.
 * Custom properties inherit through shadow roots, so setting one on <handoff-panel> (or any
 * ancestor) themes every element inside it.
 */
export const sharedStyles = css`
  :host {
    box-sizing: border-box;
    font-family: var(--handoff-font-family, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif);
    font-size: var(--handoff-font-size, 1rem);
    line-height: 1.5;
    color: var(--handoff-color-text, #1f2328);
  }

  :host([hidden]) {
    display: none !important;
  }

  *,
  *::before,
  *::after {
    box-sizing: inherit;
  }

  :focus-visible {
    outline: var(--handoff-focus-width, 3px) solid var(--handoff-focus-ring, #0969da);
    outline-offset: 2px;
  }

  h2,
  h3 {
    margin: 0;
    font-size: var(--handoff-heading-size, 1rem);
    font-weight: 600;
  }

  button {
    font: inherit;
    min-height: 2.5rem;
    padding: 0.375rem 1rem;
    border-radius: var(--handoff-radius, 0.375rem);
    border: 1px solid var(--handoff-color-accent, #0550ae);
    background: var(--handoff-color-accent, #0550ae);
    color: var(--handoff-color-on-accent, #ffffff);
    cursor: pointer;
  }

  button.secondary {
    background: var(--handoff-color-surface, #ffffff);
    color: var(--handoff-color-accent, #0550ae);
  }

  button:disabled {
    cursor: not-allowed;
    opacity: 0.65;
  }

  input,
  select,
  textarea {
    font: inherit;
    color: inherit;
    background: var(--handoff-color-surface, #ffffff);
    border: 1px solid var(--handoff-color-control-border, #6e7781);
    border-radius: var(--handoff-radius, 0.375rem);
    padding: 0.375rem 0.5rem;
    min-height: 2.5rem;
    max-width: 100%;
  }

  .muted {
    color: var(--handoff-color-muted, #57606a);
  }

  .badge {
    display: inline-block;
    padding: 0 0.5rem;
    border-radius: 999px;
    font-size: 0.8125rem;
    font-weight: 600;
    border: 1px solid currentColor;
  }

  .badge.demo {
    color: var(--handoff-color-demo-text, #633c01);
    background: var(--handoff-color-demo-surface, #fff8c5);
  }

  .visually-hidden {
    position: absolute;
    width: 1px;
    height: 1px;
    padding: 0;
    margin: -1px;
    overflow: hidden;
    clip: rect(0 0 0 0);
    white-space: nowrap;
    border: 0;
  }
`;

/** The surface of a self-contained section (card-like), used by the elements' `base` part. */
export const surfaceStyles = css`
  .surface {
    background: var(--handoff-color-surface, #ffffff);
    border: 1px solid var(--handoff-color-border, #d0d7de);
    border-radius: var(--handoff-radius-large, 0.5rem);
    padding: var(--handoff-space, 0.75rem);
  }
`;
