import { fromCallback } from 'xstate';
import {
  type ClientMessage,
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
 * schemas and hands the machine protocol messages as events; closes the socket when stopped.
 */
export const websocketActor = fromCallback<WebSocketCommand, WebSocketInput, WebSocketEvent>(
  ({ input, sendBack, receive }) => {
    let closedReported = false;
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
      else socket.close(command.code, command.reason);
    });
    return () => {
      socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
      if (!closedReported) socket.close(1000, 'client stopped');
    };
  },
);
