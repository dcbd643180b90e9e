// Benchmark: how soon a viewer sees the camera in headless Chromium.
//
//   cargo build --release
//   PEERCAM_BIN=target/release/peercam tests/browser/run.sh join.bench.js
//
// For each join a fresh browser context opens the device's page; the page records when it
// sent `join` and when the first video frame was presented (requestVideoFrameCallback), both
// in milliseconds since navigation start. Three series of JOINS joins each:
//   fresh: the device has been idle long enough for the previous session's media worker to
//          exit, so a new worker (GStreamer ready, nothing of a session loaded yet) serves it;
//   cold: nobody else watching, so capture and encoder start with the viewer, on the worker
//         that served the previous viewer moments ago;
//   warm: another viewer keeps the capture running.
// Prints median / p90 / min / max of join → first frame and page load → first frame.

import { test } from 'node:test';

import { launchBrowser, openPage, sleep, startPeercam, waitFor, waitForFrames } from './lib/harness.js';

const JOINS = Number(process.env.JOINS || 12);
const SIZE = process.env.SIZE || '1280x720';
const [width, height] = SIZE.split('x').map(Number);
const CONFIG = `[camera]\nwidth = ${width}\nheight = ${height}\nfps = 30\n`;
const TARGET_JOIN = 150;
const TARGET_LOAD = 300;

async function cameraStats(peercam) {
  return (await peercam.api('/api/stats')).camera;
}

/** Opens the page, waits for its first frame, closes it; returns {join, load} in ms. */
async function oneJoin(t, browser, peercam, i) {
  const viewer = await openPage(t, browser, peercam.link('/'), { name: `join-${i}` });
  const timing = await waitFor(
    'the first frame',
    () => viewer.page.evaluate(() => window.peercam && window.peercam.timing),
    (tm) => tm && tm.firstFrame != null && tm.join != null,
    { timeout: 15000, interval: 10 },
  );
  const page = await viewer.page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const at = (name) => performance.getEntriesByName(name)[0]?.startTime;
    return {
      html: nav.responseEnd,
      parsed: nav.domInteractive,
      start: at('peercam-start'),
      wsOpen: at('peercam-ws-open'),
    };
  });
  viewer.assertClean();
  await viewer.context.close();
  const steps = {};
  for (const [name, at] of Object.entries(timing.steps || {})) steps[name] = at - timing.join;
  return { join: timing.firstFrame - timing.join, load: timing.firstFrame, joinAt: timing.join, page, steps };
}

function summary(values) {
  const v = [...values].sort((a, b) => a - b);
  const at = (q) => v[Math.min(v.length - 1, Math.floor(q * v.length))];
  return { median: at(0.5), p90: at(0.9), min: v[0], max: v[v.length - 1] };
}

function report(name, runs) {
  const fmt = (s) =>
    `median ${s.median.toFixed(0)} ms, p90 ${s.p90.toFixed(0)}, min ${s.min.toFixed(0)}, max ${s.max.toFixed(0)}`;
  const join = summary(runs.map((r) => r.join));
  const load = summary(runs.map((r) => r.load));
  const verdict = (v, target) => (v <= target ? 'PASS' : 'MISS');
  console.log(`${name} (${runs.length} joins, ${SIZE}@30, Chromium):`);
  console.log(`  join → first frame:      ${fmt(join)}  [target ≤ ${TARGET_JOIN}: ${verdict(join.median, TARGET_JOIN)}]`);
  console.log(`  page load → first frame: ${fmt(load)}  [target ≤ ${TARGET_LOAD}: ${verdict(load.median, TARGET_LOAD)}]`);
  // Where the time goes: the median of each step, from the join.
  const names = ['prepared', 'offer', 'pc', 'remote', 'answer', 'ice', 'connected', 'track', 'decoded'];
  const parts = names
    .map((n) => [n, runs.map((r) => r.steps[n]).filter((v) => v != null)])
    .filter(([, v]) => v.length)
    .map(([n, v]) => `${n} ${summary(v).median.toFixed(0)}`);
  console.log(`  steps from join (median ms): ${parts.join(', ')}, presented ${join.median.toFixed(0)}`);
  const joinAt = summary(runs.map((r) => r.joinAt));
  const pageParts = ['html', 'parsed', 'start', 'wsOpen']
    .map((n) => [n, runs.map((r) => r.page[n]).filter((v) => v != null)])
    .filter(([, v]) => v.length)
    .map(([n, v]) => `${n} ${summary(v).median.toFixed(0)}`);
  console.log(`  page load → join sent: median ${joinAt.median.toFixed(0)} ms (${pageParts.join(', ')})`);
}

test('join → first frame in Chromium', { timeout: 600000 }, async (t) => {
  const peercam = await startPeercam(t, ['--source', 'test', '--ice-address', '127.0.0.1'], {
    config: CONFIG,
    env: { RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  const browser = await launchBrowser(t, { fakeMedia: false });
  // One join first so Chromium's own first-use costs (codec start-up) are not counted.
  await oneJoin(t, browser, peercam, 0);

  const fresh = [];
  for (let i = 1; i <= JOINS; i++) {
    const before = (await peercam.api('/api/stats')).workers.active;
    await waitFor(
      "the last session's worker to exit",
      () => peercam.api('/api/stats'),
      (s) => s.camera.peers === 0 && s.workers.active == null && s.workers.spare != null,
      { timeout: 20000, interval: 100 },
    );
    await sleep(300);
    const row = await oneJoin(t, browser, peercam, 200 + i);
    const served = (await peercam.api('/api/stats')).workers;
    if (before != null && served.active === before) throw new Error('join served by the retired worker');
    fresh.push(row);
  }

  const cold = [];
  for (let i = 1; i <= JOINS; i++) {
    await waitFor('capture to stop', () => cameraStats(peercam), (s) => s.peers === 0 && !s.capturing);
    cold.push(await oneJoin(t, browser, peercam, i));
  }

  const background = await openPage(t, browser, peercam.link('/'), { name: 'background' });
  await waitForFrames(background.page, 10);
  const warm = [];
  for (let i = 1; i <= JOINS; i++) {
    await waitFor('only the background viewer', () => cameraStats(peercam), (s) => s.peers === 1);
    await sleep(200);
    warm.push(await oneJoin(t, browser, peercam, 100 + i));
  }
  console.log('');
  report('fresh (a new media worker serves the join)', fresh);
  report('cold (capture starts with the viewer)', cold);
  report('warm (capture already running)', warm);
});
