import { css } from 'lit';

export const historyStyles = css`
  :host {
    display: block;
  }

  table {
    width: 100%;
    border-collapse: collapse;
    font-size: 0.9375rem;
  }

  caption {
    text-align: start;
    font-weight: 600;
    padding-block-end: 0.5rem;
  }

  th,
  td {
    text-align: start;
    vertical-align: top;
    padding: 0.375rem 0.5rem;
    border-block-end: 1px solid var(--handoff-color-border, #d0d7de);
  }

  th {
    color: var(--handoff-color-muted, #57606a);
    font-weight: 600;
  }

  td.prompt {
    overflow-wrap: anywhere;
    min-width: 8rem;
  }

  td.number {
    font-variant-numeric: tabular-nums;
  }

  td[data-status='failed'],
  td[data-status='timedOut'] {
    color: var(--handoff-color-danger, #a40e26);
  }

  td[data-status='completed'] {
    color: var(--handoff-color-success, #116329);
  }

  p {
    margin: 0;
  }

  @media (max-width: 30rem) {
    .wide {
      display: none;
    }
  }
`;
