import { APIRequestContext, expect, request, test } from '@playwright/test';
import { DemoServer } from '../support/server';
import { faces, joinRoom, newUser, uniqueRoom, userIdOf } from '../support/presence';

/** Joins `count` users to `room` over HTTP (as other servers' clients would), from index `from`. */
async function seed(api: APIRequestContext, room: string, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    const res = await api.post('/api/presence/heartbeat', {
      data: { room, user: `seed-${i}`, session: `seed-session-${i}`, name: `Seed ${i}`, interval_ms: 120_000 },
    });
    expect(res.status()).toBe(200);
  }
}

test('a room past the automatic limit streams a summary: K faces, a live +N, and everyone a page at a time on demand', async ({ browser }) => {
  // The automatic limit is 20 users here (200 by default).
  const server = new DemoServer(Number(process.env.HUGE_PORT ?? 3560), {
    PRESENCE_SUMMARY_ABOVE: '20',
    PRESENCE_ADDRESS_RATE: '0',
  });
  await server.start();
  const api = await request.newContext({ baseURL: server.url });
  try {
    const room = uniqueRoom('huge');
    await seed(api, room, 0, 150);
    const [ca, cb] = await Promise.all([newUser(browser, server.url), newUser(browser, server.url)]);
    const a = await joinRoom(ca, room, 'Alice');
    // What Alice's socket receives from here on.
    const frames: string[] = [];
    a.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
    await a.reload();
    await expect(a.locator('[data-connection-status="connected"]')).toBeVisible({ timeout: 10_000 });
    const b = await joinRoom(cb, room, 'Bob');

    // Five faces, and "+N" for the rest of the 152 (Alice and Bob included).
    const more = a.locator('.lp-facepile__more');
    await expect(faces(a)).toHaveCount(5);
    await expect(more).toHaveText('+147', { timeout: 3_000 });
    await expect(more).toHaveAttribute('aria-label', 'Show all 152 people');

    // Ten more join: the count follows, in summaries (never one diff per join).
    await seed(api, room, 150, 10);
    await expect(more).toHaveText('+157', { timeout: 3_000 });
    const types = frames.map((f) => JSON.parse(f).type);
    // The answer to the heartbeat the reloaded page joined with, then summaries.
    expect(types.slice(0, 2)).toEqual(['heartbeat', 'summary']);
    expect(types).not.toContain('joined');
    expect(types).not.toContain('snapshot');
    expect(types.filter((t) => t === 'summary').length).toBeLessThan(10);

    // Opening "+N" loads the first 100 in the room's order, then the rest on request.
    await more.click();
    const rows = a.locator('.lp-facepile__rows > li');
    await expect(rows).toHaveCount(100, { timeout: 3_000 });
    await expect(rows.first()).toHaveAttribute('data-presence-user', 'seed-0');
    const loadMore = a.locator('.lp-facepile__load-more');
    await expect(loadMore).toHaveText('Show 62 more');
    await loadMore.click();
    await expect(rows).toHaveCount(162);
    await expect(loadMore).toHaveCount(0);
    await expect(a.locator(`.lp-facepile__rows > li[data-presence-user="${await userIdOf(b)}"]`)).toHaveCount(1);
    // Closed, the list is let go.
    await more.click();
    await expect(rows).toHaveCount(0);

    await Promise.all([ca.close(), cb.close()]);
  } finally {
    await api.dispose();
    await server.kill();
  }
});
