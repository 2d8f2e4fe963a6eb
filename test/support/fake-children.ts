import { type AnyActorLogic, type AnyActorRef, type AnyEventObject, assign, sendParent, setup } from 'xstate';

/*
 * Fakes for unit tests of a parent machine (the client's root actor): small machines that stand in
 * for its invoked and spawned children, record every event the parent sends them, and let the test
 * speak for them (send something up with `sendParent`, change what their snapshot shows, finish).
 */

/** One run of a fake child, as the fake saw it. */
export interface FakeChild {
  /** The `src` the parent asked for (`connection`, `peerLink`, ...). */
  readonly src: string;
  /** The child's id in its parent (`connection`, `link-<peerId>`, `request-<taskId>`, ...). */
  readonly id: string;
  /** The input the parent gave it. */
  readonly input: unknown;
  /** Events the parent (or anyone but the test's `fake.*` controls) sent it, in order. */
  readonly received: AnyEventObject[];
  readonly ref: AnyActorRef;
}

/** What the test can tell a fake child to do. */
export type FakeControl =
  /** Sends `event` to the parent, as the real child would with `sendParent`. */
  | { type: 'fake.sendParent'; event: AnyEventObject }
  /** Merges `values` into the child's context (what the parent reads from its snapshot). */
  | { type: 'fake.assign'; values: Record<string, unknown> }
  /** Reaches a final state with `output`: the parent gets `xstate.done.actor.<id>`. */
  | { type: 'fake.finish'; output: unknown };

type FakeContext = Record<string, unknown> & { fakeOutput?: unknown };

/** Records every fake child started, whatever it stands for. */
export class FakeChildren {
  readonly all: FakeChild[] = [];

  /**
   * Logic for one kind of child. Its snapshot's context is `contextFrom(input)`, so the parent can
   * read what the real child would show (e.g. `peerId` for the connection). Typed as `StandsFor`
   * (the real logic's type) so `machine.provide({ actors })` accepts it in the real one's place.
   */
  logic<StandsFor extends AnyActorLogic>(
    src: string,
    contextFrom: (input: unknown) => Record<string, unknown> = () => ({}),
  ): StandsFor {
    const register = (ref: AnyActorRef, input: unknown) => {
      this.all.push({ src, id: ref.id, input, received: [], ref });
    };
    const record = (ref: AnyActorRef, event: AnyEventObject) => {
      const child = this.all.findLast((candidate) => candidate.ref === ref);
      child?.received.push(event);
    };
    const machine = setup({
      types: {
        context: {} as FakeContext,
        input: {} as unknown,
        events: {} as AnyEventObject,
        output: {} as unknown,
      },
    }).createMachine({
      id: `fake-${src}`,
      context: ({ input, self }) => {
        register(self, input);
        return contextFrom(input);
      },
      initial: 'running',
      states: {
        running: {
          on: {
            'fake.sendParent': {
              actions: sendParent(
                ({ event }) => (event as Extract<FakeControl, { type: 'fake.sendParent' }>).event,
              ),
            },
            'fake.assign': {
              actions: assign(({ event }) => (event as Extract<FakeControl, { type: 'fake.assign' }>).values),
            },
            'fake.finish': {
              target: 'finished',
              actions: assign({
                fakeOutput: ({ event }) => (event as Extract<FakeControl, { type: 'fake.finish' }>).output,
              }),
            },
            '*': { actions: ({ event, self }) => record(self, event) },
          },
        },
        finished: { type: 'final' },
      },
      output: ({ context }: { context: FakeContext }) => context.fakeOutput,
    });
    return machine as unknown as StandsFor;
  }

  /** Every run of a child with this id (a link closed and reopened has two), oldest first. */
  runs(id: string): FakeChild[] {
    return this.all.filter((child) => child.id === id);
  }

  /** The latest run of a child with this id; throws if there was none. */
  get(id: string): FakeChild {
    const child = this.all.findLast((candidate) => candidate.id === id);
    if (!child) throw new Error(`no fake child ${id} was started`);
    return child;
  }

  /** Events the latest run of `id` received; [] if it never ran. */
  received(id: string): AnyEventObject[] {
    return this.all.findLast((candidate) => candidate.id === id)?.received ?? [];
  }

  /** Ids of every child started from `src`, in start order. */
  started(src: string): string[] {
    return this.all.filter((child) => child.src === src).map((child) => child.id);
  }

  /** Has the child speak to its parent. */
  sendParent(id: string, event: AnyEventObject): void {
    this.get(id).ref.send({ type: 'fake.sendParent', event } satisfies FakeControl);
  }

  assign(id: string, values: Record<string, unknown>): void {
    this.get(id).ref.send({ type: 'fake.assign', values } satisfies FakeControl);
  }

  finish(id: string, output?: unknown): void {
    this.get(id).ref.send({ type: 'fake.finish', output } satisfies FakeControl);
  }
}
