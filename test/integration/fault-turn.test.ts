import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotFrom } from 'xstate';
import { createHandoff, type Handoff } from '../../machines/create-handoff.ts';
import type { peerLinkMachine } from '../../machines/peer-link.machine.ts';
import { createDemoProvider } from '../../machines/providers/demo-provider.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { type Coturn, separateLoopbackAddresses, startCoturn } from '../support/coturn.ts';
import { demoAnswer } from '../support/peers.ts';
import { recordingEnvironment } from '../support/recording-rtc.ts';
import { startTestServer } from '../support/signaling-server.ts';
import { waitUntil } from '../support/wait.ts';

/** A stats entry as node-datachannel's polyfill reports it. */
interface StatsEntry {
  type: string;
  candidateType?: string;
  ip?: string;
  port?: number;
  localCandidateId?: string;
  remoteCandidateId?: string;
}

/** The selected candidate pair of a connection (local and remote candidate), if it has one. */
async function selectedPair(connection: {
  getStats(): Promise<Map<string, unknown>>;
}): Promise<{ local: StatsEntry; remote: StatsEntry } | undefined> {
  const report = (await connection.getStats()) as Map<string, StatsEntry>;
  const pair = [...report.values()].find((entry) => entry.type === 'candidate-pair');
  if (!pair?.localCandidateId || !pair.remoteCandidateId) return undefined;
  const local = report.get(pair.localCandidateId);
  const remote = report.get(pair.remoteCandidateId);
  return local && remote ? { local, remote } : undefined;
}

function linkOf(handoff: Handoff, peerId: string) {
  const link = handoff.actor.getSnapshot().children[`link-${peerId}`];
  return link?.getSnapshot() as SnapshotFrom<typeof peerLinkMachine> | undefined;
}

const TURN_TTL_SECONDS = 600;
const REQUESTER_ADDRESS = '127.0.0.2';
const SERVING_ADDRESS = '127.0.0.3';

describe('WebRTC through a real TURN server (coturn on 127.0.0.1)', () => {
  let coturn: Coturn;
  let undoSeparation: (() => void) | undefined;
  let server: SignalingServer | undefined;
  const peers: Handoff[] = [];
  beforeAll(async () => {
    // The two peers' host addresses cannot reach each other: every packet between them must cross
    // coturn (on 127.0.0.1). libjuice alone would let them go host to host once TURN introduced them.
    undoSeparation = await separateLoopbackAddresses(REQUESTER_ADDRESS, SERVING_ADDRESS);
    coturn = await startCoturn({ startTimeoutMs: 5_000 });
  });
  afterEach(async () => {
    for (const peer of peers.splice(0)) peer.stop();
    await server?.close();
    server = undefined;
  });
  afterAll(async () => {
    undoSeparation?.();
    await coturn?.stop();
  });

  /** Two relay-only Node peers (serving + requester) registered with `server`. */
  async function relayOnlyPeers(directTimeoutMs: number, answerWords: number) {
    const servingEnvironment = recordingEnvironment({
      bindAddress: SERVING_ADDRESS,
      iceTransportPolicy: 'relay',
    });
    const requesterEnvironment = recordingEnvironment({
      bindAddress: REQUESTER_ADDRESS,
      iceTransportPolicy: 'relay',
    });
    const serving = await createHandoff({
      environment: servingEnvironment,
      provider: createDemoProvider({ wordsPerSecond: 0, answerWords }),
    });
    const requester = await createHandoff({
      environment: requesterEnvironment,
      link: { directTimeoutMs },
    });
    peers.push(serving, requester);
    const url = (server as SignalingServer).url;
    const servingId = await serving.connect(url);
    const requesterId = await requester.connect(url);
    await requester.discoverPeers({ needsAI: true, minQuota: 0, preferredModels: [] });
    return { serving, requester, servingId, requesterId, servingEnvironment, requesterEnvironment };
  }

  it('relays the data channel through TURN with credentials minted by the signaling server', async () => {
    server = await startTestServer({
      turnUrls: [`turn:127.0.0.1:${coturn.port}?transport=udp`],
      turnSecret: coturn.secret,
      turnTtlSeconds: TURN_TTL_SECONDS,
    });
    const startedAt = Math.floor(Date.now() / 1000);
    const { requester, servingId, requesterId, servingEnvironment, requesterEnvironment } =
      await relayOnlyPeers(5_000, 40);

    const task = requester.delegatePrompt('Relay me through TURN', servingId);
    const chunks: string[] = [];
    for await (const chunk of task.chunks) chunks.push(chunk);
    const result = await task.result;
    expect(result.status).toBe('completed');
    const expected = await demoAnswer('Relay me through TURN', { answerWords: 40 });
    expect(chunks.join('')).toBe(expected);
    expect(result.text).toBe(expected);

    // A data channel carried it, not the signaling relay.
    expect(linkOf(requester, servingId)?.context.transport).toBe('direct');
    expect(server.metrics.routedByType.get('relay') ?? 0).toBe(0);

    // Each side's selected pair has a TURN relay address (one of coturn's relay ports) at one end:
    // its own relay, or the other side's. Which one varies (libjuice may report a relayed remote as
    // peer-reflexive, and may send from its host socket to the other's relay); the routing rules
    // above make a pair without one impossible anyway.
    const isRelay = (candidate: StatsEntry) =>
      candidate.ip === '127.0.0.1' &&
      (candidate.port ?? 0) >= coturn.relayPorts.min &&
      (candidate.port ?? 0) <= coturn.relayPorts.max;
    for (const environment of [requesterEnvironment, servingEnvironment]) {
      const pairs = (
        await Promise.all(environment.connections.map((pc) => selectedPair(pc as never)))
      ).filter((pair) => pair !== undefined);
      expect(pairs.length).toBeGreaterThan(0);
      for (const { local, remote } of pairs) {
        expect({ local, remote, relayed: isRelay(local) || isRelay(remote) }).toMatchObject({
          relayed: true,
        });
      }
    }

    // coturn allocated a relay for each peer, under its REST username `<expiry>:<peerId>`.
    for (const peerId of [requesterId, servingId]) {
      const allocated = new RegExp(`user <(\\d+):${peerId}>: incoming packet ALLOCATE processed, success`);
      await waitUntil(() => allocated.test(coturn.log()), `coturn logs an allocation for ${peerId}`, 3_000);
      const expiry = Number(allocated.exec(coturn.log())?.[1]);
      expect(expiry).toBeGreaterThanOrEqual(startedAt + TURN_TTL_SECONDS - 5);
      expect(expiry).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + TURN_TTL_SECONDS);
    }
  });

  it('falls back to the signaling relay when the TURN credentials are wrong', async () => {
    server = await startTestServer({
      turnUrls: [`turn:127.0.0.1:${coturn.port}?transport=udp`],
      turnSecret: `not-${coturn.secret}`,
      turnTtlSeconds: TURN_TTL_SECONDS,
    });
    const { requester, servingId, requesterId, servingEnvironment, requesterEnvironment } =
      await relayOnlyPeers(1_000, 40);

    const task = requester.delegatePrompt('Relay me through the server', servingId);
    const chunks: string[] = [];
    for await (const chunk of task.chunks) chunks.push(chunk);
    const result = await task.result;
    expect(result.status).toBe('completed');
    expect(chunks.join('')).toBe(await demoAnswer('Relay me through the server', { answerWords: 40 }));

    expect(linkOf(requester, servingId)?.context.transport).toBe('relayed');
    expect(server.metrics.routedByType.get('relay')).toBeGreaterThan(0);

    // coturn saw the peers' (wrongly signed) credentials and refused them: no allocation, no pair.
    for (const peerId of [requesterId, servingId]) {
      const refused = new RegExp(`user <\\d+:${peerId}>: incoming packet \\S+ processed, error 401`);
      await waitUntil(() => refused.test(coturn.log()), `coturn refuses ${peerId}'s credentials`, 3_000);
      expect(coturn.log()).not.toMatch(
        new RegExp(`user <\\d+:${peerId}>: incoming packet ALLOCATE processed, success`),
      );
    }
    for (const environment of [requesterEnvironment, servingEnvironment]) {
      expect(environment.connections.length).toBeGreaterThan(0);
      for (const pc of environment.connections) expect(await selectedPair(pc as never)).toBeUndefined();
    }
  });
});
