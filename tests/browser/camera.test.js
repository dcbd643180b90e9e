// The device's own camera peer (GStreamer's test pattern, H.264) seen through the page:
// watching it, several viewers at once, leaving and coming back, and inviting it into a call.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
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

// The test pattern, and ICE on the namespace's only address (shared/E2E_NOTES.md). 640x480
// keeps a debug build's encoder light enough for several viewers on a small machine.
const CAMERA = ['--source', 'test', '--ice-address', '127.0.0.1'];
const CAMERA_CONFIG = '[camera]\nwidth = 640\nheight = 480\n';

function startCamera(t) {
  return startPeercam(t, CAMERA, { config: CAMERA_CONFIG });
}

async function cameraStats(peercam) {
  const res = await fetch(`${peercam.url}/api/stats`);
  return (await res.json()).camera;
}

/** Checks that every page's video keeps arriving: decoded frames grow over a second. */
async function assertVideoFlows(pages, { width } = {}) {
  const before = await Promise.all(pages.map(pageStats));
  await sleep(1000);
  const after = await Promise.all(pages.map(pageStats));
  for (const [i, s] of after.entries()) {
    assert.ok(
      s.framesDecoded > before[i].framesDecoded,
      `page ${i + 1} decodes: ${before[i].framesDecoded} → ${s.framesDecoded}`,
    );
    if (width) assert.equal(s.frameWidth, width, `page ${i + 1} frame width`);
    assert.ok(s.videoWidth > 0, `page ${i + 1} shows a picture`);
  }
}

async function assertClean(...pages) {
  for (const p of pages) {
    p.assertClean();
    assert.deepEqual(await p.page.evaluate(() => window.peercam.errors), []);
  }
}

test('one viewer watches the camera', { timeout: 60000 }, async (t) => {
  const peercam = await startCamera(t);
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewer = await openPage(t, browser, `${peercam.url}/`, { name: 'viewer' });

  await waitForFrames(viewer.page, 1);
  assert.equal(await waitForState(viewer.page, 'live'), 'Live');
  assert.deepEqual(await viewer.page.evaluate(() => window.peercam.peers()), [
    peercam.info.conversation,
  ]);
  await assertVideoFlows([viewer.page], { width: 640 });
  await viewer.page.screenshot({ path: await artifact('camera-one-viewer.png') });
  await assertClean(viewer);
});

test('three viewers watch the camera at once', { timeout: 60000 }, async (t) => {
  const peercam = await startCamera(t);
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewers = await Promise.all(
    [1, 2, 3].map((n) => openPage(t, browser, `${peercam.url}/`, { name: `viewer-${n}` })),
  );
  await Promise.all(viewers.map((v) => waitForFrames(v.page, 1)));
  await assertVideoFlows(viewers.map((v) => v.page), { width: 640 });
  const stats = await cameraStats(peercam);
  assert.equal(stats.connected, 3, JSON.stringify(stats));
  await assertClean(...viewers);
});

test('a viewer leaves and comes back', { timeout: 60000 }, async (t) => {
  const peercam = await startCamera(t);
  const browser = await launchBrowser(t, { fakeMedia: false });
  const stay = await openPage(t, browser, `${peercam.url}/`, { name: 'stays' });
  const go = await openPage(t, browser, `${peercam.url}/`, { name: 'goes' });
  await waitForFrames(stay.page, 1);
  await waitForFrames(go.page, 1);

  // Closing the page closes its WebSocket: the device must release that viewer's peer.
  await go.page.close();
  await waitFor(
    'the camera to release the viewer that left',
    () => cameraStats(peercam),
    (s) => s.peers === 1 && s.connected === 1,
  );
  await assertVideoFlows([stay.page]);

  const back = await openPage(t, browser, `${peercam.url}/`, { name: 'back' });
  await waitForFrames(back.page, 1);
  await assertVideoFlows([stay.page, back.page]);
  assert.equal((await cameraStats(peercam)).connected, 2);
  await assertClean(stay, back);
});

test('a mesh call invites the camera', { timeout: 60000 }, async (t) => {
  const peercam = await startCamera(t);
  const browser = await launchBrowser(t);
  const a = await openPage(t, browser, `${peercam.url}/?room=call`, { name: 'a' });
  await waitForState(a.page, 'waiting');
  const b = await openPage(t, browser, `${peercam.url}/?room=call&invite=1`, { name: 'b' });

  // Each page sees the other page and the camera: two remote peers with video each.
  for (const p of [a, b]) {
    const s = await waitForFrames(p.page, 1, { peers: 2 });
    assert.ok(s.peers.some((peer) => peer.frameWidth === 640), JSON.stringify(s.peers));
    assert.match(await waitForState(p.page, 'live'), /with 2 others$/);
  }
  await assertVideoFlows([a.page, b.page]);
  await a.page.screenshot({ path: await artifact('camera-invited-call.png') });
  await assertClean(a, b);
});
