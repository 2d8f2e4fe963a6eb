import { css } from 'lit';

export const statusBarStyles = css`
  :host {
    display: block;
  }

  .bar {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.25rem 0.75rem;
    padding: 0.5rem 0.75rem;
    background: var(--handoff-color-surface, #ffffff);
    border: 1px solid var(--handoff-color-border, #d0d7de);
    border-left: 0.375rem solid var(--_state-color);
    border-radius: var(--handoff-radius-large, 0.5rem);
  }

  .bar[data-state='Disconnected'] {
    --_state-color: var(--handoff-state-disconnected, #57606a);
  }
  .bar[data-state='Signaling'] {
    --_state-color: var(--handoff-state-signaling, #7d4e00);
  }
  .bar[data-state='Connected'] {
    --_state-color: var(--handoff-state-connected, #0550ae);
  }
  .bar[data-state='Discovering'] {
    --_state-color: var(--handoff-state-discovering, #0550ae);
  }
  .bar[data-state='PeerFound'] {
    --_state-color: var(--handoff-state-peer-found, #0550ae);
  }
  .bar[data-state='Connecting'] {
    --_state-color: var(--handoff-state-connecting, #7d4e00);
  }
  .bar[data-state='P2PConnected'] {
    --_state-color: var(--handoff-state-p2p-connected, #116329);
  }
  .bar[data-state='Transferring'] {
    --_state-color: var(--handoff-state-transferring, #6639ba);
  }
  .bar[data-state='Failed'] {
    --_state-color: var(--handoff-state-failed, #a40e26);
  }

  .indicator {
    flex: none;
    width: 0.75rem;
    height: 0.75rem;
    border-radius: 50%;
    background: var(--_state-color);
  }

  .indicator.pulse {
    animation: pulse 1.2s ease-in-out infinite;
  }

  @keyframes pulse {
    0%,
    100% {
      box-shadow: 0 0 0 0 var(--_state-color);
      opacity: 1;
    }
    50% {
      box-shadow: 0 0 0 0.3rem transparent;
      opacity: 0.45;
    }
  }

  @media (prefers-reduced-motion: reduce) {
    .indicator.pulse {
      animation: none;
      outline: 2px dotted var(--_state-color);
      outline-offset: 2px;
    }
  }

  .state {
    font-weight: 700;
    color: var(--_state-color);
  }

  .peers {
    margin-inline-start: auto;
  }
`;
