import { type ActorRefFrom, createActor, type InspectionEvent, type Observer } from 'xstate';
import {
  type Capabilities,
  createIdentity,
  type DiscoveredPeer,
  type DiscoveryRequirements,
  type PromptDelegation,
} from '../protocol/index.ts';
import { type DesignState, designState } from './design-state.ts';
import { DEFAULT_REQUIREMENTS } from './discovery.machine.ts';
import { browserEnvironment, type HandoffEnvironment } from './environment.ts';
import {
  type DelegateOptions,
  type HandoffActor,
  type HandoffInput,
  handoffMachine,
  requestId,
} from './handoff.machine.ts';
import { withPerformance } from './providers/performance.ts';
import type { RoutePlan } from './route-planner.ts';
import { SecurityManager } from './security/security-manager.ts';
import type { TaskRequestOutput, taskRequestMachine } from './task-request.machine.ts';

export interface HandoffOptions extends Omit<HandoffInput, 'environment' | 'models' | 'security'> {
  /** The serving side's security manager; one with the defaults unless given, none with `false`. */
  security?: SecurityManager | false;
  /** WebSocket and RTCPeerConnection to use; defaults to the browser's. */
  environment?: HandoffEnvironment;
  /** XState inspection (the demo's inspector listens here). */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
}

/** One delegated prompt: its streamed text, its final result, and a way to cancel it. */
export interface DelegatedTask {
  readonly taskId: string;
  /** Each chunk of the answer exactly once, in order. Ends when the task ends. */
  readonly chunks: AsyncIterable<string>;
  /** Resolves with the task's outcome (completed, failed, cancelled or timedOut); never rejects. */
  readonly result: Promise<TaskRequestOutput>;
  /** The task's own actor (requester side), while it runs. */
  readonly actor: ActorRefFrom<typeof taskRequestMachine> | undefined;
  cancel(): void;
}

/** Raised by `handleIncomingPrompt` when the serving policy refuses a prompt. */
export class PromptRefusedError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** The design's EnhancedP2PManager, over the client's actor system. */
export interface Handoff {
  /** The root actor; its children are the connection, discovery, peer links and tasks. */
  readonly actor: HandoffActor;
  /** Connects to the signaling server; resolves with our peer id once registered. */
  connect(signalingUrl: string): Promise<string>;
  disconnect(): void;
  /** Announces (or re-announces) what this peer offers. */
  announce(capabilities: Capabilities): void;
  /** Asks the server for peers meeting `requirements`; resolves with them, best first. */
  discoverPeers(requirements?: DiscoveryRequirements): Promise<DiscoveredPeer[]>;
  /**
   * The design's quota-aware routing: runs the prompt on this peer's own AI when its model and
   * quota allow, else delegates to the best peer that can serve it; when none can, the task ends at
   * once with the reason (`plan.reason`) and nothing leaves this peer.
   */
  prompt(prompt: string, options?: DelegateOptions): DelegatedTask & { plan: RoutePlan };
  /** Sets this peer's quota (needs the `quota` option); others hear of it (throttled). */
  setQuota(totalQuota: number, usedQuota?: number): void;
  /** Delegates a prompt to `targetPeerId`, or to the best discovered peer. */
  delegatePrompt(
    prompt: string,
    targetPeerId?: string,
    options?: Omit<DelegateOptions, 'targetPeerId'>,
  ): DelegatedTask;
  /**
   * What this peer does with a prompt from `senderId`: the serving policy decides, then the
   * provider streams the answer. (Delegations arriving over links run the same policy and provider.)
   */
  handleIncomingPrompt(prompt: string, senderId: string): AsyncIterable<string>;
  onConnectionStateChange(callback: (state: DesignState) => void): () => void;
  onPeerDiscovered(callback: (peer: DiscoveredPeer) => void): () => void;
  /** Leaves the signaling server and stops every actor. */
  stop(): void;
}

let taskCounter = 0;
const newTaskId = () =>
  `task-${Date.now().toString(36)}-${(taskCounter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** Starts the client's actor system. Await it: the provider's models are resolved first. */
export async function createHandoff(options: HandoffOptions = {}): Promise<Handoff> {
  const environment = options.environment ?? browserEnvironment();
  // Every run of our own AI is timed: peers rank us by what we really deliver.
  const provider =
    options.provider && !('performance' in options.provider)
      ? withPerformance(options.provider)
      : options.provider;
  const models = provider ? await provider.models() : [];
  // Every peer signs its task messages; the key is registered when it announces.
  const identity = options.identity ?? (await createIdentity());
  const { security, inspect: _inspect, ...rest } = options;
  const stateListeners = new Set<(state: DesignState) => void>();
  let lastState: DesignState | undefined;
  const userInspect = options.inspect;

  const actor = createActor(handoffMachine, {
    input: {
      ...rest,
      ...(provider ? { provider } : {}),
      environment,
      models,
      identity,
      ...(options.security === false
        ? {}
        : { security: options.security ?? new SecurityManager({ now: options.now ?? Date.now }) }),
    },
    inspect: (event) => {
      if (typeof userInspect === 'function') userInspect(event);
      else userInspect?.next?.(event);
      if (event.type === '@xstate.snapshot' && stateListeners.size > 0) notifyState();
    },
  });

  function notifyState(): void {
    const state = designState(actor.getSnapshot());
    if (state === lastState) return;
    lastState = state;
    for (const listener of stateListeners) listener(state);
  }

  const connection = () => actor.system.get('connection');
  const discovery = () => actor.system.get('discovery');

  /** Resolves when `check` returns a value for an actor's snapshot; rejects on `fail`. */
  function waitFor<T>(
    target: () => { getSnapshot(): unknown; subscribe(o: () => void): { unsubscribe(): void } } | undefined,
    check: (snapshot: never) => T | undefined,
    fail: (snapshot: never) => string | undefined,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      const ref = target();
      if (!ref) return reject(new Error('actor not running'));
      let subscription: { unsubscribe(): void } | undefined;
      const test = () => {
        const snapshot = ref.getSnapshot() as never;
        const value = check(snapshot);
        if (value !== undefined) {
          subscription?.unsubscribe();
          resolve(value);
          return true;
        }
        const error = fail(snapshot);
        if (error) {
          subscription?.unsubscribe();
          reject(new Error(error));
          return true;
        }
        return false;
      };
      if (!test()) subscription = ref.subscribe(() => void test());
    });
  }

  actor.start();

  /** Starts a task with `send` and follows it: its chunks, in order, and its result. */
  function track(taskId: string, send: () => void): DelegatedTask {
    const queue: string[] = [];
    let done = false;
    let wake: (() => void) | undefined;
    const result = new Promise<TaskRequestOutput>((resolve) => {
      const subscription = actor.on('handoff.taskDone', (event) => {
        if (event.output.taskId !== taskId) return;
        subscription.unsubscribe();
        done = true;
        wake?.();
        resolve(event.output);
      });
    });
    send();
    const request = actor.getSnapshot().children[requestId(taskId)] as
      | ActorRefFrom<typeof taskRequestMachine>
      | undefined;
    const chunkSubscription = request?.on('task.chunk', (event) => {
      queue.push(event.text);
      wake?.();
    });
    void result.then(() => chunkSubscription?.unsubscribe());
    const chunks: AsyncIterable<string> = {
      async *[Symbol.asyncIterator]() {
        while (true) {
          if (queue.length) {
            yield queue.shift() as string;
            continue;
          }
          if (done) return;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      },
    };
    return {
      taskId,
      chunks,
      result,
      actor: request,
      cancel: () => actor.send({ type: 'user.cancel', taskId }),
    };
  }

  const handoff: Handoff = {
    actor,
    async connect(signalingUrl) {
      actor.send({ type: 'user.connect', url: signalingUrl });
      const peerId = await waitFor(
        connection,
        (s: { hasTag(t: string): boolean; context: { peerId?: string } }) =>
          s.hasTag('online') ? s.context.peerId : undefined,
        (s: { value: unknown; context: { lastError?: string } }) =>
          s.value === 'failed'
            ? `cannot connect to ${signalingUrl}: ${s.context.lastError ?? 'failed'}`
            : undefined,
      );
      const { capabilities } = actor.getSnapshot().context;
      actor.send({ type: 'user.announce', capabilities });
      return peerId;
    },
    disconnect() {
      actor.send({ type: 'user.disconnect' });
    },
    announce(capabilities) {
      actor.send({ type: 'user.announce', capabilities });
    },
    async discoverPeers(requirements = DEFAULT_REQUIREMENTS) {
      actor.send({ type: 'user.discover', requirements });
      return waitFor(
        discovery,
        (s: { matches(v: string): boolean; context: { ranked: DiscoveredPeer[] } }) =>
          s.matches('ready') ? s.context.ranked : undefined,
        (s: { matches(v: string): boolean; context: { error?: string } }) =>
          s.matches('failed') ? (s.context.error ?? 'discover failed') : undefined,
      );
    },
    delegatePrompt(prompt, targetPeerId, delegateOptions = {}) {
      const taskId = newTaskId();
      return track(taskId, () =>
        actor.send({
          type: 'user.delegate',
          taskId,
          prompt,
          options: { ...delegateOptions, ...(targetPeerId ? { targetPeerId } : {}) },
        }),
      );
    },
    prompt(prompt, options = {}) {
      const taskId = newTaskId();
      let plan: RoutePlan | undefined;
      const routed = actor.on('handoff.routed', (event) => {
        if (event.taskId === taskId) plan = event.plan;
      });
      const task = track(taskId, () => actor.send({ type: 'user.prompt', taskId, prompt, options }));
      routed.unsubscribe();
      return { ...task, plan: plan as RoutePlan };
    },
    setQuota(totalQuota, usedQuota) {
      actor.send({ type: 'user.setQuota', totalQuota, ...(usedQuota !== undefined ? { usedQuota } : {}) });
    },
    async *handleIncomingPrompt(prompt, senderId) {
      const context = actor.getSnapshot().context;
      const delegation: PromptDelegation = {
        type: 'prompt-delegation',
        taskId: newTaskId(),
        prompt,
        requesterCapabilities: { hasAI: false, models: [] },
        priority: 5,
        timeout: 120_000,
      };
      const quota = actor.system.get('quota')?.getSnapshot().context.quota;
      const verdict = context.servePolicy({
        delegation,
        fromPeerId: senderId,
        running: Object.keys(context.serves).length,
        now: Date.now(),
        ...(quota ? { quota } : {}),
      });
      if (!verdict.admitted) throw new PromptRefusedError(verdict.reason, verdict.message);
      // The provider runs in a local task actor, like any prompt this peer runs on its own AI.
      const taskId = delegation.taskId;
      const task = track(taskId, () => actor.send({ type: 'user.runLocal', taskId, prompt, options: {} }));
      let finished = false;
      try {
        yield* task.chunks;
        const result = await task.result;
        finished = true;
        if (result.status !== 'completed')
          throw new Error(result.error?.message ?? `the prompt ${result.status}`);
      } finally {
        // A consumer that stops early cancels the run.
        if (!finished) task.cancel();
      }
    },
    onConnectionStateChange(callback) {
      stateListeners.add(callback);
      lastState = designState(actor.getSnapshot());
      callback(lastState);
      return () => stateListeners.delete(callback);
    },
    onPeerDiscovered(callback) {
      const subscription = discovery()?.on('discovery.peerFound', (event: { peer: DiscoveredPeer }) =>
        callback(event.peer),
      );
      return () => subscription?.unsubscribe();
    },
    stop() {
      actor.send({ type: 'user.disconnect' });
      actor.stop();
    },
  };
  return handoff;
}
