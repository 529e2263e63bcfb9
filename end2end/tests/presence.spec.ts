import { expect, test } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';
import { face, faces, joinRoom, newUser, setHidden, uniqueRoom, userIdOf } from '../support/presence';

test('1. A and B see each other within 2 s; C in another room sees neither', async ({ browser }) => {
  const room = uniqueRoom('r1');
  const [ca, cb, cc] = await Promise.all([newUser(browser), newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  const b = await joinRoom(cb, room, 'Bob');
  const c = await joinRoom(cc, uniqueRoom('r2'), 'Carol');
  const [ida, idb] = [await userIdOf(a), await userIdOf(b)];
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
  await expect(face(b, ida)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
  await expect(face(a, idb)).toHaveAccessibleName('Bob, online');
  await c.waitForTimeout(500);
  await expect(face(c, ida)).toHaveCount(0);
  await expect(face(c, idb)).toHaveCount(0);
  await expect(faces(c)).toHaveCount(1);
  await Promise.all([ca.close(), cb.close(), cc.close()]);
});

test('2. B changes state; A sees it within 1 s and B keeps the same face node and row', async ({ browser }) => {
  const room = uniqueRoom('state');
  const [ca, cb] = await Promise.all([newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  const b = await joinRoom(cb, room, 'Bob');
  const idb = await userIdOf(b);
  await expect(face(a, idb)).toBeVisible();
  const bobRow = a.locator(`.session[data-user="${idb}"]`);
  await expect(bobRow).toContainText('in Introduction');
  await a.evaluate((id) => {
    (window as any).__bobFace = document.querySelector(
      `ul[aria-label="People in this room"] > li[data-presence-user="${id}"]`,
    );
    (window as any).__bobRow = document.querySelector(`.session[data-user="${id}"]`);
  }, idb);

  await b.getByRole('button', { name: 'Agenda' }).click();
  await expect(bobRow).toHaveAttribute('data-section', 'agenda', { timeout: 1_000 });
  await expect(bobRow).toContainText('in Agenda');
  // The row keyed by session id is the same DOM node, its text changed in place.
  const sameRow = await a.evaluate((id) => {
    const before = (window as any).__bobRow as Element;
    return before === document.querySelector(`.session[data-user="${id}"]`) && before.isConnected;
  }, idb);
  expect(sameRow).toBe(true);
  await b.locator('#draft').pressSequentially('hi', { delay: 20 });
  await expect(bobRow).toHaveAttribute('data-typing', 'true', { timeout: 1_000 });
  await expect(bobRow).toHaveAttribute('data-typing', 'false', { timeout: 4_000 });

  const same = await a.evaluate((id) => {
    const now = document.querySelector(`ul[aria-label="People in this room"] > li[data-presence-user="${id}"]`);
    const before = (window as any).__bobFace as Element;
    return before === now && before.isConnected;
  }, idb);
  expect(same).toBe(true);
  await Promise.all([ca.close(), cb.close()]);
});

test('3. B closes the tab; A sees B offline within 2 s', async ({ browser }) => {
  const room = uniqueRoom('close');
  const [ca, cb] = await Promise.all([newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  const b = await joinRoom(cb, room, 'Bob');
  const idb = await userIdOf(b);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online');
  await b.close({ runBeforeUnload: true });
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 2_000 });
  await Promise.all([ca.close(), cb.close()]);
});

test('4. B vanishes without unload: offline within the timeout, never while still there', async ({ browser }) => {
  const room = uniqueRoom('vanish');
  const [ca, cb, cc] = await Promise.all([newUser(browser), newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  const b = await joinRoom(cb, room, 'Bob');
  const idb = await userIdOf(b);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online');
  // While B is there, A never sees B leave: 5 s is two full expiry windows at a 1 s interval.
  const samples: string[] = [];
  for (let i = 0; i < 25; i++) {
    samples.push((await face(a, idb).getAttribute('data-presence-status')) ?? 'missing');
    await a.waitForTimeout(200);
  }
  expect(new Set(samples)).toEqual(new Set(['online']));

  // The page goes away without beforeunload: the server sees the socket close.
  await b.close();
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 4_000 });

  // A whole profile drops off the network: no socket close reaches the server, heartbeats stop,
  // and the session expires after 2.5 intervals.
  const c = await joinRoom(cc, room, 'Carol');
  const idc = await userIdOf(c);
  await expect(face(a, idc)).toHaveAttribute('data-presence-status', 'online');
  await cc.setOffline(true);
  await expect(face(a, idc)).toHaveAttribute('data-presence-status', 'offline', { timeout: 6_000 });
  await Promise.all([ca.close(), cb.close(), cc.close()]);
});

test('5. the same user in two tabs is one face; closing one keeps them online', async ({ browser }) => {
  const room = uniqueRoom('tabs');
  const [ca, cb] = await Promise.all([newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  const b1 = await joinRoom(cb, room, 'Bob');
  const b2 = await joinRoom(cb, room, 'Bob');
  const idb = await userIdOf(b1);
  expect(await userIdOf(b2)).toBe(idb);
  await expect(a.locator(`.session[data-user="${idb}"]`)).toHaveCount(2);
  await expect(face(a, idb)).toHaveCount(1);
  await expect(faces(a)).toHaveCount(2);
  // One of Bob's tabs moves on: its row follows; the other tab's row stays as it was (a diff
  // carries only the tab that changed, and the page keeps the other).
  const rows = a.locator(`.session[data-user="${idb}"]`);
  await b2.getByRole('button', { name: 'Agenda' }).click();
  await expect(rows.filter({ hasText: 'in Agenda' })).toHaveCount(1, { timeout: 1_000 });
  await expect(rows.filter({ hasText: 'in Introduction' })).toHaveCount(1);
  // Bob's other tab is listed in each of Bob's tabs, as "your other tab".
  await expect(b1.locator(`.session[data-user="${idb}"] .tag`)).toHaveText('your other tab');
  await b2.close({ runBeforeUnload: true });
  await expect(a.locator(`.session[data-user="${idb}"]`)).toHaveCount(1, { timeout: 2_000 });
  await expect(rows.first()).toContainText('in Introduction');
  await a.waitForTimeout(1_500);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online');
  await Promise.all([ca.close(), cb.close()]);
});

test('6. a hidden tab turns away, not offline; visible again turns online', async ({ browser }) => {
  const room = uniqueRoom('hidden');
  const [ca, cb] = await Promise.all([newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  const b = await joinRoom(cb, room, 'Bob');
  const idb = await userIdOf(b);
  await setHidden(b, true);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'away', { timeout: 2_000 });
  await expect(face(a, idb)).toHaveAccessibleName('Bob, away');
  // Hidden tabs' timers are throttled; the stretched deadline (2.5 × 60 s) outlasts that.
  await a.waitForTimeout(4_000);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'away');
  await setHidden(b, false);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
  await Promise.all([ca.close(), cb.close()]);
});

test('7. an offline user shows "last seen"', async ({ browser }) => {
  const room = uniqueRoom('seen');
  const [ca, cb] = await Promise.all([newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  const b = await joinRoom(cb, room, 'Bob');
  const idb = await userIdOf(b);
  await b.close({ runBeforeUnload: true });
  const bob = face(a, idb);
  await expect(bob).toHaveAttribute('data-presence-status', 'offline');
  await expect(bob).toHaveAccessibleName(/^Bob, offline, last seen just now$/);
  await bob.focus();
  await expect(bob.getByRole('tooltip')).toBeVisible();
  await expect(bob.getByRole('tooltip')).toContainText('Last seen just now');
  // A fresh page renders the offline user on the server already.
  const fresh = await joinRoom(ca, room, 'Alice');
  await expect(face(fresh, idb)).toHaveAttribute('data-presence-status', 'offline');
  await Promise.all([ca.close(), cb.close()]);
});

test('8. a hostile name shows as text', async ({ browser }) => {
  const room = uniqueRoom('xss');
  const hostile = '<img src=x onerror=alert(1)>';
  const [ca, cb] = await Promise.all([newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  let dialogs = 0;
  a.on('dialog', async (d) => {
    dialogs++;
    await d.dismiss();
  });
  const b = await joinRoom(cb, room, hostile);
  const idb = await userIdOf(b);
  await expect(face(a, idb)).toHaveAccessibleName(`${hostile}, online`);
  await expect(a.locator(`.session[data-user="${idb}"] .session-name`)).toHaveText(hostile);
  expect(await a.locator('img[src="x"]').count()).toBe(0);
  // Server-rendered too.
  const c = await joinRoom(ca, room, 'Alice again');
  expect(await c.locator('img[src="x"]').count()).toBe(0);
  await expect(face(c, idb)).toHaveAccessibleName(`${hostile}, online`);
  expect(dialogs).toBe(0);
  await Promise.all([ca.close(), cb.close()]);
});

test('a busy room, for the record (screenshot artifact)', async ({ browser }) => {
  const room = uniqueRoom('busy');
  const names = ['Ada Lovelace', 'Grace Hopper', 'Alan Turing', 'Katherine Johnson', 'Édouard Lucas', '李 小龙', 'Linus'];
  const contexts = await Promise.all(names.map(() => newUser(browser)));
  const pages = [];
  for (let i = 0; i < names.length; i++) pages.push(await joinRoom(contexts[i], room, names[i]));
  await pages[1].getByRole('button', { name: 'Agenda' }).click();
  await pages[2].getByRole('button', { name: 'Notes' }).click();
  await pages[3].locator('#draft').pressSequentially('hello', { delay: 30 });
  await setHidden(pages[4], true);
  await pages[6].close({ runBeforeUnload: true });
  const main = pages[0];
  await main.setViewportSize({ width: 1200, height: 760 });
  await expect(faces(main)).toHaveCount(5);
  await expect(main.getByRole('button', { name: /Show all 7 people/ })).toBeVisible();
  await expect(main.locator('.session[data-typing="true"]')).toHaveCount(1);
  await main.getByRole('button', { name: /Show all/ }).click();
  await expect(main.getByRole('dialog')).toBeVisible();
  const dir = path.join(__dirname, '..', 'artifacts');
  fs.mkdirSync(dir, { recursive: true });
  await main.screenshot({ path: path.join(dir, 'busy-room.png') });
  await main.getByRole('button', { name: /Show all/ }).press('Escape');
  await expect(main.getByRole('dialog')).toBeHidden();
  await Promise.all(contexts.map((c) => c.close()));
});
