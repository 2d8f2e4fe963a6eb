import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SignalingServer } from '../../signaling/server.ts';
import { demoCapabilities, TestClient } from '../support/signaling-client.ts';
import { startTestServer } from '../support/signaling-server.ts';

describe("the design's connection-establishment sequence", () => {
  let server: SignalingServer;
  const clients: TestClient[] = [];
  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.terminate();
    await server.close();
  });

  it('introduces two clients and routes offer, answer and ICE candidates between them', async () => {
    const a = await TestClient.connect(server.url);
    const b = await TestClient.connect(server.url);
    clients.push(a, b);
    expect(a.peerId).not.toBe(b.peerId);

    a.send({ type: 'capability-announce', capabilities: { hasAI: false, models: [] } });
    b.send({ type: 'capability-announce', capabilities: demoCapabilities(80) });
    const aboutB = await a.next('peer-capability-update', (m) => m.peerId === b.peerId);
    const aboutA = await b.next('peer-capability-update', (m) => m.peerId === a.peerId);
    expect(aboutB.capabilities.quota?.availableQuota).toBe(80);
    expect(aboutA.capabilities.hasAI).toBe(false);

    a.send({ type: 'discover', requirements: { needsAI: true, minQuota: 1, preferredModels: ['demo-1'] } });
    const found = await a.next('peers-discovered');
    expect(found.peers.map((p) => p.peerId)).toEqual([b.peerId]);
    expect(found.peers[0]?.score).toBeGreaterThan(0);

    a.send({ type: 'offer', targetPeerId: b.peerId, sdp: { type: 'offer', sdp: 'v=0 offer' } });
    const offer = await b.next('offer');
    expect(offer).toMatchObject({
      fromPeerId: a.peerId,
      targetPeerId: b.peerId,
      sdp: { type: 'offer', sdp: 'v=0 offer' },
    });

    b.send({ type: 'answer', targetPeerId: a.peerId, sdp: { type: 'answer', sdp: 'v=0 answer' } });
    expect(await a.next('answer')).toMatchObject({ fromPeerId: b.peerId, sdp: { type: 'answer' } });

    const candidate = {
      candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host',
      sdpMid: '0',
      sdpMLineIndex: 0,
    };
    a.send({ type: 'ice-candidate', targetPeerId: b.peerId, candidate });
    b.send({ type: 'ice-candidate', targetPeerId: a.peerId, candidate: null });
    expect(await b.next('ice-candidate')).toMatchObject({ fromPeerId: a.peerId, candidate });
    expect(await a.next('ice-candidate')).toMatchObject({ fromPeerId: b.peerId, candidate: null });
    expect(a.invalid).toEqual([]);
    expect(b.invalid).toEqual([]);
  });
});
