import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect as connectTcp, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { SignalingServer } from '../../signaling/server.ts';
import { demoCapabilities, TestClient } from '../support/signaling-client.ts';
import { startTestServer } from '../support/signaling-server.ts';
import { waitUntil } from '../support/wait.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tsx = fileURLToPath(new URL('../../node_modules/.bin/tsx', import.meta.url));

let server: SignalingServer | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) {
    expect(client.invalid).toEqual([]);
    client.terminate();
  }
  await server?.close();
  server = undefined;
});
const connect = async (url: string) => {
  const client = await TestClient.connect(url);
  clients.push(client);
  return client;
};
const http = (path: string) => fetch(`http://127.0.0.1:${server?.port}${path}`);

/** Parses Prometheus text: sample name+labels → value; checks every sample has HELP and TYPE. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const described = new Set<string>();
  for (const line of text.trimEnd().split('\n')) {
    const meta = /^# (HELP|TYPE) ([a-z_]+) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') expect(['counter', 'gauge']).toContain(meta[3]);
      described.add(meta[2] as string);
      continue;
    }
    const sample = /^([a-z_]+)(\{[a-z_]+="[^"]*"\})? (-?[0-9.e+-]+)$/.exec(line);
    expect(sample, `not a Prometheus sample line: ${line}`).not.toBeNull();
    const [, name, labels = '', value] = sample as RegExpExecArray;
    expect(described, `${name} has no HELP/TYPE`).toContain(name);
    samples.set(`${name}${labels}`, Number(value));
  }
  return samples;
}

describe('HTTP probes', () => {
  it('GET /healthz answers JSON with the counts of peers and sockets', async () => {
    server = await startTestServer();
    const a = await connect(server.url);
    const b = await connect(server.url);
    a.send({ type: 'capability-announce', capabilities: demoCapabilities(10) });
    await b.next('peer-capability-update');
    const response = await http('/healthz');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(await response.json()).toEqual({ status: 'ok', peers: 2, announced: 1, sockets: 2 });
  });

  it('GET /metrics is Prometheus text with peers, messages by type, relayed bytes, rejections and loop lag', async () => {
    server = await startTestServer();
    const a = await connect(server.url);
    const b = await connect(server.url);
    const relayFrames: number[] = [];
    b.ws.on('message', (data: Buffer) => {
      if (data.toString().startsWith('{"type":"relay"')) relayFrames.push(data.byteLength);
    });
    a.send({ type: 'discover', requirements: { needsAI: false, minQuota: 0, preferredModels: [] } });
    await a.next('peers-discovered');
    a.send({ type: 'offer', targetPeerId: b.peerId, sdp: { type: 'offer', sdp: 'v=0' } });
    await b.next('offer');
    // Multi-byte text: the metric counts bytes, not characters.
    const payload = { type: 'task-cancel', taskId: 't1', reason: 'déjà vu ✓ — 中文' };
    a.send({ type: 'relay', targetPeerId: b.peerId, payload });
    await b.next('relay');
    a.sendRaw('not json');
    a.sendRaw('still not json');
    await a.next('error');
    await a.next('error');

    const response = await http('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const metrics = parseMetrics(await response.text());
    expect(metrics.get('handoff_peers_connected')).toBe(2);
    expect(metrics.get('handoff_socket_actors')).toBe(2);
    expect(metrics.get('handoff_connections_total')).toBe(2);
    expect(metrics.get('handoff_messages_received_total{type="discover"}')).toBe(1);
    expect(metrics.get('handoff_messages_received_total{type="offer"}')).toBe(1);
    expect(metrics.get('handoff_messages_received_total{type="relay"}')).toBe(1);
    expect(metrics.get('handoff_messages_routed_total{type="offer"}')).toBe(1);
    expect(metrics.get('handoff_messages_routed_total{type="relay"}')).toBe(1);
    expect(relayFrames).toHaveLength(1);
    expect(metrics.get('handoff_relayed_bytes_total')).toBe(relayFrames[0]);
    expect(metrics.get('handoff_rejections_total{reason="bad-json"}')).toBe(2);
    for (const quantile of ['0.5', '0.99', '1']) {
      const lag = metrics.get(`handoff_event_loop_lag_seconds{quantile="${quantile}"}`);
      expect(lag).toBeGreaterThanOrEqual(0);
    }
  });

  it('an unknown path is 404 and a plain GET of the socket URL is 426', async () => {
    server = await startTestServer();
    expect((await http('/nope')).status).toBe(404);
    expect((await http('/')).status).toBe(426);
  });
});

describe('graceful shutdown', () => {
  it('server.close(): every client gets reconnect, then close 1001; close() resolves; new connections fail', async () => {
    server = await startTestServer({ reconnectAfterMs: 750, resumeGraceMs: 10_000 });
    const url = server.url;
    const a = await connect(url);
    const b = await connect(url);
    a.send({ type: 'capability-announce', capabilities: demoCapabilities(10) });
    await b.next('peer-capability-update');

    const closing = server.close();
    expect(server.close()).toBe(closing);
    for (const client of [a, b]) {
      expect(await client.next('reconnect')).toMatchObject({ retryAfterMs: 750 });
      expect((await client.closed).code).toBe(1001);
      // `reconnect` was the last frame before the close; nobody was told of a leave.
      expect(client.received.at(-1)?.type).toBe('reconnect');
      expect(client.all('peer-left')).toEqual([]);
    }
    await closing;
    expect(server.hub.getSnapshot().status).toBe('done');

    const late = new TestClient(url);
    await expect(late.opened).rejects.toThrow();
    expect(late.refusedStatus).toBeUndefined(); // refused at TCP level: nothing listens any more
    await expect(fetch(`http://127.0.0.1:${server.port}/healthz`)).rejects.toThrow();
  });
});

describe('a kept-alive HTTP connection across shutdown', () => {
  /** Sends one request on `socket` and resolves with the complete response (headers + body). */
  function exchange(socket: Socket, request: string): Promise<string> {
    return new Promise((resolve, reject) => {
      let buffer = '';
      const timer = setTimeout(
        () => done(new Error(`no complete response; got ${JSON.stringify(buffer)}`)),
        5_000,
      );
      const onData = (chunk: Buffer) => {
        buffer += chunk.toString();
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(/content-length: *(\d+)/i.exec(buffer.slice(0, end))?.[1] ?? 0);
        if (Buffer.byteLength(buffer.slice(end + 4)) >= length) done();
      };
      const done = (error?: Error) => {
        clearTimeout(timer);
        socket.off('data', onData);
        if (error) reject(error);
        else resolve(buffer);
      };
      socket.on('data', onData);
      socket.write(request);
    });
  }

  it('after close() a WebSocket upgrade on an open HTTP connection is refused with 503, and /healthz says draining', async () => {
    server = await startTestServer();
    const socket = connectTcp({ host: '127.0.0.1', port: server.port });
    await once(socket, 'connect');
    try {
      const before = await exchange(socket, 'GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n');
      expect(before).toMatch(/^HTTP\/1\.1 200/);
      expect(before).toContain('"status":"ok"');
      await server.close();

      const health = await exchange(socket, 'GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n');
      expect(health).toContain('"status":"draining"');
      const upgrade = await exchange(
        socket,
        'GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      expect(upgrade).toMatch(/^HTTP\/1\.1 503/);
      expect(upgrade).toContain('shutting down');
    } finally {
      socket.destroy();
    }
  });
});

describe('the command-line server', () => {
  /** The CLI as `npm run signaling` runs it, with a clean environment. */
  function runCli(args: string[], env: Record<string, string> = {}) {
    const cleanEnv = Object.fromEntries(
      Object.entries(process.env).filter(
        ([key]) => !key.startsWith('HANDOFF_') && key !== 'UWS_USE_FALLBACK',
      ),
    );
    const child = spawn(tsx, ['signaling/main.ts', ...args], {
      cwd: root,
      env: { ...cleanEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = { stdout: '', stderr: '' };
    child.stdout.on('data', (chunk: Buffer) => {
      output.stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output.stderr += chunk.toString();
    });
    const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal }));
    return { child, output, exited };
  }
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0))
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  it('starts on --port 0, logs its URL as JSON, and on SIGTERM tells clients to reconnect, closes them 1001 and exits 0', async () => {
    const cli = runCli(['--port', '0', '--log-level', 'info']);
    children.push(cli.child);
    let url: string | undefined;
    await waitUntil(
      () => {
        // Only complete lines: the last piece may be a line still being written.
        for (const line of cli.output.stdout.split('\n').slice(0, -1)) {
          if (!line.startsWith('{')) continue;
          const entry = JSON.parse(line) as { msg?: string; url?: string };
          if (entry.msg === 'signaling listening') url = entry.url;
        }
        return url !== undefined;
      },
      'the CLI logged its URL',
      15_000,
      25,
    );
    expect(url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/$/);
    const a = await connect(url as string);
    const b = await connect(url as string);

    cli.child.kill('SIGTERM');
    for (const client of [a, b]) {
      expect((await client.next('reconnect')).retryAfterMs).toBeGreaterThanOrEqual(0);
      expect((await client.closed).code).toBe(1001);
    }
    expect(await cli.exited).toEqual({ code: 0, signal: null });
    const messages = cli.output.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(messages).toContain('stopping');
    expect(messages.at(-1)).toBe('signaling stopped');
  });

  it('UWS_USE_FALLBACK=1 makes it refuse to start with a clear message', async () => {
    const cli = runCli(['--port', '0'], { UWS_USE_FALLBACK: '1' });
    children.push(cli.child);
    const { code } = await cli.exited;
    expect(code).not.toBe(0);
    expect(cli.output.stderr).toContain('UWS_USE_FALLBACK=1');
    expect(cli.output.stderr).toMatch(/native uWebSockets\.js/);
    expect(cli.output.stdout).not.toContain('signaling listening');
  });

  it('--port abc makes it exit non-zero naming the flag and the bad value', async () => {
    const cli = runCli(['--port', 'abc']);
    children.push(cli.child);
    const { code } = await cli.exited;
    expect(code).not.toBe(0);
    expect(cli.output.stderr).toContain('--port');
    expect(cli.output.stderr).toContain('"abc"');
    expect(cli.output.stderr).toMatch(/whole number/);
  });
});
