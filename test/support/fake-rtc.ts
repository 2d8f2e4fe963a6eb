import {
  type Actor,
  type ActorRefFrom,
  type AnyEventObject,
  createActor,
  createMachine,
  fromCallback,
  SimulatedClock,
  type SnapshotFrom,
} from 'xstate';
import type { RtcCommand, RtcEvent, RtcInput } from '../../machines/actors/rtc-peer.actor.ts';
import type { RTCPeerConnectionConstructor } from '../../machines/environment.ts';
import type { LinkMessage } from '../../machines/link-framing.ts';
import {
  type LinkToParent,
  type PeerLinkEmitted,
  type PeerLinkEvent,
  type PeerLinkInput,
  peerLinkMachine,
} from '../../machines/peer-link.machine.ts';
import type { TaskMessage } from '../../protocol/index.ts';

/*
 * Fakes for unit and model tests of the peer link machine: an RTC callback actor the test speaks
 * for, and a tiny parent that records what the link sends up with `sendParent`.
 */

// ---------------------------------------------------------------- the RTC actor

/** One run of the `rtcPeer` actor, as the fake saw it. */
export interface FakeRtcPeer {
  readonly input: RtcInput;
  /** Commands the link machine gave, in order. */
  readonly commands: RtcCommand[];
  /** True once the link machine stopped the actor (it left `active`). */
  stopped: boolean;
  /** Hands the link an event, as the real actor does when its RTCPeerConnection or channel reports. */
  push(event: RtcEvent): void;
}

/** Stands in for `rtcPeerActor`: records every run and what it was told. */
export class FakeRtc {
  readonly peers: FakeRtcPeer[] = [];

  readonly logic = fromCallback<RtcCommand, RtcInput, RtcEvent>(({ input, sendBack, receive }) => {
    const peer: FakeRtcPeer = {
      input,
      commands: [],
      stopped: false,
      push: (event) => {
        if (peer.stopped) throw new Error(`${event.type} pushed on an RTC actor the link already stopped`);
        sendBack(event);
      },
    };
    this.peers.push(peer);
    receive((command) => peer.commands.push(command));
    return () => {
      peer.stopped = true;
    };
  });

  /** The actor the link runs now. */
  get current(): FakeRtcPeer {
    const peer = this.peers[this.peers.length - 1];
    if (!peer) throw new Error('the link never started its RTC actor');
    return peer;
  }

  /** Messages the link handed to the data channel (`rtc.send`), in order. */
  get sent(): LinkMessage[] {
    return this.current.commands.flatMap((command) => (command.type === 'rtc.send' ? [command.message] : []));
  }

  /** How many ICE restarts the link asked for. */
  get restarts(): number {
    return this.current.commands.filter((command) => command.type === 'rtc.restart').length;
  }
}

/** Never constructed: the fake RTC actor replaces the one that would use it. */
export const UnusedRTCPeerConnection = class {
  constructor() {
    throw new Error('the real RTCPeerConnection must not be used in these tests');
  }
} as unknown as RTCPeerConnectionConstructor;

// ---------------------------------------------------------------- a recording parent

export const LOCAL_PEER = 'peer-b';
export const REMOTE_PEER = 'peer-a';

export type PeerLinkSnapshot = SnapshotFrom<typeof peerLinkMachine>;
export type PeerLinkOutput = NonNullable<PeerLinkSnapshot['output']>;

export interface PeerLinkHarness {
  readonly clock: SimulatedClock;
  readonly rtc: FakeRtc;
  readonly link: ActorRefFrom<typeof peerLinkMachine>;
  /** What the link sent its parent, in order. */
  readonly toParent: LinkToParent[];
  /** What the link emitted (`link.transport`), in order. */
  readonly emitted: PeerLinkEmitted[];
  /** The link's output once it reached `closed`. */
  readonly done: { output: PeerLinkOutput } | undefined;
  /** Errors the parent heard about (a child error reaches it as `xstate.error.actor.link`). */
  readonly errors: unknown[];
  readonly snapshot: PeerLinkSnapshot;
  send(event: PeerLinkEvent): void;
  /** `link.signal` relay payloads sent to the remote peer, in order. */
  relayed(): TaskMessage[];
  /** `link.message` deliveries, in order. */
  delivered(): LinkMessage[];
  /** Parent events of one type, in order. */
  ofType<T extends LinkToParent['type']>(type: T): Extract<LinkToParent, { type: T }>[];
  stop(): void;
}

/**
 * Starts the real peer link machine (with the fake RTC actor) as the only child (id `link`) of a
 * parent that records everything it is sent. Pings are off (an hour apart) unless the input asks.
 */
export function startPeerLink(
  input: Partial<PeerLinkInput> = {},
  clock = new SimulatedClock(),
): PeerLinkHarness {
  const rtc = new FakeRtc();
  const toParent: LinkToParent[] = [];
  const emitted: PeerLinkEmitted[] = [];
  const errors: unknown[] = [];
  let done: { output: PeerLinkOutput } | undefined;
  const machine = peerLinkMachine.provide({ actors: { rtcPeer: rtc.logic } });
  const linkInput: PeerLinkInput = {
    localPeerId: LOCAL_PEER,
    remotePeerId: REMOTE_PEER,
    initiator: true,
    RTCPeerConnection: UnusedRTCPeerConnection,
    iceServers: [{ urls: 'stun:stun.example.org:3478' }],
    pingIntervalMs: 3_600_000,
    busyPingIntervalMs: 3_600_000,
    now: () => clock.now(),
    ...input,
  };
  const parent = createMachine({
    id: 'testParent',
    invoke: { id: 'link', src: machine, input: linkInput },
    on: {
      '*': {
        actions: ({ event }: { event: AnyEventObject }) => {
          if (event.type === 'xstate.done.actor.link') done = { output: event.output as PeerLinkOutput };
          else if (event.type.startsWith('xstate.error.')) errors.push(event.error);
          else toParent.push(event as LinkToParent);
        },
      },
    },
  });
  const root: Actor<typeof parent> = createActor(parent, { clock });
  root.subscribe({ error: (error) => errors.push(error) });
  root.start();
  const link = root.getSnapshot().children.link as ActorRefFrom<typeof peerLinkMachine> | undefined;
  if (!link) throw new Error('the parent did not start the link');
  link.on('link.transport', (event) => emitted.push(event));
  const ofType = <T extends LinkToParent['type']>(type: T) =>
    toParent.filter((event): event is Extract<LinkToParent, { type: T }> => event.type === type);
  return {
    clock,
    rtc,
    link,
    toParent,
    emitted,
    get done() {
      return done;
    },
    errors,
    get snapshot() {
      return link.getSnapshot();
    },
    send: (event) => link.send(event),
    relayed: () =>
      ofType('link.signal').flatMap(({ message }) => (message.type === 'relay' ? [message.payload] : [])),
    delivered: () => ofType('link.message').map(({ message }) => message),
    ofType,
    stop: () => root.stop(),
  };
}
