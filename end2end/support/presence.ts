import { Browser, BrowserContext, expect, Locator, Page } from '@playwright/test';

export const BASE_URL = process.env.DEMO_URL ?? `http://127.0.0.1:${process.env.DEMO_PORT ?? 3400}`;

/** A room name no other test uses. */
export function uniqueRoom(label: string): string {
  return `${label}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}

/** A fresh browser profile: a different user (user ids live in localStorage). */
export async function newUser(browser: Browser, baseURL = BASE_URL): Promise<BrowserContext> {
  return browser.newContext({ baseURL });
}

/** Opens the room page as `name` and waits until it is hydrated and connected. */
export async function joinRoom(context: BrowserContext, room: string, name: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`/rooms/${encodeURIComponent(room)}?name=${encodeURIComponent(name)}`);
  await expect(page.locator('main[data-hydrated="true"]')).toBeVisible();
  await expect(page.locator('[data-connection-status="connected"]')).toBeVisible({ timeout: 10_000 });
  return page;
}

/** This page's user id (random per browser profile, shared by its tabs). */
export async function userIdOf(page: Page): Promise<string> {
  const id = await page.evaluate(() => localStorage.getItem('leptos-presence:user'));
  if (!id) throw new Error('no user id yet');
  return id;
}

/** The face of `userId` in this page's face pile. */
export function face(page: Page, userId: string): Locator {
  return page.locator(`ul[aria-label="People in this room"] > li[data-presence-user="${userId}"]`);
}

/** Every face in this page's face pile. */
export function faces(page: Page): Locator {
  return page.locator('ul[aria-label="People in this room"] > li[data-presence-user]');
}

/** Pretends the tab was hidden (or shown), the way the browser reports it. */
export async function setHidden(page: Page, hidden: boolean): Promise<void> {
  await page.evaluate((hidden) => {
    Object.defineProperty(document, 'visibilityState', {
      configurable: true,
      get: () => (hidden ? 'hidden' : 'visible'),
    });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

/** Records on `page` every moment `userId`'s face is anything but online (or is gone); read
 * them with `blinks`. */
export async function recordBlinks(page: Page, userId: string): Promise<void> {
  await page.evaluate((id) => {
    const w = window as unknown as { __blinks: string[] };
    w.__blinks = [];
    const check = () => {
      const li = document.querySelector(`ul[aria-label="People in this room"] > li[data-presence-user="${id}"]`);
      const status = li?.getAttribute('data-presence-status') ?? 'gone';
      if (status !== 'online') w.__blinks.push(status);
    };
    new MutationObserver(check).observe(document.body, { subtree: true, childList: true, attributes: true });
  }, userId);
}

/** What `recordBlinks` saw so far. */
export async function blinks(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __blinks: string[] }).__blinks);
}
