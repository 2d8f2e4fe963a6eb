import {
  type Actor,
  type ActorRefFrom,
  type AnyEventObject,
  type AnyStateMachine,
  createActor,
  createMachine,
  fromCallback,
  getMicrosteps,
  type InputFrom,
  SimulatedClock,
  type SnapshotFrom,
} from 'xstate';
import type {
  WebSocketCommand,
  WebSocketEvent,
  WebSocketInput,
} from '../../machines/actors/websocket.actor.ts';
import type { WebSocketConstructor } from '../../machines/environment.ts';
import {
  AbortError,
  type AIProvider,
  type ProviderEvent,
  type ProviderRequest,
  type Usage,
} from '../../machines/providers/provider.ts';
import type {
  Capabilities,
  ClientMessage,
  PeerIdAssigned,
  PromptDelegation,
  QuotaStatus,
} from '../../protocol/index.ts';
import { stateNodes } from './spec-graph.ts';

/*
 * Fakes for unit and model tests of ONE client machine: a scripted signaling socket, a parent that
 * records what its child sends up (and can play the `connection` actor), and scripted providers.
 */

// ---------------------------------------------------------------- the signaling socket

/** One socket the connection machine opened, as the fake websocket actor saw it. */
export interface FakeSocket {
  /** The URL the machine asked for. */
  readonly url: URL;
  /** Client messages the machine sent on this socket, in order. */
  readonly sent: ClientMessage[];
  /** Close commands the machine gave. */
  readonly closes: { code: number; reason: string }[];
  /** True once the machine stopped the actor (left the session). */
  stopped: boolean;
  /** Hands the machine an event, as the real actor does with a decoded frame or a socket event. */
  push(event: WebSocketEvent): void;
}

/** Stands in for `websocketActor`: records every socket and lets the test speak for the server. */
export class FakeSignalingSockets {
  readonly sockets: FakeSocket[] = [];

  readonly logic = fromCallback<WebSocketCommand, WebSocketInput, WebSocketEvent>(
    ({ input, sendBack, receive }) => {
      const socket: FakeSocket = {
        url: new URL(input.url),
        sent: [],
        closes: [],
        stopped: false,
        push: (event) => {
          if (socket.stopped) throw new Error(`${event.type} pushed on a socket the machine already stopped`);
          sendBack(event);
        },
      };
      this.sockets.push(socket);
      receive((command) => {
        if (command.type === 'socket.send') socket.sent.push(command.message);
        else socket.closes.push({ code: command.code, reason: command.reason });
      });
      return () => {
        socket.stopped = true;
      };
    },
  );

  /** The socket opened last. */
  get current(): FakeSocket {
    const socket = this.sockets[this.sockets.length - 1];
    if (!socket) throw new Error('the connection machine has not opened a socket');
    return socket;
  }
}

/** Never constructed: the fake websocket actor replaces the one that would use it. */
export const UnusedWebSocket = class {
  constructor() {
    throw new Error('the real WebSocket must not be used in these tests');
  }
} as unknown as WebSocketConstructor;

export function peerIdMessage(overrides: Partial<PeerIdAssigned> = {}): PeerIdAssigned {
  return {
    type: 'peer-id',
    peerId: 'me',
    resumeToken: 'token-1',
    resumed: false,
    protocolVersion: 1,
    iceServers: [{ urls: 'stun:stun.example.org:3478' }],
    heartbeatIntervalMs: 1_000,
    resumeGraceMs: 5_000,
    ...overrides,
  };
}

// ---------------------------------------------------------------- a recording parent

export interface ParentHarness<M extends AnyStateMachine> {
  clock: SimulatedClock;
  root: Actor<AnyStateMachine>;
  /** The machine under test, invoked by the parent with id `child`. */
  child: ActorRefFrom<M>;
  /** Events the child sent to its parent, in order (XState's own `xstate.*` events left out). */
  toParent: AnyEventObject[];
  /** Every event the parent received, `xstate.done.actor.child` included. */
  received: AnyEventObject[];
  /** Events sent to the fake actor registered as systemId `connection` (with `withConnection`). */
  toConnection: AnyEventObject[];
  /** Errors the parent reported (a child error reaches it as `xstate.error.actor.child`). */
  errors: unknown[];
  stop(): void;
}

/**
 * Runs `machine` as the only child (id `child`) of a tiny parent that records everything sent up
 * with `sendParent`. With `withConnection`, the parent also runs a fake `connection` actor
 * (systemId `connection`) that records what it is sent, as discovery expects of the root.
 */
export function runUnderParent<M extends AnyStateMachine>(
  machine: M,
  input: InputFrom<M>,
  options: { withConnection?: boolean; clock?: SimulatedClock } = {},
): ParentHarness<M> {
  const clock = options.clock ?? new SimulatedClock();
  const received: AnyEventObject[] = [];
  const toConnection: AnyEventObject[] = [];
  const errors: unknown[] = [];
  const connection = fromCallback<AnyEventObject>(({ receive }) => {
    receive((event) => toConnection.push(event));
  });
  const parent = createMachine({
    id: 'testParent',
    invoke: [
      ...(options.withConnection ? [{ id: 'connection', systemId: 'connection', src: connection }] : []),
      { id: 'child', src: machine, input },
    ],
    on: { '*': { actions: ({ event }: { event: AnyEventObject }) => received.push(event) } },
  });
  const root = createActor(parent as unknown as AnyStateMachine, { clock });
  root.subscribe({ error: (error) => errors.push(error) });
  root.start();
  const child = root.getSnapshot().children.child as ActorRefFrom<M> | undefined;
  if (!child) throw new Error('the parent did not start its child');
  return {
    clock,
    root,
    child,
    received,
    get toParent() {
      return received.filter((event) => !event.type.startsWith('xstate.'));
    },
    toConnection,
    errors,
    stop: () => root.stop(),
  };
}

// ---------------------------------------------------------------- providers

type Script = ProviderEvent | { type: 'end' } | { type: 'throw'; error: Error };

/**
 * A provider whose stream the test writes piece by piece. It waits for the next piece, and a
 * waiting stream ends with AbortError as soon as its AbortSignal fires.
 */
export class ScriptedProvider implements AIProvider {
  readonly id = 'scripted';
  readonly label = 'Scripted test provider';
  readonly isDemo = false;
  readonly requests: ProviderRequest[] = [];
  /** Text pieces the stream handed to its reader so far. */
  pulled = 0;
  /** True once the reader stopped reading (return, throw or abort). */
  finished = false;
  readonly #script: Script[] = [];
  #wake: (() => void) | undefined;

  models = async () => ['scripted-1'];

  text(...pieces: string[]): this {
    for (const text of pieces) this.#push({ type: 'text', text });
    return this;
  }
  usage(usage: Usage): this {
    this.#push({ type: 'usage', usage });
    return this;
  }
  end(): this {
    this.#push({ type: 'end' });
    return this;
  }
  fail(message: string): this {
    this.#push({ type: 'throw', error: new Error(message) });
    return this;
  }

  get signal(): AbortSignal {
    const request = this.requests[0];
    if (!request) throw new Error('the provider was never asked to stream');
    return request.signal;
  }

  #push(item: Script): void {
    this.#script.push(item);
    this.#wake?.();
  }

  async *stream(request: ProviderRequest): AsyncGenerator<ProviderEvent> {
    this.requests.push(request);
    try {
      for (;;) {
        while (this.#script.length === 0) {
          if (request.signal.aborted) throw new AbortError();
          await new Promise<void>((resolve) => {
            this.#wake = resolve;
            request.signal.addEventListener('abort', () => resolve(), { once: true });
          });
        }
        const item = this.#script.shift() as Script;
        if (item.type === 'end') return;
        if (item.type === 'throw') throw item.error;
        if (item.type === 'text') this.pulled++;
        yield item;
      }
    } finally {
      this.finished = true;
    }
  }
}

/** A provider with an endless answer, produced only as it is read: `pulled` counts the pieces read. */
export class EndlessProvider implements AIProvider {
  readonly id = 'endless';
  readonly label = 'Endless test provider';
  readonly isDemo = false;
  pulled = 0;
  models = async () => ['endless-1'];
  async *stream(): AsyncGenerator<ProviderEvent> {
    for (;;) {
      yield { type: 'text', text: `w${this.pulled++} ` };
    }
  }
}

/** Lets promise chains (provider streams) run until they block on something the test controls. */
export async function settle(rounds = 3): Promise<void> {
  for (let round = 0; round < rounds; round++) await new Promise<void>((resolve) => setImmediate(resolve));
}

// ---------------------------------------------------------------- protocol values

export function quota(availableQuota: number): QuotaStatus {
  return {
    totalQuota: 1_000,
    usedQuota: 1_000 - availableQuota,
    availableQuota,
    resetTime: 1_700_000_000_000,
    provider: 'test',
    capabilities: [],
  };
}

export function aiPeer(
  models: string[],
  options: { available?: number; latency?: number; tokensPerSecond?: number } = {},
): Capabilities {
  return {
    hasAI: true,
    models,
    ...(options.available !== undefined ? { quota: quota(options.available) } : {}),
    ...(options.latency !== undefined || options.tokensPerSecond !== undefined
      ? {
          performance: {
            ...(options.latency !== undefined ? { latency: options.latency } : {}),
            ...(options.tokensPerSecond !== undefined ? { tokensPerSecond: options.tokensPerSecond } : {}),
          },
        }
      : {}),
  };
}

export const NO_AI: Capabilities = { hasAI: false, models: [] };

export function delegation(overrides: Partial<PromptDelegation> = {}): PromptDelegation {
  return {
    type: 'prompt-delegation',
    taskId: 'task-1',
    prompt: 'Explain peer-to-peer handoff',
    requesterCapabilities: NO_AI,
    priority: 5,
    timeout: 60_000,
    ...overrides,
  };
}

// ---------------------------------------------------------------- model-based testing

/**
 * Names a spec transition. Every transition of a client spec machine carries exactly one, so the
 * model tests can count which transitions their paths take (XState has no coverage API).
 */
export const took = (id: string) => ({ type: 'took', params: { id } }) as const;

/** The implementation `setup({ actions })` needs for `took` and for observation-only actions. */
export const observed = (_: unknown, _params?: unknown) => {};

type AnySnapshot = SnapshotFrom<AnyStateMachine>;
type AnyAction = { type: string; params?: unknown };

const tookId = (action: unknown): string | undefined => {
  const { type, params } = action as AnyAction;
  return type === 'took' ? (params as { id: string }).id : undefined;
};

/** The spec's own actions (`took` markers and observations) for one event, in execution order. */
export function specActions(spec: AnyStateMachine, before: AnySnapshot, event: AnyEventObject): AnyAction[] {
  return getMicrosteps(spec, before, event).flatMap(([, actions]) =>
    actions.map((action) => ({ type: action.type, params: action.params })),
  );
}

/** The names of the spec transitions one event takes (eventless ones that follow included). */
export function transitionsTaken(
  spec: AnyStateMachine,
  before: AnySnapshot,
  event: AnyEventObject,
): string[] {
  return specActions(spec, before, event)
    .map(tookId)
    .filter((id): id is string => id !== undefined);
}

/** Every transition the spec declares, by its `took` name; throws if one has none or two share one. */
export function declaredTransitions(spec: AnyStateMachine): string[] {
  const ids: string[] = [];
  for (const node of stateNodes(spec.root)) {
    const definitions = [...[...node.transitions.values()].flat(), ...(node.always ?? [])];
    for (const definition of definitions) {
      const names = definition.actions.map(tookId).filter((id) => id !== undefined);
      if (names.length !== 1) {
        throw new Error(`spec transition ${node.id} on '${definition.eventType}' needs exactly one took()`);
      }
      ids.push(names[0] as string);
    }
  }
  if (new Set(ids).size !== ids.length) throw new Error('two spec transitions share a took() name');
  return ids;
}

/**
 * Identifies a traversal vertex by the spec state, its (bounded) context, and the event and
 * transitions that led into it, so shortest paths take every transition, with every event that
 * takes it, from some reachable configuration.
 */
export function serializeVia(spec: AnyStateMachine) {
  return (state: AnySnapshot, event: AnyEventObject | undefined, before?: AnySnapshot) =>
    JSON.stringify({
      value: state.value,
      context: state.context,
      event,
      via: before && event ? transitionsTaken(spec, before, event) : [],
    });
}

/** Only events the spec acts on in that state (an ignored event would add nothing to check). */
export function specTakes(spec: AnyStateMachine) {
  return (state: AnySnapshot, event: AnyEventObject) =>
    state.status === 'active' && transitionsTaken(spec, state, event).length > 0;
}

export interface SpecCoverage {
  line: string;
  missingStates: string[];
  missingTransitions: string[];
}

/** States (transient ones included) and transitions of `spec` the paths reach, as a printable line. */
export function specCoverage(
  name: string,
  spec: AnyStateMachine,
  paths: readonly { steps: readonly { event: AnyEventObject; state: AnySnapshot }[] }[],
): SpecCoverage {
  const nodes = [...stateNodes(spec.root)].filter((node) => node !== spec.root);
  const transitions = declaredTransitions(spec);
  const reached = new Set<string>();
  const taken = new Set<string>();
  const visit = (snapshot: AnySnapshot) => {
    for (const node of nodes) if (snapshot.matches(node.path.join('.') as never)) reached.add(node.id);
  };
  for (const path of paths) {
    path.steps.forEach((step, index) => {
      const previous = path.steps[index - 1];
      if (!previous) {
        visit(step.state);
        return;
      }
      for (const [snapshot, actions] of getMicrosteps(spec, previous.state, step.event)) {
        visit(snapshot);
        for (const action of actions) {
          const id = tookId(action);
          if (id) taken.add(id);
        }
      }
    });
  }
  const states = nodes.map((node) => node.id);
  const missingStates = states.filter((id) => !reached.has(id));
  const missingTransitions = transitions.filter((id) => !taken.has(id));
  return {
    line:
      `${name} model: ${states.length - missingStates.length}/${states.length} states, ` +
      `${transitions.length - missingTransitions.length}/${transitions.length} transitions ` +
      `covered by ${paths.length} paths`,
    missingStates,
    missingTransitions,
  };
}
