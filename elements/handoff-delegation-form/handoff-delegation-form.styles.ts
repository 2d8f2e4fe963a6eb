import { css } from 'lit';

export const delegationFormStyles = css`
  :host {
    display: block;
  }

  form {
    display: grid;
    gap: 0.75rem;
  }

  .field {
    display: grid;
    gap: 0.25rem;
    min-width: 0;
  }

  label {
    font-weight: 600;
  }

  textarea {
    width: 100%;
    min-height: 6rem;
    resize: vertical;
  }

  .options {
    display: grid;
    gap: 0.75rem;
    grid-template-columns: repeat(auto-fit, minmax(min(100%, 9rem), 1fr));
  }

  .options select,
  .options input {
    width: 100%;
  }

  .actions {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.5rem 1rem;
  }

  .hint {
    font-size: 0.875rem;
  }

  .notice {
    margin: 0;
    padding: 0.5rem 0.75rem;
    border-radius: var(--handoff-radius, 0.375rem);
    color: var(--handoff-color-danger, #a40e26);
    background: var(--handoff-color-danger-surface, #ffebe9);
    border: 1px solid currentColor;
  }

  .notice:empty {
    display: none;
  }
`;
