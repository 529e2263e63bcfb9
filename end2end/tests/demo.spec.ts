import { expect, test } from '@playwright/test';
import { face, faces, joinRoom, newUser, uniqueRoom, userIdOf } from '../support/presence';

test('the demo page loads in Chromium and shows the joined session', async ({ browser }) => {
  const errors: string[] = [];
  const context = await newUser(browser);
  const room = uniqueRoom('smoke');
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.close();

  const joined = await joinRoom(context, room, 'Ada Lovelace');
  joined.on('pageerror', (e) => errors.push(e.message));
  await expect(joined.locator('h1.room-title')).toHaveText(room);
  const me = await userIdOf(joined);
  const myFace = face(joined, me);
  await expect(myFace).toHaveAttribute('data-presence-status', 'online');
  await expect(myFace).toHaveAccessibleName('Ada Lovelace (you), online');
  await expect(myFace).toContainText('AL');
  await expect(faces(joined)).toHaveCount(1);
  // The server lists the session too.
  const list = await joined.evaluate(async (room) => {
    const hb = await fetch('/api/presence/heartbeat', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room, user: 'probe', session: 'probe', name: 'Probe' }),
    }).then((r) => r.json());
    const list = await fetch('/api/presence/list?room_token=' + encodeURIComponent(hb.room_token)).then((r) =>
      r.json(),
    );
    await fetch('/api/presence/disconnect', { method: 'POST', body: new URLSearchParams({ session_token: hb.session_token }) });
    return list;
  }, room);
  expect(list.users.map((u: { user_id: string }) => u.user_id)).toContain(me);
  expect(errors).toEqual([]);
  await context.close();
});

test('the landing page leads to a shareable room URL', async ({ browser }) => {
  const context = await newUser(browser);
  const page = await context.newPage();
  await page.goto('/');
  await expect(page.locator('main[data-hydrated="true"]')).toBeVisible();
  const room = uniqueRoom('landing');
  await page.getByLabel('Your name').fill('Grace Hopper');
  await page.getByLabel('Room').fill(room);
  await page.getByRole('button', { name: 'Join room' }).click();
  await expect(page).toHaveURL(new RegExp(`/rooms/${room}\\?name=Grace%20Hopper$`));
  await expect(page.locator('[data-connection-status="connected"]')).toBeVisible();
  await expect(faces(page)).toHaveCount(1);

  // Without a name the room asks for one.
  await page.goto(`/rooms/${room}`);
  await expect(page.getByRole('heading', { name: `Join ${room}` })).toBeVisible();
  await context.close();
});
