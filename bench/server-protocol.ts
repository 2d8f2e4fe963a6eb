/** What the benchmark parent and its server children say to each other over IPC. */
import type { SignalingConfig } from '../signaling/config.ts';

export type ServerKind = 'handoff' | 'bare' | 'peerjs';

export interface HeapSpace {
  name: string;
  size: number;
  used: number;
}

export interface ChildStats {
  memory: NodeJS.MemoryUsage;
  /** v8.getHeapSpaceStatistics(), reduced to what the report needs. */
  heapSpaces: HeapSpace[];
  /** process.cpuUsage() in microseconds, cumulative since the process started. */
  cpu: NodeJS.CpuUsage;
  /** process.hrtime.bigint() in ms when the figures were read. */
  atMs: number;
  peers: number;
  /** Server-specific counts (Handoff: registry entries incl. sessions in resume grace, socket actors). */
  detail: Record<string, number>;
}

/** Requests carry an id; the child answers each with `{type:'reply', id, ...}`. */
export type ParentRequest =
  | { type: 'stats'; id: number; gc: boolean }
  /** Starts the V8 sampling profiler (inspector) in the child. */
  | { type: 'profile-start'; id: number }
  /** Stops it and writes the .cpuprofile to `file`. */
  | { type: 'profile-stop'; id: number; file: string }
  /** Full GC, then v8.writeHeapSnapshot(file). */
  | { type: 'heap-snapshot'; id: number; file: string }
  | { type: 'exit' };

export type ChildMessage =
  | { type: 'ready'; port: number; pid: number }
  | { type: 'reply'; id: number; stats?: ChildStats; error?: string };

/**
 * Limits high enough never to throttle the benchmark; everything else is Handoff's default
 * (heartbeats every 5 s included: the load generator answers them like a real client).
 */
export const HANDOFF_BENCH_CONFIG = {
  host: '127.0.0.1',
  port: 0,
  logLevel: 'silent' as const,
  maxConnectionsPerIp: 1_000_000,
  messagesPerSecond: 1_000_000_000,
  messageBurst: 1_000_000_000,
  relayBytesPerSecond: 1_000_000_000_000,
  relayBurstBytes: 1_000_000_000_000,
} satisfies Partial<SignalingConfig>;
