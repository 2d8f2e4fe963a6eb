/** Registers a custom element once (importing an element twice, e.g. from two bundles, is harmless). */
export function define(tag: string, element: CustomElementConstructor): void {
  if (!customElements.get(tag)) customElements.define(tag, element);
}
