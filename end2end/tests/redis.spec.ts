import { Browser, BrowserContext, expect, Page, test } from '@playwright/test';
import { spawn, ChildProcess } from 'node:child_process';
import net from 'node:net';
import { DemoServer, killHard } from '../support/server';
import { blinks, face, joinRoom, newUser, recordBlinks, uniqueRoom, userIdOf } from '../support/presence';

// Two demo servers share rooms through one Redis (the test command starts a redis-server and
// passes its URL). Without one this file is skipped, unless PRESENCE_REQUIRE_REDIS says it must run.
const redisUrl = process.env.PRESENCE_TEST_REDIS_URL;
const SECRET = 'end-to-end shared secret';
const port = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

test.describe('several app servers on one Redis', () => {
  test.skip(!redisUrl && !process.env.PRESENCE_REQUIRE_REDIS, 'set PRESENCE_TEST_REDIS_URL to run');

  test('10. users on two servers see each other join and leave; a dead server\'s users expire', async ({
    browser,
  }) => {
    expect(redisUrl, 'PRESENCE_REQUIRE_REDIS is set but PRESENCE_TEST_REDIS_URL is not').toBeTruthy();
    const env = {
      PRESENCE_REDIS_URL: redisUrl!,
      PRESENCE_REDIS_PREFIX: `e2e-${Date.now().toString(36)}`,
      PRESENCE_SECRET: SECRET,
    };
    await withTwoServers(env, [port('REDIS_DEMO_PORT_1', 3430), port('REDIS_DEMO_PORT_2', 3440)], async (one, two) => {
      // Join: each sees the other, across servers, within 2 s.
      const { ca, cb, a, b, ida, idb } = await adaAndBo(browser, one, two, 'shared');
      // Each page says which server it is on and that rooms are shared.
      await expect(a.locator('.server-note')).toHaveAttribute('data-store', 'redis');
      await expect(a.locator('.server-note')).toContainText(`port ${one.port}`);
      await expect(b.locator('.server-note')).toContainText(`port ${two.port}`);
      await expect(face(b, ida)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });

      // Leave: Bo closes the tab on server two; Ada on server one sees it within 2 s.
      await b.close({ runBeforeUnload: true });
      await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 2_000 });

      // A server dies with its users: Cy (on two) goes offline for Ada through server one's
      // scheduler, within the timeout (2.5 × the 1 s test interval, plus a heartbeat's slack).
      const cc = await newUser(browser, two.url);
      const c = await joinRoom(cc, await roomOf(a), 'Cy on two');
      const idc = await userIdOf(c);
      await expect(face(a, idc)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
      await two.kill();
      await expect(face(a, idc)).toHaveAttribute('data-presence-status', 'offline', { timeout: 6_000 });
      await expect(a.locator('[data-connection-status="connected"]')).toBeVisible();
      await Promise.all([ca.close(), cb.close(), cc.close()]);
    });
  });

  test('11. Redis restarts empty; nobody blinks, and every session is made again', async ({ browser }) => {
    const redis = new OwnRedis(port('REDIS_OWN_PORT', 3460));
    await redis.start();
    const env = {
      PRESENCE_REDIS_URL: `redis://127.0.0.1:${redis.port}/`,
      PRESENCE_SECRET: SECRET,
      // A long interval, so "back" can only come from the rejoin, not from the next beat.
      PRESENCE_INTERVAL_MS: '10000',
    };
    try {
      await withTwoServers(env, [port('REDIS_DEMO_PORT_3', 3470), port('REDIS_DEMO_PORT_4', 3480)], async (one, two) => {
        const { ca, cb, a, b, ida, idb, roomToken } = await adaAndBo(browser, one, two, 'redis-restart');

        // A records every moment B's face is anything but online (or missing) from here on.
        await recordBlinks(a, idb);

        const restartedAt = Date.now();
        await redis.kill();
        await redis.start(); // empty: nothing was saved
        // Each server makes again the sessions its WebSockets hold, then resyncs its subscribers:
        // both sessions exist again (made after the restart), well within one 10 s interval.
        for (const [server, id] of [[one, idb], [two, ida]] as const) {
          await expect
            .poll(
              async () => {
                const user = await listed(server.url, await roomToken, id);
                return Boolean(user?.online && user.sessions.some((s) => s.joined_at >= restartedAt));
              },
              { timeout: 5_000 },
            )
            .toBe(true);
        }
        await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 10_000 });
        await expect(face(b, ida)).toHaveAttribute('data-presence-status', 'online', { timeout: 10_000 });
        await expect(face(a, ida)).toHaveCount(1);
        // Past the servers' 3 s resync delay: A never showed B as gone or offline.
        await a.waitForTimeout(4_000);
        expect(await blinks(a)).toEqual([]);
        // And presence works as before: B leaves, A sees it.
        await b.close({ runBeforeUnload: true });
        await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 2_000 });
        await Promise.all([ca.close(), cb.close()]);
      });
    } finally {
      await redis.kill();
    }
  });

  test('12. with Redis, an app server restart loses nothing: nobody goes offline, no session is remade', async ({
    browser,
  }) => {
    const env = {
      PRESENCE_REDIS_URL: redisUrl!,
      PRESENCE_REDIS_PREFIX: `e2e-restart-${Date.now().toString(36)}`,
      PRESENCE_SECRET: SECRET,
      PRESENCE_INTERVAL_MS: '3000',
    };
    await withTwoServers(env, [port('REDIS_DEMO_PORT_1', 3430), port('REDIS_DEMO_PORT_2', 3440)], async (one, two) => {
      const { ca, cb, a, b, ida, idb, roomToken } = await adaAndBo(browser, one, two, 'app-restart');
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
      const bo = await listed(one.url, await roomToken, idb);
      expect(bo?.online).toBe(true);
      expect(bo?.sessions).toHaveLength(1);
      expect(bo!.sessions[0].joined_at).toBeLessThan(restartedAt);
      const seen = await a.evaluate(() => (window as unknown as { seen: string[] }).seen);
      expect(seen.filter((s) => s !== 'online')).toEqual([]);
      await Promise.all([ca.close(), cb.close()]);
    });
  });
});

// The same on a Redis Cluster (the test command starts a three-primary one and passes its nodes),
// with one deployment's rooms spread over its shards by slot groups.
const clusterUrl = process.env.PRESENCE_TEST_REDIS_CLUSTER_URL;

test.describe('several app servers on a Redis Cluster, rooms spread over its shards', () => {
  test.skip(!clusterUrl && !process.env.PRESENCE_REQUIRE_REDIS, 'set PRESENCE_TEST_REDIS_CLUSTER_URL to run');

  test('10c. users on two servers meet in two rooms (in two slot groups); a tab closed in one leaves the other', async ({
    browser,
  }) => {
    expect(clusterUrl, 'PRESENCE_REQUIRE_REDIS is set but PRESENCE_TEST_REDIS_CLUSTER_URL is not').toBeTruthy();
    const env = {
      PRESENCE_REDIS_URL: clusterUrl!,
      PRESENCE_REDIS_CLUSTER: '1',
      PRESENCE_REDIS_SLOT_GROUPS: '16',
      PRESENCE_REDIS_PREFIX: `e2e-cluster-${Date.now().toString(36)}`,
      PRESENCE_SECRET: SECRET,
    };
    await withTwoServers(env, [port('CLUSTER_DEMO_PORT_1', 3580), port('CLUSTER_DEMO_PORT_2', 3590)], async (one, two) => {
      const { ca, cb, a, b, ida, idb } = await adaAndBo(browser, one, two, 'cluster');
      await expect(face(b, ida)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
      // A second room for both, as a second tab each (with 16 groups, most likely another slot).
      const second = uniqueRoom('cluster-second');
      const a2 = await joinRoom(ca, second, 'Ada on one');
      const b2 = await joinRoom(cb, second, 'Bo on two');
      await expect(face(a2, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
      await expect(face(b2, ida)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
      // Bo closes the first room's tab: offline there for Ada, still online in the second.
      await b.close({ runBeforeUnload: true });
      await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 2_000 });
      await expect(face(a2, idb)).toHaveAttribute('data-presence-status', 'online');
      await Promise.all([ca.close(), cb.close()]);
    });
  });
});

/** Two demo servers with `env`, started together, and killed after `body` whatever happens. */
async function withTwoServers(
  env: Record<string, string>,
  ports: [number, number],
  body: (one: DemoServer, two: DemoServer) => Promise<void>,
): Promise<void> {
  const one = new DemoServer(ports[0], env);
  const two = new DemoServer(ports[1], env);
  try {
    await Promise.all([one.start(), two.start()]);
    await body(one, two);
  } finally {
    await Promise.all([one.kill(), two.kill()]);
  }
}

/** Ada on server one and Bo on server two in a fresh room; Ada sees Bo online within 2 s. */
async function adaAndBo(browser: Browser, one: DemoServer, two: DemoServer, label: string) {
  const room = uniqueRoom(label);
  const [ca, cb] = await Promise.all([newUser(browser, one.url), newUser(browser, two.url)]);
  const roomToken = roomTokenOf(ca);
  const a = await joinRoom(ca, room, 'Ada on one');
  const b = await joinRoom(cb, room, 'Bo on two');
  const [ida, idb] = [await userIdOf(a), await userIdOf(b)];
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
  return { ca, cb, a, b, ida, idb, roomToken };
}

/** The room a room page shows. */
async function roomOf(page: Page): Promise<string> {
  return (await page.locator('.room-title').textContent()) ?? '';
}

/** The room token of the context's first presence WebSocket: in the answer to the heartbeat
 * it joined with (`subscribe?join=1`), or in its URL. */
function roomTokenOf(context: BrowserContext): Promise<string> {
  return new Promise((resolve) => {
    context.on('page', (page) =>
      page.on('websocket', (ws) => {
        const token = new URL(ws.url()).searchParams.get('room_token');
        if (token) resolve(token);
        ws.on('framereceived', ({ payload }) => {
          const message = typeof payload === 'string' && payload.startsWith('{"type":"heartbeat"') ? JSON.parse(payload) : null;
          if (message) resolve(message.answer.room_token);
        });
      }),
    );
  });
}

type Listed = { user_id: string; online: boolean; sessions: { joined_at: number }[] };

/** `userId` as the server's `/api/presence/list` shows it (undefined: not listed, or no answer). */
async function listed(baseUrl: string, roomToken: string, userId: string): Promise<Listed | undefined> {
  const res = await fetch(`${baseUrl}/api/presence/list?room_token=${encodeURIComponent(roomToken)}`);
  if (!res.ok) return undefined;
  const snapshot: { users: Listed[] } = await res.json();
  return snapshot.users.find((u) => u.user_id === userId);
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
    await killHard(this.proc);
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
