import type { us_listen_socket, WebSocket } from 'uWebSockets.js';
import { loadNativeUws } from '../signaling/load-uws.ts';

/**
 * The baseline for `npm run bench:signaling`: the least a JSON relay on native uWS must do.
 *
 * - On open it assigns a peer id (`p1`, `p2`, …) and greets with `{"type":"peer-id","peerId":…}`.
 * - On a text frame it JSON-parses it, looks up `targetPeerId`, and sends the frame on re-stringified
 *   with `fromPeerId` set to the sender (so the sender cannot lie about who it is).
 *
 * No schema validation, rate limiting, heartbeats, resume, registry or actors: everything Handoff adds
 * on top of this is what the benchmark's ratio prices. Same uWS settings as Handoff's transport.
 */
export const BARE_RELAY_MODE = 'JSON.parse + JSON.stringify({...frame, fromPeerId}) per relayed frame';

interface Peer {
  id: string;
  open: boolean;
}

export interface BareRelay {
  readonly port: number;
  readonly peers: () => number;
  close(): void;
}

export async function startBareRelay(host = '127.0.0.1', port = 0): Promise<BareRelay> {
  const uws = loadNativeUws();
  const sockets = new Map<string, WebSocket<Peer>>();
  let next = 0;
  const app = uws.App().ws<Peer>('/', {
    maxPayloadLength: 1024 * 1024,
    maxBackpressure: 1024 * 1024,
    closeOnBackpressureLimit: 0,
    idleTimeout: 30,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      res.upgrade<Peer>(
        { id: '', open: true },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      const peer = ws.getUserData();
      peer.id = `p${++next}`;
      sockets.set(peer.id, ws);
      ws.send(`{"type":"peer-id","peerId":"${peer.id}"}`, false);
    },
    message: (ws, message, isBinary) => {
      if (isBinary) return;
      let frame: { targetPeerId?: unknown };
      try {
        frame = JSON.parse(Buffer.from(message).toString('utf8'));
      } catch {
        return;
      }
      if (typeof frame !== 'object' || frame === null || typeof frame.targetPeerId !== 'string') return;
      const target = sockets.get(frame.targetPeerId);
      if (!target) return;
      target.send(JSON.stringify({ ...frame, fromPeerId: ws.getUserData().id }), false);
    },
    close: (ws) => {
      const peer = ws.getUserData();
      peer.open = false;
      sockets.delete(peer.id);
    },
  });
  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(host, port, (socket) => (socket ? resolve(socket) : reject(new Error('cannot listen'))));
  });
  return {
    port: uws.us_socket_local_port(listenSocket),
    peers: () => sockets.size,
    close() {
      uws.us_listen_socket_close(listenSocket);
      for (const ws of [...sockets.values()]) ws.close();
    },
  };
}
