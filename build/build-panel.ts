import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'vite';

/**
 * `npm run build`: the embeddable element as ONE ES module, dist/handoff-panel.js, built from
 * elements/handoff-panel.ts with Vite's library mode: minified, with lit, @lit/context, xstate and
 * valibot bundled in (no imports left). Prints its size, minified and gzipped, against the budget.
 *
 *   npm run build                       # elements/handoff-panel.ts → dist/handoff-panel.js
 *   npm run build -- --entry other.ts   # another entry (same output name)
 *   npm run build -- --out-dir some/dir
 */
const GZIP_BUDGET_BYTES = 60 * 1024;
const NOTICE =
  '/*! handoff-panel.js (MIT). Bundles lit, lit-html, lit-element, @lit/reactive-element, @lit/context ' +
  '(BSD-3-Clause, Copyright (c) 2017-2021 Google LLC), xstate (MIT, Copyright (c) 2015 David Khourshid), ' +
  'valibot (MIT, Copyright (c) Fabian Hiller). */';
const root = fileURLToPath(new URL('..', import.meta.url));

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? process.argv[at + 1] : undefined;
  return value ?? fallback;
}

const entry = path.resolve(root, option('entry', 'elements/handoff-panel.ts'));
const outDir = path.resolve(root, option('out-dir', 'dist'));
const fileName = 'handoff-panel.js';

async function main(): Promise<void> {
  await build({
    configFile: false,
    root,
    logLevel: 'warn',
    // Production code paths (lit drops its dev-mode warnings; libraries that read NODE_ENV agree).
    mode: 'production',
    define: { 'process.env.NODE_ENV': JSON.stringify('production') },
    build: {
      outDir,
      emptyOutDir: false,
      copyPublicDir: false,
      target: 'es2022',
      sourcemap: false,
      minify: 'oxc',
      lib: { entry, formats: ['es'], fileName: () => fileName },
      rolldownOptions: {
        // Everything bundled: the file is used as is, from a <script type="module">.
        external: [],
        output: {
          codeSplitting: false,
          // Library mode leaves whitespace for re-bundlers; this file is final, so minify it all.
          minify: true,
          // One notice for the bundled libraries instead of lit's, repeated per module.
          comments: false,
          postBanner: NOTICE,
        },
      },
    },
  });

  const file = path.join(outDir, fileName);
  const code = readFileSync(file);
  const text = code.toString('utf8');
  const leftover = text.match(/^\s*import[\s{*]|\bimport\s*\(\s*["'][^"'./]/m);
  if (leftover) throw new Error(`${fileName} still imports a module: ${leftover[0]}`);
  const gzip = gzipSync(code, { level: 9 }).length;
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
  const rows = [
    ['file', 'minified', 'gzip', `gzip budget`],
    [path.relative(root, file), kb(code.length), kb(gzip), kb(GZIP_BUDGET_BYTES)],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) {
    process.stdout.write(
      `${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')}\n`,
    );
  }
  process.stdout.write(`(entry ${path.relative(root, entry)}; lit, xstate and valibot bundled in)\n`);
  if (gzip > GZIP_BUDGET_BYTES) {
    process.stderr.write(`${fileName} is ${kb(gzip - GZIP_BUDGET_BYTES)} over its gzip budget\n`);
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`build: ${(error as Error).message}\n`);
  process.exit(1);
});
