import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';
import { resolveConfig, type SignalingConfig } from '../signaling/config.ts';
import { createLogger } from '../signaling/logger.ts';
import { type SignalingServer, startSignalingServer } from '../signaling/server.ts';

export interface Demo {
  /** http://127.0.0.1:<port>/ */
  demoUrl: string;
  signaling: SignalingServer;
  close(): Promise<void>;
}

/**
 * The demo page (vite, serving demo/) and a signaling server that accepts it. Ports may be 0 (tests):
 * the page then learns the signaling URL from its `?signaling=` parameter.
 */
export async function startDemo(options: {
  demoPort: number;
  signaling?: Partial<SignalingConfig>;
  env?: NodeJS.ProcessEnv;
}): Promise<Demo> {
  const signalingPort = options.signaling?.port ?? 8083;
  // A fixed signaling port is known before vite starts: the page reads it as import.meta.env.
  if (signalingPort !== 0) process.env.VITE_HANDOFF_SIGNALING_URL = `ws://127.0.0.1:${signalingPort}/`;
  const vite = await createServer({
    configFile: false,
    root: fileURLToPath(new URL('.', import.meta.url)),
    server: { host: '127.0.0.1', port: options.demoPort, strictPort: options.demoPort !== 0 },
    logLevel: 'warn',
  });
  await vite.listen();
  const address = vite.httpServer?.address();
  const demoPort = typeof address === 'object' && address ? address.port : options.demoPort;
  const demoOrigins = ['127.0.0.1', 'localhost', '[::1]'].map((host) => `http://${host}:${demoPort}`);
  const config = resolveConfig([], {
    HANDOFF_LOG_LEVEL: 'warn',
    HANDOFF_ALLOWED_ORIGINS: demoOrigins.join(','),
    ...(options.env ?? {}),
  });
  let signaling: SignalingServer;
  try {
    signaling = await startSignalingServer(
      { ...config, port: signalingPort, ...options.signaling },
      { log: createLogger(options.signaling?.logLevel ?? config.logLevel) },
    );
  } catch (error) {
    await vite.close();
    throw error;
  }
  return {
    demoUrl: `http://127.0.0.1:${demoPort}/`,
    signaling,
    async close() {
      await Promise.allSettled([vite.close(), signaling.close()]);
    },
  };
}

/**
 * `npm start`: the signaling server on 127.0.0.1:8083 and the demo on http://127.0.0.1:8082/.
 * HANDOFF_SIGNALING_PORT / HANDOFF_DEMO_PORT move them; the signaling server accepts the demo's
 * origin on whichever port it is served (unless HANDOFF_ALLOWED_ORIGINS says otherwise).
 */
async function main(): Promise<void> {
  const demoPort = Number(process.env.HANDOFF_DEMO_PORT ?? 8082);
  const fromEnv = resolveConfig([], { HANDOFF_LOG_LEVEL: 'warn', ...process.env });
  const demo = await startDemo({
    demoPort,
    env: process.env,
    signaling: { port: fromEnv.port, host: fromEnv.host },
  });
  const page = demo.demoUrl;
  process.stdout.write(
    [
      `Handoff demo:      ${page}`,
      `Signaling server:  ${demo.signaling.url}`,
      '',
      'Two tabs, one prompt handed over WebRTC:',
      `  tab A (quota used up, delegates):  ${page}?provider=demo&quota=1&used=1`,
      `  tab B (serves with the demo provider, not an AI):  ${page}?provider=demo`,
      '',
    ].join('\n'),
  );
  const stop = async () => {
    await demo.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: unknown) => {
    process.stderr.write(`handoff demo: ${(error as Error).message}\n`);
    process.exit(1);
  });
}
