import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';
import { resolveConfig } from '../signaling/config.ts';
import { createLogger } from '../signaling/logger.ts';
import { startSignalingServer } from '../signaling/server.ts';

/**
 * `npm start`: the signaling server on 127.0.0.1:8083 and the demo on http://127.0.0.1:8082/,
 * in one process. HANDOFF_SIGNALING_PORT / HANDOFF_DEMO_PORT move them; the signaling server
 * accepts the demo's origin on whichever port it is served (unless HANDOFF_ALLOWED_ORIGINS says otherwise).
 */
async function main(): Promise<void> {
  const demoPort = Number(process.env.HANDOFF_DEMO_PORT ?? 8082);
  const demoOrigins = ['127.0.0.1', 'localhost', '[::1]'].map((host) => `http://${host}:${demoPort}`);
  const config = resolveConfig([], {
    HANDOFF_LOG_LEVEL: 'warn',
    HANDOFF_ALLOWED_ORIGINS: demoOrigins.join(','),
    ...process.env,
  });
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
  const page = `http://127.0.0.1:${demoPort}/`;
  process.stdout.write(
    [
      `Handoff demo:      ${page}`,
      `Signaling server:  ${signaling.url}`,
      '',
      'Two tabs, one prompt handed over WebRTC:',
      `  tab A (quota used up, delegates):  ${page}?provider=demo&quota=1&used=1`,
      `  tab B (serves with the demo provider, not an AI):  ${page}?provider=demo`,
      '',
    ].join('\n'),
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
