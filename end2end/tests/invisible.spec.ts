import { expect, test } from '@playwright/test';
import { face, faces, joinRoom, newUser, uniqueRoom, userIdOf } from '../support/presence';

test('appear offline: others see a leave, then one join; joining invisibly is seen by nobody, on any path', async ({
  browser,
}) => {
  const room = uniqueRoom('invisible');
  const [ca, cb, cc] = await Promise.all([newUser(browser), newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  const b = await joinRoom(cb, room, 'Bob');
  const [ida, idb] = [await userIdOf(a), await userIdOf(b)];
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online');

  // Bob appears offline: Alice sees him offline (a leave), and no session of his.
  await b.locator('#appear-offline').check();
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 2_000 });
  await expect(a.locator(`.session[data-user="${idb}"]`)).toHaveCount(0);
  // He is still present: connected, watching Alice.
  await expect(b.locator('[data-connection-status="connected"]')).toBeVisible();
  await expect(face(b, ida)).toHaveAttribute('data-presence-status', 'online');
  // What he does now is nobody's business.
  await b.locator('[data-section="agenda"]').click();
  await b.waitForTimeout(1_000);
  await expect(a.locator(`.session[data-user="${idb}"]`)).toHaveCount(0);
  // Visible again: online, with where he is now.
  await b.locator('#appear-offline').uncheck();
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
  await expect(a.locator(`.session[data-user="${idb}"]`)).toHaveAttribute('data-section', 'agenda');

  // Carol joins invisibly: she sees everyone; nobody sees her, live or in a fresh page.
  const c = await cc.newPage();
  await c.goto(`/rooms/${encodeURIComponent(room)}?name=Carol&invisible=1`);
  await expect(c.locator('main[data-hydrated="true"]')).toBeVisible();
  await expect(c.locator('[data-connection-status="connected"]')).toBeVisible({ timeout: 10_000 });
  const idc = await userIdOf(c);
  await expect(c.locator('#appear-offline')).toBeChecked();
  await expect(face(c, ida)).toHaveAttribute('data-presence-status', 'online');
  await expect(face(c, idb)).toHaveAttribute('data-presence-status', 'online');
  await expect(face(c, idc)).toHaveCount(0);
  await a.waitForTimeout(1_500);
  await expect(face(a, idc)).toHaveCount(0);
  await expect(faces(a)).toHaveCount(2);
  // The server-rendered page (before any script) has no trace of her either.
  const html = await (await a.request.get(a.url())).text();
  expect(html).toContain(idb);
  expect(html).not.toContain(idc);
  expect(html).not.toContain('Carol');
  // She shows herself: one face more, online.
  await c.locator('#appear-offline').uncheck();
  await expect(face(a, idc)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
  await expect(faces(a)).toHaveCount(3);
  await Promise.all([ca.close(), cb.close(), cc.close()]);
});
