/**
 * Compares two V8 heap snapshots (from `BENCH_HEAP_SNAPSHOT=1 npm run bench:signaling`) and prints
 * what the second holds in addition, grouped by node type and constructor/name, per peer.
 *
 *   npx tsx bench/heap-report.ts bench/results/profiles/handoff-idle-baseline.heapsnapshot \
 *     bench/results/profiles/handoff-idle-5000.heapsnapshot 5000 [top=40]
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

interface Group {
  count: number;
  bytes: number;
}

function groups(file: string): Map<string, Group> {
  const data = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = data.snapshot.meta.node_fields;
  const types = data.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const out = new Map<string, Group>();
  for (let i = 0; i < data.nodes.length; i += width) {
    const type = types[data.nodes[i + typeAt] as number] ?? '?';
    let name = data.strings[data.nodes[i + nameAt] as number] ?? '?';
    // Strings and numbers are named by their value: group them by type only.
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number')
      name = '';
    if (name.length > 60) name = `${name.slice(0, 57)}...`;
    const key = `${type} ${name}`.trim();
    const group = out.get(key) ?? { count: 0, bytes: 0 };
    group.count++;
    group.bytes += data.nodes[i + sizeAt] as number;
    out.set(key, group);
  }
  return out;
}

const [beforeFile, afterFile, peersArg, topArg] = process.argv.slice(2);
if (!beforeFile || !afterFile || !peersArg) {
  console.error('usage: tsx bench/heap-report.ts <before.heapsnapshot> <after.heapsnapshot> <peers> [top]');
  process.exit(2);
}
const peers = Number(peersArg);
const top = Number(topArg ?? 40);
const before = groups(beforeFile);
const after = groups(afterFile);
const rows: { key: string; count: number; bytes: number }[] = [];
let totalBytes = 0;
for (const [key, group] of after) {
  const old = before.get(key) ?? { count: 0, bytes: 0 };
  const row = { key, count: group.count - old.count, bytes: group.bytes - old.bytes };
  totalBytes += row.bytes;
  rows.push(row);
}
for (const [key, group] of before)
  if (!after.has(key)) rows.push({ key, count: -group.count, bytes: -group.bytes });
rows.sort((a, b) => b.bytes - a.bytes);
console.log(
  `heap growth: ${(totalBytes / 1024 / 1024).toFixed(1)} MiB = ${(totalBytes / peers).toFixed(0)} B per peer (${peers} peers)\n`,
);
console.log('| bytes/peer | objects/peer | type and constructor/name |\n|---:|---:|---|');
for (const row of rows.slice(0, top)) {
  console.log(
    `| ${(row.bytes / peers).toFixed(0)} | ${(row.count / peers).toFixed(2)} | ${row.key.replace(/\|/g, '\\|')} |`,
  );
}
