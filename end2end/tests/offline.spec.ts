import { expect, test } from '@playwright/test';
import { face, faces, joinRoom, newUser, uniqueRoom, userIdOf } from '../support/presence';

test('a client that drops off the network and comes back: no flicker, no ghost', async ({ browser }) => {
  const room = uniqueRoom('offline');
  const [ca, cb] = await Promise.all([newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  const b = await joinRoom(cb, room, 'Bob');
  const idb = await userIdOf(b);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online');

  // A blip shorter than the timeout (2.5 × 1 s): A never sees Bob go.
  await cb.setOffline(true);
  const samples: string[] = [];
  for (let i = 0; i < 6; i++) {
    await a.waitForTimeout(200);
    samples.push((await face(a, idb).getAttribute('data-presence-status')) ?? 'missing');
  }
  await cb.setOffline(false);
  for (let i = 0; i < 10; i++) {
    await a.waitForTimeout(200);
    samples.push((await face(a, idb).getAttribute('data-presence-status')) ?? 'missing');
  }
  expect(new Set(samples)).toEqual(new Set(['online']));

  // A long outage: Bob goes offline within the timeout; Bob's page says it is not connected.
  await cb.setOffline(true);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 6_000 });
  await expect(b.locator('[data-connection-status="connected"]')).toHaveCount(0);
  // Back: Bob rejoins by himself, as one face with one session, and sees Alice again.
  await cb.setOffline(false);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 10_000 });
  await expect(b.locator('[data-connection-status="connected"]')).toBeVisible({ timeout: 10_000 });
  await expect(faces(a)).toHaveCount(2);
  await expect(a.locator(`.session[data-user="${idb}"]`)).toHaveCount(1);
  await expect(face(b, await userIdOf(a))).toHaveAttribute('data-presence-status', 'online');
  await Promise.all([ca.close(), cb.close()]);
});
