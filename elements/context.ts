import { createContext } from '@lit/context';
import type { Handoff } from '../machines/create-handoff.ts';
import type { HandoffActor } from '../machines/handoff.machine.ts';

/**
 * What <handoff-panel> shares with the elements inside it. An element used on its own takes the
 * same values as properties (`manager`, `actor`).
 */
export const handoffManagerContext = createContext<Handoff | undefined>(Symbol.for('handoff.manager'));

/** The client's root actor (`manager.actor`): what every element renders from. */
export const handoffActorContext = createContext<HandoffActor | undefined>(Symbol.for('handoff.actor'));
