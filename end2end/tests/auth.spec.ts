import { expect, test, Page } from '@playwright/test';
import { DemoServer } from '../support/server';
import { face, newUser, uniqueRoom } from '../support/presence';

// The demo in sign-in mode: the server stamps each caller's identity from a signed cookie.
const server = new DemoServer(Number(process.env.AUTH_PORT ?? 3420), { PRESENCE_DEMO_AUTH: '1' });
test.beforeAll(async () => server.start());
test.afterAll(async () => server.kill());

async function signInAndJoin(page: Page, name: string, room: string) {
  await page.goto('/');
  await expect(page.locator('main[data-hydrated="true"]')).toBeVisible();
  await page.getByLabel('Your name').fill(name);
  await page.getByLabel('Room').fill(room);
  await page.getByRole('button', { name: 'Sign in and join' }).click();
  await expect(page.locator('[data-connection-status="connected"]')).toBeVisible({ timeout: 10_000 });
}

test('signed-in users see each other; nobody can act as someone else', async ({ browser }) => {
  const room = uniqueRoom('auth');
  const [ca, cb, cc] = await Promise.all([
    newUser(browser, server.url),
    newUser(browser, server.url),
    newUser(browser, server.url),
  ]);
  const alice = await ca.newPage();
  const bob = await cb.newPage();
  await signInAndJoin(alice, 'Alice', room);
  await signInAndJoin(bob, 'Bob', room);
  // Identities are the server's: "demo:<name>", whatever the page's local id was.
  await expect(face(alice, 'demo:Bob')).toHaveAccessibleName('Bob, online');
  await expect(face(bob, 'demo:Alice')).toHaveAccessibleName('Alice, online');
  await expect(face(alice, 'demo:Alice')).toHaveAccessibleName('Alice (you), online');

  // Alice claims to be Bob: the server stamps Alice.
  const forged = await alice.evaluate(async (room) => {
    const r = await fetch('/api/presence/heartbeat', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room, user: 'demo:Bob', session: 'forged', name: 'Bob (really)' }),
    });
    return r.json();
  }, room);
  expect(forged.user_id).toBe('demo:Alice');

  // Bob's session token in Alice's hands does not let her end it.
  const bobsToken = await bob.evaluate(async (room) => {
    const r = await fetch('/api/presence/heartbeat', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room, user: 'x', session: 'bob-extra', name: 'Bob' }),
    });
    return (await r.json()).session_token as string;
  }, room);
  const status = await alice.evaluate(async (token) => {
    const r = await fetch('/api/presence/disconnect', { method: 'POST', body: new URLSearchParams({ session_token: token }) });
    return { status: r.status, body: await r.json() };
  }, bobsToken);
  expect(status.status).toBe(403);
  expect(status.body.code).toBe('forbidden');

  // Without signing in, the room says why it cannot join.
  const anonymous = await cc.newPage();
  await anonymous.goto(`/rooms/${room}?name=Eve`);
  await expect(anonymous.locator('main[data-hydrated="true"]')).toBeVisible();
  await expect(anonymous.getByRole('alert')).toContainText('Cannot join: sign in first');
  await expect(face(alice, 'demo:Eve')).toHaveCount(0);
  await Promise.all([ca.close(), cb.close(), cc.close()]);
});
