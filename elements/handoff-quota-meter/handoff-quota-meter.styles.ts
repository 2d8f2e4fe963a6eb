import { css } from 'lit';

export const quotaMeterStyles = css`
  :host {
    display: block;
  }

  .base {
    display: grid;
    gap: 0.375rem;
  }

  .header {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.5rem;
  }

  .row {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.5rem;
  }

  meter {
    flex: 1 1 8rem;
    min-width: 6rem;
    height: var(--handoff-meter-height, 1rem);
  }

  p {
    margin: 0;
  }
`;
