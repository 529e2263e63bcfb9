import { expect, test } from '@playwright/test';
import { face, joinRoom, newUser, uniqueRoom, userIdOf } from '../support/presence';

test('Chromium gets the subscription compressed (permessage-deflate) and reads every message', async ({ browser }) => {
  const room = uniqueRoom('deflate');
  const [ca, cb] = await Promise.all([newUser(browser), newUser(browser)]);
  const a = await joinRoom(ca, room, 'Alice');
  // Watch Alice's next socket from the browser's side: its handshake and what it decoded.
  const cdp = await ca.newCDPSession(a);
  await cdp.send('Network.enable');
  const extensions: string[] = [];
  const frames: string[] = [];
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
    const headers = e.response.headers as Record<string, string>;
    const value = Object.entries(headers).find(([k]) => k.toLowerCase() === 'sec-websocket-extensions');
    extensions.push(value ? value[1] : '');
  });
  cdp.on('Network.webSocketFrameReceived', (e) => frames.push(e.response.payloadData));
  // The reloaded page joins on its socket: no heartbeat over HTTP until it is connected.
  const heartbeats: string[] = [];
  a.on('request', (r) => {
    if (r.url().includes('/api/presence/heartbeat')) heartbeats.push(r.url());
  });
  await a.reload();
  await expect(a.locator('[data-connection-status="connected"]')).toBeVisible({ timeout: 10_000 });
  expect(heartbeats).toEqual([]);
  await expect.poll(() => extensions.length).toBeGreaterThan(0);
  expect(extensions[0]).toContain('permessage-deflate');

  const b = await joinRoom(cb, room, 'Bob');
  const idb = await userIdOf(b);
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'online', { timeout: 2_000 });
  await b.close();
  await expect(face(a, idb)).toHaveAttribute('data-presence-status', 'offline', { timeout: 5_000 });
  // Every frame the browser decoded is one whole JSON message of the protocol: the answer to
  // the heartbeat it joined with (which Chromium sent compressed), then the room.
  const types = frames.map((f) => JSON.parse(f).type);
  expect(types.slice(0, 2)).toEqual(['heartbeat', 'snapshot']);
  expect(types).toContain('joined');
  expect(types).toContain('left');
  await Promise.all([ca.close(), cb.close()]);
});
