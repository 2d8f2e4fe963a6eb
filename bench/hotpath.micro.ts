/**
 * In-process micro-measurements behind the findings of `npm run bench:signaling`: what one relay
 * costs in each stage of Handoff's hot path, and what one idle socket actor holds. No network.
 *
 *   node --expose-gc --import tsx bench/hotpath.micro.ts
 *
 * Proposed alternatives are built here from the protocol's exported schemas (nothing in signaling/ or
 * protocol/ is changed), so each figure can be compared with the code as it is.
 */
import { performance } from 'node:perf_hooks';
import * as v from 'valibot';
import { createActor } from 'xstate';
import {
  CLIENT_MESSAGE_TYPES,
  ClientMessage,
  ClientRelay,
  decodeClientMessage,
  encodeMessage,
  PeerId,
  PROTOCOL_VERSION,
  type ServerMessage,
  TaskMessage,
} from '../protocol/index.ts';
import { defaultConfig } from '../signaling/config.ts';
import { socketEnvironmentOf } from '../signaling/hub.machine.ts';
import { createLogger } from '../signaling/logger.ts';
import { SignalingMetrics } from '../signaling/metrics.ts';
import { newPeerEntry, PeerRegistry } from '../signaling/peer-registry.ts';
import { type SocketEnvironment, type SocketInput, socketMachine } from '../signaling/socket.machine.ts';
import { SendStatus, type SocketPort } from '../signaling/socket-port.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc --import tsx bench/hotpath.micro.ts');

/** ns per call of `fn`, best of 5 rounds of `n` calls after a warm-up round. */
function time(n: number, fn: (i: number) => unknown): number {
  let best = Number.POSITIVE_INFINITY;
  let sink = 0;
  for (let round = 0; round < 6; round++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) if (fn(i)) sink++;
    const ns = ((performance.now() - t0) * 1e6) / n;
    if (round > 0) best = Math.min(best, ns);
  }
  if (sink < 0) console.log(sink);
  return best;
}

/** Bytes of heap each of `n` retained `make()` results holds, after full GCs. */
function bytesEach(n: number, make: (i: number) => unknown): number {
  const keep: unknown[] = new Array(n);
  gc?.();
  gc?.();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) keep[i] = make(i);
  gc?.();
  gc?.();
  const after = process.memoryUsage().heapUsed;
  if (keep.length !== n) throw new Error('unreachable');
  return (after - before) / n;
}

const rows: [string, string][] = [];
const report = (name: string, value: string) => {
  rows.push([name, value]);
  console.error(`${name}: ${value}`);
};

// ------------------------------------------------------------------------------ decoding one relay

const frame = JSON.stringify({
  type: 'relay',
  targetPeerId: 'Zr3m1xXo6jW0yq9cQ2pT4A',
  payload: { type: 'link-ping', ts: 1234.5678 },
});
const parsed = JSON.parse(frame);

/** The proposal: pick the option by `type` first (a Map lookup), then validate only that option. */
function byType<T extends { options: readonly v.ObjectSchema<v.ObjectEntries, undefined>[] }>(variant: T) {
  const map = new Map<string, v.GenericSchema>();
  for (const option of variant.options) {
    map.set((option.entries.type as v.LiteralSchema<string, undefined>).literal, option);
  }
  return map;
}
const taskByType = byType(TaskMessage as never);
const clientByType = byType(ClientMessage as never);
const payloadByType = v.lazy(
  (input) => taskByType.get((input as { type?: string })?.type ?? '') ?? TaskMessage,
);
const RelayDispatched = v.object({ type: v.literal('relay'), targetPeerId: PeerId, payload: payloadByType });
clientByType.set('relay', RelayDispatched);
const known = new Set<string>(CLIENT_MESSAGE_TYPES);

const n = 200_000;
const jsonOnly = time(n, () => JSON.parse(frame));
const decodeNow = time(n, () => decodeClientMessage(frame).ok);
const variantOnly = time(n, () => v.safeParse(ClientMessage, parsed, { abortEarly: true }).success);
const relayObject = time(n, () => v.safeParse(ClientRelay, parsed, { abortEarly: true }).success);
const dispatched = time(n, () => {
  const data = JSON.parse(frame);
  if (!known.has(data.type)) return false;
  return v.safeParse(clientByType.get(data.type) as v.GenericSchema, data, { abortEarly: true }).success;
});
report('JSON.parse of a relay frame', `${jsonOnly.toFixed(0)} ns`);
report('decodeClientMessage (JSON.parse + valibot variant) today', `${decodeNow.toFixed(0)} ns`);
report('  of which v.safeParse(ClientMessage variant)', `${variantOnly.toFixed(0)} ns`);
report(
  '  v.safeParse(ClientRelay) directly (outer variant skipped, payload still a variant)',
  `${relayObject.toFixed(0)} ns`,
);
report('proposal: JSON.parse + Map<type, schema> dispatch at both levels', `${dispatched.toFixed(0)} ns`);

// ------------------------------------------------------------------------------ one socket actor

class NullPort implements SocketPort {
  open = true;
  sent = 0;
  lastHeardAt = 0;
  routing = false;
  send(message: ServerMessage) {
    return this.sendText(encodeMessage(message));
  }
  sendText(_text: string) {
    this.sent++;
    return SendStatus.sent;
  }
  cork(fn: () => void) {
    fn();
  }
  end() {}
  terminate() {}
  bufferedAmount() {
    return 0;
  }
}

const config = defaultConfig();
const registry = new PeerRegistry();
const metrics = new SignalingMetrics();
/** What the hub shares with every socket actor. */
const env: SocketEnvironment = socketEnvironmentOf({
  config,
  registry,
  metrics,
  log: createLogger('silent'),
  now: Date.now,
});

function socketInput(i: number, port: SocketPort): SocketInput {
  return {
    socketId: `socket-${i}`,
    peerId: `peer-${i}`,
    port,
    env,
    protocolVersion: PROTOCOL_VERSION,
    resumed: false,
    announced: false,
  };
}

function connect(i: number, port: SocketPort) {
  const entry = newPeerEntry(`peer-${i}`);
  registry.add(entry);
  registry.connect(entry, `socket-${i}`, port);
}

const senderPort = new NullPort();
const targetPort = new NullPort();
connect(0, senderPort);
connect(1, targetPort);
const sender = createActor(socketMachine, { input: socketInput(0, senderPort) });
sender.start();
const relayEvent = {
  type: 'relay' as const,
  targetPeerId: 'peer-1',
  payload: { type: 'link-ping' as const, ts: 1 },
};
const actorSend = time(n, () => sender.send(relayEvent));
const delivered = targetPort.sent;
/** What the `route` action does, without the actor around it. */
const direct = time(n, () => {
  const target = registry.get(relayEvent.targetPeerId);
  if (!target?.port || target.port.bufferedAmount() > config.congestionHighWaterBytes) return false;
  const self = registry.get('peer-0');
  if (self) registry.link(self, target);
  const text = encodeMessage({ ...relayEvent, fromPeerId: 'peer-0' });
  target.port.sendText(text);
  metrics.routed(relayEvent.type, text.length);
  return true;
});
report('socket actor: actor.send(relay) incl. route action (null port)', `${actorSend.toFixed(0)} ns`);
report('  the route action body alone, called directly', `${direct.toFixed(0)} ns`);
report(
  '  so XState per event (select transitions, new snapshot, action executor)',
  `${(actorSend - direct).toFixed(0)} ns`,
);
if (delivered < n) throw new Error(`the actor routed ${delivered} of ${n * 6} relays`);
sender.stop();

// ------------------------------------------------------------------------------ memory per socket

const peers = 5_000;
let next = 10;
const idleSocket = bytesEach(peers, () => {
  const i = next++;
  const port = new NullPort();
  connect(i, port);
  const actor = createActor(socketMachine, { id: 'socket', input: socketInput(i, port) });
  actor.start();
  return actor;
});
report('idle socket actor + registry entry (no transport)', `${idleSocket.toFixed(0)} B`);

console.log('| measurement | value |\n|---|---:|');
for (const [name, value] of rows) console.log(`| ${name} | ${value} |`);
process.exit(0);
