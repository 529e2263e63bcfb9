import { expect, test, Browser, Page } from '@playwright/test';
import path from 'node:path';
import { DemoServer, ROOT } from '../support/server';
import { uniqueRoom } from '../support/presence';

// The README's quick start as its own app (examples/quickstart), used as a stranger would:
// two browsers in one room, a state change, a closed tab. Built by `.ci/test` with
// `cargo leptos --manifest-path examples/quickstart/Cargo.toml build`.
const server = new DemoServer(
  Number(process.env.QUICKSTART_PORT ?? 3490),
  { LEPTOS_OUTPUT_NAME: 'presence-quickstart', LEPTOS_SITE_ROOT: 'target/quickstart' },
  path.join(ROOT, 'target', 'debug', 'presence-quickstart'),
);
test.beforeAll(async () => server.start());
test.afterAll(async () => server.kill());

/** Opens the room as `name` in a fresh browser profile; waits until it has hydrated and joined. */
async function open(browser: Browser, room: string, name: string): Promise<Page> {
  const context = await browser.newContext({ baseURL: server.url });
  const page = await context.newPage();
  await page.goto(`/rooms/${room}?name=${encodeURIComponent(name)}`);
  // The browser side made this user's id: hydrated. Its own face: joined.
  await page.waitForFunction(() => localStorage.getItem('leptos-presence:user') !== null);
  const me = await page.evaluate(() => localStorage.getItem('leptos-presence:user'));
  await expect(page.locator(`li[data-presence-user="${me}"]`)).toHaveAttribute('data-presence-status', 'online');
  return page;
}

test('the quick start app: two browsers see each other, a state change shows, a closed tab goes offline', async ({
  browser,
}) => {
  const room = uniqueRoom('quick');
  const ada = await open(browser, room, 'Ada');
  const bo = await open(browser, room, 'Bo');
  const pile = (page: Page) => page.getByRole('list', { name: 'People in this room' });
  await expect(pile(ada).getByRole('listitem', { name: 'Bo, online' })).toBeVisible({ timeout: 5_000 });
  await expect(pile(bo).getByRole('listitem', { name: 'Ada, online' })).toBeVisible();
  const boRow = ada.locator('p', { hasText: 'Bo is in' });
  await expect(boRow).toHaveText('Bo is in intro');
  await ada.evaluate(() => {
    (window as any).__row = [...document.querySelectorAll('p')].find((p) => p.textContent?.startsWith('Bo is in'));
  });

  await bo.getByRole('button', { name: 'FAQ' }).click();
  await expect(boRow).toHaveText('Bo is in faq', { timeout: 2_000 });
  // The README's keyed <For/> kept the row and changed its text in place.
  expect(await ada.evaluate(() => (window as any).__row.isConnected && (window as any).__row.textContent)).toBe(
    'Bo is in faq',
  );

  await bo.close({ runBeforeUnload: true });
  await expect(pile(ada).getByRole('listitem', { name: /^Bo, offline/ })).toBeVisible({ timeout: 3_000 });
  await expect(boRow).toHaveCount(0);
  await ada.context().close();
  await bo.context().close();
});
