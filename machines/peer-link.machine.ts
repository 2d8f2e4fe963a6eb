import { assign, enqueueActions, raise, sendParent, sendTo, setup } from 'xstate';
import type {
  IceCandidate,
  IceServer,
  Identity,
  RoutedClientMessage,
  ServerMessage,
  TaskMessage,
} from '../protocol/index.ts';
import { type RtcCommand, type RtcEvent, rtcPeerActor } from './actors/rtc-peer.actor.ts';
import { type SealEvent, sealActor } from './actors/seal.actor.ts';
import type { RTCPeerConnectionConstructor } from './environment.ts';
import type { Keyring } from './keyring.ts';
import { LinkAssembler, LinkFramer, type LinkMessage } from './link-framing.ts';

export interface PeerLinkInput {
  localPeerId: string;
  remotePeerId: string;
  /** True on the side that wants the link: it creates the channel and makes the first offer. */
  initiator: boolean;
  RTCPeerConnection: RTCPeerConnectionConstructor;
  iceServers: IceServer[];
  /** Host-specific RTCConfiguration fields (e.g. node-datachannel's `bindAddress`). */
  rtcConfiguration?: Record<string, unknown>;
  /** How long to wait for a direct channel before carrying traffic over the signaling relay. */
  directTimeoutMs?: number;
  /** How long an ICE restart may take before falling back to the relay. */
  restartTimeoutMs?: number;
  /**
   * How many times the initiator starts over on a fresh connection when its first attempt ends
   * (connection `failed` or `closed`) before any channel opened, instead of waiting out
   * `directTimeoutMs` (default 2). libdatachannel now and then refuses a well-formed answer ("Got a
   * remote candidate without ICE transport") and closes the connection; a new one goes through.
   */
  maxConnectRetries?: number;
  /** How often an idle link pings its peer (RTT, throughput samples, liveness); default 500 ms. */
  pingIntervalMs?: number;
  /**
   * Nothing heard for this long over an open path of an idle link: the peer is presumed gone (tasks
   * move on); default 1500 ms.
   */
  silenceTimeoutMs?: number;
  /**
   * While a task of ours is in flight over the link (the parent says `link.busy`), pings go out this
   * often instead (default 250 ms, never slower than `pingIntervalMs`)…
   */
  busyPingIntervalMs?: number;
  /**
   * …and the peer is presumed gone after this much silence (default 1000 ms, never longer than
   * `silenceTimeoutMs`): a dead serving peer is noticed sooner where it matters, idle links keep the
   * relaxed values so they do not flap.
   */
  busySilenceTimeoutMs?: number;
  /** Our signing identity and the others' keys: task messages are signed out and verified in. */
  identity?: Identity;
  keyring?: Keyring;
  now?: () => number;
}

/** One point of the network-quality history (for charts). */
export interface LinkSample {
  at: number;
  rttMs: number | undefined;
  sentBytesPerSecond: number;
  receivedBytesPerSecond: number;
}

export type LinkTransport = 'none' | 'direct' | 'relayed';

export interface PeerLinkContext {
  identity: Identity | undefined;
  keyring: Keyring | undefined;
  localPeerId: string;
  remotePeerId: string;
  initiator: boolean;
  polite: boolean;
  RTCPeerConnection: RTCPeerConnectionConstructor;
  configuration: RTCConfiguration;
  directTimeoutMs: number;
  restartTimeoutMs: number;
  maxConnectRetries: number;
  /** Fresh connections started while connecting (see `maxConnectRetries`). */
  connectRetries: number;
  pingIntervalMs: number;
  silenceTimeoutMs: number;
  busyPingIntervalMs: number;
  busySilenceTimeoutMs: number;
  now: () => number;
  transport: LinkTransport;
  /** When anything last arrived from the peer. */
  lastHeardAt: number;
  /** When the probe last checked for silence. */
  lastCheckAt: number;
  /** True while the peer has been silent past the silence timeout. */
  silent: boolean;
  /** Smoothed round-trip time over the current transport, in ms. */
  rttMs: number | undefined;
  bytesSent: number;
  bytesReceived: number;
  samples: LinkSample[];
  /** Counters at the last sample, to turn totals into rates. */
  lastSample: { at: number; sent: number; received: number };
  restarts: number;
  /** Messages waiting for a transport (bounded). */
  outbox: LinkMessage[];
  lastError: string | undefined;
  /** Framing state for the relay path (the direct path frames inside the RTC actor). */
  framer: LinkFramer;
  assembler: LinkAssembler;
}

export const LINK_OUTBOX_LIMIT = 1024;

/** The probe's timing, defaults filled in; the busy values are never more relaxed than the idle ones. */
export function probeTiming(
  input: Pick<
    PeerLinkInput,
    'pingIntervalMs' | 'silenceTimeoutMs' | 'busyPingIntervalMs' | 'busySilenceTimeoutMs'
  >,
) {
  const pingIntervalMs = input.pingIntervalMs ?? 500;
  const silenceTimeoutMs = input.silenceTimeoutMs ?? 1_500;
  return {
    pingIntervalMs,
    silenceTimeoutMs,
    busyPingIntervalMs: input.busyPingIntervalMs ?? Math.min(pingIntervalMs, 250),
    busySilenceTimeoutMs: input.busySilenceTimeoutMs ?? Math.min(silenceTimeoutMs, 1_000),
  };
}
export const MAX_SAMPLES = 60;

export type PeerLinkEvent =
  | RtcEvent
  | Extract<ServerMessage, { type: 'offer' | 'answer' | 'ice-candidate' | 'relay' }>
  | { type: 'relay.message'; message: LinkMessage; bytes: number }
  | SealEvent
  | { type: 'link.send'; message: LinkMessage }
  | { type: 'link.close' }
  | { type: 'link.unreachable'; reason: string }
  /** From the parent: a task of ours is in flight over this link (tighter liveness) / none is any more. */
  | { type: 'link.busy' }
  | { type: 'link.idle' };

export type PeerLinkEmitted = { type: 'link.transport'; peerId: string; transport: LinkTransport };

/** What the link tells its parent. */
export type LinkToParent =
  | { type: 'link.message'; peerId: string; message: LinkMessage }
  | { type: 'link.rtt'; peerId: string; rttMs: number }
  | { type: 'link.transport'; peerId: string; transport: LinkTransport }
  | { type: 'link.silent'; peerId: string }
  | { type: 'link.violation'; peerId: string; reason: string; messageType: string }
  | { type: 'link.signal'; message: RoutedClientMessage };

type InboundEvent = Extract<PeerLinkEvent, { type: 'rtc.message' | 'relay.message' }>;
const inboundType = (event: PeerLinkEvent) => (event as InboundEvent).message?.type;

/** Every inbound message, whichever path it came by: pings answered, pongs measured, the rest delivered. */
const inbound = [
  { guard: 'isPing' as const, actions: ['countReceived' as const, 'replyPong' as const] },
  {
    guard: 'isPong' as const,
    actions: ['countReceived' as const, 'measureRtt' as const, 'reportRtt' as const],
  },
  { actions: ['countReceived' as const, 'open' as const] },
];

export const peerLinkMachine = setup({
  types: {
    input: {} as PeerLinkInput,
    context: {} as PeerLinkContext,
    events: {} as PeerLinkEvent,
    emitted: {} as PeerLinkEmitted,
    tags: {} as 'direct' | 'relayed' | 'connecting',
  },
  actors: { rtcPeer: rtcPeerActor, seal: sealActor },
  delays: {
    directTimeout: ({ context }) => context.directTimeoutMs,
    restartTimeout: ({ context }) => context.restartTimeoutMs,
    pingInterval: ({ context }) => context.pingIntervalMs,
    busyPingInterval: ({ context }) => context.busyPingIntervalMs,
  },
  guards: {
    connectionBroken: ({ event }) =>
      event.type === 'rtc.connectionState' && (event.state === 'disconnected' || event.state === 'failed'),
    connectionRestored: ({ event }) => event.type === 'rtc.connectionState' && event.state === 'connected',
    /** The attempt to connect is over without a channel: the connection failed or was closed under us. */
    attemptEnded: ({ context, event }) =>
      context.initiator &&
      context.connectRetries < context.maxConnectRetries &&
      event.type === 'rtc.connectionState' &&
      (event.state === 'failed' || event.state === 'closed'),
    fromRemote: ({ context, event }) => 'fromPeerId' in event && event.fromPeerId === context.remotePeerId,
    isPing: ({ event }) => inboundType(event) === 'link-ping',
    /**
     * Nothing heard for the silence timeout over an open path, and nothing heard since before the
     * previous check either (which already found the peer quiet for all but one interval of it). A
     * check that fires late because our own event loop stalled therefore cannot declare the peer
     * silent: what arrived meanwhile is read before the next check.
     */
    fellSilent: ({ context }, { busy }: { busy: boolean }) => {
      const silenceMs = busy ? context.busySilenceTimeoutMs : context.silenceTimeoutMs;
      const intervalMs = busy ? context.busyPingIntervalMs : context.pingIntervalMs;
      return (
        context.transport !== 'none' &&
        !context.silent &&
        context.now() - context.lastHeardAt > silenceMs &&
        context.lastCheckAt - context.lastHeardAt > silenceMs - intervalMs
      );
    },
    isPong: ({ event }) => inboundType(event) === 'link-pong',
  },
  actions: {
    signalDescription: sendParent(({ context, event }) => {
      const { description } = event as Extract<RtcEvent, { type: 'rtc.description' }>;
      const message =
        description.type === 'offer'
          ? {
              type: 'offer' as const,
              targetPeerId: context.remotePeerId,
              sdp: { type: 'offer' as const, sdp: description.sdp },
            }
          : {
              type: 'answer' as const,
              targetPeerId: context.remotePeerId,
              sdp: { type: 'answer' as const, sdp: description.sdp },
            };
      return { type: 'link.signal' as const, message };
    }),
    signalCandidate: sendParent(({ context, event }) => ({
      type: 'link.signal' as const,
      message: {
        type: 'ice-candidate' as const,
        targetPeerId: context.remotePeerId,
        candidate: (event as Extract<RtcEvent, { type: 'rtc.candidate' }>).candidate,
      },
    })),
    applyRemoteSignal: sendTo('rtc', ({ event }): RtcCommand => {
      if (event.type === 'ice-candidate')
        return { type: 'rtc.remoteCandidate', candidate: event.candidate as IceCandidate };
      const { sdp } = event as Extract<PeerLinkEvent, { type: 'offer' | 'answer' }>;
      return { type: 'rtc.remoteDescription', description: { type: sdp.type, sdp: sdp.sdp } };
    }),
    /** Reassembles relay frames; a complete message comes back as `relay.message`. */
    assembleRelay: ({ context, event, self }) => {
      if (event.type !== 'relay') return;
      const assembled = context.assembler.push(
        event.payload as TaskMessage,
        JSON.stringify(event.payload).length,
      );
      if (!assembled.ok) self.send({ type: 'rtc.invalid', error: assembled.error });
      else if (assembled.message) {
        self.send({
          type: 'relay.message',
          message: assembled.message,
          bytes: assembled.bytes,
        });
      }
    },
    deliver: sendParent(({ context, event }) => ({
      type: 'link.message' as const,
      peerId: context.remotePeerId,
      message: (event as Extract<SealEvent, { type: 'seal.opened' }>).message,
    })),
    replyPong: ({ event, self }) => {
      const { message } = event as InboundEvent;
      if (message.type === 'link-ping')
        self.send({ type: 'link.send', message: { type: 'link-pong', ts: message.ts } });
    },
    measureRtt: assign({
      rttMs: ({ context, event }) => {
        const { message } = event as InboundEvent;
        if (message.type !== 'link-pong') return context.rttMs;
        const sample = Math.max(0, context.now() - message.ts);
        // Exponentially weighted, as TCP smooths its RTT (α = 1/8).
        return context.rttMs === undefined ? sample : Math.round((context.rttMs * 7 + sample) / 8);
      },
    }),
    reportRtt: sendParent(({ context }) => ({
      type: 'link.rtt' as const,
      peerId: context.remotePeerId,
      rttMs: context.rttMs ?? 0,
    })),
    countReceived: assign({
      bytesReceived: ({ context, event }) =>
        context.bytesReceived +
        (event.type === 'rtc.message' || event.type === 'relay.message' ? event.bytes : 0),
      lastHeardAt: ({ context }) => context.now(),
      silent: false,
    }),
    handleAgain: raise(({ event }) => event),
    /** Outbound: signed (in order) before it takes whatever path is open. */
    seal: sendTo('seal', ({ event }) => ({
      type: 'seal.out' as const,
      message: (event as Extract<PeerLinkEvent, { type: 'link.send' }>).message,
    })),
    /** Inbound task messages are verified (in order) before they are delivered. */
    open: sendTo('seal', ({ event }) => ({
      type: 'seal.in' as const,
      message: (event as InboundEvent).message,
      bytes: (event as InboundEvent).bytes,
    })),
    reportViolation: sendParent(({ context, event }) => {
      const rejected = event as Extract<SealEvent, { type: 'seal.rejected' }>;
      return {
        type: 'link.violation' as const,
        peerId: context.remotePeerId,
        reason: rejected.reason,
        messageType: rejected.message.type,
      };
    }),
    /** An unsigned or tampered delegation is refused, with the reason, rather than ignored. */
    refuseUnsigned: enqueueActions(({ event, enqueue, self }) => {
      const { message, reason } = event as Extract<SealEvent, { type: 'seal.rejected' }>;
      if (message.type !== 'prompt-delegation') return;
      enqueue(() =>
        self.send({
          type: 'link.send',
          message: {
            type: 'task-rejected',
            taskId: message.taskId,
            reason: 'unsigned',
            message: `task refused: ${reason}`.slice(0, 500),
          },
        }),
      );
    }),
    /** No open path while restarting: silence is not counted against the peer meanwhile. */
    pathDown: assign({ transport: 'none' }),
    markSilent: assign({ silent: true }),
    reportSilence: sendParent(({ context }) => ({
      type: 'link.silent' as const,
      peerId: context.remotePeerId,
    })),
    countSent: assign({
      bytesSent: ({ context, event }) => context.bytesSent + (event.type === 'rtc.sent' ? event.bytes : 0),
    }),
    sendDirect: sendTo('rtc', ({ event }) => ({
      type: 'rtc.send' as const,
      message: (event as Extract<PeerLinkEvent, { type: 'seal.sealed' }>).message,
    })),
    sendRelayed: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'seal.sealed') return;
      let bytes = 0;
      for (const frame of context.framer.frames(event.message)) {
        bytes += JSON.stringify(frame).length;
        enqueue.sendParent({
          type: 'link.signal',
          message: { type: 'relay', targetPeerId: context.remotePeerId, payload: frame },
        });
      }
      enqueue.assign({ bytesSent: context.bytesSent + bytes });
    }),

    /** Holds messages until a path opens; RTT probes are not held (they would measure the wait). */
    queue: assign({
      outbox: ({ context, event }) =>
        event.type === 'seal.sealed' &&
        event.message.type !== 'link-ping' &&
        event.message.type !== 'link-pong'
          ? [...context.outbox, event.message].slice(-LINK_OUTBOX_LIMIT)
          : context.outbox,
    }),
    flushOutbox: ({ context, self }) => {
      for (const message of context.outbox) self.send({ type: 'seal.sealed', message });
    },
    clearOutbox: assign({ outbox: [] }),
    // A path just opened: silence is measured from now, not from when the link was created.
    setDirect: assign({
      transport: 'direct',
      lastHeardAt: ({ context }) => context.now(),
      silent: false,
      rttMs: undefined,
    }),
    setRelayed: assign({
      transport: 'relayed',
      lastHeardAt: ({ context }) => context.now(),
      silent: false,
      rttMs: undefined,
    }),
    announceTransport: enqueueActions(({ context, enqueue }) => {
      const event = {
        type: 'link.transport' as const,
        peerId: context.remotePeerId,
        transport: context.transport,
      };
      enqueue.emit(event);
      enqueue.sendParent(event);
    }),
    restartIce: sendTo('rtc', { type: 'rtc.restart' }),
    countRestart: assign({ restarts: ({ context }) => context.restarts + 1 }),
    countConnectRetry: assign({ connectRetries: ({ context }) => context.connectRetries + 1 }),
    recordCheck: assign({ lastCheckAt: ({ context }) => context.now() }),
    ping: ({ context, self }) => {
      if (context.transport !== 'none')
        self.send({ type: 'link.send', message: { type: 'link-ping', ts: context.now() } });
    },
    sample: assign(({ context }) => {
      const at = context.now();
      const seconds = Math.max(0.001, (at - context.lastSample.at) / 1000);
      const point: LinkSample = {
        at,
        rttMs: context.rttMs,
        sentBytesPerSecond: Math.round((context.bytesSent - context.lastSample.sent) / seconds),
        receivedBytesPerSecond: Math.round((context.bytesReceived - context.lastSample.received) / seconds),
      };
      return {
        samples: [...context.samples, point].slice(-MAX_SAMPLES),
        lastSample: { at, sent: context.bytesSent, received: context.bytesReceived },
      };
    }),
    recordError: assign({
      lastError: ({ context, event }) =>
        event.type === 'rtc.error' || event.type === 'rtc.invalid'
          ? event.error
          : event.type === 'link.unreachable'
            ? event.reason
            : context.lastError,
    }),
  },
}).createMachine({
  id: 'peerLink',
  description: 'One remote peer: a WebRTC data channel when one can be made, the signaling relay when not.',
  context: ({ input }) => {
    const now = input.now ?? Date.now;
    return {
      identity: input.identity,
      keyring: input.keyring,
      localPeerId: input.localPeerId,
      remotePeerId: input.remotePeerId,
      initiator: input.initiator,
      // Perfect negotiation needs one polite side; both sides derive the same answer.
      polite: input.localPeerId > input.remotePeerId,
      RTCPeerConnection: input.RTCPeerConnection,
      configuration: { ...(input.rtcConfiguration ?? {}), iceServers: input.iceServers } as RTCConfiguration,
      directTimeoutMs: input.directTimeoutMs ?? 5_000,
      restartTimeoutMs: input.restartTimeoutMs ?? 5_000,
      maxConnectRetries: input.maxConnectRetries ?? 2,
      connectRetries: 0,
      ...probeTiming(input),
      now,
      transport: 'none',
      lastHeardAt: now(),
      lastCheckAt: now(),
      silent: false,
      rttMs: undefined,
      bytesSent: 0,
      bytesReceived: 0,
      samples: [],
      lastSample: { at: now(), sent: 0, received: 0 },
      restarts: 0,
      outbox: [],
      lastError: undefined,
      framer: new LinkFramer(),
      assembler: new LinkAssembler(),
    };
  },
  initial: 'active',
  states: {
    active: {
      type: 'parallel',
      invoke: [
        {
          id: 'rtc',
          src: 'rtcPeer',
          input: ({ context }) => ({
            RTCPeerConnection: context.RTCPeerConnection,
            configuration: context.configuration,
            polite: context.polite,
            initiator: context.initiator,
          }),
        },
        {
          id: 'seal',
          src: 'seal',
          input: ({ context }) => ({
            identity: context.identity,
            keyring: context.keyring,
            localPeerId: context.localPeerId,
            remotePeerId: context.remotePeerId,
          }),
        },
      ],
      on: {
        'rtc.description': { actions: 'signalDescription' },
        'rtc.candidate': { actions: 'signalCandidate' },
        offer: { guard: 'fromRemote', actions: 'applyRemoteSignal' },
        answer: { guard: 'fromRemote', actions: 'applyRemoteSignal' },
        'ice-candidate': { guard: 'fromRemote', actions: 'applyRemoteSignal' },
        'rtc.message': inbound,
        'relay.message': inbound,
        'link.send': { actions: 'seal' },
        'seal.opened': { actions: 'deliver' },
        'seal.rejected': { actions: ['reportViolation', 'refuseUnsigned'] },
        relay: { guard: 'fromRemote', actions: 'assembleRelay' },
        'rtc.sent': { actions: 'countSent' },
        'rtc.error': { actions: 'recordError' },
        'rtc.invalid': { actions: 'recordError' },
        'link.close': '#peerLink.closed',
        'link.unreachable': { target: '#peerLink.closed', actions: 'recordError' },
      },
      states: {
        path: {
          initial: 'connecting',
          states: {
            connecting: {
              tags: 'connecting',
              description:
                'Negotiating a direct data channel; messages wait in the outbox. An attempt that ends without a channel is started over (the initiator does, a bounded number of times) within the same directTimeout.',
              on: {
                'rtc.channelOpen': 'direct',
                'rtc.connectionState': {
                  guard: 'attemptEnded',
                  actions: ['countConnectRetry', 'restartIce'],
                },
                // The peer already fell back to the relay: follow it, then handle the message there
                // (this transition pre-empts the active-level delivery, hence the re-raise).
                'relay.message': { target: 'relayed', actions: 'handleAgain' },
                'seal.sealed': { actions: 'queue' },
              },
              after: { directTimeout: 'relayed' },
            },
            direct: {
              tags: 'direct',
              description: 'A WebRTC data channel is open: traffic goes peer to peer.',
              entry: ['setDirect', 'announceTransport', 'flushOutbox', 'clearOutbox'],
              on: {
                'seal.sealed': { actions: 'sendDirect' },
                'rtc.connectionState': { guard: 'connectionBroken', target: 'restarting' },
                'rtc.channelClosed': 'restarting',
              },
            },
            restarting: {
              tags: 'connecting',
              description:
                'The direct path broke: ICE restart (or a fresh connection) before giving up on it.',
              entry: ['countRestart', 'pathDown', 'restartIce'],
              on: {
                'rtc.channelOpen': 'direct',
                'rtc.connectionState': { guard: 'connectionRestored', target: 'direct' },
                'relay.message': { target: 'relayed', actions: 'handleAgain' },
                'seal.sealed': { actions: 'queue' },
              },
              after: { restartTimeout: 'relayed' },
            },
            relayed: {
              tags: 'relayed',
              description: 'No direct path: task traffic travels through the signaling server.',
              entry: ['setRelayed', 'announceTransport', 'flushOutbox', 'clearOutbox'],
              on: {
                'seal.sealed': { actions: 'sendRelayed' },
                'rtc.channelOpen': 'direct',
              },
            },
          },
        },
        probe: {
          description:
            'Pings, samples RTT and throughput, and watches for silence on a timer: relaxed while the link is idle, tighter while a task of ours is in flight over it.',
          initial: 'idle',
          states: {
            idle: {
              description:
                'No task of ours waits on this peer: a ping every pingIntervalMs, silent after silenceTimeoutMs.',
              on: { 'link.busy': 'busy' },
              after: {
                pingInterval: [
                  {
                    guard: { type: 'fellSilent', params: { busy: false } },
                    target: 'idle',
                    reenter: true,
                    actions: ['markSilent', 'reportSilence', 'recordCheck', 'ping', 'sample'],
                  },
                  { target: 'idle', reenter: true, actions: ['recordCheck', 'ping', 'sample'] },
                ],
              },
            },
            busy: {
              description:
                'A task of ours is in flight over the link: a ping every busyPingIntervalMs, silent after busySilenceTimeoutMs.',
              on: { 'link.idle': 'idle' },
              after: {
                busyPingInterval: [
                  {
                    guard: { type: 'fellSilent', params: { busy: true } },
                    target: 'busy',
                    reenter: true,
                    actions: ['markSilent', 'reportSilence', 'recordCheck', 'ping', 'sample'],
                  },
                  { target: 'busy', reenter: true, actions: ['recordCheck', 'ping', 'sample'] },
                ],
              },
            },
          },
        },
      },
    },
    closed: { type: 'final' },
  },
  output: ({ context }) => ({ peerId: context.remotePeerId, error: context.lastError }),
});
