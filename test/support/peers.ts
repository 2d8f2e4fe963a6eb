import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createDemoProvider, type DemoProviderOptions } from '../../machines/providers/demo-provider.ts';

export interface PeerProcess {
  peerId: string;
  child: ChildProcess;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const script = fileURLToPath(new URL('./peer-process.ts', import.meta.url));

/** Starts a serving peer in a child process and waits until it is registered (bounded). */
export function startPeerProcess(
  url: string,
  wordsPerSecond: number,
  answerWords: number,
  timeoutMs = 10_000,
): Promise<PeerProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', script, url, String(wordsPerSecond), String(answerWords)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void kill();
      reject(new Error('peer process did not register in time'));
    }, timeoutMs);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', (line) => {
      clearTimeout(timer);
      resolve({ peerId: (JSON.parse(line) as { peerId: string }).peerId, child, kill });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`peer process exited early (${code})`));
    });
  });
}

/** The exact text the demo provider streams for `prompt` with these options. */
export async function demoAnswer(prompt: string, options: DemoProviderOptions): Promise<string> {
  const provider = createDemoProvider({ ...options, wordsPerSecond: 0 });
  let text = '';
  for await (const event of provider.stream({ prompt, signal: new AbortController().signal })) {
    if (event.type === 'text') text += event.text;
  }
  return text;
}
