import { expect, test } from '@playwright/test';
import { DemoServer } from '../support/server';
import { face, joinRoom, newUser, uniqueRoom, userIdOf } from '../support/presence';

// Two demo servers share rooms through one Redis (the test command starts a redis-server and
// passes its URL). Without one this file is skipped, unless PRESENCE_REQUIRE_REDIS says it must run.
const redisUrl = process.env.PRESENCE_TEST_REDIS_URL;

test.describe('several app servers on one Redis', () => {
  test.skip(!redisUrl && !process.env.PRESENCE_REQUIRE_REDIS, 'set PRESENCE_TEST_REDIS_URL to run');

  test('10. users on two servers see each other join and leave; a dead server\'s users expire', async ({
    browser,
  }) => {
    expect(redisUrl, 'PRESENCE_REQUIRE_REDIS is set but PRESENCE_TEST_REDIS_URL is not').toBeTruthy();
    const env = {
      PRESENCE_REDIS_URL: redisUrl!,
      PRESENCE_REDIS_PREFIX: `e2e-${Date.now().toString(36)}`,
      PRESENCE_SECRET: 'end-to-end shared secret',
    };
    const one = new DemoServer(Number(process.env.REDIS_DEMO_PORT_1 ?? 3430), env);
    const two = new DemoServer(Number(process.env.REDIS_DEMO_PORT_2 ?? 3440), env);
    await Promise.all([one.start(), two.start()]);
    try {
      const room = uniqueRoom('shared');
      const [ca, cb, cc] = await Promise.all([
        newUser(browser, one.url),
        newUser(browser, two.url),
        newUser(browser, two.url),
      ]);
      const a = await joinRoom(ca, room, 'Ada on one');
      const b = await joinRoom(cb, room, 'Bo on two');
      const [ida, idb] = [await userIdOf(a), await userIdOf(b)];
      // Join: each sees the other, across servers, within 2 s.
      await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
      await expect(face(b, ida)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });

      // Leave: Bo closes the tab on server two; Ada on server one sees it within 2 s.
      await b.close({ runBeforeUnload: true });
      await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 2_000 });

      // A server dies with its users: Cy (on two) goes offline for Ada through server one's
      // scheduler, within the timeout (2.5 × the 1 s test interval, plus a heartbeat's slack).
      const c = await joinRoom(cc, room, 'Cy on two');
      const idc = await userIdOf(c);
      await expect(face(a, idc)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
      await two.kill();
      await expect(face(a, idc)).toHaveAttribute('data-presence-status', 'offline', { timeout: 6_000 });
      await expect(a.locator('[data-connection-status="connected"]')).toBeVisible();
      await Promise.all([ca.close(), cb.close(), cc.close()]);
    } finally {
      await Promise.all([one.kill(), two.kill()]);
    }
  });
});
