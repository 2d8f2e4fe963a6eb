import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TURNSERVER = process.env.HANDOFF_TURNSERVER ?? '/usr/bin/turnserver';

export interface Coturn {
  /** The listening port (UDP and TCP) on 127.0.0.1. */
  port: number;
  /** `static-auth-secret`: credentials minted from it (coturn's REST format) are accepted. */
  secret: string;
  realm: string;
  /** The UDP port range coturn allocates relay addresses from (on 127.0.0.1). */
  relayPorts: { min: number; max: number };
  /** Everything coturn has logged so far (its log file, then stdout + stderr). */
  log(): string;
  stop(): Promise<void>;
}

export interface CoturnOptions {
  /** How long to wait for coturn to answer a STUN binding request (default 5 s). */
  startTimeoutMs?: number;
}

/** Fails with a clear message when coturn's `turnserver` is not installed (CI installs it: .ci/run). */
export function assertTurnserverInstalled(): void {
  const probe = spawnSync(TURNSERVER, ['--version'], { encoding: 'utf8', timeout: 5_000 });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `coturn's turnserver is not available at ${TURNSERVER} (${probe.error?.message ?? `exit ${probe.status}`}); ` +
        'install it (Debian: apt-get install coturn — .ci/run does) or set HANDOFF_TURNSERVER',
    );
  }
}

/**
 * A real coturn on 127.0.0.1 with `use-auth-secret` (time-limited REST credentials), no TLS/DTLS,
 * loopback peers allowed (both relays live on 127.0.0.1). Resolves once it answers a STUN binding
 * request; rejects (and kills it) if that does not happen within `startTimeoutMs`.
 */
export async function startCoturn(options: CoturnOptions = {}): Promise<Coturn> {
  assertTurnserverInstalled();
  const port = await freePort();
  const secret = randomBytes(18).toString('base64url');
  const realm = 'handoff.test';
  const dir = mkdtempSync(join(tmpdir(), 'handoff-coturn-'));
  // A file rather than stdout: coturn block-buffers a piped stdout, so lines would arrive late.
  const logFile = join(dir, 'turnserver.log');
  // Relay ports: a block below Linux's ephemeral range (32768+), away from ICE host ports.
  const minPort = 20_000 + Math.floor(Math.random() * 100) * 100;
  // Our own config file: without `-c`, coturn also reads /etc/turnserver.conf (Debian's says `syslog`).
  const config = [
    `listening-port=${port}`,
    'listening-ip=127.0.0.1',
    'relay-ip=127.0.0.1',
    `min-port=${minPort}`,
    `max-port=${minPort + 99}`,
    'use-auth-secret',
    `static-auth-secret=${secret}`,
    `realm=${realm}`,
    'no-tls',
    'no-dtls',
    'fingerprint',
    'no-cli',
    `log-file=${logFile}`,
    'simple-log',
    'verbose',
    'allow-loopback-peers',
    'no-multicast-peers',
    `userdb=${join(dir, 'turndb')}`,
    `pidfile=${join(dir, 'turnserver.pid')}`,
  ];
  const configFile = join(dir, 'turnserver.conf');
  writeFileSync(configFile, `${config.join('\n')}\n`);
  const args = ['-c', configFile];
  const child = spawn(TURNSERVER, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  let output = '';
  let exited: string | undefined;
  child.stdout?.on('data', (data: Buffer) => {
    output += data.toString();
  });
  child.stderr?.on('data', (data: Buffer) => {
    output += data.toString();
  });
  child.once('error', (error) => {
    exited = `failed to start: ${error.message}`;
  });
  child.once('exit', (code, signal) => {
    exited ??= `exited (${signal ?? `code ${code}`})`;
  });

  /** The log file as last read (kept once the temp directory is gone), then stdout + stderr. */
  let fileLog = '';
  const log = () => {
    try {
      fileLog = readFileSync(logFile, 'utf8');
    } catch {
      // not written yet, or already removed: keep what was last read
    }
    return fileLog + output;
  };
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= stopChild(child).finally(() => {
      log();
      rmSync(dir, { recursive: true, force: true });
    });
    return stopped;
  };

  const startTimeoutMs = options.startTimeoutMs ?? 5_000;
  const deadline = Date.now() + startTimeoutMs;
  while (!(await stunAnswers(port, 200))) {
    if (exited !== undefined || Date.now() >= deadline) {
      await stop();
      throw new Error(
        `coturn did not come up on 127.0.0.1:${port} within ${startTimeoutMs} ms` +
          `${exited ? ` (${exited})` : ''}:\n${log().slice(-4_000)}`,
      );
    }
  }
  return { port, secret, realm, relayPorts: { min: minPort, max: minPort + 99 }, log, stop };
}

/** SIGTERM, then SIGKILL after 2 s; resolves once the process is gone (at most ~3 s). */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined)
    return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(kill);
      clearTimeout(giveUp);
      resolve();
    };
    child.once('exit', done);
    const kill = setTimeout(() => child.kill('SIGKILL'), 2_000);
    const giveUp = setTimeout(done, 3_000);
    child.kill('SIGTERM');
  });
}

/** A port free for both TCP and UDP on 127.0.0.1 (coturn listens on both). */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = createSocket('udp4');
      socket.once('error', () => {
        socket.close();
        resolve(false);
      });
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
    });
    if (port && udpFree) return port;
  }
  throw new Error('no free TCP+UDP port on 127.0.0.1 after 20 tries');
}

/** Sends one STUN Binding request over UDP; true if a Binding success response comes back in time. */
function stunAnswers(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const transaction = randomBytes(12);
    const request = Buffer.alloc(20);
    request.writeUInt16BE(0x0001, 0); // Binding request
    request.writeUInt16BE(0, 2); // no attributes
    request.writeUInt32BE(0x2112a442, 4); // magic cookie
    transaction.copy(request, 8);
    let settled = false;
    const finish = (answered: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      resolve(answered);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('message', (message) => {
      if (
        message.length >= 20 &&
        message.readUInt16BE(0) === 0x0101 &&
        message.subarray(8, 20).equals(transaction)
      )
        finish(true);
    });
    socket.once('error', () => finish(false));
    socket.send(request, port, '127.0.0.1');
  });
}

/**
 * Forbids all traffic between two loopback addresses of this network namespace (policy-routing
 * `prohibit` rules, both ways), so peers bound to them can reach each other only through a third
 * address: the TURN server on 127.0.0.1. Needed because libjuice (node-datachannel's ICE agent)
 * does not enforce `iceTransportPolicy: 'relay'` beyond not advertising host candidates: it still
 * pairs its host socket with the remote's relay candidate and with peer-reflexive addresses learned
 * through TURN, and may then talk host to host (libdatachannel#1587, libjuice#345).
 * Refuses to run outside the tests' private namespace (HANDOFF_IN_NETNS=1), so it never touches a
 * real machine's routing. Resolves to an undo function once a probe confirms `a` cannot reach `b`.
 */
export async function separateLoopbackAddresses(a: string, b: string): Promise<() => void> {
  if (process.env.HANDOFF_IN_NETNS !== '1') {
    throw new Error(
      'separateLoopbackAddresses changes routing rules: run inside test/support/in-loopback-namespace.sh',
    );
  }
  // `prohibit` rules must come before the local table's rule, which sits at preference 0: move it.
  if (/lookup local/.test(ip(['rule', 'show', 'pref', '0']))) {
    if (!/lookup local/.test(ip(['rule', 'show', 'pref', '100'])))
      ip(['rule', 'add', 'pref', '100', 'lookup', 'local']);
    ip(['rule', 'del', 'pref', '0', 'lookup', 'local']);
  }
  const rules = [
    ['from', a, 'to', b, 'prohibit', 'pref', '10'],
    ['from', b, 'to', a, 'prohibit', 'pref', '10'],
  ];
  const undo = () => {
    for (const rule of rules) ip(['rule', 'del', ...rule], true);
  };
  undo(); // a rule left behind by an earlier run in this namespace
  for (const rule of rules) ip(['rule', 'add', ...rule]);
  const probe = await udpSendError(a, b);
  if (probe !== 'EACCES') {
    undo();
    throw new Error(`${a} can still reach ${b} after adding prohibit rules (send: ${probe ?? 'ok'})`);
  }
  return undo;
}

/** Runs `ip <argv>` (bounded); throws on failure unless `ignoreErrors`. */
function ip(argv: string[], ignoreErrors = false): string {
  const run = spawnSync('ip', argv, { encoding: 'utf8', timeout: 5_000 });
  if (!ignoreErrors && (run.error || run.status !== 0)) {
    throw new Error(`ip ${argv.join(' ')} failed: ${run.error?.message ?? run.stderr.trim()}`);
  }
  return run.stdout ?? '';
}

/** Sends one UDP datagram from `from` to `to` (a closed port); resolves to the send error code, if any. */
function udpSendError(from: string, to: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    let settled = false;
    const timer = setTimeout(() => finish('timeout'), 2_000);
    const finish = (code: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      resolve(code);
    };
    socket.once('error', (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    socket.bind(0, from, () =>
      socket.send('probe', 9, to, (error) => finish((error as NodeJS.ErrnoException | null)?.code)),
    );
  });
}
