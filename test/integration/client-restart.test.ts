import { afterEach, describe, expect, it } from 'vitest';
import type { SnapshotFrom } from 'xstate';
import type { connectionMachine } from '../../machines/connection.machine.ts';
import { createHandoff, type Handoff } from '../../machines/create-handoff.ts';
import type { peerLinkMachine } from '../../machines/peer-link.machine.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { nodeEnvironment } from '../support/node-environment.ts';
import { demoAnswer } from '../support/peers.ts';
import { startTestServer } from '../support/signaling-server.ts';
import { waitUntil } from '../support/wait.ts';

const connectionOf = (handoff: Handoff) =>
  handoff.actor.system.get('connection')?.getSnapshot() as SnapshotFrom<typeof connectionMachine>;

describe('the signaling server restarts mid-session', () => {
  const peers: Handoff[] = [];
  let server: SignalingServer | undefined;
  afterEach(async () => {
    for (const peer of peers.splice(0)) peer.stop();
    await server?.close();
  });

  it('keeps peer ids, the open link and the running task', async () => {
    const resumeSecret = 'restart-test-secret';
    server = await startTestServer({ resumeSecret });
    const port = server.port;
    const words = 120;
    const serving = await createHandoff({
      environment: nodeEnvironment(),
      provider: createDemoProvider({ wordsPerSecond: 60, answerWords: words }),
      connection: { baseDelayMs: 50, maxDelayMs: 200 },
    });
    const requester = await createHandoff({
      environment: nodeEnvironment(),
      connection: { baseDelayMs: 50, maxDelayMs: 200 },
    });
    peers.push(serving, requester);
    const servingId = await serving.connect(server.url);
    const requesterId = await requester.connect(server.url);

    const task = requester.delegatePrompt('Survive a restart', servingId);
    const chunks: string[] = [];
    let restarted = false;
    for await (const chunk of task.chunks) {
      chunks.push(chunk);
      if (chunks.length === 10 && !restarted) {
        restarted = true;
        await server.close();
        // Both clients were told to reconnect; the task keeps streaming over the data channel meanwhile.
        server = await startTestServer({ resumeSecret, port });
      }
    }
    const result = await task.result;
    expect(restarted).toBe(true);
    expect(result.status).toBe('completed');
    expect(result.attempts.map((a) => a.outcome)).toEqual(['completed']);
    expect(chunks.join('')).toBe(await demoAnswer('Survive a restart', { answerWords: words }));

    await waitUntil(
      () => connectionOf(serving).hasTag('online') && connectionOf(requester).hasTag('online'),
      'both peers are back online',
      10_000,
    );
    expect(connectionOf(serving).context.peerId).toBe(servingId);
    expect(connectionOf(requester).context.peerId).toBe(requesterId);
    const link = requester.actor.getSnapshot().children[`link-${servingId}`]?.getSnapshot() as
      | SnapshotFrom<typeof peerLinkMachine>
      | undefined;
    expect(link?.context.transport).toBe('direct');
    expect(link?.context.restarts).toBe(0);
    // The new server knows both again, under their old ids.
    expect(server.registry.get(servingId)?.port).toBeTruthy();
    expect(server.registry.get(requesterId)?.port).toBeTruthy();
  });
});
