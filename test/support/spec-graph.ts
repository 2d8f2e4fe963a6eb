import type { AnyStateNode } from 'xstate';

/** Every state node under `node`, itself included, depth first. */
export function* stateNodes(node: AnyStateNode): Generator<AnyStateNode> {
  yield node;
  for (const child of Object.values(node.states)) yield* stateNodes(child);
}

/** A transition's stable name: source, event, its index among that event's candidates, targets. */
export function transitionId(transition: {
  source: AnyStateNode;
  eventType: string;
  target?: readonly AnyStateNode[] | undefined;
}): string {
  const siblings = (transition.source.transitions.get(transition.eventType) ?? []) as readonly unknown[];
  const targets = transition.target?.map((node) => node.id).join(',') ?? '(stays)';
  return `${transition.source.id} ${transition.eventType}[${siblings.indexOf(transition)}] → ${targets}`;
}
