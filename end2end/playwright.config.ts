import { defineConfig } from '@playwright/test';

// Debian's Chromium, never a downloaded one (this machine has no route to browser downloads).
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// The shared test server listens here (not 3000, so a running demo does not get in the way).
const port = process.env.DEMO_PORT ?? '3400';

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 5_000 },
  // The tests share one demo server and some restart servers of their own: one at a time.
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list'], ['json', { outputFile: 'test-results/results.json' }]],
  globalSetup: './support/global-setup.ts',
  outputDir: 'test-results/output',
  use: {
    baseURL: process.env.DEMO_URL ?? `http://127.0.0.1:${port}`,
    trace: 'off',
    launchOptions: {
      executablePath,
      args: [
        '--no-sandbox',
        '--headless',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    },
  },
  projects: [{ name: 'chromium', use: { browserName: 'chromium' } }],
});
