import { mkdir } from 'node:fs/promises';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Demo, startDemo } from '../../demo/start.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH, CHROMIUM_PERMISSIONS } from '../support/chromium.ts';
import { demoAnswer } from '../support/peers.ts';
import { waitUntil } from '../support/wait.ts';

/**
 * The demo end to end: Debian's Chromium (driven by Playwright) opens tabs of the real demo page
 * against the real signaling server; prompts travel over real WebRTC data channels. Runs inside the
 * loopback-only network namespace. Screenshots of each step land in test-results/e2e/.
 */
const SHOTS = 'test-results/e2e';
const WORDS = 120;
const RATE = 30;

let demo: Demo;
let browser: Browser;
let context: BrowserContext;

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  demo = await startDemo({ demoPort: 0, signaling: { port: 0, host: '127.0.0.1', logLevel: 'silent' } });
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  context = await browser.newContext({
    permissions: CHROMIUM_PERMISSIONS,
    viewport: { width: 1280, height: 900 },
  });
}, 60_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await demo?.close();
});

/** The peer id the page's own client holds once it is online (the demo may replace its manager on load). */
function pagePeerId(page: Page): Promise<string | undefined> {
  return page.evaluate(() => {
    const panel = document.querySelector('handoff-panel') as unknown as {
      manager?: {
        actor: {
          system: {
            get(
              id: string,
            ): { getSnapshot(): { hasTag(tag: string): boolean; context: { peerId?: string } } } | undefined;
          };
        };
      };
    } | null;
    const connection = panel?.manager?.actor.system.get('connection')?.getSnapshot();
    return connection?.hasTag('online') ? connection.context.peerId : undefined;
  });
}

async function openTab(query: string): Promise<{ page: Page; peerId: string }> {
  const page = await context.newPage();
  await page.goto(
    `${demo.demoUrl}?${query}&rate=${RATE}&words=${WORDS}&signaling=${encodeURIComponent(demo.signaling.url)}`,
  );
  let peerId = '';
  await waitUntil(
    async () => {
      peerId = (await pagePeerId(page)) ?? '';
      return Boolean(peerId && demo.signaling.registry.get(peerId)?.capabilities);
    },
    'the tab registers and announces',
    15_000,
  );
  return { page, peerId };
}

const responseText = (page: Page) => page.getByRole('region', { name: 'Response text' });

async function delegate(page: Page, prompt: string): Promise<void> {
  // Discover first so the new peers are known, then send.
  await page.getByRole('button', { name: 'Find peers', exact: true }).click();
  await page.getByLabel('Prompt', { exact: true }).fill(prompt);
  await page.getByRole('button', { name: 'Delegate', exact: true }).click();
}

describe('the demo, two and three tabs over real WebRTC', () => {
  it('tab A (quota used up) delegates; tab B streams the answer back; cancel works', async () => {
    const b = await openTab('provider=demo');
    const a = await openTab('provider=demo&quota=1&used=1');
    await a.page.screenshot({ path: `${SHOTS}/1-two-tabs.png` });

    const prompt = 'Hand this to a peer';
    await delegate(a.page, prompt);
    const expected = await demoAnswer(prompt, { answerWords: WORDS });
    await expect.poll(() => responseText(a.page).textContent(), { timeout: 5_000 }).not.toBe('');
    await a.page.screenshot({ path: `${SHOTS}/2-streaming.png` });
    await expect.poll(() => responseText(a.page).textContent(), { timeout: 20_000 }).toBe(expected);
    expect(
      await a.page
        .getByText(/direct/)
        .first()
        .isVisible(),
    ).toBe(true);
    await a.page.screenshot({ path: `${SHOTS}/3-answered.png` });
    await b.page.screenshot({ path: `${SHOTS}/3-served.png` });

    await delegate(a.page, 'Cancel this one');
    await expect.poll(() => responseText(a.page).textContent(), { timeout: 5_000 }).not.toBe('');
    await a.page.getByRole('button', { name: 'Cancel' }).click();
    await expect
      .poll(
        () =>
          a.page
            .getByText(/cancelled/i)
            .first()
            .isVisible(),
        { timeout: 5_000 },
      )
      .toBe(true);
    const cancelled = await responseText(a.page).textContent();
    expect((cancelled ?? '').length).toBeLessThan(
      (await demoAnswer('Cancel this one', { answerWords: WORDS })).length,
    );
    await a.page.screenshot({ path: `${SHOTS}/4-cancelled.png` });
    await a.page.close();
    await b.page.close();
  });

  it('closing the serving tab mid-stream lets the task finish on a third tab with the text intact', async () => {
    const b = await openTab('provider=demo');
    const c = await openTab('provider=demo');
    const a = await openTab('provider=demo&quota=1&used=1');
    const prompt = 'Survive a closed tab';
    await delegate(a.page, prompt);
    await expect
      .poll(async () => (await responseText(a.page).textContent())?.length ?? 0, { timeout: 5_000 })
      .toBeGreaterThan(40);
    // Which tab is serving? Ask tab A's own actors.
    const serving = await a.page.evaluate(() => {
      const panel = document.querySelector('handoff-panel') as unknown as {
        manager: {
          actor: {
            getSnapshot(): {
              children: Record<
                string,
                { getSnapshot(): { context: { candidates?: string[]; current?: number } } }
              >;
            };
          };
        };
      };
      const children = panel.manager.actor.getSnapshot().children;
      const request = Object.entries(children).find(([id]) => id.startsWith('request-'))?.[1];
      const context = request?.getSnapshot().context;
      return context?.candidates?.[context.current ?? 0];
    });
    expect([b.peerId, c.peerId]).toContain(serving);
    const [gone, remaining] = serving === b.peerId ? [b, c] : [c, b];
    await a.page.screenshot({ path: `${SHOTS}/5-before-close.png` });
    await gone.page.close();
    await expect
      .poll(() => responseText(a.page).textContent(), { timeout: 25_000 })
      .toBe(await demoAnswer(prompt, { answerWords: WORDS }));
    await a.page.screenshot({ path: `${SHOTS}/6-finished-elsewhere.png` });
    await remaining.page.screenshot({ path: `${SHOTS}/6-took-over.png` });
    await a.page.close();
    await remaining.page.close();
  });
});
