import { expect, test } from '@playwright/test';
import { face, faces, joinRoom, newUser, userIdOf } from '../support/presence';

test('changing rooms leaves the old one and joins the new; navigating away leaves', async ({ browser }) => {
  const [ca, cb, cc] = await Promise.all([newUser(browser), newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, 'design', 'Alice');
  const b = await joinRoom(cb, 'design', 'Bob');
  const c = await joinRoom(cc, 'standup', 'Carol');
  const [ida, idc] = [await userIdOf(a), await userIdOf(c)];
  await expect(face(b, ida)).toHaveAttribute('data-presence-status', 'online');

  // Client-side navigation: the same page, a new room signal.
  await a.getByRole('navigation', { name: 'Rooms' }).getByRole('link', { name: 'standup' }).click();
  await expect(a).toHaveURL(/\/rooms\/standup\?name=Alice$/);
  await expect(face(b, ida)).toHaveAttribute('data-presence-status', 'offline', { timeout: 2_000 });
  await expect(face(c, ida)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
  await expect(face(a, idc)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
  await expect(a.locator('h1.room-title')).toHaveText('standup');
  // The pile now shows the new room only.
  await expect(face(a, await userIdOf(b))).toHaveCount(0);

  // Leaving the room page in-app unmounts the hook: it disconnects by request, no unload involved.
  await a.getByRole('link', { name: '← Home' }).click();
  await expect(a.getByRole('button', { name: 'Join room' })).toBeVisible();
  await expect(face(c, ida)).toHaveAttribute('data-presence-status', 'offline', { timeout: 2_000 });
  await Promise.all([ca.close(), cb.close(), cc.close()]);
});

test('a room the server refuses says why', async ({ browser }) => {
  const context = await newUser(browser);
  const page = await context.newPage();
  const room = 'x'.repeat(129);
  await page.goto(`/rooms/${room}?name=Alice`);
  await expect(page.locator('main[data-hydrated="true"]')).toBeVisible();
  await expect(page.getByRole('alert')).toContainText('Cannot join: invalid room: is 129 bytes; at most 128 allowed');
  await expect(page.locator('[data-connection-status="connected"]')).toHaveCount(0);
  await expect(faces(page)).toHaveCount(0);
  await context.close();
});
