// The device's own camera peer (GStreamer's test pattern, H.264, and its test tone) seen
// through the page: watching it, hearing it, several viewers at once, leaving and coming back,
// and inviting it into a call.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  artifact,
  cardPipelines,
  launchBrowser,
  openPage,
  pageOrigin,
  pageStats,
  scheme,
  sleep,
  startPeercam,
  waitFor,
  waitForFrames,
  waitForState,
} from './lib/harness.js';

// The test pattern, and ICE on the namespace's only address (shared/E2E_NOTES.md). 640x480
// keeps a debug build's encoder light enough for several viewers on a small machine. The
// test tone stands in for a microphone where a test asks for sound; elsewhere there is none,
// as several pages share one browser and Chromium stops drawing the video of a hidden page
// that has sound. `[camera]` comes last: callers add keys to it.
const ICE = ['--ice-address', '127.0.0.1'];
const CAMERA = ['--source', 'test', ...ICE];
const CAMERA_CONFIG = '[camera]\nwidth = 640\nheight = 480\n';
const NO_SOUND = 'Live · the camera sends no sound';

/**
 * The device with its camera peer. `card`: moving colour bars instead of the test pattern, for
 * screenshots; `sound`: the test tone; `config`: more of the configuration file; `port`: where
 * a restarted device goes.
 */
async function startCamera(t, { card = false, sound = false, config = '', port = 0 } = {}) {
  const args = card
    ? ['--source', 'card', '--pipelines-dir', await cardPipelines(t), ...ICE]
    : CAMERA;
  const audio = `[audio]\nsource = "${sound ? 'test' : 'none'}"\n`;
  return startPeercam(t, args, { config: audio + CAMERA_CONFIG + config, port });
}

async function cameraStats(peercam) {
  return (await peercam.api('/api/stats')).camera;
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
  const peercam = await startCamera(t, { card: true });
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewer = await openPage(t, browser, peercam.link('/'), { name: 'viewer' });

  await waitForFrames(viewer.page, 1);
  assert.equal(await waitForState(viewer.page, 'live'), NO_SOUND);
  assert.deepEqual(await viewer.page.evaluate(() => window.peercam.peers()), [
    peercam.info.conversation,
  ]);
  await assertVideoFlows([viewer.page], { width: 640 });
  await viewer.page.screenshot({ path: await artifact('camera-one-viewer.png') });
  await assertClean(viewer);
});

test('the camera is heard after "Sound on"', { timeout: 60000 }, async (t) => {
  const peercam = await startCamera(t, { sound: true });
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewer = await openPage(t, browser, peercam.link('/'), { name: 'viewer' });
  const { page } = viewer;
  await waitForFrames(page, 1);
  assert.equal(await waitForState(page, 'live'), 'Live');

  // Muted at first (autoplay), and the sound arrives all the same.
  const muted = (await pageStats(page)).peers[0];
  assert.ok(muted.hasAudio && muted.muted, JSON.stringify(muted));
  assert.equal(await page.textContent('#sound'), 'Sound on');
  await page.click('#sound');
  assert.equal(await page.textContent('#sound'), 'Mute');
  const heard = (s) => s.peers[0];
  const before = heard(await pageStats(page));
  assert.equal(before.muted, false);
  const after = heard(
    await waitFor(
      'the sound playing',
      () => pageStats(page),
      (s) => heard(s).totalSamplesReceived > before.totalSamplesReceived + 24000 && heard(s).audioLevel > 0,
    ),
  );
  assert.ok(after.audioLevel > 0, JSON.stringify(after));
  const s = await cameraStats(peercam);
  assert.equal(s.audio_encoders, 1, JSON.stringify(s));
  assert.equal(s.listeners, 1, JSON.stringify(s));
  await assertClean(viewer);
});

test('a camera without sound says so', { timeout: 60000 }, async (t) => {
  const peercam = await startCamera(t);
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewer = await openPage(t, browser, peercam.link('/'), { name: 'viewer' });
  await waitForFrames(viewer.page, 1);
  assert.equal(await waitForState(viewer.page, 'live'), NO_SOUND);
  await assertVideoFlows([viewer.page], { width: 640 });
  await assertClean(viewer);
});

test('three viewers watch the camera at once', { timeout: 60000 }, async (t) => {
  const peercam = await startCamera(t);
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewers = await Promise.all(
    [1, 2, 3].map((n) => openPage(t, browser, peercam.link('/'), { name: `viewer-${n}` })),
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
  const stay = await openPage(t, browser, peercam.link('/'), { name: 'stays' });
  const go = await openPage(t, browser, peercam.link('/'), { name: 'goes' });
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

  const back = await openPage(t, browser, peercam.link('/'), { name: 'back' });
  await waitForFrames(back.page, 1);
  await assertVideoFlows([stay.page, back.page]);
  assert.equal((await cameraStats(peercam)).connected, 2);
  await assertClean(stay, back);
});

test('a mesh call invites the camera', { timeout: 60000 }, async (t) => {
  const peercam = await startCamera(t, { card: true });
  const browser = await launchBrowser(t);
  const a = await openPage(t, browser, peercam.link('/?room=call'), { name: 'a' });
  await waitForState(a.page, 'waiting');
  const b = await openPage(t, browser, peercam.link('/?room=call&invite=1'), { name: 'b' });

  // Each page sees the other page and the camera: two remote peers with video each. Its own
  // camera needs a secure context, which in the https pass comes from https alone.
  const { host } = new URL(peercam.url);
  for (const p of [a, b]) {
    assert.deepEqual(await pageOrigin(p.page), { protocol: `${scheme}:`, host, secure: true });
    const s = await waitForFrames(p.page, 1, { peers: 2 });
    assert.ok(s.peers.some((peer) => peer.frameWidth === 640), JSON.stringify(s.peers));
    assert.match(await waitForState(p.page, 'live'), /with 2 others$/);
  }
  await assertVideoFlows([a.page, b.page]);
  // Wide enough for the three tiles (own camera, the other page, the device) side by side.
  await a.page.setViewportSize({ width: 1280, height: 600 });
  await waitForFrames(a.page, 1, { peers: 2 });
  assert.equal(await a.page.locator('figure video').count(), 3);
  await a.page.screenshot({ path: await artifact('camera-invited-call.png'), fullPage: true });
  await assertClean(a, b);
});

test('a viewer over the limit is told so in words, then gets in', { timeout: 60000 }, async (t) => {
  const peercam = await startCamera(t, { config: 'max_viewers = 1\n' });
  const browser = await launchBrowser(t, { fakeMedia: false });
  const first = await openPage(t, browser, peercam.link('/'), { name: 'first' });
  await waitForFrames(first.page, 1);
  assert.equal(await waitForState(first.page, 'live'), NO_SOUND);

  const second = await openPage(t, browser, peercam.link('/'), { name: 'second' });
  assert.equal(
    await waitForState(second.page, 'busy'),
    'peercam already has its maximum of 1 viewer; trying again shortly…',
  );
  const errors = await second.page.evaluate(() => window.peercam.errors);
  assert.deepEqual([...new Set(errors.map((e) => e.code))], ['VIEWER_LIMIT']);
  await second.page.screenshot({ path: await artifact('camera-viewer-limit.png') });
  // The viewer already in keeps watching.
  await assertVideoFlows([first.page]);
  first.assertClean();
  second.assertClean();
  assert.deepEqual(await first.page.evaluate(() => window.peercam.errors), []);

  // Once the first viewer leaves, the second gets in by itself on its next try.
  await first.page.close();
  await waitForFrames(second.page, 1, { timeout: 20000 });
  assert.equal(await waitForState(second.page, 'live'), NO_SOUND);
  await assertVideoFlows([second.page], { width: 640 });
  second.assertClean();
});

test('the video comes back by itself after the device restarts', { timeout: 60000 }, async (t) => {
  const peercam = await startCamera(t);
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewer = await openPage(t, browser, peercam.link('/'), { name: 'viewer' });
  await waitForFrames(viewer.page, 1);

  assert.equal((await peercam.stop()).code, 0);
  assert.match(await waitForState(viewer.page, 'disconnected'), /reconnecting/);
  const again = await startCamera(t, { port: peercam.port });
  assert.equal(again.info.fingerprint, peercam.info.fingerprint, 'the same certificate');
  await waitForState(viewer.page, 'live', { timeout: 20000 });
  await assertVideoFlows([viewer.page], { width: 640 });

  // While the device was away the browser logged its failed WebSocket attempts; nothing else.
  const unexpected = viewer.problems().filter((p) => !/WebSocket connection to .* failed/.test(p));
  assert.deepEqual(unexpected, []);
  assert.deepEqual(await viewer.page.evaluate(() => window.peercam.errors), []);
});

test('a browser that can decode none of the camera video is told why, in words', { timeout: 60000 }, async (t) => {
  const peercam = await startCamera(t);
  const browser = await launchBrowser(t, { fakeMedia: false });
  const viewer = await openPage(t, browser, peercam.link('/'), { name: 'viewer' });
  await waitForFrames(viewer.page, 1);
  // From the next load on, this browser answers as one without H.264 does (Firefox offline):
  // the video section rejected, and so out of the bundle (the sound's section carries it).
  await viewer.page.addInitScript(() => {
    const create = RTCPeerConnection.prototype.createAnswer;
    RTCPeerConnection.prototype.createAnswer = async function (...args) {
      const answer = await create.apply(this, args);
      const video = answer.sdp.split(/^m=/m).find((m) => m.startsWith('video'));
      const mid = video && /^a=mid:(\S+)/m.exec(video)?.[1];
      let sdp = answer.sdp.replace(/^m=video \d+ /m, 'm=video 0 ');
      if (mid) {
        sdp = sdp.replace(/^(a=group:BUNDLE.*)$/m, (line) =>
          line.split(' ').filter((tag) => tag !== mid).join(' '),
        );
      }
      return { type: answer.type, sdp };
    };
  });
  await viewer.page.reload();
  const status = await waitForState(viewer.page, 'failed');
  assert.match(status, /could not connect to this browser: .*declined the camera's video/);
  const errors = await viewer.page.evaluate(() => window.peercam.errors);
  assert.deepEqual(
    errors.map((e) => [e.code, e.from]),
    [['NEGOTIATION_FAILED', 'camera']],
  );
  // The device released what it held for that viewer.
  await waitFor('the device to release the peer', () => cameraStats(peercam), (c) => c.peers === 0);
  await artifact('negotiation-failed.png').then((file) => viewer.page.screenshot({ path: file }));
});
