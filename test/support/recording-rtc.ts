import type { RTCPeerConnection } from 'node-datachannel/polyfill';
import type { HandoffEnvironment, RTCPeerConnectionConstructor } from '../../machines/environment.ts';
import { NodeRTCPeerConnection } from '../../worker/node-environment.ts';
import { nodeEnvironment } from './node-environment.ts';

/**
 * node-datachannel's RTCPeerConnection, recording every connection and data channel it makes so
 * a test can break them from outside (as a network failure would) or read their stats.
 * `rtcConfiguration` is merged into every connection (as `nodeEnvironment`'s is).
 */
export function recordingEnvironment(rtcConfiguration: Record<string, unknown> = {}): HandoffEnvironment & {
  connections: RTCPeerConnection[];
  channels: RTCDataChannel[];
} {
  const connections: RTCPeerConnection[] = [];
  const channels: RTCDataChannel[] = [];
  class RecordingPeerConnection extends NodeRTCPeerConnection {
    constructor(configuration?: RTCConfiguration) {
      super(configuration as never);
      connections.push(this as unknown as RTCPeerConnection);
      this.addEventListener('datachannel', (event) => channels.push((event as RTCDataChannelEvent).channel));
    }
    override createDataChannel(label: string, options?: RTCDataChannelInit) {
      const channel = super.createDataChannel(label, options);
      channels.push(channel as unknown as RTCDataChannel);
      return channel;
    }
  }
  return {
    ...nodeEnvironment(rtcConfiguration),
    RTCPeerConnection: RecordingPeerConnection as unknown as RTCPeerConnectionConstructor,
    connections: connections as never,
    channels,
  };
}
