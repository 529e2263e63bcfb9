import { expect, test } from '@playwright/test';
import { DemoServer } from '../support/server';
import { face, joinRoom, newUser, uniqueRoom, userIdOf } from '../support/presence';

test('9. the server restarts; clients rejoin by themselves', async ({ browser }) => {
  const server = new DemoServer(Number(process.env.RESTART_PORT ?? 3410));
  await server.start();
  try {
    const room = uniqueRoom('restart');
    const [ca, cb] = await Promise.all([newUser(browser, server.url), newUser(browser, server.url)]);
    const a = await joinRoom(ca, room, 'Alice');
    const b = await joinRoom(cb, room, 'Bob');
    const [ida, idb] = [await userIdOf(a), await userIdOf(b)];
    await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online');

    await server.kill();
    await expect(a.locator('[data-connection-status="reconnecting"]')).toBeVisible({ timeout: 5_000 });
    await server.start();
    // Memory is gone; each client's next heartbeat rejoins and its stream resubscribes.
    await expect(a.locator('[data-connection-status="connected"]')).toBeVisible({ timeout: 15_000 });
    await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 15_000 });
    await expect(face(b, ida)).toHaveAttribute('data-presence-status', 'online', { timeout: 15_000 });
    await Promise.all([ca.close(), cb.close()]);
  } finally {
    await server.kill();
  }
});
