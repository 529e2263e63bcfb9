import { expect, test } from '@playwright/test';
import { DemoServer } from '../support/server';
import { blinks, face, joinRoom, newUser, recordBlinks, uniqueRoom, userIdOf } from '../support/presence';

const HEARTBEATS = '**/api/presence/heartbeat';

test('at default settings a 3 s network blip shows nothing, and a lost network shows within 15 s', async ({
  browser,
}) => {
  test.setTimeout(90_000);
  // The defaults: a 10 s interval (so a 14.5 s deadline), a 5 s socket grace.
  const server = new DemoServer(Number(process.env.NETWORK_PORT ?? 3520), {
    PRESENCE_INTERVAL_MS: '10000',
    PRESENCE_SUBSCRIPTION_GRACE_MS: '5000',
  });
  await server.start();
  try {
    const room = uniqueRoom('network');
    const [ca, cb] = await Promise.all([newUser(browser, server.url), newUser(browser, server.url)]);
    const a = await joinRoom(ca, room, 'Alice');
    const b = await joinRoom(cb, room, 'Bob');
    const idb = await userIdOf(b);
    await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online');
    await recordBlinks(a, idb);
    const isHeartbeat = (r: { url(): string }) => r.url().includes('/api/presence/heartbeat');

    // A 3 s blip over Bob's next heartbeat: its requests fail, as they would with no network
    // (the socket stays up, as a real connection does through a short blip).
    await b.waitForRequest(isHeartbeat, { timeout: 15_000 });
    await b.waitForTimeout(9_000);
    await cb.route(HEARTBEATS, (r) => r.abort('internetdisconnected'));
    await b.waitForTimeout(3_000);
    await cb.unroute(HEARTBEATS);
    // Past the deadline the missed heartbeat had: Alice never saw Bob go.
    await a.waitForTimeout(6_000);
    expect(await blinks(a)).toEqual([]);

    // The network goes for good right after a heartbeat (the worst moment): nothing more gets
    // through, and the socket is not closed either (a lost network sends no FIN).
    await a.evaluate((id) => {
      const w = window as unknown as { __offlineAt?: number };
      const check = () => {
        const li = document.querySelector(`ul[aria-label="People in this room"] > li[data-presence-user="${id}"]`);
        if (w.__offlineAt === undefined && li?.getAttribute('data-presence-status') === 'offline') {
          w.__offlineAt = Date.now();
        }
      };
      new MutationObserver(check).observe(document.body, { subtree: true, childList: true, attributes: true });
    }, idb);
    await b.waitForResponse((r) => isHeartbeat(r.request()), { timeout: 15_000 });
    await cb.route('**/api/presence/**', (r) => r.abort('internetdisconnected'));
    const lostAt = await a.evaluate(() => Date.now());
    await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 20_000 });
    const offlineAt = await a.evaluate(() => (window as unknown as { __offlineAt?: number }).__offlineAt);
    const noticedAfter = offlineAt! - lostAt;
    console.log(`lost network noticed after ${noticedAfter} ms`);
    expect(noticedAfter).toBeGreaterThan(10_000); // not before the deadline
    expect(noticedAfter).toBeLessThanOrEqual(15_000);
    await Promise.all([ca.close(), cb.close()]);
  } finally {
    await server.kill();
  }
});
