import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHandoff, type Handoff } from '../../machines/create-handoff.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { nodeEnvironment } from '../support/node-environment.ts';
import { demoAnswer } from '../support/peers.ts';
import { TestClient } from '../support/signaling-client.ts';
import { startTestServer } from '../support/signaling-server.ts';
import { waitUntil } from '../support/wait.ts';

describe('quota-aware routing between real peers', () => {
  let server: SignalingServer;
  const peers: Handoff[] = [];
  const clients: TestClient[] = [];
  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(async () => {
    for (const peer of peers.splice(0)) peer.stop();
    for (const client of clients.splice(0)) client.terminate();
    await server.close();
  });

  const demo = (model = 'demo-1') => createDemoProvider({ wordsPerSecond: 0, answerWords: 8, model });
  async function peer(options: Parameters<typeof createHandoff>[0]) {
    const handoff = await createHandoff({ environment: nodeEnvironment(), ...options });
    peers.push(handoff);
    return { handoff, peerId: await handoff.connect(server.url) };
  }

  it('runs locally while its quota lasts, announces what is left, then delegates to a peer', async () => {
    const observer = await TestClient.connect(server.url, { answerHeartbeats: true });
    clients.push(observer);
    const helper = await peer({ provider: demo() });
    const me = await peer({ provider: demo(), quota: { totalQuota: 2, announceEveryMs: 50 } });
    await me.handoff.discoverPeers({ needsAI: true, minQuota: 0, preferredModels: [] });

    for (const prompt of ['one', 'two']) {
      const task = me.handoff.prompt(prompt);
      expect(task.plan).toMatchObject({ route: 'local' });
      const result = await task.result;
      expect(result).toMatchObject({
        status: 'completed',
        text: await demoAnswer(prompt, { answerWords: 8 }),
      });
      expect(result.attempts.map((attempt) => attempt.peerId)).toEqual(['local']);
    }
    // The others hear how much quota is left (throttled, latest wins).
    await observer.next(
      'peer-capability-update',
      (m) => m.peerId === me.peerId && m.capabilities.quota?.availableQuota === 0,
    );

    const third = me.handoff.prompt('three');
    expect(third.plan).toMatchObject({ route: 'delegate', candidates: [helper.peerId] });
    const result = await third.result;
    expect(result.status).toBe('completed');
    expect(result.attempts.map((attempt) => attempt.peerId)).toEqual([helper.peerId]);
  });

  it('says why when no peer can serve, and nothing leaves this peer', async () => {
    await peer({ provider: demo('small-model') });
    const me = await peer({});
    await me.handoff.discoverPeers({ needsAI: true, minQuota: 0, preferredModels: [] });
    const routedBefore = [...server.metrics.routedByType.values()].reduce((a, b) => a + b, 0);
    const task = me.handoff.prompt('needs a big model', { model: 'big-model' });
    expect(task.plan).toEqual({
      route: 'none',
      cause: 'no-model',
      reason: 'this peer has no AI, and no peer has model big-model (offered: small-model)',
    });
    const result = await task.result;
    expect(result).toMatchObject({ status: 'failed', error: { message: task.plan.reason } });
    expect([...server.metrics.routedByType.values()].reduce((a, b) => a + b, 0)).toBe(routedBefore);
    expect(
      Object.keys(me.handoff.actor.getSnapshot().children).filter((id) => id.startsWith('link-')),
    ).toEqual([]);
  });

  it('a serving peer out of quota refuses with quota-exhausted and when to retry', async () => {
    const spent = await peer({ provider: demo(), quota: { totalQuota: 1, usedQuota: 1 } });
    const me = await peer({});
    const result = await me.handoff.delegatePrompt('anything', spent.peerId).result;
    expect(result.status).toBe('failed');
    expect(result.attempts).toMatchObject([
      { peerId: spent.peerId, outcome: 'rejected', reason: 'quota-exhausted' },
    ]);
    await waitUntil(
      () => spent.handoff.actor.getSnapshot().context.served.length === 1,
      'the refusal is recorded',
    );
    expect(spent.handoff.actor.getSnapshot().context.served[0]?.outcome).toBe('rejected');
  });
});
