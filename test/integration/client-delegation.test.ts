import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SnapshotFrom } from 'xstate';
import { createHandoff, type Handoff } from '../../machines/create-handoff.ts';
import type { peerLinkMachine } from '../../machines/peer-link.machine.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { nodeEnvironment } from '../support/node-environment.ts';
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
