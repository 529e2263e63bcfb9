import { expect, test } from '@playwright/test';
import { blinks, face, joinRoom, newUser, recordBlinks, uniqueRoom, userIdOf } from '../support/presence';

test('a reload is not a leave: the watcher sees nothing happen; a closed tab is offline within 2 s', async ({
  browser,
}) => {
  const room = uniqueRoom('reload');
  const [ca, cb] = await Promise.all([newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  const b = await joinRoom(cb, room, 'Bob');
  const idb = await userIdOf(b);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online');
  await recordBlinks(a, idb);
  const row = a.locator(`.session[data-user="${idb}"]`);
  const session = await row.getAttribute('data-session');
  // Alice's row for Bob's tab: the same element all along (no session left, none joined).
  await row.evaluate((node) => ((window as unknown as { bobRow: Element }).bobRow = node));

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
  // The new page took on the old one's session (kept in the tab's sessionStorage): to Alice,
  // nothing happened at all.
  await expect(row).toHaveCount(1);
  expect(await row.getAttribute('data-session')).toBe(session);
  expect(await row.evaluate((node) => node === (window as unknown as { bobRow: Element }).bobRow)).toBe(true);

  // A window Bob's page opens copies its sessionStorage (Sanity's caveat): it is a tab of its
  // own all the same, with a session of its own.
  const [popup] = await Promise.all([b.waitForEvent('popup'), b.evaluate((url) => window.open(url), b.url())]);
  await expect(popup.locator('[data-connection-status="connected"]')).toBeVisible({ timeout: 10_000 });
  await expect(row).toHaveCount(2);
  const sessions = await row.evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-session')));
  expect(new Set(sessions).size).toBe(2);
  await popup.close({ runBeforeUnload: true });
  await expect(row).toHaveCount(1, { timeout: 2_500 });
  expect(await row.getAttribute('data-session')).toBe(session);

  // A real close: offline within 2 s (the leave grace, then one message).
  await b.close({ runBeforeUnload: true });
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 2_000 });
  await Promise.all([ca.close(), cb.close()]);
});
