// The page's controls and layout: the stats overlay, fullscreen, the watch view at phone and
// desktop sizes, the room form of the watch view, and leaving and rejoining a room.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  NO_CAMERA,
  artifact,
  cardPipelines,
  launchBrowser,
  openPage,
  sleep,
  startPeercam,
  waitFor,
  waitForFrames,
  waitForState,
} from './lib/harness.js';

/** The device's camera peer sending moving colour bars at `width`x`height`. */
async function startCardCamera(t, { width = 1280, height = 720 } = {}) {
  const dir = await cardPipelines(t);
  return startPeercam(
    t,
    ['--source', 'card', '--pipelines-dir', dir, '--ice-address', '127.0.0.1'],
    { config: `[camera]\nwidth = ${width}\nheight = ${height}\n` },
  );
}

async function assertClean(...pages) {
  for (const p of pages) {
    p.assertClean();
    assert.deepEqual(await p.page.evaluate(() => window.peercam.errors), []);
  }
}

function overlay(page) {
  return page.evaluate(() => window.peercam.overlay());
}

/** Waits until the overlay has figures for every field of its first peer; returns them. */
function waitForFigures(page) {
  return waitFor(
    'the overlay to show every figure',
    () => overlay(page),
    (o) => {
      const f = o.peers[0];
      return f && f.bitrate > 0 && f.fps > 0 && f.rtt != null && f.jitterBufferDelay != null;
    },
  );
}

/** How the watch view sits in the window: scrolling, and the video's box. */
function watchLayout(page) {
  return page.evaluate(() => {
    const root = document.documentElement;
    const video = document.querySelector('video');
    const box = video.getBoundingClientRect();
    return {
      viewport: { width: innerWidth, height: innerHeight },
      scroll: { width: root.scrollWidth, height: root.scrollHeight },
      video: { left: box.left, top: box.top, right: box.right, bottom: box.bottom },
      objectFit: getComputedStyle(video).objectFit,
    };
  });
}

test('the stats overlay shows the figures of the video', { timeout: 60000 }, async (t) => {
  const peercam = await startCardCamera(t);
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewer = await openPage(t, browser, peercam.link('/'), { name: 'viewer' });
  const { page } = viewer;
  await page.setViewportSize({ width: 1280, height: 800 });
  await waitForFrames(page, 1);
  await waitForState(page, 'live');

  // Off until asked for: no box, and no figures gathered.
  assert.equal((await overlay(page)).shown, false);
  assert.equal(await page.locator('.stats').count(), 0);

  await page.keyboard.press('s');
  const shown = await waitForFigures(page);
  assert.equal(shown.shown, true);
  assert.equal(await page.getAttribute('#stats', 'aria-pressed'), 'true');
  const f = shown.peers[0];
  assert.equal(f.id, peercam.info.conversation);
  assert.deepEqual([f.width, f.height], [1280, 720], JSON.stringify(f));
  assert.equal(f.codec, 'H264', JSON.stringify(f));
  assert.equal(typeof f.packetsLost, 'number', JSON.stringify(f));
  assert.ok(f.rtt >= 0 && f.rtt < 1000, `round-trip time ${f.rtt} ms`);
  const jb = f.jitterBufferDelay;
  assert.ok(jb >= 0 && jb < 5000, `jitter buffer ${jb} ms`);
  // Over loopback the figures are the sender's: about its frame rate and bitrate.
  assert.ok(f.fps > 5, `fps ${f.fps}`);
  assert.ok(f.bitrate > 50e3, `bitrate ${f.bitrate}`);
  const text = await page.textContent('figure .stats');
  const lines = text.split('\n');
  assert.match(lines[0], /^1280×720 · \d+ fps · H264$/);
  assert.match(lines[1], /^[\d.]+ [kM]bit\/s · \d+ lost$/);
  assert.match(lines[2], /^RTT [\d.]+ ms · jitter buffer [\d.]+ ms$/);
  assert.equal(lines.length, 3);
  // Polled once a second: a newer look replaces the figures.
  const before = shown.updated;
  await waitFor('a second look', () => overlay(page), (o) => o.updated > before, { timeout: 3000 });
  await page.screenshot({ path: await artifact('watch-overlay.png') });

  // The choice is remembered across a reload.
  await page.reload();
  await waitForFrames(page, 1);
  await waitForFigures(page);

  // The button turns it off: no box, and no more looks a while later.
  await page.click('#stats');
  assert.equal(await page.getAttribute('#stats', 'aria-pressed'), 'false');
  await sleep(1500);
  assert.deepEqual(await overlay(page), { shown: false, updated: null, peers: [] });
  assert.equal(await page.locator('.stats').count(), 0);

  // `?stats=1` turns it on for a browser that never chose.
  const fresh = await openPage(t, browser, peercam.link('/?stats=1'), { name: 'fresh' });
  await waitForFrames(fresh.page, 1);
  await waitForFigures(fresh.page);
  await assertClean(viewer, fresh);
});

test('the watch view fills phone and desktop windows', { timeout: 60000 }, async (t) => {
  const peercam = await startCardCamera(t);
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewer = await openPage(t, browser, peercam.link('/'), { name: 'viewer' });
  const { page } = viewer;
  await waitForFrames(page, 1);
  await waitForState(page, 'live');

  const sizes = [
    { name: 'desktop', width: 1280, height: 800 },
    { name: 'phone', width: 390, height: 844 },
    { name: 'phone-landscape', width: 844, height: 390 },
  ];
  for (const size of sizes) {
    await page.setViewportSize({ width: size.width, height: size.height });
    const l = await watchLayout(page);
    const where = `${size.name}: ${JSON.stringify(l)}`;
    const { viewport, scroll } = l;
    const fits = scroll.width <= viewport.width && scroll.height <= viewport.height;
    assert.ok(fits, `no scrolling, ${where}`);
    assert.equal(l.objectFit, 'contain', where);
    assert.ok(l.video.left >= 0 && l.video.top >= 0, where);
    assert.ok(l.video.right <= l.viewport.width && l.video.bottom <= l.viewport.height, where);
    // The picture's box takes the width, and most of the height the header and footer leave.
    assert.ok(l.video.right - l.video.left >= l.viewport.width - 20, `full width, ${where}`);
    assert.ok(l.video.bottom - l.video.top >= l.viewport.height * 0.5, `most height, ${where}`);
    await page.screenshot({ path: await artifact(`watch-${size.name}.png`) });
  }
  await assertClean(viewer);
});

test('fullscreen from the button, double-click and the f key', { timeout: 60000 }, async (t) => {
  const peercam = await startCardCamera(t, { width: 640, height: 480 });
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewer = await openPage(t, browser, peercam.link('/'), { name: 'viewer' });
  const { page } = viewer;
  await waitForFrames(page, 1);
  const element = () => page.evaluate(() => document.fullscreenElement?.id ?? null);
  // The button's words change on `fullscreenchange`, which can come a frame after the element.
  const button = (words) =>
    waitFor(`the button to say ${words}`, () => page.textContent('#fullscreen'), (s) =>
      s === words,
    );

  assert.equal(await page.isVisible('#fullscreen'), true);
  await page.click('#fullscreen');
  await waitFor('the view to go fullscreen', element, (id) => id === 'grid');
  await button('Exit fullscreen');
  assert.equal(await page.evaluate(() => window.peercam.fullscreen), true);

  // Double-clicking the video goes back, and again goes fullscreen.
  await page.dblclick('video');
  await waitFor('fullscreen to end', element, (id) => id === null);
  await button('Fullscreen');
  await page.dblclick('video');
  await waitFor('fullscreen again', element, (id) => id === 'grid');
  // Fullscreen hides the status line: unless the video is live, the status shows over it.
  const overView = () =>
    page.evaluate(() => getComputedStyle(document.getElementById('grid'), '::before').content);
  assert.equal(await overView(), 'none');
  await page.evaluate(() => window.peercam.leave());
  await waitFor('the status over the view', overView, (c) => c === '"You left."');
  await page.keyboard.press('f');
  await waitFor('the f key to end it', element, (id) => id === null);
  await assertClean(viewer);
});

test('in a room a double-clicked tile goes fullscreen', { timeout: 60000 }, async (t) => {
  const peercam = await startPeercam(t, NO_CAMERA);
  const browser = await launchBrowser(t);
  const url = peercam.link('/?room=big');
  const a = await openPage(t, browser, url, { name: 'a' });
  const b = await openPage(t, browser, url, { name: 'b' });
  await waitForFrames(a.page, 1);
  const fullscreenTile = () =>
    a.page.evaluate(() => {
      const f = document.fullscreenElement;
      return f ? `${f.tagName.toLowerCase()}${f.className ? `.${f.className}` : ''}` : null;
    });

  // The other person's tile (not the local one, which comes first).
  await a.page.dblclick('figure:not(.local) video');
  await waitFor('the tile to go fullscreen', fullscreenTile, (f) => f === 'figure');
  await a.page.dblclick('figure:not(.local) video');
  await waitFor('the tile to come back', fullscreenTile, (f) => f === null);
  // The button shows the whole call.
  await a.page.click('#fullscreen');
  await waitFor('the call to go fullscreen', fullscreenTile, (f) => f === 'main');
  await a.page.keyboard.press('f');
  await waitFor('the f key to end it', fullscreenTile, (f) => f === null);
  await assertClean(a, b);
});

test('the watch view opens a room; Leave leaves, Rejoin returns', { timeout: 60000 }, async (t) => {
  const peercam = await startPeercam(t, NO_CAMERA);
  const browser = await launchBrowser(t);
  const room = encodeURIComponent('kitchen chat');
  const a = await openPage(t, browser, peercam.link(`/?room=${room}`), { name: 'a' });
  const b = await openPage(t, browser, peercam.link('/'), { name: 'b' });
  await waitForState(b.page, 'waiting');
  assert.equal(await b.page.isVisible('#leave'), false);

  // The watch view's form: a room name becomes /?room=NAME.
  await b.page.fill('#room-name', 'kitchen chat');
  await Promise.all([
    b.page.waitForURL(/\?room=kitchen(\+|%20)chat$/),
    b.page.click('#room-form button'),
  ]);
  assert.equal(await b.page.evaluate(() => window.peercam.mode), 'room');
  assert.equal(await b.page.isVisible('#room-form'), false);
  for (const p of [a.page, b.page]) {
    await waitForFrames(p, 1);
    assert.match(await waitForState(p, 'live'), /Live in room “kitchen chat” with 1 other/);
  }

  // Leave: the other side sees it go, and this page has neither peers nor a camera on.
  await b.page.click('#leave');
  assert.equal(await waitForState(b.page, 'left'), 'You left room “kitchen chat”.');
  await waitForState(a.page, 'waiting');
  assert.deepEqual(await b.page.evaluate(() => window.peercam.peers()), []);
  assert.equal(await b.page.locator('figure').count(), 0, 'no tiles left, not even the own one');
  assert.equal(await b.page.isVisible('#leave'), false);
  assert.equal(await b.page.isVisible('#rejoin'), true);
  await waitFor(
    'the server to drop the pair',
    () => peercam.api('/api/stats'),
    (s) => s.pairs === 0 && s.conversations === 1,
  );

  // Rejoin: both see each other again.
  await b.page.click('#rejoin');
  for (const p of [a.page, b.page]) {
    await waitForFrames(p, 1, { peers: 1 });
    await waitForState(p, 'live');
  }
  assert.equal(await b.page.isVisible('#leave'), true);
  assert.equal(await b.page.isVisible('#rejoin'), false);
  await assertClean(a, b);
});
