import { css } from 'lit';

export const responseStyles = css`
  :host {
    display: block;
  }

  section {
    display: grid;
    gap: 0.5rem;
  }

  .header {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.25rem 0.75rem;
  }

  .route {
    overflow-wrap: anywhere;
  }

  p {
    margin: 0;
  }

  .status[data-phase='failed'],
  .status[data-phase='timedOut'] {
    color: var(--handoff-color-danger, #a40e26);
  }

  .status[data-phase='completed'] {
    color: var(--handoff-color-success, #116329);
  }

  .output {
    min-height: var(--handoff-response-min-height, 6rem);
    max-height: var(--handoff-response-max-height, 24rem);
    overflow: auto;
    padding: 0.75rem;
    white-space: pre-wrap;
    overflow-wrap: anywhere;
    font-family: var(--handoff-response-font-family, inherit);
    background: var(--handoff-color-surface-alt, #f6f8fa);
    border: 1px solid var(--handoff-color-border, #d0d7de);
    border-radius: var(--handoff-radius, 0.375rem);
  }

  progress {
    width: 100%;
    height: 0.375rem;
  }

  .actions {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.5rem 1rem;
  }

  .count {
    margin-inline-start: auto;
  }
`;
