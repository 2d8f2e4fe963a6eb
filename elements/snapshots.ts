import type { AnyActorRef, SnapshotFrom } from 'xstate';
import type { handoffMachine } from '../machines/handoff.machine.ts';
import type { LinkSample, LinkTransport } from '../machines/peer-link.machine.ts';
import type { TaskAttempt, TaskRequestOutput } from '../machines/task-request.machine.ts';
import type { Capabilities, QuotaStatus } from '../protocol/index.ts';

/*
 * What the elements show, read from the root actor's snapshot and its children's. Pure functions:
 * elements call them when they render and keep nothing. Children are read defensively (a field may
 * be missing): the root's children are whatever `handoffMachine.provide()` put there.
 */

export type RootSnapshot = SnapshotFrom<typeof handoffMachine>;

interface ChildSnapshot {
  status: string;
  value: unknown;
  context: Record<string, unknown>;
  output?: unknown;
  hasTag?(tag: string): boolean;
}

const childrenOf = (root: RootSnapshot) => root.children as Record<string, AnyActorRef | undefined>;
const snapshotOf = (ref: AnyActorRef | undefined) => ref?.getSnapshot() as ChildSnapshot | undefined;

/** This peer's id, once the signaling server assigned one. */
export function selfPeerId(root: RootSnapshot): string | undefined {
  return snapshotOf(childrenOf(root).connection)?.context.peerId as string | undefined;
}

/** One open (or opening) peer link. */
export interface LinkView {
  peerId: string;
  transport: LinkTransport;
  /** Still negotiating a path. */
  connecting: boolean;
  rttMs: number | undefined;
  samples: LinkSample[];
}

export function linksOf(root: RootSnapshot): LinkView[] {
  const links: LinkView[] = [];
  for (const [id, ref] of Object.entries(childrenOf(root))) {
    if (!id.startsWith('link-')) continue;
    const snapshot = snapshotOf(ref);
    if (snapshot?.status !== 'active') continue;
    const context = snapshot.context;
    links.push({
      peerId: id.slice('link-'.length),
      transport: (context.transport as LinkTransport | undefined) ?? 'none',
      connecting: snapshot.hasTag?.('connecting') ?? false,
      rttMs: context.rttMs as number | undefined,
      samples: (context.samples as LinkSample[] | undefined) ?? [],
    });
  }
  return links;
}

export function linkOf(root: RootSnapshot, peerId: string | undefined): LinkView | undefined {
  return peerId === undefined ? undefined : linksOf(root).find((link) => link.peerId === peerId);
}

/** A peer this client knows of, with what it offers and what we measured. */
export interface PeerView {
  peerId: string;
  capabilities: Capabilities;
  /** Discovery's score (0..100) when the peer meets the requirements asked last. */
  score: number | undefined;
  trust: number | undefined;
  rttMs: number | undefined;
  link: LinkTransport;
  linkConnecting: boolean;
  /** The peer's quota comes from the demo provider (not an AI). */
  demo: boolean;
}

interface DiscoveryContext {
  known?: Record<string, Capabilities>;
  ranked?: { peerId: string; capabilities: Capabilities; score: number }[];
  observations?: Record<string, { rttMs?: number; trust?: number }>;
}

const discoveryOf = (root: RootSnapshot) =>
  (snapshotOf(childrenOf(root).discovery)?.context ?? {}) as DiscoveryContext;

export const isDemo = (capabilities: Capabilities | undefined) => capabilities?.quota?.provider === 'demo';

/** Every known peer but this one: ranked peers first (best first), then the others. */
export function peersOf(root: RootSnapshot): PeerView[] {
  const discovery = discoveryOf(root);
  const self = selfPeerId(root);
  const links = new Map(linksOf(root).map((link) => [link.peerId, link]));
  const ranked = discovery.ranked ?? [];
  const rankedIds = new Set(ranked.map((peer) => peer.peerId));
  const entries: { peerId: string; capabilities: Capabilities; score: number | undefined }[] = [
    ...ranked.map(({ peerId, capabilities, score }) => ({ peerId, capabilities, score })),
    ...Object.entries(discovery.known ?? {})
      .filter(([peerId]) => !rankedIds.has(peerId))
      .map(([peerId, capabilities]) => ({ peerId, capabilities, score: undefined })),
  ];
  return entries
    .filter((peer) => peer.peerId !== self)
    .map(({ peerId, capabilities, score }) => {
      const link = links.get(peerId);
      const seen = discovery.observations?.[peerId];
      return {
        peerId,
        capabilities,
        score,
        trust: seen?.trust,
        rttMs: link?.rttMs ?? seen?.rttMs,
        link: link?.transport ?? 'none',
        linkConnecting: link?.connecting ?? false,
        demo: isDemo(capabilities),
      };
    });
}

/** This peer's own quota (undefined: unmetered, no quota monitor). */
export function quotaOf(root: RootSnapshot): QuotaStatus | undefined {
  return snapshotOf(childrenOf(root).quota)?.context.quota as QuotaStatus | undefined;
}

export type TaskPhase =
  | 'waiting'
  | 'queued'
  | 'streaming'
  | 'completed'
  | 'failed'
  | 'cancelled'
  | 'timedOut';

/** One task (delegated or run here) as the response shows it. */
export interface TaskView {
  taskId: string;
  prompt: string | undefined;
  phase: TaskPhase;
  /** Still running: nothing final yet. */
  busy: boolean;
  text: string;
  /** 'local' when this peer's own AI answers, else the serving peer's id. */
  servedBy: string | undefined;
  /** How the serving peer is reached (delegated tasks with an open link). */
  transport: LinkTransport | undefined;
  demo: boolean;
  queuePosition: number;
  attempts: TaskAttempt[];
  error: string | undefined;
}

const requestChildren = (root: RootSnapshot) =>
  Object.entries(childrenOf(root)).filter(([id]) => id.startsWith('request-'));

/** Prompts of the tasks running now, by task id (the history has no prompts). */
export function runningPrompts(root: RootSnapshot): Record<string, string> {
  const prompts: Record<string, string> = {};
  for (const [id, ref] of requestChildren(root)) {
    const prompt = snapshotOf(ref)?.context.prompt;
    if (typeof prompt === 'string') prompts[id.slice('request-'.length)] = prompt;
  }
  return prompts;
}

function fromRunning(root: RootSnapshot, taskId: string, snapshot: ChildSnapshot): TaskView {
  const context = snapshot.context;
  const delegated = Array.isArray(context.candidates);
  const servedBy = delegated
    ? (context.candidates as string[])[(context.current as number | undefined) ?? 0]
    : 'local';
  const known = discoveryOf(root).known ?? {};
  const done = snapshot.status === 'done';
  const queuePosition = (context.queuePosition as number | undefined) ?? 0;
  const streaming = snapshot.hasTag?.('streaming') ?? false;
  const text = (context.text as string | undefined) ?? '';
  // An accepted task with a queue position waits in the serving peer's queue until text comes.
  const phase: TaskPhase = done
    ? ((context.status as TaskPhase | undefined) ?? 'failed')
    : queuePosition > 0 && text === ''
      ? 'queued'
      : streaming
        ? 'streaming'
        : 'waiting';
  const error = context.error as { message?: string } | string | undefined;
  return {
    taskId,
    prompt: context.prompt as string | undefined,
    phase,
    busy: !done && snapshot.status === 'active',
    text,
    servedBy,
    transport: delegated ? linkOf(root, servedBy)?.transport : undefined,
    demo: delegated
      ? isDemo(servedBy ? known[servedBy] : undefined)
      : (context.provider as { isDemo?: boolean } | undefined)?.isDemo === true,
    queuePosition,
    attempts: (context.attempts as TaskAttempt[] | undefined) ?? [],
    error: typeof error === 'string' ? error : error?.message,
  };
}

function fromOutput(root: RootSnapshot, output: TaskRequestOutput, prompt: string | undefined): TaskView {
  const local = output.metadata?.local === true;
  const served = [...output.attempts].reverse().find((attempt) => attempt.outcome === 'completed');
  const servedBy = local ? 'local' : (served ?? output.attempts.at(-1))?.peerId;
  const known = discoveryOf(root).known ?? {};
  return {
    taskId: output.taskId,
    prompt,
    phase: output.status,
    busy: false,
    text: output.text,
    servedBy,
    transport: local ? undefined : linkOf(root, servedBy)?.transport,
    demo: output.metadata?.demo === true || (!local && isDemo(servedBy ? known[servedBy] : undefined)),
    queuePosition: 0,
    attempts: output.attempts,
    error: output.error?.message,
  };
}

/**
 * The task with `taskId`, or (without one) the newest: the newest running task, else the last one
 * in the history. `prompts` fills in prompts the history lacks.
 */
export function taskOf(
  root: RootSnapshot,
  taskId?: string,
  prompts: Record<string, string> = {},
): TaskView | undefined {
  const running = requestChildren(root);
  const child = taskId
    ? running.find(([id]) => id === `request-${taskId}`)
    : running.filter(([, ref]) => snapshotOf(ref)?.status === 'active').at(-1);
  if (child) {
    const snapshot = snapshotOf(child[1]);
    if (snapshot) return fromRunning(root, child[0].slice('request-'.length), snapshot);
  }
  const history = root.context.history;
  const output = taskId ? history.findLast((entry) => entry.taskId === taskId) : history.at(-1);
  return output ? fromOutput(root, output, prompts[output.taskId]) : undefined;
}
