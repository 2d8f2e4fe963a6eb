import type { AddressInfo } from 'node:net';
import { PeerServer } from 'peer';

/**
 * The PeerJS anchor for `npm run bench:signaling`: the npm `peer` package's own `PeerServer` (Express +
 * `ws`), unchanged, on 127.0.0.1. It speaks PeerJS's protocol, not Handoff's:
 *
 * - clients connect to `/peerjs?key=peerjs&id=<id>&token=<token>` (the client picks its id) and are
 *   greeted with `{"type":"OPEN"}`;
 * - `{type:'OFFER'|'ANSWER'|'CANDIDATE', dst, payload}` is JSON-parsed, given `src`, re-stringified
 *   as `{type, src, dst, payload}` and sent to `dst`;
 * - clients send `{"type":"HEARTBEAT"}` (PeerJS clients: every 5 s); a client silent for
 *   `alive_timeout` (90 s) is dropped.
 *
 * Only `concurrent_limit` is raised (default 5,000) so 10,000 peers can register.
 */
export const PEERJS_SERVER_MODE =
  'npm peer 1.0.2 PeerServer (Express + ws), defaults except concurrent_limit; CANDIDATE messages';
export const PEERJS_KEY = 'peerjs';
export const PEERJS_PATH = '/peerjs';

export interface PeerJsServer {
  readonly port: number;
  readonly peers: () => number;
  close(): Promise<void>;
}

export async function startPeerJsServer(host = '127.0.0.1', port = 0): Promise<PeerJsServer> {
  let registered = 0;
  let close: () => Promise<void> = async () => {};
  const boundPort = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('PeerServer did not listen within 10 s')), 10_000);
    const app = PeerServer(
      { host, port, path: '/', key: PEERJS_KEY, concurrent_limit: 1_000_000_000 },
      (server) => {
        clearTimeout(timer);
        close = () => new Promise((done) => server.close(() => done()));
        resolve((server.address() as AddressInfo).port);
      },
    );
    // Registered clients: `connection` after OPEN went out, `disconnect` once its socket closed.
    app.on('connection', () => registered++);
    app.on('disconnect', () => registered--);
    app.on('error', () => {});
  });
  return { port: boundPort, peers: () => registered, close: () => close() };
}
