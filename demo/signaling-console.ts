import {
  type ClientMessage,
  decodeServerMessage,
  encodeMessage,
  type ServerMessage,
} from '../protocol/index.ts';

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = byId<HTMLParagraphElement>('status');
const peers = byId<HTMLUListElement>('peers');
const log = byId<HTMLOListElement>('log');
const known = new Map<string, string>();

function note(direction: '→' | '←', message: ClientMessage | ServerMessage): void {
  const item = document.createElement('li');
  item.textContent = `${direction} ${JSON.stringify(message).slice(0, 300)}`;
  log.prepend(item);
  while (log.children.length > 100) log.lastElementChild?.remove();
}

function renderPeers(): void {
  peers.replaceChildren(
    ...[...known].map(([peerId, summary]) => {
      const item = document.createElement('li');
      item.textContent = `${peerId}: ${summary}`;
      return item;
    }),
  );
}

const signalingUrl =
  new URLSearchParams(location.search).get('signaling') ??
  (import.meta.env.VITE_HANDOFF_SIGNALING_URL as string | undefined) ??
  `ws://${location.hostname}:8083/`;
const ws = new WebSocket(signalingUrl);
const send = (message: ClientMessage) => {
  ws.send(encodeMessage(message));
  note('→', message);
};

ws.onmessage = (event) => {
  const decoded = decodeServerMessage(String(event.data));
  if (!decoded.ok) return;
  const message = decoded.value;
  note('←', message);
  switch (message.type) {
    case 'peer-id':
      status.textContent = `Connected as ${message.peerId}`;
      break;
    case 'heartbeat':
      send({ type: 'heartbeat', ts: message.ts });
      break;
    case 'peer-capability-update':
      known.set(
        message.peerId,
        message.capabilities.hasAI ? `AI: ${message.capabilities.models.join(', ')}` : 'no AI',
      );
      renderPeers();
      break;
    case 'peers-discovered':
      for (const peer of message.peers) known.set(peer.peerId, `score ${peer.score}`);
      renderPeers();
      break;
    case 'peer-left':
      known.delete(message.peerId);
      renderPeers();
      break;
  }
};
ws.onclose = (event) => {
  status.textContent = `Disconnected (${event.code})`;
};

byId<HTMLFormElement>('announce').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = new FormData(event.target as HTMLFormElement);
  const hasAI = form.get('hasAI') === 'on';
  const available = Number(form.get('quota'));
  send({
    type: 'capability-announce',
    capabilities: {
      hasAI,
      models: hasAI ? ['demo-1'] : [],
      ...(hasAI
        ? {
            quota: {
              totalQuota: Math.max(available, 100),
              usedQuota: Math.max(0, 100 - available),
              availableQuota: available,
              resetTime: Date.now() + 3_600_000,
              provider: 'demo',
              capabilities: ['text'],
            },
          }
        : {}),
    },
  });
});
byId<HTMLFormElement>('discover').addEventListener('submit', (event) => {
  event.preventDefault();
  send({ type: 'discover', requirements: { needsAI: true, minQuota: 1, preferredModels: ['demo-1'] } });
});
