import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';
import { resolveConfig } from '../signaling/config.ts';
import { createLogger } from '../signaling/logger.ts';
import { startSignalingServer } from '../signaling/server.ts';

/**
 * `npm start`: the signaling server on 127.0.0.1:8083 and the demo on http://127.0.0.1:8082/,
 * in one process. HANDOFF_SIGNALING_PORT / HANDOFF_DEMO_PORT move them.
 */
async function main(): Promise<void> {
  const config = resolveConfig([], { HANDOFF_LOG_LEVEL: 'warn', ...process.env });
  const demoPort = Number(process.env.HANDOFF_DEMO_PORT ?? 8082);
  const signaling = await startSignalingServer(config, { log: createLogger(config.logLevel) });
  // The page reads it as import.meta.env.VITE_HANDOFF_SIGNALING_URL (a `?signaling=` parameter overrides it).
  process.env.VITE_HANDOFF_SIGNALING_URL = signaling.url;
  const vite = await createServer({
    configFile: false,
    root: fileURLToPath(new URL('.', import.meta.url)),
    server: { host: '127.0.0.1', port: demoPort, strictPort: true },
    logLevel: 'warn',
  });
  await vite.listen();
  process.stdout.write(
    `Handoff demo:      http://127.0.0.1:${demoPort}/\nSignaling server:  ${signaling.url}\n`,
  );
  const stop = async () => {
    await Promise.allSettled([vite.close(), signaling.close()]);
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`handoff demo: ${(error as Error).message}\n`);
  process.exit(1);
});
