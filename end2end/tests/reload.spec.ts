import { expect, test } from '@playwright/test';
import { blinks, face, joinRoom, newUser, recordBlinks, uniqueRoom, userIdOf } from '../support/presence';

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
