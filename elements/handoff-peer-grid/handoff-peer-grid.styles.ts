import { css } from 'lit';

export const peerGridStyles = css`
  :host {
    display: block;
  }

  .header {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.5rem 0.75rem;
    margin-block-end: 0.5rem;
  }

  .header button {
    margin-inline-start: auto;
  }

  .grid {
    list-style: none;
    margin: 0;
    padding: 0;
    display: grid;
    gap: var(--handoff-space, 0.75rem);
    grid-template-columns: repeat(auto-fill, minmax(min(100%, var(--handoff-card-min-width, 13rem)), 1fr));
  }

  .card {
    display: flex;
    flex-direction: column;
    gap: 0.5rem;
    padding: 0.75rem;
    background: var(--handoff-color-surface, #ffffff);
    border: 1px solid var(--handoff-color-border, #d0d7de);
    border-radius: var(--handoff-radius-large, 0.5rem);
    min-width: 0;
  }

  .card[data-link='direct'] {
    border-inline-start: 0.25rem solid var(--handoff-state-p2p-connected, #116329);
  }

  .card[data-link='relayed'] {
    border-inline-start: 0.25rem solid var(--handoff-state-connecting, #7d4e00);
  }

  .title {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.25rem 0.5rem;
    overflow-wrap: anywhere;
  }

  dl {
    margin: 0;
    display: grid;
    grid-template-columns: max-content 1fr;
    gap: 0.125rem 0.75rem;
    font-size: 0.9375rem;
  }

  dt {
    color: var(--handoff-color-muted, #57606a);
  }

  dd {
    margin: 0;
    overflow-wrap: anywhere;
  }

  .empty {
    margin: 0;
  }
`;
