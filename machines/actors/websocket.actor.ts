import { fromCallback } from 'xstate';
import {
  type ClientMessage,
  CloseCode,
  decodeServerMessage,
  encodeMessage,
  type ServerMessage,
} from '../../protocol/index.ts';
import type { WebSocketConstructor } from '../environment.ts';

export type WebSocketEvent =
  | ServerMessage
  | { type: 'socket.opened' }
  | { type: 'socket.invalid'; message: string }
  | { type: 'socket.closed'; code: number; reason: string };

export type WebSocketCommand =
  | { type: 'socket.send'; message: ClientMessage }
  | { type: 'socket.close'; code: number; reason: string };

export interface WebSocketInput {
  url: string;
  WebSocket: WebSocketConstructor;
}

const OPEN = 1;

/**
 * One WebSocket to the signaling server. Decodes and validates every frame with the protocol's
 * schemas and hands the machine protocol messages as events.
 *
 * Closing: `socket.close` closes with the given code (1000 = leaving for good). Stopped without it,
 * the actor is making way for a reconnect, so it must not say 1000: it hangs up at the TCP level
 * where it can (Node's `ws`), which also spares the server a TIME_WAIT on its port, or closes with
 * 4100 (reconnecting) in browsers.
 */
export const websocketActor = fromCallback<WebSocketCommand, WebSocketInput, WebSocketEvent>(
  ({ input, sendBack, receive }) => {
    let closedReported = false;
    let closeRequested = false;
    const socket = new input.WebSocket(input.url);
    socket.onopen = () => sendBack({ type: 'socket.opened' });
    socket.onmessage = (event) => {
      const decoded = decodeServerMessage(typeof event.data === 'string' ? event.data : String(event.data));
      sendBack(decoded.ok ? decoded.value : { type: 'socket.invalid', message: decoded.message });
    };
    socket.onclose = (event) => {
      closedReported = true;
      sendBack({ type: 'socket.closed', code: event.code, reason: event.reason });
    };
    socket.onerror = () => {
      // A close event always follows; the machine acts on that.
    };
    receive((command) => {
      if (socket.readyState !== OPEN) return;
      if (command.type === 'socket.send') socket.send(encodeMessage(command.message));
      else {
        closeRequested = true;
        socket.close(command.code, command.reason);
      }
    });
    return () => {
      socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
      if (closedReported || closeRequested) return;
      if (socket.terminate) socket.terminate();
      else socket.close(CloseCode.clientReconnecting, 'reconnecting');
    };
  },
);
