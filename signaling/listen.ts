import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Logger } from './logger.ts';

const TCP_LISTEN = '0A';

/** Is some socket listening on `port` (Linux: /proc/net/tcp{,6})? undefined where we cannot tell. */
async function someoneListens(port: number): Promise<boolean | undefined> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  try {
    const tables = await Promise.all(
      ['/proc/net/tcp', '/proc/net/tcp6'].map((path) => readFile(path, 'utf8').catch(() => '')),
    );
    return tables.some((table) =>
      table.split('\n').some((line) => {
        const [, local, , state] = line.trim().split(/\s+/);
        return state === TCP_LISTEN && local?.endsWith(`:${hexPort}`);
      }),
    );
  } catch {
    return undefined;
  }
}

/** Can this host be bound at all (any port)? Catches "not an address of this machine". */
function hostUsable(host: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    probe.listen({ host, port: 0 }, () => probe.close(() => resolve(undefined)));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Binds the uWS app. This uSockets build sets no SO_REUSEADDR, so for about a minute after a
 * restart the port can be held by the previous run's connections in TIME_WAIT (which no process
 * owns). That is retried until `retryMs`; a host that is not ours, or a port another process
 * listens on, fails at once.
 */
export async function listenWithRetry(
  app: TemplatedApp,
  host: string,
  port: number,
  retryMs: number,
  log: Logger,
): Promise<us_listen_socket> {
  const deadline = Date.now() + retryMs;
  for (let attempt = 0; ; attempt++) {
    const socket = await new Promise<us_listen_socket | false>((resolve) => app.listen(host, port, resolve));
    if (socket) return socket;
    const hostProblem = await hostUsable(host);
    if (hostProblem)
      throw new Error(
        `cannot listen on ${host}:${port}: ${hostProblem === 'EADDRNOTAVAIL' ? 'not an address of this machine' : hostProblem}`,
      );
    // A listener we just closed ourselves can linger for a loop iteration: only a lasting one counts.
    if (port !== 0 && (await someoneListens(port)) && attempt > 0) {
      throw new Error(`cannot listen on ${host}:${port}: another process is listening there`);
    }
    if (Date.now() >= deadline)
      throw new Error(`cannot listen on ${host}:${port}: still busy after ${retryMs} ms`);
    if (attempt === 0)
      log.warn('port busy (the previous run may have left it in TIME_WAIT); retrying', {
        host,
        port,
        retryMs,
      });
    await sleep(attempt === 0 ? 50 : 250);
  }
}
