// The chat page in headless Chromium (Debian's `chromium`, driven by puppeteer-core): type a message,
// watch the reply stream in, stop a reply, take a screenshot. Skips, saying so, where no Chromium exists
// (.ci/run installs it, so CI runs it).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { MODEL_ID, metric, startServer, waitFor, type TestServer } from './helpers.js';
import { tempDir } from '../train/helpers.js';

const CHROMIUM_CANDIDATES = [
  process.env.CHROMIUM_PATH,
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
].filter((p): p is string => !!p);
const chromium = CHROMIUM_CANDIDATES.find((p) => existsSync(p));
const skip = chromium ? false : `no Chromium binary (looked for ${CHROMIUM_CANDIDATES.join(', ')})`;

let server: TestServer;
let browser: Browser;
let page: Page;

before(async () => {
  if (skip) return;
  server = await startServer();
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // Root in containers has no user namespaces for Chromium's sandbox.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 700 });
});
after(async () => {
  await browser?.close();
  await server?.close();
});

/** Records every text the newest assistant message shows, so streaming is visible as a growing sequence. */
async function watchReplies(): Promise<void> {
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as unknown as { seen: string[] }).seen = seen;
    new MutationObserver(() => {
      const replies = document.querySelectorAll('.message.assistant');
      const last = replies[replies.length - 1];
      if (last) seen.push(last.firstChild?.textContent ?? '');
    }).observe(document.getElementById('messages')!, { childList: true, subtree: true, characterData: true });
  });
}

test('the chat page streams a reply to a typed message; a screenshot is taken', { skip }, async () => {
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(server.url, { waitUntil: 'load' });
  await page.waitForFunction((id) => document.getElementById('model')?.textContent === id, {}, MODEL_ID);
  await page.$eval('#temperature', (el) => ((el as HTMLInputElement).value = '0'));
  await page.$eval('#max_tokens', (el) => ((el as HTMLInputElement).value = '40'));
  await watchReplies();
  await page.type('#input', 'the white whale');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.message.user');
  assert.equal(await page.$eval('.message.user', (el) => el.textContent), 'the white whale');
  // The reply is done when its meta line (finish reason, time, tokens) appears.
  await page.waitForSelector('.message.assistant .meta', { timeout: 20_000 });
  const seen = (await page.evaluate(() => (window as unknown as { seen: string[] }).seen)).filter((t) => t !== '');
  const distinct = [...new Set(seen)];
  // Streamed: the page showed part of the reply before all of it. How many parts it shows depends on how the
  // server's events meet the page's reads — a loaded machine delivers several tokens in one read, and one task's
  // mutations reach the observer as one — so the test asks for a partial reply, not a count of them.
  assert.ok(distinct.length >= 2, `the reply appeared whole, not streamed: ${JSON.stringify(distinct.slice(0, 8))}`);
  for (let i = 1; i < distinct.length; i++)
    assert.ok(distinct[i]!.startsWith(distinct[i - 1]!), 'each step extends the last');
  const meta = await page.$eval('.message.assistant .meta', (el) => el.textContent!);
  assert.match(meta, /^length · [\d.]+ s · 40 tokens$/);
  // Greedy: the page shows exactly what the API gives for the same conversation.
  const api = await server.client.chat.completions.create({
    model: MODEL_ID,
    messages: [{ role: 'user', content: 'the white whale' }],
    max_tokens: 40,
    temperature: 0,
  });
  assert.equal(distinct[distinct.length - 1], api.choices[0]!.message.content);
  // Self-contained: the page loaded nothing but itself and talked only to this server.
  for (const url of requests) assert.ok(url.startsWith(server.url), `request to ${url}`);
  const dir = await tempDir('andromeda-chat-page-');
  const screenshot = join(dir, 'chat-page.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  assert.ok(statSync(screenshot).size > 10_000, `screenshot written to ${screenshot}`);
  console.log(`chat page screenshot: ${screenshot}`);
});

test(
  'the stop button ends a streaming reply and cancels it on the server; the page stays usable',
  { skip },
  async () => {
    await page.click('#clear');
    await page.$eval('#max_tokens', (el) => ((el as HTMLInputElement).value = '64'));
    await page.$eval('#temperature', (el) => ((el as HTMLInputElement).value = '1'));
    // Press stop the moment the first streamed text shows, as a user would mid-reply.
    await page.evaluate(() => {
      const observer = new MutationObserver(() => {
        const replies = document.querySelectorAll('.message.assistant.streaming');
        if (replies.length > 0 && replies[0]!.textContent) {
          observer.disconnect();
          (document.getElementById('stop') as HTMLButtonElement).click();
        }
      });
      observer.observe(document.getElementById('messages')!, { childList: true, subtree: true, characterData: true });
    });
    await page.type('#input', 'the captain');
    await page.keyboard.press('Enter');
    await page.waitForSelector('.message.assistant .meta', { timeout: 10_000 });
    const meta = await page.$eval('.message.assistant .meta', (el) => el.textContent!);
    assert.match(meta, /^stopped · /);
    const shown = await page.$eval('.message.assistant', (el) => el.firstChild!.textContent!);
    assert.ok(shown.length > 0 && shown.length < 64, `a partial reply: ${JSON.stringify(shown)}`);
    assert.ok(await waitFor(async () => (await metric(server.url, 'andromeda_sequences_running')) === 0, 2000));
    assert.equal(await metric(server.url, 'andromeda_kv_blocks_used'), 0);
    assert.equal(await page.$eval('#send', (el) => (el as HTMLButtonElement).disabled), false);
    assert.equal(await page.$eval('#stop', (el) => (el as HTMLButtonElement).disabled), true);
  },
);
