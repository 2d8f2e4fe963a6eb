import { css } from 'lit';

export const networkQualityStyles = css`
  :host {
    display: block;
  }

  .links {
    list-style: none;
    margin: 0.5rem 0 0;
    padding: 0;
    display: grid;
    gap: var(--handoff-space, 0.75rem);
    grid-template-columns: repeat(auto-fill, minmax(min(100%, var(--handoff-chart-card-min-width, 15rem)), 1fr));
  }

  .link {
    display: grid;
    gap: 0.5rem;
    padding: 0.75rem;
    border: 1px solid var(--handoff-color-border, #d0d7de);
    border-radius: var(--handoff-radius-large, 0.5rem);
    min-width: 0;
  }

  .title {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.25rem 0.5rem;
    overflow-wrap: anywhere;
  }

  figure {
    margin: 0;
    display: grid;
    gap: 0.25rem;
  }

  figcaption {
    font-size: 0.875rem;
  }

  svg {
    width: 100%;
    max-width: var(--handoff-chart-width, 16rem);
    height: var(--handoff-chart-height, 2.5rem);
    overflow: visible;
  }

  .axis {
    stroke: var(--handoff-color-border, #d0d7de);
    stroke-width: 1;
  }

  path {
    fill: none;
    stroke-width: 2;
    stroke-linejoin: round;
    stroke-linecap: round;
    vector-effect: non-scaling-stroke;
  }

  .rtt {
    stroke: var(--handoff-chart-rtt, #0550ae);
  }

  .sent {
    stroke: var(--handoff-chart-sent, #116329);
  }

  .received {
    stroke: var(--handoff-chart-received, #6639ba);
    stroke-dasharray: 4 3;
  }

  circle.rtt {
    fill: var(--handoff-chart-rtt, #0550ae);
    stroke: none;
  }

  circle.sent {
    fill: var(--handoff-chart-sent, #116329);
    stroke: none;
  }

  circle.received {
    fill: var(--handoff-chart-received, #6639ba);
    stroke: none;
  }

  .legend-sent {
    border-block-end: 2px solid var(--handoff-chart-sent, #116329);
  }

  .legend-received {
    border-block-end: 2px dashed var(--handoff-chart-received, #6639ba);
  }

  p {
    margin: 0;
  }
`;
