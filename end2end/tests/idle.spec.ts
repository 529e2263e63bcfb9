import { expect, test } from '@playwright/test';
import { DemoServer } from '../support/server';
import { face, joinRoom, newUser, uniqueRoom, userIdOf } from '../support/presence';

test('a visible tab with no input turns idle (one update, same face), and input makes it active at once', async ({
  browser,
}) => {
  // Idle after 2 s without input, heartbeats every second (so idle shows within about 3 s).
  const server = new DemoServer(Number(process.env.IDLE_PORT ?? 3530), { PRESENCE_IDLE_AFTER_MS: '2000' });
  await server.start();
  try {
    const room = uniqueRoom('idle');
    const [ca, cb] = await Promise.all([newUser(browser, server.url), newUser(browser, server.url)]);
    const a = await joinRoom(ca, room, 'Alice');
    const b = await joinRoom(cb, room, 'Bob');
    const idb = await userIdOf(b);
    await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online');
    await face(a, idb).evaluate((node) => ((window as unknown as { bobFace: Element }).bobFace = node));

    // Bob does nothing: idle, dimmed, "Idle for …", the same face node (an update, not a leave
    // and a join).
    await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'idle', { timeout: 5_000 });
    await expect(face(a, idb)).toContainText('Idle for');
    expect(await face(a, idb).evaluate((node) => node === (window as unknown as { bobFace: Element }).bobFace)).toBe(
      true,
    );
    const opacity = await face(a, idb)
      .locator('.lp-face__avatar')
      .evaluate((n) => getComputedStyle(n).opacity);
    expect(Number(opacity)).toBeLessThan(1);
    // Bob moves the mouse: active again at once (not at the next interval).
    const movedAt = Date.now();
    await b.mouse.move(50, 50);
    await b.mouse.move(80, 90);
    await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 1_500 });
    expect(Date.now() - movedAt).toBeLessThan(1_500);
    await Promise.all([ca.close(), cb.close()]);
  } finally {
    await server.kill();
  }
});
