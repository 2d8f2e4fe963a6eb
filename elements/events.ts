import type { DesignState } from '../machines/design-state.ts';
import type { TaskRequestOutput } from '../machines/task-request.machine.ts';
import type { DiscoveredPeer } from '../protocol/index.ts';

/*
 * One class per DOM event. Every one bubbles and is composed, so a page listening on the panel (or
 * on any ancestor) hears it from inside the shadow roots. Machine emits become these events in one
 * place (controllers/events.controller.ts); the delegate event is the form's request, cancelable.
 */

const init = { bubbles: true, composed: true } as const;

export interface HandoffConnectionChangeDetail {
  /** The design's connection state now (see machines/design-state.ts). */
  state: DesignState;
  /** The state before, or undefined for the first state the element saw. */
  previous: DesignState | undefined;
}

/** The design's connection state changed (Disconnected, Signaling, Connected, … Failed). */
export class HandoffConnectionChangeEvent extends Event {
  static readonly type = 'handoff-connection-change';
  readonly detail: HandoffConnectionChangeDetail;
  constructor(detail: HandoffConnectionChangeDetail) {
    super(HandoffConnectionChangeEvent.type, init);
    this.detail = detail;
  }
}

export interface HandoffTaskDetail {
  taskId: string;
  /** The task's outcome: its full text, status, the peers that worked on it, usage and metadata. */
  output: TaskRequestOutput;
}

/** A task finished with the whole answer (`output.status` is 'completed'). */
export class HandoffTaskCompleteEvent extends Event {
  static readonly type = 'handoff-task-complete';
  readonly detail: HandoffTaskDetail;
  constructor(detail: HandoffTaskDetail) {
    super(HandoffTaskCompleteEvent.type, init);
    this.detail = detail;
  }
}

export interface HandoffTaskErrorDetail extends HandoffTaskDetail {
  /** 'failed', 'cancelled' or 'timedOut'. */
  status: Exclude<TaskRequestOutput['status'], 'completed'>;
  /** Why, e.g. the route planner's reason when no peer could take it. */
  message: string;
}

/** A task ended without a whole answer: it failed, was cancelled, or ran out of time. */
export class HandoffTaskErrorEvent extends Event {
  static readonly type = 'handoff-task-error';
  readonly detail: HandoffTaskErrorDetail;
  constructor(detail: HandoffTaskErrorDetail) {
    super(HandoffTaskErrorEvent.type, init);
    this.detail = detail;
  }
}

/** Discovery found a peer that meets the requirements (it just entered the ranked list). */
export class HandoffPeerDiscoveredEvent extends Event {
  static readonly type = 'handoff-peer-discovered';
  readonly detail: { peer: DiscoveredPeer };
  constructor(detail: { peer: DiscoveredPeer }) {
    super(HandoffPeerDiscoveredEvent.type, init);
    this.detail = detail;
  }
}

export interface HandoffDelegateDetail {
  prompt: string;
  /** The peer chosen in the form; undefined lets the route planner decide (local or best peer). */
  targetPeerId: string | undefined;
  /** 0 (lowest) to 10 (highest). */
  priority: number;
  timeoutMs: number;
}

/**
 * The user asked to send a prompt. Fired before anything is delegated; `preventDefault()` stops it
 * (the page may want to confirm, or send it some other way).
 */
export class HandoffDelegateEvent extends Event {
  static readonly type = 'handoff-delegate';
  readonly detail: HandoffDelegateDetail;
  constructor(detail: HandoffDelegateDetail) {
    super(HandoffDelegateEvent.type, { ...init, cancelable: true });
    this.detail = detail;
  }
}

declare global {
  interface HTMLElementEventMap {
    'handoff-connection-change': HandoffConnectionChangeEvent;
    'handoff-task-complete': HandoffTaskCompleteEvent;
    'handoff-task-error': HandoffTaskErrorEvent;
    'handoff-peer-discovered': HandoffPeerDiscoveredEvent;
    'handoff-delegate': HandoffDelegateEvent;
  }
}
