import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SnapshotFrom } from 'xstate';
import { createHandoff, type Handoff } from '../../machines/create-handoff.ts';
import type { peerLinkMachine } from '../../machines/peer-link.machine.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { nodeEnvironment } from '../support/node-environment.ts';
import { demoAnswer } from '../support/peers.ts';
import { recordingEnvironment } from '../support/recording-rtc.ts';
import { startTestServer } from '../support/signaling-server.ts';

const linkOf = (handoff: Handoff, peerId: string) =>
  handoff.actor.getSnapshot().children[`link-${peerId}`]?.getSnapshot() as
    | SnapshotFrom<typeof peerLinkMachine>
    | undefined;
const linkIds = (handoff: Handoff) =>
  Object.keys(handoff.actor.getSnapshot().children)
    .filter((id) => id.startsWith('link-'))
    .sort();

describe('peer links over real data channels', () => {
  let server: SignalingServer;
  const peers: Handoff[] = [];
  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(async () => {
    for (const peer of peers.splice(0)) peer.stop();
    await server.close();
  });

  async function servingPeer(options: { words?: number; rate?: number } = {}) {
    const handoff = await createHandoff({
      environment: nodeEnvironment(),
      provider: createDemoProvider({ wordsPerSecond: options.rate ?? 0, answerWords: options.words ?? 20 }),
    });
    peers.push(handoff);
    return { handoff, peerId: await handoff.connect(server.url) };
  }

  it('settles on one connection when both peers offer at once (perfect negotiation)', async () => {
    const environments = [recordingEnvironment(), recordingEnvironment()] as const;
    const [a, b] = await Promise.all(
      environments.map(async (environment) => {
        const handoff = await createHandoff({
          environment,
          provider: createDemoProvider({ wordsPerSecond: 0, answerWords: 20 }),
        });
        peers.push(handoff);
        return { handoff, peerId: await handoff.connect(server.url) };
      }),
    );
    if (!a || !b) throw new Error('peers did not start');
    // Each delegates to the other in the same tick: both links start as initiators and offers cross.
    const toB = a.handoff.delegatePrompt('from a', b.peerId);
    const toA = b.handoff.delegatePrompt('from b', a.peerId);
    const [resultB, resultA] = await Promise.all([toB.result, toA.result]);
    expect(resultB.status).toBe('completed');
    expect(resultA.status).toBe('completed');
    expect(resultB.text).toBe(await demoAnswer('from a', { answerWords: 20 }));
    expect(resultA.text).toBe(await demoAnswer('from b', { answerWords: 20 }));
    expect(linkOf(a.handoff, b.peerId)?.context.transport).toBe('direct');
    expect(linkOf(b.handoff, a.peerId)?.context.transport).toBe('direct');
    // The offers collided: the polite peer (the larger id) gave up its own connection and answered.
    const [polite, impolite] = a.peerId > b.peerId ? environments : [environments[1], environments[0]];
    expect(polite.connections).toHaveLength(2);
    expect(impolite.connections).toHaveLength(1);
  });

  it('restarts a dropped data channel mid-stream and the answer arrives intact', async () => {
    const serving = await servingPeer({ words: 150, rate: 80 });
    const environment = recordingEnvironment();
    const requester = await createHandoff({ environment });
    peers.push(requester);
    await requester.connect(server.url);
    const task = requester.delegatePrompt('keep going', serving.peerId);
    const chunks: string[] = [];
    let dropped = false;
    for await (const chunk of task.chunks) {
      chunks.push(chunk);
      if (chunks.length === 20 && !dropped) {
        dropped = true;
        for (const channel of environment.channels) channel.close();
      }
    }
    const result = await task.result;
    expect(dropped).toBe(true);
    expect(result.status).toBe('completed');
    expect(result.attempts).toHaveLength(1);
    expect(chunks.join('')).toBe(await demoAnswer('keep going', { answerWords: 150 }));
    const link = linkOf(requester, serving.peerId);
    expect(link?.context.restarts).toBeGreaterThanOrEqual(1);
    expect(link?.context.transport).toBe('direct');
    expect(environment.connections.length).toBeGreaterThanOrEqual(2);
  });

  it('keeps at most maxLinks open, recycling the least recently used idle link', async () => {
    const servers = [await servingPeer(), await servingPeer(), await servingPeer()];
    const requester = await createHandoff({ environment: nodeEnvironment(), maxLinks: 2 });
    peers.push(requester);
    await requester.connect(server.url);
    for (const { peerId } of servers) {
      const result = await requester.delegatePrompt(`hello ${peerId}`, peerId).result;
      expect(result.status).toBe('completed');
      expect(linkIds(requester).length).toBeLessThanOrEqual(2);
    }
    expect(linkIds(requester)).toEqual([`link-${servers[1]?.peerId}`, `link-${servers[2]?.peerId}`].sort());
  });

  it('fragments a 30 KiB prompt of multibyte text and delivers it intact, direct and relayed', async () => {
    const prompt = 'Résumé 📦 '.repeat(3_000).slice(0, 30_000);
    const expected = await demoAnswer(prompt, { answerWords: 20 });
    // The demo answer hashes the whole prompt: the same answer proves the prompt arrived intact.
    const serving = await servingPeer();
    const direct = await createHandoff({ environment: nodeEnvironment() });
    peers.push(direct);
    await direct.connect(server.url);
    expect((await direct.delegatePrompt(prompt, serving.peerId).result).text).toBe(expected);
    expect(linkOf(direct, serving.peerId)?.context.transport).toBe('direct');

    // Both sides relay-only, no TURN: the same prompt goes through the signaling relay in fragments.
    const relayOnly = () => nodeEnvironment({ iceTransportPolicy: 'relay' });
    const relayServing = await createHandoff({
      environment: relayOnly(),
      provider: createDemoProvider({ wordsPerSecond: 0, answerWords: 20 }),
    });
    const relayed = await createHandoff({ environment: relayOnly(), link: { directTimeoutMs: 300 } });
    peers.push(relayServing, relayed);
    const relayServingId = await relayServing.connect(server.url);
    await relayed.connect(server.url);
    const before = server.metrics.routedByType.get('relay') ?? 0;
    expect((await relayed.delegatePrompt(prompt, relayServingId).result).text).toBe(expected);
    expect(linkOf(relayed, relayServingId)?.context.transport).toBe('relayed');
    // 30,000 characters in UTF-8 cannot fit one 16 KiB link message: it travelled as several fragments.
    expect((server.metrics.routedByType.get('relay') ?? 0) - before).toBeGreaterThan(4);
  });
});
