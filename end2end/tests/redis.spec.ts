import { BrowserContext, expect, test } from '@playwright/test';
import { spawn, ChildProcess } from 'node:child_process';
import net from 'node:net';
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
      // Each page says which server it is on and that rooms are shared.
      await expect(a.locator('.server-note')).toHaveAttribute('data-store', 'redis');
      await expect(a.locator('.server-note')).toContainText(`port ${one.port}`);
      await expect(b.locator('.server-note')).toContainText(`port ${two.port}`);
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

  test('11. Redis restarts empty; every client is back within one interval', async ({ browser }) => {
    const redis = new OwnRedis(Number(process.env.REDIS_OWN_PORT ?? 3460));
    await redis.start();
    const env = {
      PRESENCE_REDIS_URL: `redis://127.0.0.1:${redis.port}/`,
      PRESENCE_SECRET: 'end-to-end shared secret',
      // A long interval, so "back" can only come from the rejoin, not from the next beat.
      PRESENCE_INTERVAL_MS: '10000',
    };
    const one = new DemoServer(Number(process.env.REDIS_DEMO_PORT_3 ?? 3470), env);
    const two = new DemoServer(Number(process.env.REDIS_DEMO_PORT_4 ?? 3480), env);
    await Promise.all([one.start(), two.start()]);
    try {
      const room = uniqueRoom('redis-restart');
      const [ca, cb] = await Promise.all([newUser(browser, one.url), newUser(browser, two.url)]);
      const roomToken = roomTokenOf(ca);
      const a = await joinRoom(ca, room, 'Ada on one');
      const b = await joinRoom(cb, room, 'Bo on two');
      const [ida, idb] = [await userIdOf(a), await userIdOf(b)];
      await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });

      const restartedAt = Date.now();
      await redis.kill();
      await redis.start(); // empty: nothing was saved
      // Each server resyncs its subscribers; each client sees it was forgotten and rejoins at
      // once: both sessions exist again (made after the restart), well within one 10 s interval.
      for (const [server, id] of [[one, idb], [two, ida]] as const) {
        await expect
          .poll(async () => rejoinedAfter(server.url, await roomToken, id, restartedAt), { timeout: 5_000 })
          .toBe(true);
      }
      await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 10_000 });
      await expect(face(b, ida)).toHaveAttribute('data-presence-status', 'online', { timeout: 10_000 });
      await expect(face(a, ida)).toHaveCount(1);
      // And presence works as before: B leaves, A sees it.
      await b.close({ runBeforeUnload: true });
      await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 2_000 });
      await Promise.all([ca.close(), cb.close()]);
    } finally {
      await Promise.all([one.kill(), two.kill()]);
      await redis.kill();
    }
  });

  test('12. with Redis, an app server restart loses nothing: nobody goes offline, no session is remade', async ({
    browser,
  }) => {
    const env = {
      PRESENCE_REDIS_URL: redisUrl!,
      PRESENCE_REDIS_PREFIX: `e2e-restart-${Date.now().toString(36)}`,
      PRESENCE_SECRET: 'end-to-end shared secret',
      PRESENCE_INTERVAL_MS: '3000',
    };
    const one = new DemoServer(Number(process.env.REDIS_DEMO_PORT_1 ?? 3430), env);
    const two = new DemoServer(Number(process.env.REDIS_DEMO_PORT_2 ?? 3440), env);
    await Promise.all([one.start(), two.start()]);
    try {
      const room = uniqueRoom('app-restart');
      const [ca, cb] = await Promise.all([newUser(browser, one.url), newUser(browser, two.url)]);
      const roomToken = roomTokenOf(ca);
      const a = await joinRoom(ca, room, 'Ada on one');
      const b = await joinRoom(cb, room, 'Bo on two');
      const [ida, idb] = [await userIdOf(a), await userIdOf(b)];
      await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
      // Record every status Ada's page shows for Bo from now on.
      await a.evaluate((id) => {
        const seen: string[] = [];
        (window as unknown as { seen: string[] }).seen = seen;
        const record = () => {
          const li = document.querySelector(`li[data-presence-user="${id}"]`);
          seen.push(li?.getAttribute('data-presence-status') ?? 'absent');
        };
        new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true });
      }, idb);
      const restartedAt = Date.now();
      await two.kill();
      await expect(b.locator('[data-connection-status="reconnecting"]')).toBeVisible({ timeout: 5_000 });
      await two.start();
      await expect(b.locator('[data-connection-status="connected"]')).toBeVisible({ timeout: 10_000 });
      await expect(face(b, ida)).toHaveAttribute('data-presence-status', 'online');
      // Bo kept the session it had: nothing was remade, and Ada never saw Bo leave.
      const list = await (
        await fetch(`${one.url}/api/presence/list?room_token=${encodeURIComponent(await roomToken)}`)
      ).json();
      const bo = list.users.find((u: { user_id: string }) => u.user_id === idb);
      expect(bo.online).toBe(true);
      expect(bo.sessions).toHaveLength(1);
      expect(bo.sessions[0].joined_at).toBeLessThan(restartedAt);
      const seen = await a.evaluate(() => (window as unknown as { seen: string[] }).seen);
      expect(seen.filter((s) => s !== 'online')).toEqual([]);
      await Promise.all([ca.close(), cb.close()]);
    } finally {
      await Promise.all([one.kill(), two.kill()]);
    }
  });
});

/** The room token the context's first presence WebSocket carries. */
function roomTokenOf(context: BrowserContext): Promise<string> {
  return new Promise((resolve) => {
    context.on('page', (page) =>
      page.on('websocket', (ws) => {
        const token = new URL(ws.url()).searchParams.get('room_token');
        if (token) resolve(token);
      }),
    );
  });
}

/** True if the server lists `userId` online with a session made after `since` (ms). */
async function rejoinedAfter(baseUrl: string, roomToken: string, userId: string, since: number): Promise<boolean> {
  const res = await fetch(`${baseUrl}/api/presence/list?room_token=${encodeURIComponent(roomToken)}`);
  if (!res.ok) return false;
  const snapshot = await res.json();
  const user = snapshot.users.find((u: { user_id: string }) => u.user_id === userId);
  return Boolean(user?.online && user.sessions.some((s: { joined_at: number }) => s.joined_at >= since));
}

/** A redis-server of the test's own (so it can be killed), on a loopback port, saving nothing. */
class OwnRedis {
  private proc?: ChildProcess;

  constructor(readonly port: number) {}

  async start(): Promise<void> {
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (await answers(this.port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server did not start on ${this.port}`);
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
