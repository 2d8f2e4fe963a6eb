import type { SignalingConfig } from '../../signaling/config.ts';
import { createLogger } from '../../signaling/logger.ts';
import { type SignalingServer, startSignalingServer } from '../../signaling/server.ts';

/** The real uWS server on 127.0.0.1, port 0, quiet logs, fast timings unless overridden. */
export function startTestServer(overrides: Partial<SignalingConfig> = {}): Promise<SignalingServer> {
  return startSignalingServer(
    {
      host: '127.0.0.1',
      port: 0,
      logLevel: 'silent',
      coalesceMs: 5,
      shutdownGraceMs: 500,
      ...overrides,
    },
    { log: createLogger(process.env.HANDOFF_TEST_LOG === '1' ? 'debug' : 'silent') },
  );
}
