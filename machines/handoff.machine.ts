import { type ActorRefFrom, assign, enqueueActions, sendTo, setup } from 'xstate';
import type {
  Capabilities,
  DiscoveryRequirements,
  Identity,
  PromptDelegation,
  QuotaStatus,
  ServerError,
} from '../protocol/index.ts';
import { connectionMachine, type ForwardedMessage } from './connection.machine.ts';
import { discoveryMachine } from './discovery.machine.ts';
import type { HandoffEnvironment } from './environment.ts';
import { Keyring } from './keyring.ts';
import type { LinkMessage } from './link-framing.ts';
import { type LinkTransport, type PeerLinkInput, peerLinkMachine } from './peer-link.machine.ts';
import { capabilitiesOf } from './providers/performance.ts';
import type { AIProvider } from './providers/provider.ts';
import { initialQuota, type QuotaInput, quotaMachine } from './quota.machine.ts';
import { planRoute } from './route-planner.ts';
import type { SecurityManager } from './security/security-manager.ts';
import { type TaskLocalInput, taskLocalMachine } from './task-local.machine.ts';
import { type TaskRequestInput, type TaskRequestOutput, taskRequestMachine } from './task-request.machine.ts';
import { type Admission, type TaskServeOutput, taskServeMachine } from './task-serve.machine.ts';

export interface DelegateOptions {
  targetPeerId?: string;
  priority?: number;
  timeoutMs?: number;
  model?: string;
}

/** Decides whether to serve a delegation. The default checks the provider, the model and concurrency. */
export type ServePolicy = (request: {
  delegation: PromptDelegation;
  fromPeerId: string;
  running: number;
  /** This peer's own quota, when it has a quota monitor. */
  quota?: QuotaStatus;
  now: number;
}) => Admission;

export interface HandoffInput {
  environment: HandoffEnvironment;
  /** Signs our task messages; its public key is registered with the signaling server. */
  identity?: Identity;
  /** Serves delegated prompts when set. */
  provider?: AIProvider;
  /** Models the provider offers (resolved before the actor starts). */
  models?: string[];
  /** Sent as `requesterCapabilities` with every delegation. */
  capabilities?: Capabilities;
  servePolicy?: ServePolicy;
  /**
   * The security manager: prompt policy, per-peer rate limits, concurrency with a queue, the daily
   * budget, trust and bans. Without one, a plain concurrency limit applies.
   */
  security?: SecurityManager;
  maxConcurrentServes?: number;
  /** This peer's own AI quota (the design's Quota Monitor). Unset: unmetered. */
  quota?: Omit<QuotaInput, 'now' | 'provider'> & { provider?: string };
  /** Open peer links at most (the design's ConnectionPool; default 10). */
  maxLinks?: number;
  /**
   * Once a peer has accepted a delegated task, open a link to the task's next candidate (default
   * true), so a failover mid-stream re-delegates over an open data channel instead of negotiating
   * one. At most one such standby link per task; it only takes a free place in the pool (never
   * evicts a link), is idle (the pool's LRU may recycle it), and stays an ordinary idle link when
   * the task ends.
   */
  standbyLinks?: boolean;
  /** Timing of every peer link (see PeerLinkInput for each field and its default). */
  link?: Pick<
    PeerLinkInput,
    | 'directTimeoutMs'
    | 'restartTimeoutMs'
    | 'maxConnectRetries'
    | 'pingIntervalMs'
    | 'silenceTimeoutMs'
    | 'busyPingIntervalMs'
    | 'busySilenceTimeoutMs'
  >;
  connection?: {
    maxAttempts?: number;
    baseDelayMs?: number;
    maxDelayMs?: number;
    connectTimeoutMs?: number;
    token?: string;
  };
  acceptTimeoutMs?: number;
  /** How long an `unknown-target` verdict waits for the peer to reappear before its link closes. */
  unreachableGraceMs?: number;
  now?: () => number;
}

export interface HandoffContext {
  environment: HandoffEnvironment;
  identity: Identity | undefined;
  /** The others' registered keys: what their task messages are verified against. */
  keyring: Keyring;
  quotaInput: QuotaInput | undefined;
  provider: AIProvider | undefined;
  models: string[];
  capabilities: Capabilities;
  servePolicy: ServePolicy;
  security: SecurityManager | undefined;
  maxLinks: number;
  standbyLinks: boolean;
  link: HandoffInput['link'];
  connectionOptions: HandoffInput['connection'];
  acceptTimeoutMs: number | undefined;
  unreachableGraceMs: number;
  now: () => number;
  /** Last use of each open link, for least-recently-used recycling. */
  linkUse: Record<string, number>;
  /**
   * The peer each running request task has delegated to (by task id): their links are told
   * `link.busy` (tighter liveness) while some task is engaged on them, `link.idle` after.
   */
  engaged: Record<string, string>;
  /** Running serve tasks by `<peerId> <taskId>`, to route acks and cancels. */
  serves: Record<string, string>;
  serveSeq: number;
  /** Finished tasks, newest last (bounded). */
  history: TaskRequestOutput[];
  served: TaskServeOutput[];
  lastServerError: ServerError | undefined;
  /** The connection or discovery actor failed: the client cannot work until it is recreated. */
  fault: string | undefined;
}

export const HISTORY_LIMIT = 50;

export type HandoffEvent =
  | ForwardedMessage
  | { type: 'user.connect'; url: string }
  | { type: 'user.disconnect' }
  | { type: 'user.retry' }
  | { type: 'user.announce'; capabilities: Capabilities }
  | { type: 'user.discover'; requirements: DiscoveryRequirements }
  | { type: 'user.delegate'; taskId: string; prompt: string; options: DelegateOptions }
  | { type: 'user.cancel'; taskId: string }
  /** Runs locally or delegates, as the route planner decides (see route-planner.ts). */
  | { type: 'user.prompt'; taskId: string; prompt: string; options: DelegateOptions }
  /** Runs a prompt on this peer's own provider (handleIncomingPrompt, after the serving policy said yes). */
  | { type: 'user.runLocal'; taskId: string; prompt: string; options: DelegateOptions }
  | { type: 'user.setQuota'; totalQuota: number; usedQuota?: number }
  | { type: 'quota.changed'; quota: QuotaStatus }
  | { type: 'link.message'; peerId: string; message: LinkMessage }
  | {
      type: 'link.signal';
      message: Extract<import('../protocol/index.ts').ClientMessage, { targetPeerId: string }>;
    }
  | { type: 'link.rtt'; peerId: string; rttMs: number }
  | { type: 'link.transport'; peerId: string; transport: LinkTransport }
  | { type: 'link.silent'; peerId: string }
  | { type: 'link.violation'; peerId: string; reason: string; messageType: string }
  | { type: 'keyring.lookup'; peerId: string }
  | { type: 'task.send'; peerId: string; message: LinkMessage }
  /** A request task would like a link to its next candidate ready (see `standbyLinks`). */
  | { type: 'task.standby'; taskId: string; peerId: string }
  | { type: `xstate.done.actor.${string}`; output: unknown }
  | { type: `xstate.error.actor.${string}`; error: unknown };

export type HandoffEmitted =
  | { type: 'handoff.taskDone'; output: TaskRequestOutput }
  | { type: 'handoff.serveDone'; output: TaskServeOutput }
  | { type: 'handoff.routed'; taskId: string; plan: import('./route-planner.ts').RoutePlan };

export const linkId = (peerId: string) => `link-${peerId}`;
export const requestId = (taskId: string) => `request-${taskId}`;
const serveKey = (peerId: string, taskId: string) => `${peerId} ${taskId}`;

/** What any serving policy checks first: an AI to serve with, quota left, the model asked for. */
function refusalFor(
  provider: AIProvider | undefined,
  models: string[],
  { delegation, quota, now }: Parameters<ServePolicy>[0],
): Admission | undefined {
  if (!provider) return { admitted: false, reason: 'no-model', message: 'this peer has no AI to serve with' };
  if (quota && quota.availableQuota < 1) {
    return {
      admitted: false,
      reason: 'quota-exhausted',
      message: 'this peer has used up its quota',
      retryAfterMs: Math.min(86_400_000, Math.max(0, quota.resetTime - now)),
    };
  }
  if (delegation.model && !models.includes(delegation.model)) {
    return {
      admitted: false,
      reason: 'no-model',
      message: `this peer does not offer model ${delegation.model}`,
    };
  }
  return undefined;
}

/** The security manager decides after the basic checks (its queue replaces the plain limit). */
export const securedServePolicy =
  (provider: AIProvider | undefined, models: string[], security: SecurityManager): ServePolicy =>
  (request) =>
    refusalFor(provider, models, request) ?? security.admit(request.delegation, request.fromPeerId);

export const defaultServePolicy =
  (provider: AIProvider | undefined, models: string[], maxConcurrent: number): ServePolicy =>
  (request) => {
    const refusal = refusalFor(provider, models, request);
    if (refusal) return refusal;
    if (request.running >= maxConcurrent) {
      return {
        admitted: false,
        reason: 'busy',
        message: `serving ${request.running} tasks already`,
        retryAfterMs: 1000,
      };
    }
    return { admitted: true, queuePosition: 0 };
  };

type Children = Record<
  string,
  { id: string; getSnapshot(): { status: string; context: unknown } } | undefined
>;

/** Peers some running task depends on: their links are not idle. */
function busyPeers(children: Children): Set<string> {
  const busy = new Set<string>();
  for (const [id, child] of Object.entries(children)) {
    const snapshot = child?.getSnapshot();
    if (snapshot?.status !== 'active') continue;
    if (id.startsWith('request-')) {
      const context = snapshot.context as { candidates: string[]; current: number };
      const peer = context.candidates[context.current];
      if (peer) busy.add(peer);
    } else if (id.startsWith('serve-')) {
      busy.add((snapshot.context as { requesterPeerId: string }).requesterPeerId);
    }
  }
  return busy;
}

export const handoffMachine = setup({
  types: {
    input: {} as HandoffInput,
    context: {} as HandoffContext,
    events: {} as HandoffEvent,
    emitted: {} as HandoffEmitted,
  },
  actors: {
    connection: connectionMachine,
    discovery: discoveryMachine,
    peerLink: peerLinkMachine,
    taskRequest: taskRequestMachine,
    taskServe: taskServeMachine,
    taskLocal: taskLocalMachine,
    quota: quotaMachine,
  },
  actions: {
    toConnection: enqueueActions(({ event, enqueue }) => {
      switch (event.type) {
        case 'user.connect':
        case 'user.disconnect':
        case 'user.retry':
        case 'user.announce':
          enqueue.sendTo('connection', event);
          break;
        case 'link.signal':
          enqueue.sendTo('connection', { type: 'signal.send', message: event.message });
          break;
      }
    }),
    storeCapabilities: assign({
      capabilities: ({ context, event }) =>
        event.type === 'user.announce' ? event.capabilities : context.capabilities,
    }),
    toDiscovery: enqueueActions(({ event, enqueue }) => {
      if (event.type === 'user.discover') enqueue.sendTo('discovery', event);
      else if (
        event.type === 'peer-capability-update' ||
        event.type === 'peers-discovered' ||
        event.type === 'peer-left'
      ) {
        enqueue.sendTo('discovery', event);
      } else if (event.type === 'link.rtt') enqueue.sendTo('discovery', event);
    }),
    /** Signals and relay from a peer go to its link; an offer or relay from a new peer opens one. */
    toLink: enqueueActions(({ context, event, enqueue, self, system }) => {
      if (
        event.type !== 'offer' &&
        event.type !== 'answer' &&
        event.type !== 'ice-candidate' &&
        event.type !== 'relay'
      )
        return;
      const id = linkId(event.fromPeerId);
      const children = self.getSnapshot().children as Children;
      let linkUse = context.linkUse;
      if (!children[id]) {
        if (event.type !== 'offer' && event.type !== 'relay') return;
        const opened = openLink(context, enqueue, children, system, event.fromPeerId, false);
        if (!opened.opened) return;
        linkUse = withoutPeer(linkUse, opened.evicted);
      }
      enqueue.sendTo(id, event);
      enqueue.assign({ linkUse: { ...linkUse, [event.fromPeerId]: context.now() } });
    }),
    peerGone: enqueueActions(({ event, enqueue, self }) => {
      if (event.type !== 'peer-left') return;
      const children = self.getSnapshot().children as Children;
      if (children[linkId(event.peerId)]) enqueue.sendTo(linkId(event.peerId), { type: 'link.close' });
      lostPeer(enqueue, children, event.peerId, `peer left (${event.reason})`);
    }),
    /**
     * `unknown-target` may only mean the peer has not reconnected yet (after a server restart the
     * server forgets everyone until they come back): the verdict waits out a grace longer than the
     * link's own fallback to the relay, and is withdrawn if the peer shows up meanwhile. A peer that
     * is really gone goes silent first, and its tasks move on then.
     */
    serverError: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== 'error') return;
      enqueue.assign({ lastServerError: event });
      const target = event.targetPeerId;
      if (
        event.code !== 'unknown-target' ||
        !target ||
        !(self.getSnapshot().children as Children)[linkId(target)]
      )
        return;
      enqueue.cancel(unreachableTimer(target));
      enqueue.sendTo(
        linkId(target),
        { type: 'link.unreachable', reason: event.message },
        { id: unreachableTimer(target), delay: context.unreachableGraceMs },
      );
    }),
    /** The peer is back (announced again, or talking to us): an `unknown-target` verdict is void. */
    peerSeen: enqueueActions(({ event, enqueue }) => {
      const peerId =
        event.type === 'peer-capability-update'
          ? event.peerId
          : event.type === 'link.message'
            ? event.peerId
            : undefined;
      if (peerId) enqueue.cancel(unreachableTimer(peerId));
    }),
    /** A task wants to talk to a peer: through its link, opened (as initiator) if needed. */
    sendToPeer: enqueueActions(({ context, event, enqueue, self, system }) => {
      if (event.type !== 'task.send') return;
      const id = linkId(event.peerId);
      const children = self.getSnapshot().children as Children;
      let linkUse = context.linkUse;
      if (!children[id]) {
        const opened = openLink(context, enqueue, children, system, event.peerId, true);
        if (!opened.opened) {
          lostPeer(enqueue, children, event.peerId, opened.reason);
          return;
        }
        linkUse = withoutPeer(linkUse, opened.evicted);
      }
      enqueue.sendTo(id, { type: 'link.send', message: event.message });
      enqueue.assign({ linkUse: { ...linkUse, [event.peerId]: context.now() } });
      // Our delegation: the task now depends on this peer (and no longer on the one before, if any).
      const { message } = event;
      if (message.type === 'prompt-delegation' && children[requestId(message.taskId)]) {
        const { [message.taskId]: previous, ...others } = context.engaged;
        enqueue.assign({ engaged: { ...others, [message.taskId]: event.peerId } });
        enqueue.sendTo(id, { type: 'link.busy' });
        if (previous !== undefined && previous !== event.peerId)
          releaseLink(enqueue, children, others, previous);
      }
    }),
    /** A request task's next candidate: a link opened ahead of need, only into a free place. */
    openStandby: enqueueActions(({ context, event, enqueue, self, system }) => {
      if (event.type !== 'task.standby' || !context.standbyLinks) return;
      const children = self.getSnapshot().children as Children;
      if (children[linkId(event.peerId)]) return; // already open
      const open = Object.keys(children).filter((id) => id.startsWith('link-')).length;
      if (open >= context.maxLinks) return; // a standby never recycles another link
      const opened = openLink(context, enqueue, children, system, event.peerId, true);
      if (opened.opened) enqueue.assign({ linkUse: { ...context.linkUse, [event.peerId]: context.now() } });
    }),
    /** Task traffic from a peer: a delegation starts a serve task; the rest goes to its task. */
    routeTaskMessage: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== 'link.message') return;
      const { peerId, message } = event;
      const children = self.getSnapshot().children as Children;
      switch (message.type) {
        case 'prompt-delegation': {
          const key = serveKey(peerId, message.taskId);
          if (context.serves[key]) return; // a repeat of a task already running
          const running = Object.keys(context.serves).length;
          const admission = context.servePolicy({
            delegation: message,
            fromPeerId: peerId,
            running,
            now: context.now(),
            ...(quotaOf(children) ? { quota: quotaOf(children) } : {}),
          });
          const id = `serve-${context.serveSeq + 1}`;
          enqueue.spawnChild('taskServe', {
            id,
            input: {
              requesterPeerId: peerId,
              delegation: message,
              admission,
              provider: context.provider as AIProvider,
            },
          });
          enqueue.assign({ serves: { ...context.serves, [key]: id }, serveSeq: context.serveSeq + 1 });
          return;
        }
        case 'task-accepted':
        case 'task-rejected':
        case 'prompt-response':
        case 'task-failed': {
          const id = requestId(message.taskId);
          if (children[id]) enqueue.sendTo(id, { type: 'task.message', peerId, message });
          return;
        }
        case 'chunk-ack':
        case 'task-cancel': {
          const id = context.serves[serveKey(peerId, message.taskId)];
          if (id && children[id]) enqueue.sendTo(id, message);
          return;
        }
      }
    }),
    learnKeys: ({ context, event }) => {
      if (event.type === 'peer-capability-update') context.keyring.learn(event.peerId, event.publicKey);
      else if (event.type === 'peers-discovered') {
        for (const peer of event.peers) context.keyring.learn(peer.peerId, peer.publicKey);
      }
    },
    lookUpKey: sendTo('connection', ({ event }) => ({
      type: 'signal.send' as const,
      message: {
        type: 'peer-lookup' as const,
        peerId: (event as Extract<HandoffEvent, { type: 'keyring.lookup' }>).peerId,
      },
    })),
    /** A message that fails its signature: the tasks relying on that peer move on. */
    peerMisbehaved: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== 'link.violation') return;
      const trust = context.security?.record({
        type: 'violation',
        peerId: event.peerId,
        kind: event.reason,
      }).trust;
      if (trust)
        enqueue.sendTo('discovery', { type: 'peer.trust', peerId: event.peerId, trust: trust.score });
      lostPeer(
        enqueue,
        self.getSnapshot().children as Children,
        event.peerId,
        `${event.reason} (${event.messageType})`,
      );
    }),
    /** A peer that stopped answering pings is treated as gone by the tasks that need it. */
    peerSilent: enqueueActions(({ event, enqueue, self }) => {
      if (event.type !== 'link.silent') return;
      lostPeer(enqueue, self.getSnapshot().children as Children, event.peerId, 'peer stopped answering');
    }),
    pathChanged: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'link.transport') return;
      for (const [key, id] of Object.entries(context.serves)) {
        if (key.startsWith(`${event.peerId} `)) enqueue.sendTo(id, { type: 'requester.pathChanged' });
      }
    }),
    startRequest: enqueueActions(({ context, event, enqueue, system, self: root }) => {
      if (event.type !== 'user.delegate') return;
      // A task id already running is not started twice (its actor id would be taken).
      if ((root.getSnapshot().children as Children)[requestId(event.taskId)]) return;
      const self = system.get('connection')?.getSnapshot().context.peerId as string | undefined;
      const ranked = (system.get('discovery')?.getSnapshot().context.ranked ?? []) as { peerId: string }[];
      const target = event.options.targetPeerId === self ? undefined : event.options.targetPeerId;
      const others = ranked
        .map((peer) => peer.peerId)
        .filter((peerId) => peerId !== target && peerId !== self);
      const candidates = target ? [target, ...others] : others;
      enqueue.spawnChild('taskRequest', {
        id: requestId(event.taskId),
        input: requestInput(context, event, candidates),
      });
    }),
    /** Runs a prompt where the route planner says: here, on the best peer, or nowhere (with why). */
    routePrompt: enqueueActions(({ context, event, enqueue, system, self: root }) => {
      if (event.type !== 'user.prompt') return;
      const children = root.getSnapshot().children as Children;
      if (children[requestId(event.taskId)]) return;
      const connection = system.get('connection')?.getSnapshot();
      const self = connection?.context.peerId as string | undefined;
      const discovery = system.get('discovery')?.getSnapshot().context as
        | { ranked: { peerId: string; capabilities: Capabilities }[]; known: Record<string, Capabilities> }
        | undefined;
      // Best first: the ranked peers, then any others we know of.
      const ranked = discovery?.ranked ?? [];
      const rest = Object.entries(discovery?.known ?? {})
        .filter(([peerId]) => !ranked.some((peer) => peer.peerId === peerId))
        .map(([peerId, capabilities]) => ({ peerId, capabilities }));
      const quota = quotaOf(children);
      const plan = planRoute({
        ...(event.options.model ? { model: event.options.model } : {}),
        local: { models: context.provider ? context.models : [], ...(quota ? { quota } : {}) },
        peers: [...ranked, ...rest].filter((peer) => peer.peerId !== self),
        connected: Boolean(connection?.hasTag('online')),
        now: context.now(),
      });
      if (plan.route === 'local') {
        enqueue.spawnChild('taskLocal', { id: requestId(event.taskId), input: localInput(context, event) });
      } else if (plan.route === 'delegate') {
        const target = event.options.targetPeerId;
        const candidates =
          target && plan.candidates.includes(target)
            ? [target, ...plan.candidates.filter((p) => p !== target)]
            : plan.candidates;
        enqueue.spawnChild('taskRequest', {
          id: requestId(event.taskId),
          input: requestInput(context, event, candidates),
        });
      } else {
        // Nothing left this peer: the task ends here, with the reason.
        const result: TaskRequestOutput = {
          taskId: event.taskId,
          status: 'failed',
          text: '',
          attempts: [],
          usage: undefined,
          metadata: undefined,
          error: { reason: 'no-peers', message: plan.reason },
        };
        enqueue.assign({ history: [...context.history, result].slice(-HISTORY_LIMIT) });
        enqueue.emit({ type: 'handoff.taskDone', output: result });
      }
      enqueue.emit({ type: 'handoff.routed', taskId: event.taskId, plan });
    }),
    /** Runs a prompt on this peer's own AI, unconditionally (the caller decided it may). */
    runLocal: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== 'user.runLocal' || !context.provider) return;
      if ((self.getSnapshot().children as Children)[requestId(event.taskId)]) return;
      enqueue.spawnChild('taskLocal', { id: requestId(event.taskId), input: localInput(context, event) });
    }),
    startQuota: enqueueActions(({ context, enqueue }) => {
      if (context.quotaInput)
        enqueue.spawnChild('quota', { id: 'quota', systemId: 'quota', input: context.quotaInput });
    }),
    setQuota: enqueueActions(({ event, enqueue, self }) => {
      if (event.type !== 'user.setQuota' || !(self.getSnapshot().children as Children).quota) return;
      enqueue.sendTo('quota', {
        type: 'quota.set',
        totalQuota: event.totalQuota,
        ...(event.usedQuota !== undefined ? { usedQuota: event.usedQuota } : {}),
      });
    }),
    /** The quota changed: what we announce changes with it (the quota monitor throttles this). */
    announceQuota: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'quota.changed') return;
      const capabilities = { ...context.capabilities, quota: event.quota };
      enqueue.assign({ capabilities });
      enqueue.sendTo('connection', { type: 'user.announce', capabilities });
    }),
    cancelRequest: enqueueActions(({ event, enqueue, self }) => {
      if (event.type !== 'user.cancel') return;
      if ((self.getSnapshot().children as Children)[requestId(event.taskId)]) {
        enqueue.sendTo(requestId(event.taskId), { type: 'user.cancel' });
      }
    }),
    /** A child finished: record tasks, tell tasks about a lost link, and stop the child. */
    reapChild: enqueueActions(({ context, event, enqueue, self }) => {
      if (!event.type.startsWith('xstate.done.actor.')) return;
      const id = event.type.slice('xstate.done.actor.'.length);
      reap(
        context,
        enqueue,
        self.getSnapshot().children as Children,
        id,
        (event as { output: unknown }).output,
      );
    }),
    /**
     * A child that failed (threw) is reaped like one that finished, with a failed outcome: one
     * broken link or task must not take the whole client down.
     */
    reapFailedChild: enqueueActions(({ context, event, enqueue, self }) => {
      if (!event.type.startsWith('xstate.error.actor.')) return;
      const id = event.type.slice('xstate.error.actor.'.length);
      const children = self.getSnapshot().children as Children;
      const message = String((event as { error?: unknown }).error ?? 'failed');
      const last = children[id]?.getSnapshot().context as Record<string, unknown> | undefined;
      let output: unknown;
      if (id.startsWith('request-')) {
        output = {
          taskId: id.slice('request-'.length),
          status: 'failed',
          text: (last?.text as string | undefined) ?? '',
          attempts: (last?.attempts as TaskRequestOutput['attempts'] | undefined) ?? [],
          usage: undefined,
          metadata: undefined,
          error: { reason: 'internal', message },
        } satisfies TaskRequestOutput as TaskRequestOutput;
      } else if (id.startsWith('serve-')) {
        output = {
          taskId: ((last?.delegation as { taskId?: string } | undefined)?.taskId ?? id) as string,
          requesterPeerId: (last?.requesterPeerId as string | undefined) ?? '',
          outcome: 'failed',
          usage: undefined,
          chars: (last?.chars as number | undefined) ?? 0,
          error: message,
        } satisfies TaskServeOutput;
      } else if (!id.startsWith('link-')) {
        enqueue.assign({ fault: `${id}: ${message}` });
        return;
      }
      reap(context, enqueue, children, id, output);
    }),
  },
}).createMachine({
  id: 'handoff',
  description:
    'The client: one signaling connection, discovery, a pool of peer links, and the tasks running over them.',
  context: ({ input, self }) => {
    const models = input.models ?? [];
    const quotaInput: QuotaInput | undefined = input.quota
      ? { provider: input.provider?.id ?? 'none', ...input.quota, now: input.now ?? Date.now }
      : undefined;
    return {
      environment: input.environment,
      identity: input.identity,
      keyring: new Keyring((peerId) => self.send({ type: 'keyring.lookup', peerId })),
      quotaInput,
      provider: input.provider,
      models,
      capabilities:
        input.capabilities ??
        capabilitiesOf(input.provider, models, quotaInput ? initialQuota(quotaInput) : undefined),
      servePolicy:
        input.servePolicy ??
        (input.security
          ? securedServePolicy(input.provider, models, input.security)
          : defaultServePolicy(input.provider, models, input.maxConcurrentServes ?? 2)),
      security: input.security,
      maxLinks: input.maxLinks ?? 10,
      standbyLinks: input.standbyLinks ?? true,
      link: input.link,
      connectionOptions: input.connection,
      acceptTimeoutMs: input.acceptTimeoutMs,
      // Longer than the link's default 5 s direct timeout, so a reconnecting peer is reached by relay first.
      unreachableGraceMs: input.unreachableGraceMs ?? 8_000,
      now: input.now ?? Date.now,
      linkUse: {},
      engaged: {},
      serves: {},
      serveSeq: 0,
      history: [],
      served: [],
      lastServerError: undefined,
      fault: undefined,
    };
  },
  entry: 'startQuota',
  invoke: [
    {
      id: 'connection',
      systemId: 'connection',
      src: 'connection',
      input: ({ context }) => ({
        WebSocket: context.environment.WebSocket,
        ...context.connectionOptions,
        ...(context.identity ? { publicKey: context.identity.publicKey } : {}),
      }),
    },
    { id: 'discovery', systemId: 'discovery', src: 'discovery', input: {} },
  ],
  on: {
    'user.connect': { actions: 'toConnection' },
    'user.disconnect': { actions: 'toConnection' },
    'user.retry': { actions: 'toConnection' },
    'user.announce': { actions: ['storeCapabilities', 'toConnection'] },
    'user.discover': { actions: 'toDiscovery' },
    'user.delegate': { actions: 'startRequest' },
    'user.cancel': { actions: 'cancelRequest' },
    'user.prompt': { actions: 'routePrompt' },
    'user.runLocal': { actions: 'runLocal' },
    'user.setQuota': { actions: 'setQuota' },
    'quota.changed': { actions: 'announceQuota' },
    'peer-capability-update': { actions: ['learnKeys', 'peerSeen', 'toDiscovery'] },
    'peers-discovered': { actions: ['learnKeys', 'toDiscovery'] },
    'peer-left': { actions: ['toDiscovery', 'peerGone'] },
    offer: { actions: 'toLink' },
    answer: { actions: 'toLink' },
    'ice-candidate': { actions: 'toLink' },
    relay: { actions: 'toLink' },
    error: { actions: 'serverError' },
    'link.signal': { actions: 'toConnection' },
    'link.message': { actions: ['peerSeen', 'routeTaskMessage'] },
    'link.rtt': { actions: 'toDiscovery' },
    'link.transport': { actions: 'pathChanged' },
    'link.silent': { actions: 'peerSilent' },
    'link.violation': { actions: 'peerMisbehaved' },
    'keyring.lookup': { actions: 'lookUpKey' },
    'task.send': { actions: 'sendToPeer' },
    'task.standby': { actions: 'openStandby' },
    'xstate.done.actor.*': { actions: 'reapChild' },
    'xstate.error.actor.*': { actions: 'reapFailedChild' },
  },
});

export type HandoffActor = ActorRefFrom<typeof handoffMachine>;

/** The part of XState's `enqueue` the helpers below use (method syntax: checked bivariantly). */
interface Enqueue {
  sendTo(target: string, event: { type: string; [key: string]: unknown }): void;
  assign(values: Partial<HandoffContext>): void;
  emit(event: HandoffEmitted): void;
  stopChild(id: string): void;
  spawnChild(src: 'peerLink', options: { id: string; input: PeerLinkInput }): void;
}

/** Opens a link (recycling the least recently used idle one if the pool is full). */
function openLink(
  context: HandoffContext,
  enqueue: Enqueue,
  children: Children,
  system: { get(id: string): { getSnapshot(): { context: Record<string, unknown> } } | undefined },
  peerId: string,
  initiator: boolean,
): { opened: true; evicted?: string } | { opened: false; reason: string } {
  const session = system.get('connection')?.getSnapshot().context as
    | { peerId?: string; iceServers?: [] }
    | undefined;
  if (!session?.peerId) return { opened: false, reason: 'not connected to the signaling server yet' };
  const open = Object.keys(children).filter((id) => id.startsWith('link-'));
  let evicted: string | undefined;
  if (open.length >= context.maxLinks) {
    const busy = busyPeers(children);
    const idle = open
      .map((id) => id.slice('link-'.length))
      .filter((peer) => !busy.has(peer))
      .sort((a, b) => (context.linkUse[a] ?? 0) - (context.linkUse[b] ?? 0));
    evicted = idle[0];
    if (evicted === undefined) return { opened: false, reason: 'no free peer link (pool exhausted)' };
    enqueue.stopChild(linkId(evicted));
  }
  enqueue.spawnChild('peerLink', {
    id: linkId(peerId),
    input: {
      localPeerId: session.peerId,
      remotePeerId: peerId,
      initiator,
      RTCPeerConnection: context.environment.RTCPeerConnection,
      iceServers: session.iceServers ?? [],
      ...(context.environment.rtcConfiguration
        ? { rtcConfiguration: context.environment.rtcConfiguration }
        : {}),
      ...context.link,
      now: context.now,
      ...(context.identity ? { identity: context.identity, keyring: context.keyring } : {}),
    },
  });
  return evicted === undefined ? { opened: true } : { opened: true, evicted };
}

/** No request task is engaged on `peerId` any more: its link (if open) goes back to idle liveness. */
function releaseLink(
  enqueue: Enqueue,
  children: Children,
  engaged: Record<string, string>,
  peerId: string,
): void {
  if (Object.values(engaged).includes(peerId) || !children[linkId(peerId)]) return;
  enqueue.sendTo(linkId(peerId), { type: 'link.idle' });
}

/** Tells every task that depends on `peerId` that it is gone. */
function lostPeer(enqueue: Enqueue, children: Children, peerId: string, reason: string): void {
  for (const [id, child] of Object.entries(children)) {
    if (child?.getSnapshot().status !== 'active') continue;
    if (id.startsWith('request-')) enqueue.sendTo(id, { type: 'peer.lost', peerId, reason });
    else if (
      id.startsWith('serve-') &&
      (child.getSnapshot().context as { requesterPeerId: string }).requesterPeerId === peerId
    ) {
      enqueue.sendTo(id, { type: 'requester.lost' });
    }
  }
}

/** Records a finished (or failed) child, tells tasks about a lost link, and stops the child. */
function reap(
  context: HandoffContext,
  enqueue: Enqueue,
  children: Children,
  id: string,
  output: unknown,
): void {
  if (id.startsWith('request-')) {
    const result = output as TaskRequestOutput;
    enqueue.assign({ history: [...context.history, result].slice(-HISTORY_LIMIT) });
    const { [id.slice('request-'.length)]: peer, ...engaged } = context.engaged;
    if (peer !== undefined) {
      enqueue.assign({ engaged });
      releaseLink(enqueue, children, engaged, peer);
    }
    enqueue.emit({ type: 'handoff.taskDone', output: result });
    // A prompt run on our own AI counts against our quota.
    if (result.metadata?.local === true && children.quota) {
      enqueue.sendTo('quota', { type: 'quota.consume', usage: result.usage });
    }
    // How each peer that worked on it did feeds its trust (and so its ranking).
    if (context.security) {
      for (const attempt of result.attempts) {
        if (attempt.peerId === 'local') continue;
        const outcome =
          attempt.outcome === 'pending' || attempt.outcome === 'streamed'
            ? result.status === 'timedOut'
              ? 'timedOut'
              : 'cancelled'
            : attempt.outcome;
        const { trust } = context.security.record({ type: 'requested', peerId: attempt.peerId, outcome });
        if (trust)
          enqueue.sendTo('discovery', { type: 'peer.trust', peerId: attempt.peerId, trust: trust.score });
      }
    }
  } else if (id.startsWith('serve-')) {
    const result = output as TaskServeOutput;
    // Serving someone else spends our quota too (a refusal spends nothing).
    if (result.outcome !== 'rejected' && children.quota) {
      enqueue.sendTo('quota', { type: 'quota.consume', usage: result.usage });
    }
    if (context.security) {
      // The security manager frees the task's slot and may promote queued ones.
      const { promoted, trust } = context.security.record({
        type: 'served',
        peerId: result.requesterPeerId,
        taskId: result.taskId,
        outcome: result.outcome,
        usage: result.usage,
      });
      for (const next of promoted) {
        const id = context.serves[serveKey(next.peerId, next.taskId)];
        if (id && children[id]) enqueue.sendTo(id, { type: 'serve.start' });
      }
      if (trust)
        enqueue.sendTo('discovery', {
          type: 'peer.trust',
          peerId: result.requesterPeerId,
          trust: trust.score,
        });
    }
    const serves = { ...context.serves };
    delete serves[serveKey(result.requesterPeerId, result.taskId)];
    enqueue.assign({ serves, served: [...context.served, result].slice(-HISTORY_LIMIT) });
    enqueue.emit({ type: 'handoff.serveDone', output: result });
  } else if (id.startsWith('link-')) {
    const peerId = id.slice('link-'.length);
    const { [peerId]: _closed, ...linkUse } = context.linkUse;
    enqueue.assign({ linkUse });
    lostPeer(enqueue, children, peerId, 'link closed');
  }
  if (ranOurAI(id, output)) refreshPerformance(context, enqueue);
  if (children[id]) enqueue.stopChild(id);
}

/** Did this finished child run our own provider (a local prompt, or a task served for a peer)? */
function ranOurAI(id: string, output: unknown): boolean {
  if (id.startsWith('serve-')) return (output as TaskServeOutput).outcome !== 'rejected';
  return id.startsWith('request-') && (output as TaskRequestOutput).metadata?.local === true;
}

/** Our provider's measured speed changed with that run: announce it (only if it changed). */
function refreshPerformance(context: HandoffContext, enqueue: Enqueue): void {
  const measured = context.provider && 'performance' in context.provider ? context.provider : undefined;
  if (!measured || !context.capabilities.hasAI) return;
  const performance = (measured as unknown as { performance(): Capabilities['performance'] }).performance();
  if (!performance || JSON.stringify(performance) === JSON.stringify(context.capabilities.performance))
    return;
  const capabilities = { ...context.capabilities, performance };
  enqueue.assign({ capabilities });
  enqueue.sendTo('connection', { type: 'user.announce', capabilities });
}

/** `linkUse` less a recycled link's entry. */
function withoutPeer(linkUse: Record<string, number>, peerId: string | undefined): Record<string, number> {
  if (peerId === undefined) return linkUse;
  const { [peerId]: _recycled, ...rest } = linkUse;
  return rest;
}

/** This peer's own quota, if it has a quota monitor. */
function quotaOf(children: Children): QuotaStatus | undefined {
  return (children.quota?.getSnapshot().context as { quota?: QuotaStatus } | undefined)?.quota;
}

/** The requester-side task for a prompt, to be tried on `candidates` in order. */
function requestInput(
  context: HandoffContext,
  event: { taskId: string; prompt: string; options: DelegateOptions },
  candidates: string[],
): TaskRequestInput {
  const { options } = event;
  return {
    taskId: event.taskId,
    prompt: event.prompt,
    candidates,
    requesterCapabilities: context.capabilities,
    ...(options.priority !== undefined ? { priority: options.priority } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.model ? { model: options.model } : {}),
    ...(context.acceptTimeoutMs !== undefined ? { acceptTimeoutMs: context.acceptTimeoutMs } : {}),
  };
}

const unreachableTimer = (peerId: string) => `unreachable-${peerId}`;

/** A prompt run on this peer's own provider. */
function localInput(
  context: HandoffContext,
  event: { taskId: string; prompt: string; options: DelegateOptions },
): TaskLocalInput {
  const { options } = event;
  return {
    taskId: event.taskId,
    prompt: event.prompt,
    provider: context.provider as AIProvider,
    ...(options.model ? { model: options.model } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  };
}
