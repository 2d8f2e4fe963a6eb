import { RTCPeerConnection } from 'node-datachannel/polyfill';
import WebSocket from 'ws';
import type {
  HandoffEnvironment,
  RTCPeerConnectionConstructor,
  WebSocketConstructor,
} from '../../machines/environment.ts';

/**
 * Node's WebSocket (`ws`) and WebRTC (node-datachannel's W3C polyfill). `bindAddress` keeps ICE
 * on 127.0.0.1, which is what works inside the tests' loopback-only network namespace.
 */
export function nodeEnvironment(extra: Record<string, unknown> = {}): HandoffEnvironment {
  return {
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    RTCPeerConnection: RTCPeerConnection as unknown as RTCPeerConnectionConstructor,
    rtcConfiguration: { bindAddress: '127.0.0.1', ...extra },
  };
}
