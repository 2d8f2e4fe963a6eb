import { fromCallback } from 'xstate';
import {
  decodeTaskMessage,
  encodeMessage,
  type IceCandidate,
  type TaskMessage,
} from '../../protocol/index.ts';
import type { RTCPeerConnectionConstructor } from '../environment.ts';
import { LinkAssembler, LinkFramer, type LinkMessage } from '../link-framing.ts';

/** What the peer link machine hears from its RTCPeerConnection. */
export type RtcEvent =
  | { type: 'rtc.description'; description: { type: 'offer' | 'answer'; sdp: string } }
  | { type: 'rtc.candidate'; candidate: IceCandidate }
  | { type: 'rtc.channelOpen' }
  | { type: 'rtc.channelClosed' }
  | { type: 'rtc.connectionState'; state: RTCPeerConnectionState }
  | { type: 'rtc.message'; message: LinkMessage; bytes: number }
  | { type: 'rtc.invalid'; error: string }
  | { type: 'rtc.sent'; bytes: number }
  | { type: 'rtc.error'; error: string };

export type RtcCommand =
  | { type: 'rtc.remoteDescription'; description: { type: 'offer' | 'answer'; sdp: string } }
  | { type: 'rtc.remoteCandidate'; candidate: IceCandidate }
  | { type: 'rtc.send'; message: LinkMessage }
  | { type: 'rtc.restart' };

export interface RtcInput {
  RTCPeerConnection: RTCPeerConnectionConstructor;
  configuration: RTCConfiguration;
  /** The polite peer yields when both sides offer at once (perfect negotiation). */
  polite: boolean;
  /** The initiator creates the data channel and makes the first offer. */
  initiator: boolean;
}

/** Send while at most this much is queued in the channel; resume on `bufferedamountlow`. */
export const CHANNEL_HIGH_WATER = 1024 * 1024;
export const CHANNEL_LOW_WATER = 256 * 1024;

const fingerprint = (sdp: string | undefined) => /a=fingerprint:\S+ (\S+)/.exec(sdp ?? '')?.[1];

/**
 * One RTCPeerConnection and its data channel, with perfect negotiation: the impolite side ignores a
 * colliding offer, the polite side rolls back (or, where the implementation cannot roll back,
 * starts over on a fresh connection) and answers. Trickle ICE both ways, candidates held until a
 * remote description exists. Outbound messages are framed (fragments over 16 KiB) and paced by
 * `bufferedAmountLowThreshold`. ICE restart uses `restartIce()`; where that is missing (Node's
 * node-datachannel), the initiator replaces the connection and the other side follows the new
 * DTLS fingerprint.
 */
export const rtcPeerActor = fromCallback<RtcCommand, RtcInput, RtcEvent>(({ input, sendBack, receive }) => {
  const framer = new LinkFramer();
  const assembler = new LinkAssembler();
  const outbox: string[] = [];
  let pc: RTCPeerConnection;
  let channel: RTCDataChannel | undefined;
  let makingOffer = false;
  let ignoreOffer = false;
  const pendingCandidates: IceCandidate[] = [];
  /**
   * The remote description applied to the current connection. Tracked here: node-datachannel's
   * `remoteDescription` getter returns an object even before one is set, so it cannot tell us
   * whether a candidate may be added yet (adding one too early loses it).
   */
  let remoteSdp: string | undefined;
  let stopped = false;
  let generation = 0;

  const report = (error: unknown) => {
    if (!stopped)
      sendBack({ type: 'rtc.error', error: error instanceof Error ? error.message : String(error) });
  };

  function flush(): void {
    while (channel?.readyState === 'open' && outbox.length && channel.bufferedAmount <= CHANNEL_HIGH_WATER) {
      const frame = outbox.shift() as string;
      try {
        channel.send(frame);
        sendBack({ type: 'rtc.sent', bytes: frame.length });
      } catch (error) {
        outbox.unshift(frame);
        report(error);
        return;
      }
    }
  }

  function wire(dc: RTCDataChannel, owner: number): void {
    channel = dc;
    dc.bufferedAmountLowThreshold = CHANNEL_LOW_WATER;
    // Handlers attach synchronously: attaching after an await loses early messages.
    dc.onopen = () => {
      if (owner !== generation) return;
      sendBack({ type: 'rtc.channelOpen' });
      flush();
    };
    dc.onclose = () => {
      if (owner === generation && !stopped) sendBack({ type: 'rtc.channelClosed' });
    };
    dc.onbufferedamountlow = () => flush();
    dc.onmessage = (event: MessageEvent) => {
      if (owner !== generation) return;
      const text = typeof event.data === 'string' ? event.data : '';
      const decoded = decodeTaskMessage(text);
      if (!decoded.ok) return sendBack({ type: 'rtc.invalid', error: decoded.message });
      const assembled = assembler.push(decoded.value, text.length);
      if (!assembled.ok) return sendBack({ type: 'rtc.invalid', error: assembled.error });
      if (assembled.message)
        sendBack({ type: 'rtc.message', message: assembled.message, bytes: assembled.bytes });
    };
    if (dc.readyState === 'open') dc.onopen?.(new Event('open'));
  }

  function createConnection(asInitiator: boolean): void {
    generation++;
    const owner = generation;
    pc = new input.RTCPeerConnection(input.configuration);
    remoteSdp = undefined;
    // Queued remote candidates are kept: they belong to the remote's latest description, which the
    // new connection is about to receive (dropping them here lost the glare case's candidates).
    makingOffer = false;
    ignoreOffer = false;
    pc.onicecandidate = (event) => {
      if (owner !== generation) return;
      const c = event.candidate;
      sendBack({
        type: 'rtc.candidate',
        candidate: c
          ? {
              candidate: c.candidate,
              sdpMid: c.sdpMid ?? null,
              sdpMLineIndex: c.sdpMLineIndex ?? null,
              ...(c.usernameFragment ? { usernameFragment: c.usernameFragment } : {}),
            }
          : null,
      });
    };
    pc.onconnectionstatechange = () => {
      if (owner === generation) sendBack({ type: 'rtc.connectionState', state: pc.connectionState });
    };
    pc.ondatachannel = (event) => {
      if (owner === generation) wire(event.channel, owner);
    };
    if (asInitiator) {
      wire(pc.createDataChannel('handoff', { ordered: true }), owner);
      void makeOffer(false);
    }
  }

  async function makeOffer(iceRestart: boolean): Promise<void> {
    const owner = generation;
    try {
      makingOffer = true;
      const offer = await pc.createOffer(iceRestart ? { iceRestart: true } : undefined);
      if (owner !== generation || stopped) return;
      await pc.setLocalDescription(offer);
      const local = pc.localDescription ?? offer;
      sendBack({ type: 'rtc.description', description: { type: 'offer', sdp: local.sdp ?? '' } });
    } catch (error) {
      report(error);
    } finally {
      makingOffer = false;
    }
  }

  async function acceptDescription(description: { type: 'offer' | 'answer'; sdp: string }): Promise<void> {
    if (
      description.type === 'offer' &&
      remoteSdp &&
      fingerprint(remoteSdp) !== fingerprint(description.sdp)
    ) {
      // The other side replaced its connection (ICE restart without restartIce): follow it.
      closeConnection();
      createConnection(false);
    }
    const offerCollision = description.type === 'offer' && (makingOffer || pc.signalingState !== 'stable');
    ignoreOffer = !input.polite && offerCollision;
    if (ignoreOffer) return;
    if (offerCollision) {
      try {
        await pc.setLocalDescription({ type: 'rollback' });
        if (pc.signalingState !== 'stable') throw new Error('rollback unsupported');
      } catch {
        // No rollback here: yield by starting over as the answering side.
        closeConnection();
        createConnection(false);
      }
    }
    if (description.type === 'answer' && pc.signalingState !== 'have-local-offer') return; // stale answer
    await pc.setRemoteDescription(description);
    remoteSdp = description.sdp;
    for (const candidate of pendingCandidates.splice(0)) await addCandidate(candidate);
    if (description.type === 'offer') {
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      const local = pc.localDescription ?? answer;
      sendBack({ type: 'rtc.description', description: { type: 'answer', sdp: local.sdp ?? '' } });
    }
  }

  async function addCandidate(candidate: IceCandidate): Promise<void> {
    if (remoteSdp === undefined) {
      pendingCandidates.push(candidate);
      return;
    }
    try {
      await pc.addIceCandidate(candidate ?? undefined);
    } catch (error) {
      if (!ignoreOffer) report(error);
    }
  }

  function restart(): void {
    try {
      if (typeof pc.restartIce !== 'function') throw new Error('restartIce unavailable');
      pc.restartIce();
      if (input.initiator) void makeOffer(true);
    } catch {
      if (!input.initiator) return; // the initiator drives restarts
      closeConnection();
      createConnection(true);
    }
  }

  function closeConnection(): void {
    const old = pc;
    const oldChannel = channel;
    channel = undefined;
    try {
      oldChannel?.close();
      old.close();
    } catch {
      // already closed
    }
  }

  receive((command) => {
    if (stopped) return;
    switch (command.type) {
      case 'rtc.remoteDescription':
        acceptDescription(command.description).catch(report);
        break;
      case 'rtc.remoteCandidate':
        addCandidate(command.candidate).catch(report);
        break;
      case 'rtc.send':
        for (const frame of framer.frames(command.message)) outbox.push(encodeMessage(frame as TaskMessage));
        flush();
        break;
      case 'rtc.restart':
        restart();
        break;
    }
  });

  createConnection(input.initiator);
  return () => {
    stopped = true;
    closeConnection();
  };
});
