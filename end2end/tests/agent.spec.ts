import { expect, test } from '@playwright/test';
import { DemoServer } from '../support/server';
import { face, joinRoom, newUser, uniqueRoom } from '../support/presence';

test('an agent invited from one browser shows in every pile as an agent, works, and leaves', async ({ browser }) => {
  // The demo's agent stays 5 s here (1 min by default): a step a second, then it leaves.
  const server = new DemoServer(Number(process.env.AGENT_PORT ?? 3540), { PRESENCE_DEMO_AGENT_MS: '5000' });
  await server.start();
  try {
    const room = uniqueRoom('agent');
    const [ca, cb] = await Promise.all([newUser(browser, server.url), newUser(browser, server.url)]);
    const a = await joinRoom(ca, room, 'Alice');
    const b = await joinRoom(cb, room, 'Bob');
    await a.locator('#invite-agent').click();
    for (const page of [a, b]) {
      const agent = face(page, 'agent:note-taker');
      await expect(agent).toHaveAttribute('data-presence-kind', 'agent', { timeout: 2_000 });
      await expect(agent).toHaveAttribute('data-presence-status', 'online');
      await expect(agent).toHaveAttribute('aria-label', 'Note-taker (agent), online');
      // Drawn as a rounded square, not a circle like the people.
      const radius = await agent.locator('.lp-face__avatar').evaluate((n) => getComputedStyle(n).borderRadius);
      expect(radius).not.toBe('50%');
      await expect(page.locator('.session[data-user="agent:note-taker"] .tag.agent')).toHaveText('agent');
    }
    // It works: its state moves on like a person's (another section), then it leaves.
    await expect(b.locator('.session[data-user="agent:note-taker"]')).toHaveAttribute('data-section', 'agenda', {
      timeout: 3_000,
    });
    await expect(face(b, 'agent:note-taker')).toHaveAttribute('data-presence-status', 'offline', { timeout: 6_000 });
    await expect(face(b, 'agent:note-taker')).toHaveAttribute('data-presence-kind', 'agent');
    await Promise.all([ca.close(), cb.close()]);
  } finally {
    await server.kill();
  }
});
