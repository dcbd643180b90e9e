// A person on the laptop opens one camera's page in Chromium and finds the others: not a test
// of its own; crates/peercam/tests/discovery_netns.rs runs it in the "laptop" namespace of
// three (two cameras, a laptop) and judges what it prints.
//
//   node tests/browser/camera-list.js PAGE_URL NAME TOKEN
//
// It opens PAGE_URL (a camera's link, with its token), waits up to 20 s for "Other cameras
// on this network" to list NAME, follows that entry's link with TOKEN (the listed camera's
// own link, which its owner gives; its certificate accepted as a person does once) in a new
// page, and prints one JSON line: what the list
// showed and what the followed link served. Then it waits for SIGUSR1 (the test has stopped
// the listed camera) and prints a second line: how long the entry took to leave the
// page's list (or that it did not within 20 s).

import { chromium } from 'playwright-core';

const [pageUrl, name, token] = process.argv.slice(2);
if (!pageUrl || !name || !token) {
  console.error('usage: node camera-list.js PAGE_URL NAME TOKEN');
  process.exit(2);
}

const entries = () =>
  [...document.querySelectorAll('#cameras li')].map((li) => ({
    name: li.querySelector('a')?.textContent,
    href: li.querySelector('a')?.href,
    http: li.querySelector('a.alt')?.href || null,
    note: li.querySelector('.note')?.textContent || '',
    visible: !document.querySelector('#cameras').hidden,
  }));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
  headless: true,
  chromiumSandbox: false,
  args: ['--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update'],
});
try {
  // The devices' certificates are their own (self-signed): a person accepts them once.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(pageUrl);
  const listed = await page
    .waitForFunction((n) => [...document.querySelectorAll('#cameras li a')].some((a) => a.textContent === n), name, {
      timeout: 20000,
      polling: 250,
    })
    .then(() => page.evaluate(entries))
    .catch(async () => ({ missing: true, shown: await page.evaluate(entries) }));
  let followed = null;
  const entry = Array.isArray(listed) && listed.find((e) => e.name === name);
  if (entry) {
    const other = await context.newPage();
    const link = new URL(entry.href);
    link.searchParams.set('token', token);
    const response = await other.goto(link.href);
    followed = { url: entry.href, status: response.status(), title: await other.title() };
    await other.close();
  }
  process.stdout.write(`${JSON.stringify({ listed, followed })}\n`);

  // The test stops the listed camera, then says so.
  await new Promise((resolve) => process.once('SIGUSR1', resolve));
  const since = Date.now();
  const left = await page
    .waitForFunction((n) => ![...document.querySelectorAll('#cameras li a')].some((a) => a.textContent === n), name, {
      timeout: 20000,
      polling: 100,
    })
    .then(() => ({ leftAfterMs: Date.now() - since, shown: null }))
    .catch(async () => ({ leftAfterMs: null, shown: await page.evaluate(entries) }));
  left.shown ??= await page.evaluate(entries);
  process.stdout.write(`${JSON.stringify(left)}\n`);
} finally {
  await browser.close();
}
