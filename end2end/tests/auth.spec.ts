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

  // Bob reloads: his new page takes on his session although the server stamped his id (the
  // row Alice sees for his tab keeps its session id).
  const bobsRow = alice.locator('.session[data-user="demo:Bob"]');
  const bobsSession = await bobsRow.getAttribute('data-session');
  await bob.reload();
  await expect(bob.locator('[data-connection-status="connected"]')).toBeVisible({ timeout: 10_000 });
  await bob.waitForTimeout(2_000);
  await expect(bobsRow).toHaveCount(1);
  expect(await bobsRow.getAttribute('data-session')).toBe(bobsSession);

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

test('the server-rendered room page shows the list only to those who may see it', async ({ browser, request }) => {
  const room = uniqueRoom('ssr-auth');
  const [cb, cc] = await Promise.all([newUser(browser, server.url), newUser(browser, server.url)]);
  const bob = await cb.newPage();
  await signInAndJoin(bob, 'Bobby Tables', room);
  // Anyone, not signed in: the page renders, without who is there.
  const anonymous = await request.get(`${server.url}/rooms/${room}?name=Eve`);
  expect(anonymous.ok()).toBe(true);
  const html = await anonymous.text();
  expect(html).toContain('lp-facepile');
  expect(html).not.toContain('demo:Bobby Tables');
  expect(html).not.toContain('Bobby Tables');
  // A signed-in caller (who could join and list the room anyway): the first paint has the list.
  const carol = await cc.newPage();
  await signInAndJoin(carol, 'Carol', uniqueRoom('elsewhere'));
  const cookies = await cc.cookies();
  const signedIn = await request.get(`${server.url}/rooms/${room}?name=Carol`, {
    headers: { cookie: cookies.map((c) => `${c.name}=${c.value}`).join('; ') },
  });
  expect(await signedIn.text()).toContain('data-presence-user="demo:Bobby Tables"');
  // A cross-site form cannot sign anyone in.
  const forged = await request.post(`${server.url}/api/demo/sign-in`, {
    headers: { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
    data: 'name=Mallory',
  });
  expect(forged.status()).toBe(403);
  expect(forged.headers()['set-cookie']).toBeUndefined();
  // Nor can a name whose user id would be too long to heartbeat with.
  const long = await request.post(`${server.url}/api/demo/sign-in`, {
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    data: `name=${encodeURIComponent('𝔸'.repeat(40))}`,
  });
  expect(long.status()).toBe(400);
  await Promise.all([cb.close(), cc.close()]);
});
