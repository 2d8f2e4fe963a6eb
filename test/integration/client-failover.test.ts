import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHandoff, type Handoff } from '../../machines/create-handoff.ts';
import type { TaskRequestEmitted } from '../../machines/task-request.machine.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { nodeEnvironment } from '../support/node-environment.ts';
import { demoAnswer, type PeerProcess, startPeerProcess } from '../support/peers.ts';
import { startTestServer } from '../support/signaling-server.ts';

describe('a serving peer killed mid-stream', () => {
  let server: SignalingServer;
  const processes: PeerProcess[] = [];
  const handoffs: Handoff[] = [];
  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(async () => {
    for (const handoff of handoffs.splice(0)) handoff.stop();
    await Promise.all(processes.splice(0).map((p) => p.kill()));
    await server.close();
  });

  it('finishes the task on the next-ranked peer with no lost or repeated text', async () => {
    const words = 80;
    const first = await startPeerProcess(server.url, 40, words);
    const second = await startPeerProcess(server.url, 40, words);
    processes.push(first, second);
    const requester = await createHandoff({ environment: nodeEnvironment() });
    handoffs.push(requester);
    await requester.connect(server.url);
    const found = await requester.discoverPeers({ needsAI: true, minQuota: 0, preferredModels: [] });
    expect(found.map((p) => p.peerId).sort()).toEqual([first.peerId, second.peerId].sort());

    const prompt = 'Explain peer-to-peer handoff';
    const task = requester.delegatePrompt(prompt);
    const request = task.actor;
    const redelegations: TaskRequestEmitted[] = [];
    request?.on('task.redelegated', (event) => redelegations.push(event));

    const chunks: string[] = [];
    let killed: PeerProcess | undefined;
    for await (const chunk of task.chunks) {
      chunks.push(chunk);
      if (chunks.length === 12 && !killed) {
        const context = request?.getSnapshot().context;
        const serving = context?.candidates[context.current];
        killed = serving === first.peerId ? first : second;
        await killed.kill('SIGKILL');
      }
    }
    const result = await task.result;
    expect(killed).toBeDefined();
    expect(result.status).toBe('completed');
    expect(result.attempts.map((a) => a.outcome)).toEqual(['lost', 'completed']);
    expect(result.attempts[0]?.peerId).toBe(killed?.peerId);
    expect(redelegations).toHaveLength(1);
    const expected = await demoAnswer(prompt, { answerWords: words });
    expect(result.text).toBe(expected);
    expect(chunks.join('')).toBe(expected);
  });
});
