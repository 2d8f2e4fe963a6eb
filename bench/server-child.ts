/**
 * One server under benchmark, alone in its own process so its memory and CPU can be read apart from
 * the load generator's. Started by `signaling.bench.ts` as
 * `node --expose-gc --import tsx bench/server-child.ts <handoff|bare|peerjs>` with an IPC channel.
 *
 * IPC (see server-protocol.ts): sends `{type:'ready', port, pid}`; answers `stats` (memory, heap
 * spaces, CPU, peer count; after two full GCs when asked), `profile-start` / `profile-stop` (V8
 * sampling profiler through the inspector) and `heap-snapshot`; exits on `exit` or when the parent
 * goes away.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import v8 from 'node:v8';
import { createLogger } from '../signaling/logger.ts';
import { startSignalingServer } from '../signaling/server.ts';
import { startBareRelay } from './bare-uws-relay.ts';
import { startPeerJsServer } from './peerjs-server.ts';
import {
  type ChildMessage,
  type ChildStats,
  HANDOFF_BENCH_CONFIG,
  type ParentRequest,
  type ServerKind,
} from './server-protocol.ts';

type GcOptions = { type: 'major'; execution: 'sync'; flavor: 'last-resort' };
const gc = (globalThis as { gc?: (options?: GcOptions) => void }).gc;

/**
 * The GC a heap snapshot does (V8's "collect all available garbage": repeated full GCs that also
 * clear weak references). A plain `gc()` leaves floating garbage that varied by ±1 KB per peer.
 */
async function fullGc(): Promise<void> {
  if (!gc) throw new Error('run the server child with --expose-gc');
  for (let i = 0; i < 2; i++) {
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function main(): Promise<void> {
  const kind = process.argv[2] as ServerKind;
  if (!process.send) throw new Error('server-child must be spawned with an IPC channel');
  let peers: () => number;
  let detail: () => Record<string, number> = () => ({});
  let port: number;
  if (kind === 'handoff') {
    const server = await startSignalingServer(HANDOFF_BENCH_CONFIG, { log: createLogger('silent') });
    peers = () => server.registry.liveCount;
    detail = () => ({
      registryEntries: server.registry.size,
      announced: server.registry.announcedCount,
      socketActors: server.hub.getSnapshot().context.sockets.size,
    });
    port = server.port;
  } else if (kind === 'bare') {
    const relay = await startBareRelay('127.0.0.1', 0);
    peers = relay.peers;
    port = relay.port;
  } else if (kind === 'peerjs') {
    const server = await startPeerJsServer('127.0.0.1', 0);
    peers = server.peers;
    port = server.port;
  } else {
    throw new Error(`unknown server kind ${kind}`);
  }
  const reply = (message: ChildMessage) => process.send?.(message);
  let profiler: Session | undefined;

  const stats = async (withGc: boolean): Promise<ChildStats> => {
    if (withGc) await fullGc();
    return {
      memory: process.memoryUsage(),
      heapSpaces: v8
        .getHeapSpaceStatistics()
        .map((space) => ({ name: space.space_name, size: space.space_size, used: space.space_used_size })),
      cpu: process.cpuUsage(),
      atMs: Number(process.hrtime.bigint()) / 1e6,
      peers: peers(),
      detail: detail(),
    };
  };

  process.on('message', async (request: ParentRequest) => {
    if (request.type === 'exit') process.exit(0);
    try {
      switch (request.type) {
        case 'stats':
          return reply({ type: 'reply', id: request.id, stats: await stats(request.gc) });
        case 'profile-start':
          profiler = new Session();
          profiler.connect();
          await profiler.post('Profiler.enable');
          await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
          await profiler.post('Profiler.start');
          return reply({ type: 'reply', id: request.id });
        case 'profile-stop': {
          if (!profiler) throw new Error('profiler not started');
          const { profile } = await profiler.post('Profiler.stop');
          profiler.disconnect();
          profiler = undefined;
          writeFileSync(request.file, JSON.stringify(profile));
          return reply({ type: 'reply', id: request.id });
        }
        case 'heap-snapshot':
          await fullGc();
          v8.writeHeapSnapshot(request.file);
          return reply({ type: 'reply', id: request.id });
      }
    } catch (error) {
      reply({ type: 'reply', id: request.id, error: String(error) });
    }
  });
  // The parent died or closed the channel: never outlive it.
  process.on('disconnect', () => process.exit(0));
  reply({ type: 'ready', port, pid: process.pid });
}

main().catch((error) => {
  console.error('server child failed:', error);
  process.exit(1);
});
