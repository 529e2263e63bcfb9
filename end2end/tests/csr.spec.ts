import { expect, test, Browser, Page } from '@playwright/test';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { AddressInfo } from 'node:net';
import { DemoServer, ROOT } from '../support/server';
import { uniqueRoom } from '../support/presence';

// A client-side-rendered app (examples/csr, built by `examples/csr/build.sh` into target/csr)
// served as static files from one origin, using the demo server on another as its presence
// server. The server lists the app's origin (PRESENCE_ALLOWED_ORIGINS); a copy of the app served
// from an origin it does not list is refused.
const SITE = path.join(ROOT, 'target', 'csr');
const APP_PORT = Number(process.env.CSR_PORT ?? 3492);
const OTHER_PORT = APP_PORT + 1;
const presenceServer = new DemoServer(APP_PORT + 2, {
  PRESENCE_ALLOWED_ORIGINS: `http://127.0.0.1:${APP_PORT}`,
});

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
};

/** A static file server for the CSR build, as any web host would be. */
function serveStatic(port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const file = path.join(SITE, url.pathname === '/' ? 'index.html' : path.normalize(url.pathname));
    if (!file.startsWith(SITE) || !fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

let sites: http.Server[] = [];
test.beforeAll(async () => {
  if (!fs.existsSync(path.join(SITE, 'pkg', 'presence_csr.js'))) {
    throw new Error(`${SITE} is missing: run examples/csr/build.sh first`);
  }
  await presenceServer.start();
  sites = [await serveStatic(APP_PORT), await serveStatic(OTHER_PORT)];
});
test.afterAll(async () => {
  await presenceServer.kill();
  await Promise.all(sites.map((s) => new Promise((r) => s.close(r))));
});

/** Opens the CSR app (served from `port`) in a fresh profile, in `room` as `name`. */
async function open(browser: Browser, port: number, room: string, name: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const query = new URLSearchParams({ server: presenceServer.url, room, name });
  await page.goto(`http://127.0.0.1:${port}/?${query}`);
  return page;
}

test('a CSR app on another origin joins, sees others, updates state and leaves by beacon', async ({ browser }) => {
  const room = uniqueRoom('csr');
  const ada = await open(browser, APP_PORT, room, 'Ada');
  const bo = await open(browser, APP_PORT, room, 'Bo');
  for (const page of [ada, bo]) {
    await expect(page.locator('[data-connection-status]')).toHaveAttribute('data-connection-status', 'connected', {
      timeout: 10_000,
    });
  }
  const pile = (page: Page) => page.getByRole('list', { name: 'People in this room' });
  await expect(pile(ada).getByRole('listitem', { name: 'Bo, online' })).toBeVisible({ timeout: 5_000 });
  await expect(pile(bo).getByRole('listitem', { name: 'Ada, online' })).toBeVisible();
  // The stylesheet came with the pile, once.
  expect(await ada.locator('style').count()).toBe(1);

  const boRow = ada.locator('p.other', { hasText: 'Bo is in' });
  await expect(boRow).toHaveText('Bo is in intro');
  await bo.getByRole('button', { name: 'Go to FAQ' }).click();
  await expect(boRow).toHaveText('Bo is in faq', { timeout: 2_000 });

  // Closing the tab leaves with a cross-origin beacon: offline at once, not after expiry.
  await bo.close({ runBeforeUnload: true });
  await expect(pile(ada).getByRole('listitem', { name: /^Bo, offline/ })).toBeVisible({ timeout: 1_500 });
  await ada.context().close();
  await bo.context().close();
});

test('the same app served from an origin the server does not list is refused', async ({ browser }) => {
  const room = uniqueRoom('csr-refused');
  const ada = await open(browser, APP_PORT, room, 'Ada');
  const eve = await open(browser, OTHER_PORT, room, 'Eve');
  // The preflight is refused, so the page cannot even read why: it shows a failed request.
  await expect(eve.locator('p.error')).not.toBeEmpty({ timeout: 10_000 });
  await expect(eve.locator('[data-connection-status]')).toHaveAttribute('data-connection-status', 'connecting');
  // And the room never saw Eve.
  await expect(ada.locator('[data-connection-status]')).toHaveAttribute('data-connection-status', 'connected', {
    timeout: 10_000,
  });
  await ada.waitForTimeout(1_500);
  await expect(ada.getByRole('listitem', { name: /^Eve/ })).toHaveCount(0);
  await expect(ada.getByRole('list', { name: 'People in this room' }).getByRole('listitem')).toHaveCount(1);
  await ada.context().close();
  await eve.context().close();
});
