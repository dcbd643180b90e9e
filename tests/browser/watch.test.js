// The watch page (`/`): what a viewer sees with no camera, with a camera that never offers,
// and with a broadcaster that does offer (a browser standing in for the device's peer).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { startFakeCamera } from './lib/fake-camera.js';
import {
  NO_CAMERA,
  artifact,
  launchBrowser,
  openPage,
  pageStats,
  sleep,
  startPeercam,
  waitFor,
  waitForFrames,
  waitForState,
} from './lib/harness.js';

function serverStats(peercam) {
  return peercam.api('/api/stats');
}

test('watch page without a camera says so, cleanly', { timeout: 60000 }, async (t) => {
  // A name that must be escaped in the HTML proves the page shows it as text.
  const name = 'Porch & <Door>';
  const peercam = await startPeercam(t, NO_CAMERA, { config: `[server]\nname = "${name}"\n` });
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewer = await openPage(t, browser, peercam.link('/'), { name: 'viewer' });
  const { page } = viewer;

  const status = await waitForState(page, 'waiting');
  assert.equal(status, `${name} is not streaming right now; waiting for it…`);
  assert.equal(await page.title(), name);
  assert.equal(await page.textContent('h1'), name);
  assert.match(await page.evaluate(() => window.peercam.id), /./, 'learned its member id');

  // The page must not keep the camera's conversation id for itself (it left at once), and
  // must stay connected, ready to join when the camera appears.
  await sleep(1500);
  const stats = await serverStats(peercam);
  assert.equal(stats.conversations, 0, JSON.stringify(stats));
  assert.equal(stats.connections, 1, JSON.stringify(stats));
  assert.equal(await page.evaluate(() => window.peercam.state), 'waiting');
  assert.deepEqual(await page.evaluate(() => window.peercam.peers()), []);
  await page.screenshot({ path: await artifact('watch-no-camera.png') });
  viewer.assertClean();
  assert.deepEqual(await page.evaluate(() => window.peercam.errors), []);
});

test('watch page waits for a camera that never offers', { timeout: 60000 }, async (t) => {
  const peercam = await startPeercam(t, NO_CAMERA);
  const browser = await launchBrowser(t, { fakeMedia: false });
  const camPage = await openPage(t, browser, peercam.link('/api/info'), {
    name: 'camera',
    ignoreFavicon: true,
  });
  await startFakeCamera(camPage.page, peercam.info.conversation, { silent: true });

  const viewer = await openPage(t, browser, peercam.link('/'), { name: 'viewer' });
  const { page } = viewer;
  assert.equal(await waitForState(page, 'waiting'), "Waiting for peercam's video…");
  assert.equal(await page.evaluate(() => window.peercam.conversation), peercam.info.conversation);

  // The broadcaster going away ends the broadcast; the page says so and stays connected.
  await camPage.page.evaluate(() => window.fakeCamera.close());
  assert.match(await waitForState(page, 'ended'), /peercam stopped streaming/);
  assert.equal(await page.evaluate(() => window.peercam.conversation), '');
  await page.screenshot({ path: await artifact('watch-camera-ended.png') });

  viewer.assertClean();
  camPage.assertClean();
  assert.deepEqual(await page.evaluate(() => window.peercam.errors), []);
});

test('two viewers watch a broadcaster that offers', { timeout: 60000 }, async (t) => {
  const peercam = await startPeercam(t, NO_CAMERA);
  const browser = await launchBrowser(t);
  const camPage = await openPage(t, browser, peercam.link('/api/info'), {
    name: 'camera',
    ignoreFavicon: true,
  });
  await startFakeCamera(camPage.page, peercam.info.conversation);

  const viewers = [];
  for (const name of ['viewer-1', 'viewer-2']) {
    viewers.push(await openPage(t, browser, peercam.link('/'), { name }));
  }
  for (const { page } of viewers) {
    await waitForFrames(page, 1);
    // The stand-in camera sends video alone.
    assert.equal(await waitForState(page, 'live'), 'Live · the camera sends no sound');
  }
  const first = await Promise.all(viewers.map(({ page }) => pageStats(page)));
  await sleep(1000);
  const second = await Promise.all(viewers.map(({ page }) => pageStats(page)));
  for (const i of [0, 1]) {
    assert.ok(second[i].framesDecoded > first[i].framesDecoded, `viewer ${i + 1} decodes`);
    assert.ok(second[i].videoWidth > 0, `viewer ${i + 1} has a picture`);
    // The video is muted, so autoplay needs no click.
    assert.equal(await viewers[i].page.evaluate(() => document.querySelector('video').muted), true);
  }
  await viewers[0].page.screenshot({ path: await artifact('watch-live.png') });
  assert.equal(await camPage.page.evaluate(() => window.fakeCamera.offers), 2);

  // One viewer leaving frees its pair on the server and on the broadcaster.
  await viewers[1].page.close();
  await waitFor(
    'the broadcaster to drop the viewer that left',
    () => camPage.page.evaluate(() => window.fakeCamera.viewers().length),
    (n) => n === 1,
  );
  assert.equal((await serverStats(peercam)).pairs, 1);
  await waitForFrames(viewers[0].page, second[0].framesDecoded + 1);

  for (const v of [...viewers, camPage]) v.assertClean();
  assert.deepEqual(await camPage.page.evaluate(() => window.fakeCamera.errors), []);
  assert.deepEqual(await viewers[0].page.evaluate(() => window.peercam.errors), []);
});

test('watch page reconnects when the device comes back', { timeout: 60000 }, async (t) => {
  const first = await startPeercam(t, NO_CAMERA);
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewer = await openPage(t, browser, first.link('/'), { name: 'viewer' });
  await waitForState(viewer.page, 'waiting');

  const stopped = await first.stop();
  assert.equal(stopped.code, 0, 'peercam shuts down on SIGINT with a page connected');
  assert.match(await waitForState(viewer.page, 'disconnected'), /reconnecting/);

  // The same device again, where the page expects it, with the same certificate.
  const again = await startPeercam(t, NO_CAMERA, { port: first.port });
  assert.equal(again.info.fingerprint, first.info.fingerprint);
  await waitForState(viewer.page, 'waiting', { timeout: 20000 });
  assert.equal((await serverStats(first)).connections, 1);

  // While the device was away the browser logged its failed WebSocket attempts; nothing else.
  const unexpected = viewer.problems().filter((p) => !/WebSocket connection to .* failed/.test(p));
  assert.deepEqual(unexpected, []);
  assert.deepEqual(await viewer.page.evaluate(() => window.peercam.errors), []);
});

test('a full server says busy, then lets the viewer in', { timeout: 60000 }, async (t) => {
  const peercam = await startPeercam(t, NO_CAMERA, { config: '[limits]\nmax_connections = 1\n' });
  const browser = await launchBrowser(t, { fakeMedia: false });
  const first = await openPage(t, browser, peercam.link('/'), { name: 'first' });
  await waitForState(first.page, 'waiting');

  const second = await openPage(t, browser, peercam.link('/'), { name: 'second' });
  assert.match(await waitForState(second.page, 'busy'), /^peercam is busy: .*Trying again shortly…$/);
  const errors = await second.page.evaluate(() => window.peercam.errors);
  assert.deepEqual(errors.map((e) => e.code), ['SERVER_BUSY']);
  await second.page.screenshot({ path: await artifact('watch-busy.png') });

  await first.page.close();
  await waitForState(second.page, 'waiting', { timeout: 20000 });
  first.assertClean();
  second.assertClean();
});
