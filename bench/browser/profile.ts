/**
 * Summarises a V8 CPU profile (Chrome DevTools Protocol `Profiler.stop`) of the bench page's main
 * thread: self time by where the code lives (Handoff's machines by file, the protocol's signing and
 * codec, xstate, valibot, native JSON, data channel sends, GC, idle) and the hottest functions.
 * Node-side only (bench/browser.bench.ts); the page never imports it.
 */

export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileShare {
  name: string;
  ms: number;
  /** Share of the busy (not idle) time. */
  share: number;
}

export interface ProfileSummary {
  /** First sample → last sample. */
  sampledMs: number;
  /** Sampled time the main thread was not idle. */
  busyMs: number;
  categories: ProfileShare[];
  functions: ProfileShare[];
}

/** `/@fs/work/main/machines/peer-link.machine.ts?v=…` → `machines/peer-link.machine.ts`. */
function sourceFile(url: string): string {
  const path = url.replace(/^[a-z]+:\/\/[^/]+/, '').replace(/[?#].*$/, '');
  const deps = /\/node_modules\/\.vite\/deps\/([^/]+?)(?:\.js)?$/.exec(path);
  if (deps) return `dep:${deps[1]}`;
  const project = /\/((?:machines|protocol|bench|elements|signaling)\/.+)$/.exec(path);
  return project ? (project[1] as string) : path;
}

function category(functionName: string, url: string): string {
  if (!url) {
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(garbage collector)') return 'garbage collector';
    if (functionName === '(program)') return 'native (program: event dispatch, WebRTC, timers)';
    if (functionName === 'stringify' || functionName === 'parse') return 'native JSON.stringify / parse';
    if (functionName === 'send') return 'native RTCDataChannel.send';
    if (functionName === 'sign' || functionName === 'verify') return 'native WebCrypto Ed25519 sign / verify';
    if (functionName === 'encode') return 'native TextEncoder.encode';
    return `native ${functionName || '(anonymous)'}`;
  }
  const file = sourceFile(url);
  if (file === 'protocol/signing.ts') return 'protocol/signing.ts (canonical JSON, base64)';
  if (file.startsWith('dep:xstate')) return 'xstate (actor runtime)';
  if (file.startsWith('dep:valibot')) return 'valibot (schema validation)';
  if (file.startsWith('dep:')) return file;
  return file;
}

export function summariseProfile(profile: CpuProfile, top = 12): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // timeDeltas[i] is the time from sample i-1 to sample i: sample i lasts deltas[i+1] (DevTools'
  // convention). The first delta (profiler start → first sample) belongs to no sample.
  let sampledMs = 0;
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i] as number;
    const ms = (deltas[i + 1] ?? 0) / 1000;
    sampledMs += ms;
    self.set(id, (self.get(id) ?? 0) + ms);
  }
  const categories = new Map<string, number>();
  const functions = new Map<string, number>();
  let idle = 0;
  for (const [id, ms] of self) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = category(functionName, url);
    if (name === 'idle') {
      idle += ms;
      continue;
    }
    categories.set(name, (categories.get(name) ?? 0) + ms);
    const label = url
      ? `${functionName || '(anonymous)'} (${sourceFile(url)}:${lineNumber + 1})`
      : functionName || '(anonymous)';
    functions.set(label, (functions.get(label) ?? 0) + ms);
  }
  const busyMs = sampledMs - idle;
  const rank = (map: Map<string, number>, n: number) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, ms]) => ({ name, ms, share: busyMs > 0 ? ms / busyMs : 0 }));
  return { sampledMs, busyMs, categories: rank(categories, top), functions: rank(functions, top) };
}
