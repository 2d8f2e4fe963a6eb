import { playwright } from '@vitest/browser-playwright';
import { defineConfig } from 'vitest/config';
import { CHROMIUM_ARGS, CHROMIUM_PATH, CHROMIUM_PERMISSIONS } from './test/support/chromium.ts';

/** Debian's Chromium, headless and offline (see test/support/chromium.ts). */
const chromium = playwright({
  launchOptions: { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS },
  contextOptions: { permissions: CHROMIUM_PERMISSIONS },
});

export default defineConfig({
  server: { host: '127.0.0.1' },
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    projects: [
      {
        // `extends: true`: inline projects otherwise fall back to Vitest's 5 s timeouts.
        extends: true,
        test: {
          name: 'node',
          include: [
            'test/unit/**/*.test.ts',
            'test/model/**/*.test.ts',
            'test/integration/**/*.test.ts',
            'test/e2e/**/*.test.ts',
          ],
          pool: 'forks',
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          browser: {
            enabled: true,
            headless: true,
            provider: chromium,
            instances: [{ browser: 'chromium' }],
          },
        },
      },
    ],
  },
});
