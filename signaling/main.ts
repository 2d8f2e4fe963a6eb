import { resolveConfig, usage } from './config.ts';
import { createLogger } from './logger.ts';
import { startSignalingServer } from './server.ts';

/** `npm run signaling -- [--port N] [--host H] …` (see --help and the README's configuration table). */
async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage());
    return;
  }
  const config = resolveConfig(argv, process.env);
  const log = createLogger(config.logLevel);
  const server = await startSignalingServer(config, { log });
  const stop = (signal: string) => {
    log.info('stopping', { signal });
    server.close().then(
      () => process.exit(0),
      (error) => {
        log.error('shutdown failed', { error });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`handoff signaling: ${(error as Error).message}\n`);
  process.exit(1);
});
