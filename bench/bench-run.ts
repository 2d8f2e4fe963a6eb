/** What every benchmark script shares: bounded waits, a whole-run watchdog, and its results file. */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Rejects with "<what> took over <ms> ms" if `promise` has not settled by then. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Writes bench/results/<name>.json: when and where it ran, then `fields`. Returns the path. */
export function writeResults(name: string, fields: Record<string, unknown>): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}.json`);
  const header = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length };
  writeFileSync(file, `${JSON.stringify({ ...header, ...fields }, null, 2)}\n`);
  console.log(`\nJSON: ${file}`);
  return file;
}

/**
 * Runs a benchmark's `main` under a watchdog of `runTimeoutMs`, then `cleanup` (also on failure or
 * timeout; given at most 15 s) and exits 0 on success, 1 otherwise.
 */
export function runBench(
  name: string,
  runTimeoutMs: number,
  main: () => Promise<void>,
  cleanup: () => void | Promise<void>,
): void {
  const finish = async (code: number) => {
    setTimeout(() => process.exit(code || 1), 15_000).unref();
    try {
      await cleanup();
    } finally {
      process.exit(code);
    }
  };
  const watchdog = setTimeout(() => {
    console.error(`bench:${name} exceeded ${runTimeoutMs / 1000} s; aborting`);
    void finish(1);
  }, runTimeoutMs);
  main()
    .then(() => {
      clearTimeout(watchdog);
      return finish(0);
    })
    .catch((error: unknown) => {
      clearTimeout(watchdog);
      console.error(`bench:${name} failed:`, error);
      return finish(1);
    });
}
