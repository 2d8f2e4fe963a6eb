/**
 * Summarises a V8 .cpuprofile (from `BENCH_CPU_PROF=1 npm run bench:signaling`):
 * self time by area (package or source file) and by function, and inclusive time by function.
 *
 *   npx tsx bench/profile-report.ts bench/results/profiles/handoff-throughput.cpuprofile [top=30]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: tsx bench/profile-report.ts <file.cpuprofile> [top]');
  process.exit(2);
}
const top = Number(topArg ?? 30);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

const byId = new Map<number, ProfileNode>();
const parent = new Map<number, number>();
for (const node of profile.nodes) {
  byId.set(node.id, node);
  for (const child of node.children ?? []) parent.set(child, node.id);
}

/** The area a frame belongs to: a package, one of our source files, node internals or a V8 bucket. */
function area(node: ProfileNode): string {
  const { url, functionName } = node.callFrame;
  if (!url) return functionName.startsWith('(') ? functionName : `native: ${functionName || '(anonymous)'}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `pkg ${pkg[1]}`;
  if (url.startsWith('node:')) return 'node internals';
  const ours = /\/(signaling|protocol|bench)\/([^/]+)$/.exec(url);
  if (ours) return `${ours[1]}/${ours[2]}`;
  return url;
}

function label(node: ProfileNode): string {
  const { url, functionName, lineNumber } = node.callFrame;
  const short = url.replace(/^.*\/(node_modules\/|signaling\/|protocol\/|bench\/)/, '$1');
  return `${functionName || '(anonymous)'}${url ? ` ${short}:${lineNumber + 1}` : ''}`;
}

const self = new Map<string, number>();
const selfArea = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i] as number;
  const dt = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
  const node = byId.get(id);
  if (!node) continue;
  total += dt;
  self.set(label(node), (self.get(label(node)) ?? 0) + dt);
  selfArea.set(area(node), (selfArea.get(area(node)) ?? 0) + dt);
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const frame = byId.get(at);
    if (!frame) break;
    const key = label(frame);
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + dt);
  }
}

const print = (title: string, map: Map<string, number>, limit: number) => {
  console.log(`\n### ${title}\n`);
  console.log('| ms | % | |\n|---:|---:|---|');
  for (const [key, ms] of [...map].sort((a, b) => b[1] - a[1]).slice(0, limit)) {
    console.log(`| ${ms.toFixed(1)} | ${((100 * ms) / total).toFixed(1)} | ${key.replace(/\|/g, '\\|')} |`);
  }
};

console.log(`${file}: ${(total / 1000).toFixed(2)} s sampled, ${profile.samples.length} samples`);
print('self time by area', selfArea, top);
print('self time by function', self, top);
print('inclusive time by function', inclusive, top);
