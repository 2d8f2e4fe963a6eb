/**
 * What the client machines need from their host, injected so the same machines run in browsers
 * (globals) and in Node (`ws` + node-datachannel's polyfill).
 */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** Drops the TCP connection at once (Node's `ws`); browsers have no such method. */
  terminate?(): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;
export type RTCPeerConnectionConstructor = new (configuration?: RTCConfiguration) => RTCPeerConnection;

export interface HandoffEnvironment {
  WebSocket: WebSocketConstructor;
  RTCPeerConnection: RTCPeerConnectionConstructor;
  /**
   * Extra RTCConfiguration fields for this host, merged into every peer connection
   * (e.g. `{ bindAddress: '127.0.0.1' }` for node-datachannel in a loopback-only namespace).
   */
  rtcConfiguration?: Record<string, unknown>;
}

/** The browser's own implementations. */
export function browserEnvironment(): HandoffEnvironment {
  return {
    WebSocket: globalThis.WebSocket as unknown as WebSocketConstructor,
    RTCPeerConnection: globalThis.RTCPeerConnection,
  };
}
