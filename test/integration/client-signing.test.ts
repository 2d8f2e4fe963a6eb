import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHandoff, type Handoff } from '../../machines/create-handoff.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import {
  createIdentity,
  importPublicKey,
  type PromptDelegation,
  verifyMessage,
} from '../../protocol/index.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { nodeEnvironment } from '../support/node-environment.ts';
import { demoCapabilities, TestClient } from '../support/signaling-client.ts';
import { startTestServer } from '../support/signaling-server.ts';
import { waitUntil } from '../support/wait.ts';

describe('identity: keys registered with peer ids, task messages signed', () => {
  let server: SignalingServer;
  const clients: TestClient[] = [];
  const peers: Handoff[] = [];
  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(async () => {
    for (const peer of peers.splice(0)) peer.stop();
    for (const client of clients.splice(0)) client.terminate();
    await server.close();
  });

  it('registers the first public key with the peer id and hands it to the others', async () => {
    const [first, second] = [await createIdentity(), await createIdentity()];
    const a = await TestClient.connect(server.url);
    const b = await TestClient.connect(server.url);
    clients.push(a, b);
    a.send({ type: 'capability-announce', capabilities: demoCapabilities(50), publicKey: first.publicKey });
    expect((await b.next('peer-capability-update', (m) => m.peerId === a.peerId)).publicKey).toBe(
      first.publicKey,
    );
    b.send({ type: 'discover', requirements: { needsAI: true, minQuota: 0, preferredModels: [] } });
    expect((await b.next('peers-discovered')).peers[0]?.publicKey).toBe(first.publicKey);
    // A later announcement cannot swap the key.
    a.send({ type: 'capability-announce', capabilities: demoCapabilities(40), publicKey: second.publicKey });
    const update = await b.next('peer-capability-update', (m) => m.capabilities.quota?.availableQuota === 40);
    expect(update.publicKey).toBe(first.publicKey);
    b.send({ type: 'peer-lookup', peerId: a.peerId });
    expect((await b.next('peer-capability-update', (m) => m.peerId === a.peerId)).publicKey).toBe(
      first.publicKey,
    );
    b.send({ type: 'peer-lookup', peerId: 'nobody' });
    expect((await b.next('error')).code).toBe('unknown-target');
  });

  it('refuses an unsigned or tampered delegation with reason "unsigned", and serves a signed one', async () => {
    const serving = await createHandoff({
      environment: nodeEnvironment(),
      provider: createDemoProvider({ wordsPerSecond: 0, answerWords: 5 }),
    });
    peers.push(serving);
    const servingId = await serving.connect(server.url);
    const servingKey = await importPublicKey(
      serving.actor.getSnapshot().context.identity?.publicKey as string,
    );

    // A raw client speaks the protocol by hand, over the signaling relay.
    const attacker = await TestClient.connect(server.url, { answerHeartbeats: true });
    clients.push(attacker);
    const identity = await createIdentity();
    attacker.send({
      type: 'capability-announce',
      capabilities: { hasAI: false, models: [] },
      publicKey: identity.publicKey,
    });
    const delegation = (taskId: string): PromptDelegation => ({
      type: 'prompt-delegation',
      taskId,
      prompt: 'hello',
      requesterCapabilities: { hasAI: false, models: [] },
      priority: 5,
      timeout: 10_000,
    });
    const replyTo = async (taskId: string) => {
      const relay = await attacker.next(
        'relay',
        (m) => 'taskId' in m.payload && m.payload.taskId === taskId,
        8_000,
      );
      expect(relay.fromPeerId).toBe(servingId);
      // The serving peer signs even its refusals.
      expect(
        await verifyMessage(relay.payload as { sig?: string }, servingId, attacker.peerId, servingKey),
      ).toBe(true);
      return relay.payload;
    };

    attacker.send({ type: 'relay', targetPeerId: servingId, payload: delegation('unsigned-1') });
    expect(await replyTo('unsigned-1')).toMatchObject({ type: 'task-rejected', reason: 'unsigned' });

    const signed = await identity.sign(delegation('tampered-1'), attacker.peerId, servingId);
    attacker.send({
      type: 'relay',
      targetPeerId: servingId,
      payload: { ...signed, prompt: 'something else' },
    });
    expect(await replyTo('tampered-1')).toMatchObject({
      type: 'task-rejected',
      reason: 'unsigned',
      message: expect.stringContaining('bad signature'),
    });

    // Those were violations: the sender is banned for a while, even with a good signature now.
    const late = await identity.sign(delegation('late-1'), attacker.peerId, servingId);
    attacker.send({ type: 'relay', targetPeerId: servingId, payload: late });
    expect(await replyTo('late-1')).toMatchObject({ type: 'task-rejected', reason: 'banned' });

    // Another peer that signs properly is served.
    const honest = await TestClient.connect(server.url, { answerHeartbeats: true });
    clients.push(honest);
    const honestIdentity = await createIdentity();
    honest.send({
      type: 'capability-announce',
      capabilities: { hasAI: false, models: [] },
      publicKey: honestIdentity.publicKey,
    });
    const signed1 = await honestIdentity.sign(delegation('signed-1'), honest.peerId, servingId);
    honest.send({ type: 'relay', targetPeerId: servingId, payload: signed1 });
    const accepted = await honest.next(
      'relay',
      (m) => 'taskId' in m.payload && m.payload.taskId === 'signed-1',
      8_000,
    );
    expect(accepted.payload).toMatchObject({ type: 'task-accepted' });
    // Unsigned and tampered delegations never became tasks; the banned one was refused, the honest one served.
    await waitUntil(
      () => serving.actor.getSnapshot().context.served.length === 2,
      'both signed tasks are settled',
    );
    expect(serving.actor.getSnapshot().context.served.map((task) => [task.taskId, task.outcome])).toEqual([
      ['late-1', 'rejected'],
      ['signed-1', 'completed'],
    ]);
  });
});
