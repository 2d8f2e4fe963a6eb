import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SnapshotFrom } from 'xstate';
import { createHandoff, type Handoff } from '../../machines/create-handoff.ts';
import type { peerLinkMachine } from '../../machines/peer-link.machine.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import type { TaskServeOutput } from '../../machines/task-serve.machine.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { nodeEnvironment } from '../support/node-environment.ts';
import { demoAnswer } from '../support/peers.ts';
import { startTestServer } from '../support/signaling-server.ts';

describe('two Node peers through the real signaling server', () => {
  let server: SignalingServer;
  const peers: Handoff[] = [];
  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(async () => {
    for (const peer of peers.splice(0)) peer.stop();
    await server.close();
  });

  it('discovers a serving peer and streams its answer over a direct data channel', async () => {
    const provider = createDemoProvider({ wordsPerSecond: 0, answerWords: 30 });
    const serving = await createHandoff({ environment: nodeEnvironment(), provider });
    const requester = await createHandoff({ environment: nodeEnvironment() });
    peers.push(serving, requester);
    const servingId = await serving.connect(server.url);
    await requester.connect(server.url);
    const found = await requester.discoverPeers({ needsAI: true, minQuota: 0, preferredModels: ['demo-1'] });
    expect(found.map((p) => p.peerId)).toEqual([servingId]);

    const task = requester.delegatePrompt('What is Handoff?');
    const chunks: string[] = [];
    for await (const chunk of task.chunks) chunks.push(chunk);
    const result = await task.result;
    expect(result.status).toBe('completed');
    const expected = [];
    for await (const e of provider.stream({
      prompt: 'What is Handoff?',
      signal: new AbortController().signal,
    })) {
      if (e.type === 'text') expected.push(e.text);
    }
    expect(chunks.join('')).toBe(expected.join(''));
    expect(result.text).toBe(expected.join(''));
    const link = requester.actor.getSnapshot().children[`link-${servingId}`];
    const linkSnapshot = link?.getSnapshot() as SnapshotFrom<typeof peerLinkMachine> | undefined;
    expect(linkSnapshot?.context.transport).toBe('direct');
  });
});

describe('delegation edge cases between Node peers', () => {
  let server: SignalingServer;
  const peers: Handoff[] = [];
  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(async () => {
    for (const peer of peers.splice(0)) peer.stop();
    await server.close();
  });

  it('cancels mid-stream and the cancel reaches the serving side, which stops its provider', async () => {
    const serving = await createHandoff({
      environment: nodeEnvironment(),
      provider: createDemoProvider({ wordsPerSecond: 50, answerWords: 200 }),
    });
    const requester = await createHandoff({ environment: nodeEnvironment() });
    peers.push(serving, requester);
    const servingId = await serving.connect(server.url);
    await requester.connect(server.url);
    const served = new Promise<TaskServeOutput>((resolve) => {
      serving.actor.on('handoff.serveDone', (event) => resolve(event.output));
    });
    const task = requester.delegatePrompt('Count slowly', servingId);
    let received = 0;
    for await (const _chunk of task.chunks) {
      if (++received === 5) task.cancel();
    }
    const result = await task.result;
    expect(result.status).toBe('cancelled');
    const outcome = await served;
    expect(outcome.outcome).toBe('cancelled');
    expect(outcome.chars).toBeLessThan((await demoAnswer('Count slowly', { answerWords: 200 })).length);
  });

  it('carries the task over the signaling relay when no direct link can form', async () => {
    const provider = createDemoProvider({ wordsPerSecond: 0, answerWords: 40 });
    // Both sides relay-only with no TURN server: neither advertises a candidate, so no pair can form.
    // (One relay-only side is not enough: libjuice still reaches the other's host candidates.)
    const serving = await createHandoff({
      environment: nodeEnvironment({ iceTransportPolicy: 'relay' }),
      provider,
    });
    const requester = await createHandoff({
      environment: nodeEnvironment({ iceTransportPolicy: 'relay' }),
      link: { directTimeoutMs: 800 },
    });
    peers.push(serving, requester);
    const servingId = await serving.connect(server.url);
    await requester.connect(server.url);
    await requester.discoverPeers({ needsAI: true, minQuota: 0, preferredModels: [] });
    const task = requester.delegatePrompt('Route me through the server');
    const chunks: string[] = [];
    for await (const chunk of task.chunks) chunks.push(chunk);
    const result = await task.result;
    expect(result.status).toBe('completed');
    expect(chunks.join('')).toBe(await demoAnswer('Route me through the server', { answerWords: 40 }));
    const link = requester.actor.getSnapshot().children[`link-${servingId}`];
    const linkSnapshot = link?.getSnapshot() as SnapshotFrom<typeof peerLinkMachine> | undefined;
    expect(linkSnapshot?.context.transport).toBe('relayed');
    // Every task message went through the server: the delegation, its acceptance, each chunk and the end.
    expect(server.metrics.routedByType.get('relay')).toBeGreaterThanOrEqual(chunks.length + 3);
  });

  it('ranks three peers and delegates to the one with the most quota', async () => {
    const rich = await createHandoff({
      environment: nodeEnvironment(),
      provider: createDemoProvider({ wordsPerSecond: 0, answerWords: 10 }),
    });
    const poor = await createHandoff({
      environment: nodeEnvironment(),
      provider: createDemoProvider({ wordsPerSecond: 0, answerWords: 10 }),
    });
    const requester = await createHandoff({ environment: nodeEnvironment() });
    peers.push(rich, poor, requester);
    const richId = await rich.connect(server.url);
    const poorId = await poor.connect(server.url);
    await requester.connect(server.url);
    const quota = (available: number) => ({
      totalQuota: 100,
      usedQuota: 100 - available,
      availableQuota: available,
      resetTime: Date.now() + 60_000,
      provider: 'demo',
      capabilities: ['text'],
    });
    rich.announce({ hasAI: true, models: ['demo-1'], quota: quota(90) });
    poor.announce({ hasAI: true, models: ['demo-1'], quota: quota(5) });
    const found = await waitForRanking(requester, [richId, poorId]);
    expect(found).toEqual([richId, poorId]);
    const result = await requester.delegatePrompt('Who serves me?').result;
    expect(result.status).toBe('completed');
    expect(result.attempts.map((a) => a.peerId)).toEqual([richId]);
  });
});

/** Discovers until the ranking lists exactly `expected` peers (capability updates are coalesced). */
async function waitForRanking(handoff: Handoff, expected: string[]): Promise<string[]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const peers = await handoff.discoverPeers({ needsAI: true, minQuota: 1, preferredModels: ['demo-1'] });
    const ids = peers.map((p) => p.peerId);
    if (ids.length === expected.length && peers.every((p) => p.capabilities.quota)) return ids;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('ranking never settled');
}
