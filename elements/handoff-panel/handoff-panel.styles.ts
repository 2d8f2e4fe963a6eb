import { css } from 'lit';

export const panelStyles = css`
  :host {
    display: block;
    container-type: inline-size;
    background: var(--handoff-color-background, transparent);
  }

  .panel {
    display: flex;
    flex-direction: column;
    gap: var(--handoff-gap, 1rem);
  }

  .layout {
    display: grid;
    gap: var(--handoff-gap, 1rem);
    grid-template-columns: minmax(0, 1fr);
    align-items: start;
  }

  .column {
    display: flex;
    flex-direction: column;
    gap: var(--handoff-gap, 1rem);
    min-width: 0;
  }

  @container (min-width: 48rem) {
    .layout {
      grid-template-columns: minmax(0, 3fr) minmax(0, 2fr);
    }
  }
`;
