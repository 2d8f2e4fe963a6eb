import { RTCPeerConnection } from 'node-datachannel/polyfill';
import WebSocket from 'ws';
import type {
  HandoffEnvironment,
  RTCPeerConnectionConstructor,
  WebSocketConstructor,
} from '../machines/environment.ts';

/**
 * node-datachannel's RTCPeerConnection with TURN credentials escaped. Its polyfill hands them to
 * libdatachannel inside the URL (`turn:<username>:<credential>@host:port`) unescaped, and
 * libdatachannel ends the username at the first `:` and URL-decodes both parts. The signaling
 * server's TURN credentials are coturn's REST format (username `<expiry>:<peerId>`, base64
 * credential with `+`, `/`, `=`), so unescaped they reach the TURN server as the wrong user.
 */
export class NodeRTCPeerConnection extends RTCPeerConnection {
  constructor(configuration?: RTCConfiguration) {
    super(
      configuration?.iceServers
        ? {
            ...configuration,
            iceServers: configuration.iceServers.map((server) =>
              server.username && server.credential
                ? {
                    ...server,
                    username: encodeURIComponent(server.username),
                    credential: encodeURIComponent(server.credential),
                  }
                : server,
            ),
          }
        : configuration,
    );
  }
}

/** The client's environment in Node, plus a way to wait for its signaling sockets to close. */
export interface NodeEnvironment extends HandoffEnvironment {
  /**
   * Resolves once every WebSocket this environment opened has closed, or after `timeoutMs`;
   * true if they all closed. A leaving peer waits on it so its close (1000) reaches the server.
   */
  socketsClosed(timeoutMs: number): Promise<boolean>;
}

/**
 * Node's WebSocket (`ws`) and WebRTC (node-datachannel's W3C polyfill). `rtcConfiguration` is merged
 * into every peer connection; node-datachannel reads `bindAddress` (the interface ICE gathers on;
 * unset = every interface) and `portRangeBegin`/`portRangeEnd` from it.
 */
export function nodeEnvironment(rtcConfiguration: Record<string, unknown> = {}): NodeEnvironment {
  const open = new Set<WebSocket>();
  const closedListeners = new Set<() => void>();
  class TrackedWebSocket extends WebSocket {
    constructor(url: string) {
      super(url);
      open.add(this);
      this.once('close', () => {
        open.delete(this);
        if (open.size === 0) for (const listener of closedListeners) listener();
      });
    }
  }
  return {
    WebSocket: TrackedWebSocket as unknown as WebSocketConstructor,
    RTCPeerConnection: NodeRTCPeerConnection as unknown as RTCPeerConnectionConstructor,
    rtcConfiguration: { ...rtcConfiguration },
    socketsClosed(timeoutMs) {
      if (open.size === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (closed: boolean) => {
          clearTimeout(timer);
          closedListeners.delete(onClosed);
          resolve(closed);
        };
        const onClosed = () => done(true);
        const timer = setTimeout(() => done(false), timeoutMs);
        closedListeners.add(onClosed);
      });
    },
  };
}

/**
 * `nodeEnvironment` with ICE kept on 127.0.0.1: what works inside the tests' loopback-only
 * network namespace (and for peers that only ever talk to each other on one machine).
 */
export function loopbackNodeEnvironment(extra: Record<string, unknown> = {}): NodeEnvironment {
  return nodeEnvironment({ bindAddress: '127.0.0.1', ...extra });
}
