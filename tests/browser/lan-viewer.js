// One headless Chromium watching a device's page over a real link, reporting what it saw as
// JSON on stdout. Not a test of its own: crates/peercam/tests/loss_netns.rs runs it in the
// "laptop" network namespace and judges the figures.
//
//   node tests/browser/lan-viewer.js URL SECONDS
//
// It waits for the first decoded frame, lets the stream settle for 2 s, then for SECONDS
// samples the inbound video's getStats() once a second and times every frame shown with
// requestVideoFrameCallback (the longest gap between two shown frames is the worst freeze a
// person would have seen). CHROMIUM_BIN overrides /usr/bin/chromium.

import { chromium } from 'playwright-core';

const [url, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg || 20);
if (!url || !(seconds > 0)) {
  console.error('usage: node lan-viewer.js URL SECONDS');
  process.exit(2);
}

// Every RTCPeerConnection the page makes, for getStats().
const recordPeerConnections = () => {
  const Original = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
};

// Summed over the page's inbound video streams.
const inbound = async () => {
  const keys = [
    'framesDecoded',
    'keyFramesDecoded',
    'packetsReceived',
    'packetsLost',
    'nackCount',
    'pliCount',
    'firCount',
    'freezeCount',
    'totalFreezesDuration',
    'retransmittedPacketsReceived',
  ];
  const sum = Object.fromEntries(keys.map((k) => [k, 0]));
  sum.frameWidth = 0;
  for (const pc of window.__pcs) {
    const report = await pc.getStats().catch(() => null);
    report?.forEach((r) => {
      if (r.type !== 'inbound-rtp' || r.kind !== 'video') return;
      for (const k of keys) sum[k] += r[k] || 0;
      sum.frameWidth = Math.max(sum.frameWidth, r.frameWidth || 0);
    });
  }
  return sum;
};

// Times the frames each <video> shows from now on; `window.__gaps()` reads the result.
const timeFrames = () => {
  const state = { frames: 0, maxGapMs: 0, last: null };
  const watch = (video) => {
    const step = (now) => {
      if (state.last !== null) state.maxGapMs = Math.max(state.maxGapMs, now - state.last);
      state.last = now;
      state.frames += 1;
      video.requestVideoFrameCallback(step);
    };
    video.requestVideoFrameCallback(step);
  };
  document.querySelectorAll('video').forEach(watch);
  window.__gaps = () => ({ ...state });
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
  headless: true,
  chromiumSandbox: false,
  args: [
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 960, height: 600 } });
  await page.addInitScript(recordPeerConnections);
  await page.goto(url);
  const deadline = Date.now() + 30000;
  for (;;) {
    const s = await page.evaluate(inbound);
    if (s.framesDecoded > 0 && s.frameWidth > 0) break;
    if (Date.now() > deadline) throw new Error(`no decoded frame within 30 s at ${url}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 2000));
  await page.evaluate(timeFrames);
  const start = await page.evaluate(inbound);
  const samples = [];
  const began = Date.now();
  for (let i = 1; i <= seconds; i++) {
    await new Promise((r) => setTimeout(r, began + i * 1000 - Date.now()));
    samples.push(await page.evaluate(inbound));
  }
  const end = samples[samples.length - 1];
  const shown = await page.evaluate(() => window.__gaps());
  const diff = Object.fromEntries(Object.keys(end).map((k) => [k, end[k] - start[k]]));
  diff.totalFreezesDuration = Math.round(diff.totalFreezesDuration * 1000) / 1000;
  const perSecond = samples.map((s, i) => s.framesDecoded - (i ? samples[i - 1] : start).framesDecoded);
  const report = {
    seconds,
    fps: diff.framesDecoded / seconds,
    minFramesInASecond: Math.min(...perSecond),
    framesShown: shown.frames,
    longestGapMs: Math.round(shown.maxGapMs),
    frameWidth: end.frameWidth,
    window: diff,
    perSecond,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
} finally {
  await browser.close();
}
