import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { RTCPeerConnection } from 'node-datachannel/polyfill';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { createHandoff, type Handoff } from '../../machines/create-handoff.ts';
import type { HandoffEnvironment, RTCPeerConnectionConstructor } from '../../machines/environment.ts';
import type { DiscoveredPeer } from '../../protocol/index.ts';
import type { SignalingServer } from '../../signaling/server.ts';
import { type FakeOpenAIServer, startFakeOpenAIServer } from '../support/fake-openai-server.ts';
import { nodeEnvironment } from '../support/node-environment.ts';
import { demoAnswer } from '../support/peers.ts';
import { startTestServer } from '../support/signaling-server.ts';
import { sleep, waitUntil } from '../support/wait.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const workerMain = fileURLToPath(new URL('../../worker/main.ts', import.meta.url));
const workerBin = fileURLToPath(new URL('../../worker/bin.mjs', import.meta.url));

const API_KEY = 'sk-worker-test-7f3a9c2e-SECRET';

type LogLine = Record<string, unknown> & { msg: string; level: string; time: string };

interface WorkerProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** stdout's JSON lines, parsed (a line that is not JSON fails `logs()`). */
  logs(): LogLine[];
  /** The first log line with this `msg`; fails if the worker exits first or it takes over `timeoutMs`. */
  waitForLog(msg: string, timeoutMs?: number): Promise<LogLine>;
  /** The exit code (or signal) once it has exited; fails after `timeoutMs`. */
  waitForExit(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];

/** The environment a worker starts with: this one, minus anything that would configure it. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (
      name.startsWith('HANDOFF_WORKER_') ||
      name === 'HANDOFF_API_KEY' ||
      name === 'HANDOFF_SIGNALING_TOKEN'
    )
      continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

/** `node --import tsx worker/main.ts …args` (or another entry), as a child process. */
function startWorker(args: string[], env: Record<string, string> = {}, entry = workerMain): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: root,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (data: string) => {
    out += data;
  });
  child.stderr?.setEncoding('utf8').on('data', (data: string) => {
    err += data;
  });
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close': the process has exited and its stdout and stderr are fully read.
    child.once('close', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  const logs = () =>
    out
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        try {
          return JSON.parse(line) as LogLine;
        } catch {
          throw new Error(`the worker wrote a line that is not JSON to stdout: ${line}`);
        }
      });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    logs,
    async waitForLog(msg, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const line = logs().find((entry) => entry.msg === msg);
        if (line) return line;
        if (exit) {
          throw new Error(
            `the worker exited (${exit.code ?? exit.signal}) before logging "${msg}"\nstdout: ${out}\nstderr: ${err}`,
          );
        }
        await sleep(20);
      }
      throw new Error(
        `the worker did not log "${msg}" within ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`,
      );
    },
    async waitForExit(timeoutMs = 10_000) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the worker did not exit within ${timeoutMs} ms\nstderr: ${err}`)),
          timeoutMs,
        );
      });
      return Promise.race([exited, timeout]).finally(() => clearTimeout(timer));
    },
  };
}

/**
 * The loopback Node environment, recording every frame the requester receives: from the signaling
 * server (its WebSocket) and from peers (every data channel), as text.
 */
function recordingEnvironment(): HandoffEnvironment & { received: string[] } {
  const received: string[] = [];
  const base = nodeEnvironment();
  const BaseWebSocket = base.WebSocket as unknown as typeof WebSocket;
  class RecordingWebSocket extends BaseWebSocket {
    constructor(url: string) {
      super(url);
      this.on('message', (data: Buffer) => received.push(data.toString('utf8')));
    }
  }
  const listen = (channel: RTCDataChannel) =>
    channel.addEventListener('message', (event) =>
      received.push(
        typeof event.data === 'string' ? event.data : Buffer.from(event.data as ArrayBuffer).toString('utf8'),
      ),
    );
  class RecordingPeerConnection extends RTCPeerConnection {
    constructor(configuration?: RTCConfiguration) {
      super(configuration as never);
      this.addEventListener('datachannel', (event) => listen((event as RTCDataChannelEvent).channel));
    }
    override createDataChannel(label: string, options?: RTCDataChannelInit) {
      const channel = super.createDataChannel(label, options);
      listen(channel as unknown as RTCDataChannel);
      return channel;
    }
  }
  return {
    ...base,
    WebSocket: RecordingWebSocket as unknown as HandoffEnvironment['WebSocket'],
    RTCPeerConnection: RecordingPeerConnection as unknown as RTCPeerConnectionConstructor,
    received,
  };
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Every `peer-left` the requester heard from the signaling server. */
const peerLefts = (received: string[]) =>
  received.flatMap((frame) => {
    try {
      const message = JSON.parse(frame) as { type?: string; peerId?: string; reason?: string };
      return message.type === 'peer-left' ? [message] : [];
    } catch {
      return [];
    }
  });

async function collect(chunks: AsyncIterable<string>): Promise<string[]> {
  const seen: string[] = [];
  for await (const chunk of chunks) seen.push(chunk);
  return seen;
}

let server: SignalingServer;
const requesters: Handoff[] = [];
const fakes: FakeOpenAIServer[] = [];

beforeEach(async () => {
  server = await startTestServer();
}, 20_000);

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await Promise.race([gone, sleep(5_000)]);
    }
  }
  for (const requester of requesters.splice(0)) requester.stop();
  for (const fake of fakes.splice(0)) await fake.close();
  await server.close();
}, 20_000);

describe('the headless worker serving through the real signaling server', () => {
  it('serves a prompt with a local OpenAI-compatible server, keeps the API key to itself, and leaves on SIGTERM', async () => {
    const pieces = ['Handoff ', 'streams ', 'this ', 'answer ', 'from ', 'a ', 'headless ', 'worker', '.'];
    const fake = await startFakeOpenAIServer({
      models: ['test-model', 'other:latest'],
      answer: () => pieces,
    });
    fakes.push(fake);
    const worker = startWorker(
      [
        '--signaling',
        server.url,
        '--provider',
        'openai',
        '--base-url',
        fake.baseUrl,
        '--model',
        'test-model',
        '--quota',
        '1000',
        '--max-concurrent',
        '2',
        '--bind-address',
        '127.0.0.1',
      ],
      { HANDOFF_API_KEY: API_KEY },
    );
    const connected = await worker.waitForLog('connected');
    const workerId = connected['peerId'] as string;
    expect(workerId).toMatch(/^[A-Za-z0-9_.:-]{1,64}$/);
    expect(await worker.waitForLog('started')).toMatchObject({
      provider: 'openai',
      models: ['test-model'],
      quota: 1000,
      maxConcurrent: 2,
      apiKeyFrom: 'HANDOFF_API_KEY',
    });
    // The start-up check asked the server for its models, with the key.
    expect(fake.requests[0]).toMatchObject({ method: 'GET', url: '/v1/models' });
    expect(fake.requests[0]?.headers.authorization).toBe(`Bearer ${API_KEY}`);

    const environment = recordingEnvironment();
    const requester = await createHandoff({ environment });
    requesters.push(requester);
    await requester.connect(server.url);
    const found: DiscoveredPeer[] = await requester.discoverPeers({
      needsAI: true,
      minQuota: 1,
      preferredModels: ['test-model'],
    });
    expect(found.map((peer) => peer.peerId)).toEqual([workerId]);
    // It offers the model it was given (not everything the server has) and its starting quota.
    expect(found[0]?.capabilities).toMatchObject({
      hasAI: true,
      models: ['test-model'],
      quota: { totalQuota: 1000, usedQuota: 0, availableQuota: 1000 },
    });

    const prompt = 'What does a headless worker do?';
    const task = requester.delegatePrompt(prompt, workerId);
    const chunks = await collect(task.chunks);
    const result = await task.result;
    expect(result.status).toBe('completed');
    expect(chunks.join('')).toBe(pieces.join(''));
    expect(result.text).toBe(pieces.join(''));

    // The fake server got the prompt, streamed, with the key in the Authorization header.
    const completions = fake.requests.filter((request) => request.url === '/v1/chat/completions');
    expect(completions).toHaveLength(1);
    expect(completions[0]).toMatchObject({
      method: 'POST',
      body: {
        model: 'test-model',
        messages: [{ role: 'user', content: prompt }],
        stream: true,
        stream_options: { include_usage: true },
      },
    });
    expect(completions[0]?.headers.authorization).toBe(`Bearer ${API_KEY}`);

    const served = await worker.waitForLog('task served');
    expect(served).toMatchObject({
      taskId: task.taskId,
      outcome: 'completed',
      chars: pieces.join('').length,
      outputTokens: pieces.length,
    });
    expect(served['ms']).toEqual(expect.any(Number));

    worker.child.kill('SIGTERM');
    expect(await worker.waitForExit()).toEqual({ code: 0, signal: null });
    // It left (close 1000): peers hear `left` at once, not `closed` after the resume grace.
    await waitUntil(
      () => peerLefts(environment.received).some((message) => message.peerId === workerId),
      'the requester heard the worker leave',
      5_000,
    );
    expect(peerLefts(environment.received).filter((message) => message.peerId === workerId)).toEqual([
      { type: 'peer-left', peerId: workerId, reason: 'left' },
    ]);
    expect(worker.logs().map((line) => line.msg)).toEqual(
      expect.arrayContaining(['started', 'connected', 'task served', 'stopping', 'disconnected', 'stopped']),
    );
    expect(worker.logs().find((line) => line.msg === 'stopped')).toMatchObject({ left: true });

    // The key went to the AI server and nowhere else: not in the worker's output, not to the requester.
    expect(worker.stdout()).not.toContain(API_KEY);
    expect(worker.stderr()).not.toContain(API_KEY);
    expect(environment.received.length).toBeGreaterThan(0);
    expect(environment.received.filter((frame) => frame.includes(API_KEY))).toEqual([]);
    expect(JSON.stringify(found)).not.toContain(API_KEY);
    expect(JSON.stringify(result)).not.toContain(API_KEY);
  }, 30_000);

  it('serves with the demo provider, configured by environment variables (flags win), through a token-protected server', async () => {
    await server.close();
    const token = 'signaling-access-token-4b1d';
    server = await startTestServer({ authToken: token });
    const worker = startWorker(['--model', 'flag-model'], {
      HANDOFF_WORKER_SIGNALING: server.url,
      HANDOFF_WORKER_PROVIDER: 'demo',
      HANDOFF_WORKER_MODEL: 'env-model',
      HANDOFF_WORKER_WORDS_PER_SECOND: '0',
      HANDOFF_WORKER_BIND_ADDRESS: '127.0.0.1',
      HANDOFF_SIGNALING_TOKEN: token,
    });
    const workerId = (await worker.waitForLog('connected'))['peerId'] as string;
    expect(await worker.waitForLog('started')).toMatchObject({
      provider: 'demo',
      label: 'Demo provider (not an AI) · flag-model',
      models: ['flag-model'],
      tokenFrom: 'HANDOFF_SIGNALING_TOKEN',
      apiKeyFrom: null,
    });

    const environment = recordingEnvironment();
    const requester = await createHandoff({ environment, connection: { token } });
    requesters.push(requester);
    await requester.connect(server.url);
    const found = await requester.discoverPeers({ needsAI: true, minQuota: 0, preferredModels: [] });
    expect(found.map((peer) => [peer.peerId, peer.capabilities.models])).toEqual([
      [workerId, ['flag-model']],
    ]);

    const prompt = 'Tell me about demos';
    const task = requester.delegatePrompt(prompt, workerId, { model: 'flag-model' });
    const chunks = await collect(task.chunks);
    expect((await task.result).status).toBe('completed');
    expect(chunks.join('')).toBe(await demoAnswer(prompt, {}));
    expect(await worker.waitForLog('task served')).toMatchObject({
      taskId: task.taskId,
      outcome: 'completed',
    });

    worker.child.kill('SIGINT');
    expect(await worker.waitForExit()).toEqual({ code: 0, signal: null });
    await waitUntil(
      () => peerLefts(environment.received).some((message) => message.peerId === workerId),
      'the requester heard the worker leave',
      5_000,
    );
    expect(peerLefts(environment.received).find((message) => message.peerId === workerId)?.reason).toBe(
      'left',
    );
    expect(worker.stdout()).not.toContain(token);
    expect(worker.stderr()).not.toContain(token);
  }, 30_000);

  it('starts with a warning when the server does not list its models, and serves the configured model', async () => {
    const fake = await startFakeOpenAIServer({ models: 'not-found', answer: () => ['fine', ' anyway'] });
    fakes.push(fake);
    const worker = startWorker(
      [
        '--signaling',
        server.url,
        '--provider',
        'openai',
        '--base-url',
        fake.baseUrl,
        '--model',
        'unlisted-model',
        '--bind-address',
        '127.0.0.1',
      ],
      {},
    );
    const warning = await worker.waitForLog('model list unavailable');
    expect(warning['level']).toBe('warn');
    expect(String(warning['detail'])).toContain('HTTP 404');
    const workerId = (await worker.waitForLog('connected'))['peerId'] as string;

    const requester = await createHandoff({ environment: nodeEnvironment() });
    requesters.push(requester);
    await requester.connect(server.url);
    await requester.discoverPeers({ needsAI: true, minQuota: 0, preferredModels: ['unlisted-model'] });
    const task = requester.delegatePrompt('Anything', workerId);
    expect(await task.result).toMatchObject({ status: 'completed', text: 'fine anyway' });
    // Without a key, no Authorization header goes out.
    expect(fake.requests.map((request) => [request.url, request.headers.authorization])).toEqual([
      ['/v1/models', undefined],
      ['/v1/chat/completions', undefined],
    ]);
    worker.child.kill('SIGTERM');
    expect((await worker.waitForExit()).code).toBe(0);
  }, 30_000);
});

describe('the headless worker refusing to start (exit 2, a clear message, nothing served)', () => {
  async function refused(args: string[], env: Record<string, string> = {}) {
    const worker = startWorker(args, env);
    const exit = await worker.waitForExit(15_000);
    return { exit, stdout: worker.stdout(), stderr: worker.stderr() };
  }

  it('refuses bad flags, naming the flag and its environment variable', async () => {
    const url = server.url;
    const cases: [string[], RegExp][] = [
      [[], /--signaling \(HANDOFF_WORKER_SIGNALING\) is required/],
      [
        ['--signaling', 'http://127.0.0.1:8083', '--provider', 'demo'],
        /--signaling .* must start with ws:\/\/ or wss:\/\//,
      ],
      [
        ['--signaling', url, '--provider', 'chatgpt'],
        /--provider \(HANDOFF_WORKER_PROVIDER\) must be openai or demo, got "chatgpt"/,
      ],
      [
        ['--signaling', url, '--provider', 'openai', '--model', 'm'],
        /--base-url .* is required with --provider openai/,
      ],
      [
        ['--signaling', url, '--provider', 'demo', '--max-concurrent', 'lots'],
        /--max-concurrent .* must be a whole number ≥ 1, got "lots"/,
      ],
      [
        ['--signaling', url, '--provider', 'demo', '--base-url', 'http://127.0.0.1:1/v1'],
        /--base-url .* applies only to --provider openai/,
      ],
      [['--signaling', url, '--provider', 'demo', '--frobnicate', 'yes'], /unknown flag --frobnicate/],
      [
        ['--signaling', url, '--provider', 'demo', '--bind-address', 'localhost'],
        /--bind-address .* must be an IP address/,
      ],
    ];
    // One at a time: eight Node processes at once would starve the suite's other tests.
    for (const [args, message] of cases) {
      const { exit, stdout, stderr } = await refused(args);
      expect({ args, exit, stdout }).toEqual({ args, exit: { code: 2, signal: null }, stdout: '' });
      expect(stderr).toMatch(message);
      expect(stderr).toMatch(/^handoff-worker: /);
      expect(stderr).toContain('--help');
    }
  }, 30_000);

  it('refuses an API key on the command line, without echoing it', async () => {
    const fake = await startFakeOpenAIServer();
    fakes.push(fake);
    const { exit, stderr, stdout } = await refused([
      '--signaling',
      server.url,
      '--provider',
      'openai',
      '--base-url',
      fake.baseUrl,
      '--model',
      'test-model',
      `--api-key=${API_KEY}`,
    ]);
    expect(exit.code).toBe(2);
    expect(stderr).toMatch(/API key is not accepted on the command line .* --api-key-env/);
    expect(stderr + stdout).not.toContain(API_KEY);
    expect(fake.requests).toEqual([]);
  }, 20_000);

  it('refuses an --api-key-env that names an unset variable', async () => {
    const fake = await startFakeOpenAIServer();
    fakes.push(fake);
    const { exit, stderr } = await refused([
      '--signaling',
      server.url,
      '--provider',
      'openai',
      '--base-url',
      fake.baseUrl,
      '--model',
      'test-model',
      '--api-key-env',
      'WORKER_TEST_UNSET_KEY',
    ]);
    expect(exit.code).toBe(2);
    expect(stderr).toContain(
      '--api-key-env names WORKER_TEST_UNSET_KEY, but that environment variable is not set',
    );
  }, 20_000);

  it('refuses a base URL nothing answers on', async () => {
    const port = await closedPort();
    const { exit, stderr, stdout } = await refused(
      [
        '--signaling',
        server.url,
        '--provider',
        'openai',
        '--base-url',
        `http://127.0.0.1:${port}/v1`,
        '--model',
        'test-model',
      ],
      { HANDOFF_API_KEY: API_KEY },
    );
    expect(exit.code).toBe(2);
    expect(stderr).toContain(
      `handoff-worker: cannot reach the OpenAI-compatible server at 127.0.0.1:${port} (GET http://127.0.0.1:${port}/v1/models)`,
    );
    expect(stderr).toMatch(/ECONNREFUSED/);
    expect(stdout).not.toContain('"connected"');
    expect(stderr + stdout).not.toContain(API_KEY);
  }, 20_000);

  it('refuses a model the server does not offer, naming the ones it does', async () => {
    const fake = await startFakeOpenAIServer({ models: ['test-model', 'llama3:latest'] });
    fakes.push(fake);
    const { exit, stderr } = await refused(
      [
        '--signaling',
        server.url,
        '--provider',
        'openai',
        '--base-url',
        fake.baseUrl,
        '--model',
        'missing-model',
      ],
      { OPENAI_API_KEY: API_KEY, HANDOFF_WORKER_API_KEY_ENV: 'OPENAI_API_KEY' },
    );
    expect(exit.code).toBe(2);
    expect(stderr).toContain(`does not offer model missing-model: it offers test-model, llama3:latest`);
    // It asked with the key from the variable HANDOFF_WORKER_API_KEY_ENV named.
    expect(fake.requests.map((request) => [request.url, request.headers.authorization])).toEqual([
      ['/v1/models', `Bearer ${API_KEY}`],
    ]);
    expect(stderr).not.toContain(API_KEY);
  }, 20_000);
});

describe('the handoff-worker command', () => {
  it('runs worker/bin.mjs (the package bin) and prints every flag with --help', async () => {
    const bin = spawn(process.execPath, [workerBin, '--help'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(bin);
    let out = '';
    bin.stdout?.setEncoding('utf8').on('data', (data: string) => {
      out += data;
    });
    const code = await Promise.race([
      new Promise<number | null>((resolve) => bin.once('close', (exitCode) => resolve(exitCode))),
      sleep(15_000).then(() => 'timed out'),
    ]);
    expect(code).toBe(0);
    for (const flag of [
      '--signaling',
      '--provider',
      '--base-url',
      '--model',
      '--api-key-env',
      '--quota',
      '--max-concurrent',
      '--words-per-second',
      '--bind-address',
      '--log-level',
    ]) {
      expect(out).toContain(flag);
    }
    expect(out).toContain('HANDOFF_WORKER_SIGNALING');
  }, 20_000);
});
