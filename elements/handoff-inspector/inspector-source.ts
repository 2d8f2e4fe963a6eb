import type { InspectionEvent } from 'xstate';

/**
 * The data side of `<handoff-inspector>`: it listens to XState v5's built-in inspection API
 * (`createActor(machine, { inspect: source.inspect })`, or `createHandoff({ inspect })`) and keeps,
 * within fixed bounds,
 *
 * - the actor tree, from `@xstate.actor` events and each actor's parent; actors that stop (done,
 *   error, stopped) stay in the tree marked as such, and the oldest are dropped once more than
 *   `maxStoppedActors` have stopped;
 * - each actor's status, state value and context from `@xstate.snapshot`; the context is turned into
 *   size-bounded, JSON-safe data (functions, class instances, actor refs and binary data are named,
 *   not copied; secrets such as API keys and tokens are redacted) only when someone reads it;
 * - a log of the last `maxEvents` events (`@xstate.event`): type, source → target, time.
 *
 * Nothing leaves the page: no server, no network. The source never throws into the actors it
 * watches.
 */

/** JSON data: what the inspector shows of a context. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export type InspectedStatus = 'active' | 'done' | 'error' | 'stopped';

export interface InspectedActor {
  /** Unique within this source (actor session ids repeat across actor systems). */
  readonly key: string;
  /**
   * The actor's id (`connection`, `link-<peer>`, `request-<task>` …); for a root actor, whose id is
   * its session id unless given one, the id of the machine it runs (`handoff`).
   */
  readonly id: string;
  readonly sessionId: string;
  readonly systemId: string | undefined;
  /** What it runs: the implementation's name in `setup({ actors })`, or the machine's id. */
  readonly kind: string;
  readonly parentKey: string | undefined;
  readonly status: InspectedStatus;
  /** The state value as text (`session.connected`; parallel regions joined by `, `); '' for non-machines. */
  readonly state: string;
  /** The context, JSON-safe and size-bounded; undefined for actors without one. */
  readonly context: JsonValue | undefined;
  /** The output of an actor that is done, JSON-safe and size-bounded. */
  readonly output: JsonValue | undefined;
  /** Why an actor that failed failed. */
  readonly error: string | undefined;
  /** Snapshots seen (a cheap change counter). */
  readonly updates: number;
  readonly startedAt: number;
  readonly endedAt: number | undefined;
  readonly children: readonly InspectedActor[];
}

export interface InspectedEvent {
  /** Increases by one per event seen, so it is also a stable key. */
  readonly seq: number;
  readonly time: number;
  readonly type: string;
  /** undefined when the event came from outside the actor system (`actor.send` by a caller). */
  readonly sourceKey: string | undefined;
  readonly sourceId: string | undefined;
  readonly targetKey: string | undefined;
  readonly targetId: string;
}

export interface InspectorSnapshot {
  /** Changes whenever anything the snapshot holds changes. */
  readonly version: number;
  /** Actors without a (known) parent, oldest first. */
  readonly roots: readonly InspectedActor[];
  /** Every actor kept, by key. */
  readonly actors: ReadonlyMap<string, InspectedActor>;
  /** The event log, newest first, at most `maxEvents`. */
  readonly events: readonly InspectedEvent[];
  /** Events seen since the source was created (the log keeps only the last `maxEvents`). */
  readonly eventsSeen: number;
}

export interface InspectorSourceOptions {
  /** Events kept in the log (default 200). */
  maxEvents?: number;
  /** Stopped actors kept in the tree before the oldest are dropped (default 20). */
  maxStoppedActors?: number;
  /** Longest JSON text of one actor's context or output, in characters (default 4,000). */
  maxContextChars?: number;
  /** Clock for event and actor times (default `Date.now`). */
  now?: () => number;
}

export interface InspectorSource {
  /** Pass this as XState's `inspect` option. */
  readonly inspect: (event: InspectionEvent) => void;
  /** Calls `listener` after every change (synchronously: coalesce before rendering). */
  subscribe(listener: () => void): () => void;
  /** The current tree and log; the same object until something changes. */
  snapshot(): InspectorSnapshot;
}

/** What the inspection API hands us as `actorRef`: an Actor, of which we read a few fields. */
interface ActorLike {
  id: string;
  sessionId: string;
  systemId?: string;
  src?: unknown;
  logic?: { id?: unknown; config?: { id?: unknown } };
  _parent?: ActorLike;
}

interface Entry {
  key: string;
  ref: ActorLike | undefined;
  id: string;
  sessionId: string;
  systemId: string | undefined;
  kind: string;
  parentKey: string | undefined;
  childKeys: Set<string>;
  status: InspectedStatus;
  state: string;
  /** The raw context and output: made JSON-safe when read (see `bounded`). */
  rawContext: unknown;
  hasContext: boolean;
  rawOutput: unknown;
  error: string | undefined;
  updates: number;
  startedAt: number;
  endedAt: number | undefined;
}

const ENDED: ReadonlySet<string> = new Set(['done', 'error', 'stopped']);

/** Creates an inspector source; hand its `inspect` to `createActor` or `createHandoff`. */
export function createInspectorSource(options: InspectorSourceOptions = {}): InspectorSource {
  const maxEvents = Math.max(1, Math.floor(options.maxEvents ?? 200));
  const maxStopped = Math.max(0, Math.floor(options.maxStoppedActors ?? 20));
  const maxContextChars = Math.max(64, Math.floor(options.maxContextChars ?? 4_000));
  const now = options.now ?? Date.now;

  const keys = new WeakMap<object, string>();
  /** Refs whose entries were dropped: late events about them must not bring them back. */
  const dropped = new WeakSet<object>();
  const entries = new Map<string, Entry>();
  /** Keys of stopped actors, in the order they stopped. */
  const ended: string[] = [];
  /** Ring buffer of the last `maxEvents` events. */
  const log: InspectedEvent[] = [];
  let logStart = 0;
  let eventsSeen = 0;
  let nextKey = 0;
  let version = 0;
  let cached: InspectorSnapshot | undefined;
  const listeners = new Set<() => void>();
  const jsonCache = new WeakMap<object, JsonValue>();

  function keyOf(ref: ActorLike | undefined): string | undefined {
    return ref && typeof ref === 'object' ? keys.get(ref) : undefined;
  }

  function register(ref: ActorLike): Entry | undefined {
    if (dropped.has(ref)) return undefined;
    const known = keyOf(ref);
    if (known) return entries.get(known);
    const key = `a${nextKey++}`;
    keys.set(ref, key);
    const parentKey = keyOf(ref._parent);
    const kind = kindOf(ref);
    const entry: Entry = {
      key,
      ref,
      id: ref.id === ref.sessionId ? kind : String(ref.id),
      sessionId: String(ref.sessionId),
      systemId: typeof ref.systemId === 'string' ? ref.systemId : undefined,
      kind,
      parentKey,
      childKeys: new Set(),
      status: 'active',
      state: '',
      rawContext: undefined,
      hasContext: false,
      rawOutput: undefined,
      error: undefined,
      updates: 0,
      startedAt: now(),
      endedAt: undefined,
    };
    entries.set(key, entry);
    if (parentKey) entries.get(parentKey)?.childKeys.add(key);
    return entry;
  }

  function end(entry: Entry, status: InspectedStatus): void {
    if (entry.endedAt !== undefined) {
      // 'done' and 'error' say more than the 'stopped' that may follow or precede them.
      if (status !== 'stopped') entry.status = status;
      return;
    }
    entry.status = status;
    entry.endedAt = now();
    ended.push(entry.key);
    while (ended.length > maxStopped) drop(ended.shift() as string);
  }

  /** Forgets a stopped actor and the stopped actors under it. */
  function drop(key: string): void {
    const entry = entries.get(key);
    if (!entry) return;
    entries.delete(key);
    if (entry.ref) dropped.add(entry.ref);
    entry.ref = undefined;
    if (entry.parentKey) entries.get(entry.parentKey)?.childKeys.delete(key);
    for (const childKey of entry.childKeys) {
      const child = entries.get(childKey);
      if (!child) continue;
      if (child.endedAt !== undefined) {
        const at = ended.indexOf(childKey);
        if (at >= 0) ended.splice(at, 1);
        drop(childKey);
      } else child.parentKey = undefined; // still running: shown as a root
    }
  }

  /** The shown id of an actor (see `InspectedActor.id`). */
  function shownId(ref: ActorLike): string {
    const entry = entries.get(keyOf(ref) ?? '');
    if (entry) return entry.id;
    return ref.id === ref.sessionId ? kindOf(ref) : String(ref.id);
  }

  function record(event: InspectedEvent): void {
    eventsSeen++;
    if (log.length < maxEvents) log.push(event);
    else {
      log[logStart] = event;
      logStart = (logStart + 1) % maxEvents;
    }
  }

  function handle(event: InspectionEvent): boolean {
    const ref = event.actorRef as unknown as ActorLike | undefined;
    switch (event.type) {
      case '@xstate.actor': {
        if (!ref) return false;
        return register(ref) !== undefined;
      }
      case '@xstate.snapshot': {
        if (!ref) return false;
        const entry = register(ref);
        if (!entry) return false;
        const snapshot = event.snapshot as {
          status?: string;
          value?: unknown;
          context?: unknown;
          output?: unknown;
          error?: unknown;
        };
        entry.updates++;
        if ('value' in snapshot) entry.state = stateText(snapshot.value);
        entry.hasContext = 'context' in snapshot && snapshot.context !== undefined;
        entry.rawContext = snapshot.context;
        if (snapshot.status === 'done') entry.rawOutput = snapshot.output;
        if (snapshot.status === 'error') entry.error = errorText(snapshot.error);
        if (snapshot.status && ENDED.has(snapshot.status)) end(entry, snapshot.status as InspectedStatus);
        return true;
      }
      case '@xstate.event': {
        const source = event.sourceRef as unknown as ActorLike | undefined;
        const type = String((event.event as { type?: unknown } | undefined)?.type ?? '(untyped)');
        // A child that failed reports it only through this event (no snapshot follows).
        if (source && type.startsWith('xstate.error.actor.')) {
          const failed = entries.get(keyOf(source) ?? '');
          if (failed) {
            failed.error ??= errorText((event.event as { error?: unknown }).error);
            end(failed, 'error');
          }
        }
        record({
          seq: eventsSeen,
          time: now(),
          type: type.slice(0, 120),
          sourceKey: keyOf(source),
          sourceId: source ? shownId(source) : undefined,
          targetKey: keyOf(ref),
          targetId: ref ? shownId(ref) : '(unknown)',
        });
        return true;
      }
      default:
        return false;
    }
  }

  function notify(): void {
    for (const listener of listeners) {
      try {
        listener();
      } catch (error) {
        // A broken listener must not break the actors being inspected.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  function inspect(event: InspectionEvent): void {
    let changed = false;
    try {
      changed = handle(event);
    } catch {
      return; // never throw into the actor system
    }
    if (!changed) return;
    version++;
    cached = undefined;
    notify();
  }

  function bounded(raw: unknown): JsonValue {
    if (raw === null || typeof raw !== 'object') return toBoundedJson(raw, maxContextChars).json;
    let json = jsonCache.get(raw);
    if (json === undefined) {
      json = toBoundedJson(raw, maxContextChars).json;
      jsonCache.set(raw, json);
    }
    return json;
  }

  function build(): InspectorSnapshot {
    const actors = new Map<string, InspectedActor>();
    const make = (entry: Entry): InspectedActor => {
      const children = [...entry.childKeys]
        .map((key) => entries.get(key))
        .filter((child): child is Entry => child !== undefined)
        .map(make);
      const node: InspectedActor = {
        key: entry.key,
        id: entry.id,
        sessionId: entry.sessionId,
        systemId: entry.systemId,
        kind: entry.kind,
        parentKey: entry.parentKey,
        status: entry.status,
        state: entry.state,
        context: entry.hasContext ? bounded(entry.rawContext) : undefined,
        output: entry.rawOutput === undefined ? undefined : bounded(entry.rawOutput),
        error: entry.error,
        updates: entry.updates,
        startedAt: entry.startedAt,
        endedAt: entry.endedAt,
        children,
      };
      actors.set(entry.key, node);
      return node;
    };
    const roots: InspectedActor[] = [];
    for (const entry of entries.values()) {
      if (entry.parentKey === undefined || !entries.has(entry.parentKey)) roots.push(make(entry));
    }
    // In the order the actors appeared (a parent before its children).
    const ordered = new Map<string, InspectedActor>();
    for (const key of entries.keys()) {
      const node = actors.get(key);
      if (node) ordered.set(key, node);
    }
    const events: InspectedEvent[] = [];
    for (let i = log.length - 1; i >= 0; i--) {
      events.push(log[(logStart + i) % log.length] as InspectedEvent);
    }
    return { version, roots, actors: ordered, events, eventsSeen };
  }

  return {
    inspect,
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    snapshot() {
      cached ??= build();
      return cached;
    },
  };
}

function kindOf(ref: ActorLike): string {
  if (typeof ref.src === 'string') return ref.src;
  const id = ref.logic?.id ?? ref.logic?.config?.id;
  return typeof id === 'string' && id ? id : 'actor';
}

/** `'idle'` → `idle`; `{ session: 'connected' }` → `session.connected`; parallel regions joined by `, `. */
export function stateText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (!value || typeof value !== 'object') return '';
  const parts: string[] = [];
  for (const [region, inner] of Object.entries(value as Record<string, unknown>)) {
    const rest = stateText(inner);
    if (!rest) parts.push(region);
    else for (const leaf of rest.split(', ')) parts.push(`${region}.${leaf}`);
  }
  return parts.join(', ');
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.slice(0, 500);
}

/** Keys whose string values are never shown. */
const SECRET_KEY = /api[-_]?key|authorization|password|secret|token|private[-_]?key|credential/i;

/**
 * A JSON-safe copy of `value` whose JSON text is at most `maxChars` characters: deep or long parts are
 * cut (marked `…`), functions, class instances, actor refs and binary data are named, cycles are
 * marked, and values under secret-looking keys are redacted.
 */
export function toBoundedJson(value: unknown, maxChars: number): { json: JsonValue; truncated: boolean } {
  const MAX_DEPTH = 6;
  const MAX_ENTRIES = 50;
  const MAX_STRING = 400;
  // Room kept back so that a cut-off marker always fits.
  let budget = Math.max(16, maxChars - 16);
  let truncated = false;
  const seen = new WeakSet<object>();
  const cost = (json: JsonValue) => JSON.stringify(json).length;

  const leaf = (json: JsonValue): JsonValue => {
    budget -= cost(json);
    return json;
  };

  function walk(input: unknown, depth: number): JsonValue {
    if (input === null || input === undefined) return leaf(null);
    switch (typeof input) {
      case 'boolean':
        return leaf(input);
      case 'number':
        return leaf(Number.isFinite(input) ? input : String(input));
      case 'bigint':
        return leaf(`${input}n`);
      case 'string': {
        const room = Math.max(0, Math.min(MAX_STRING, budget - 8));
        if (input.length > room) {
          truncated = true;
          return leaf(`${input.slice(0, room)}… (${input.length} chars)`);
        }
        return leaf(input);
      }
      case 'symbol':
        return leaf(String(input));
      case 'function':
        return leaf(`[function ${(input as { name?: string }).name || 'anonymous'}]`);
    }
    const object = input as Record<string, unknown>;
    const named = nameOf(object);
    if (named) return leaf(named);
    if (seen.has(object)) return leaf('[circular]');
    if (depth >= MAX_DEPTH) {
      truncated = true;
      return leaf(Array.isArray(object) ? `[array(${object.length})]` : '[object]');
    }
    seen.add(object);
    try {
      if (Array.isArray(object) || object instanceof Set) {
        const items = Array.isArray(object) ? object : [...object];
        const out: JsonValue[] = [];
        budget -= 2;
        for (const item of items) {
          if (out.length >= MAX_ENTRIES || budget < 24) {
            truncated = true;
            out.push(leaf(`… ${items.length - out.length} more`));
            break;
          }
          budget -= 1;
          out.push(walk(item, depth + 1));
        }
        return out;
      }
      const pairs: [string, unknown][] =
        object instanceof Map ? [...object].map(([k, v]) => [String(k), v]) : Object.entries(object);
      const out: Record<string, JsonValue> = {};
      let count = 0;
      budget -= 2;
      for (const [key, item] of pairs) {
        if (item === undefined) continue;
        if (count >= MAX_ENTRIES || budget < 24 + key.length) {
          truncated = true;
          out['…'] = leaf(`${pairs.length - count} more`);
          break;
        }
        count++;
        budget -= key.length + 4;
        // Secrets are strings (API keys, tokens); counts such as `outputTokens` are numbers.
        out[key] =
          typeof item === 'string' && SECRET_KEY.test(key) ? leaf('[redacted]') : walk(item, depth + 1);
      }
      return out;
    } finally {
      seen.delete(object);
    }
  }

  let json = walk(value, 0);
  // The budget is an estimate; the bound is not.
  if (cost(json) > maxChars) {
    truncated = true;
    json = JSON.stringify(json).slice(0, Math.max(0, maxChars - 40)) + '… (cut)';
  }
  return { json, truncated };
}

/** A short name for objects that are not data: actor refs, binary, dates, errors, class instances. */
function nameOf(object: Record<string, unknown>): string | undefined {
  if (typeof object.sessionId === 'string' && typeof object.send === 'function') {
    return `[actor ${String(object.id)}]`;
  }
  if (object instanceof Date) return Number.isNaN(object.getTime()) ? '[invalid date]' : object.toISOString();
  if (object instanceof Error) return `[${object.name}: ${object.message.slice(0, 200)}]`;
  if (object instanceof RegExp) return String(object);
  if (ArrayBuffer.isView(object)) return `[${object.constructor.name} ${object.byteLength} bytes]`;
  if (object instanceof ArrayBuffer) return `[ArrayBuffer ${object.byteLength} bytes]`;
  if (Array.isArray(object) || object instanceof Map || object instanceof Set) return undefined;
  const prototype = Object.getPrototypeOf(object);
  if (prototype === null || prototype === Object.prototype) return undefined;
  const name = (prototype as { constructor?: { name?: string } }).constructor?.name;
  return `[${name || 'object'}]`;
}
