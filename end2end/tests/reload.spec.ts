import { expect, test } from '@playwright/test';
import { face, joinRoom, newUser, uniqueRoom, userIdOf } from '../support/presence';

/** Records on `page` every moment `userId`'s face is anything but online (or is gone). */
async function recordBlinks(page: import('@playwright/test').Page, userId: string): Promise<void> {
  await page.evaluate((id) => {
    const w = window as unknown as { __blinks: string[] };
    w.__blinks = [];
    const check = () => {
      const li = document.querySelector(`ul[aria-label="People in this room"] > li[data-presence-user="${id}"]`);
      const status = li?.getAttribute('data-presence-status') ?? 'gone';
      if (status !== 'online') w.__blinks.push(status);
    };
    new MutationObserver(check).observe(document.body, { subtree: true, childList: true, attributes: true });
  }, userId);
}

async function blinks(page: import('@playwright/test').Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __blinks: string[] }).__blinks);
}

test('a reload is not a leave: the watcher never sees the user offline; a closed tab is offline within 2 s', async ({
  browser,
}) => {
  const room = uniqueRoom('reload');
  const [ca, cb] = await Promise.all([newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  const b = await joinRoom(cb, room, 'Bob');
  const idb = await userIdOf(b);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online');
  await recordBlinks(a, idb);

  // Two reloads in a row (the page says it is going; the new page is there within the grace).
  for (let i = 0; i < 2; i++) {
    await b.reload();
    await expect(b.locator('[data-connection-status="connected"]')).toBeVisible({ timeout: 10_000 });
  }
  // Past the server's leave grace (1.5 s): the goodbyes were taken back or their sessions left
  // with Bob still online; either way Alice never saw Bob go.
  await a.waitForTimeout(2_500);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online');
  expect(await blinks(a)).toEqual([]);

  // A real close: offline within 2 s (the leave grace, then one message).
  await b.close({ runBeforeUnload: true });
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 2_000 });
  await Promise.all([ca.close(), cb.close()]);
});
