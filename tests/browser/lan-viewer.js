// A headless browser watching a device's page over a real link, reporting what it saw as
// JSON on stdout. Not a test of its own: crates/peercam/tests/loss_netns.rs runs it in the
// "laptop" network namespace and judges the figures.
//
//   node tests/browser/lan-viewer.js URL SECONDS [chromium|firefox] [PAGES]
//
// It opens the device's page in PAGES browsers (default 1; one browser each, so that every
// page is in front and shows its frames as a person's would), waits for each one's first
// decoded frame,
// lets the streams settle for 2 s (LAN_VIEWER_SETTLE_MS overrides), then for SECONDS samples each page's inbound video
// getStats() once a second and times every frame shown with requestVideoFrameCallback (the
// longest gap between two shown frames is the worst freeze a person would have seen). At the
// end it reads the device's /api/stats from the page. Chromium comes through playwright-core
// (CHROMIUM_BIN overrides /usr/bin/chromium), Firefox through puppeteer-core over WebDriver
// BiDi (FIREFOX_BIN overrides /usr/bin/firefox-esr); the figures are the same for both.
//
// When URL is a WHEP door (its path ends in /whep), each page is instead a minimal WHEP
// player of another origin (a blank page this script serves on the laptop's loopback, as a
// player installed beside the browser would be): it offers to receive video, POSTs the offer there (the `token`
// query parameter, if any, as `Authorization: Bearer`, so through CORS), applies the answer
// and shows the track; the report then has no device counts (the page is not the device's).

import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

const [url, secondsArg, browserArg = 'chromium', pagesArg = '1'] = process.argv.slice(2);
const seconds = Number(secondsArg || 20);
const pageCount = Number(pagesArg);
const settleMs = Number(process.env.LAN_VIEWER_SETTLE_MS || 2000);
// LAN_VIEWER_TALK=1: the first page holds "Hold to talk" (the browser's fake microphone) from
// the window's start to its end; the report's `talk` says what the camera answered.
const talk = process.env.LAN_VIEWER_TALK === '1';
if (!url || !(seconds > 0) || !['chromium', 'firefox'].includes(browserArg) || !(pageCount >= 1)) {
  console.error('usage: node lan-viewer.js URL SECONDS [chromium|firefox] [PAGES]');
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
    'framesReceived',
    'framesDropped',
  ];
  const sum = Object.fromEntries(keys.map((k) => [k, 0]));
  sum.frameWidth = 0;
  const codecs = new Set();
  for (const pc of window.__pcs) {
    const report = await pc.getStats().catch(() => null);
    report?.forEach((r) => {
      if (r.type !== 'inbound-rtp' || r.kind !== 'video') return;
      for (const k of keys) sum[k] += r[k] || 0;
      sum.frameWidth = Math.max(sum.frameWidth, r.frameWidth || 0);
      const codec = r.codecId && report.get(r.codecId);
      if (codec?.mimeType) codecs.add(codec.mimeType);
    });
  }
  sum.codecs = [...codecs].sort().join(',');
  return sum;
};

// A minimal WHEP player in a blank page: what a web player on another origin does.
const whepPlayer = async ({ door, token }) => {
  const video = document.createElement('video');
  video.autoplay = true;
  video.muted = true;
  video.playsInline = true;
  document.body.append(video);
  // Recorded for getStats() by recordPeerConnections, as the page's own would be.
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.ontrack = (e) => {
    video.srcObject = e.streams[0] || new MediaStream([e.track]);
  };
  await pc.setLocalDescription(await pc.createOffer());
  // No trickle: the offer goes with every candidate gathered (host candidates: milliseconds).
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    setTimeout(resolve, 2000);
  });
  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(door, { method: 'POST', headers, body: pc.localDescription.sdp });
  const body = await r.text();
  if (r.status !== 201) throw new Error(`POST ${door}: ${r.status} ${body}`);
  window.__whep = { location: r.headers.get('Location'), etag: r.headers.get('ETag') };
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  return window.__whep;
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

// The two drivers behind one small interface: open a page, run a script in every document
// it loads, evaluate in it, close.
const launch = async () => {
  if (browserArg === 'firefox') {
    const browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath: process.env.FIREFOX_BIN || '/usr/bin/firefox-esr',
      headless: true,
      // A first start from a cold disk cache on a busy 2-core machine can take longer than
      // puppeteer's default 30 s (seen once here); the measurement starts after the launch.
      timeout: 90000,
      // The device's own certificate over https, as a person accepts it once.
      acceptInsecureCerts: true,
      extraPrefsFirefox: {
        'media.autoplay.default': 0,
        'media.peerconnection.ice.obfuscate_host_addresses': false,
        // A room page asks for a camera and microphone: fake ones, granted.
        'media.navigator.streams.fake': true,
        'media.navigator.permission.disabled': true,
      },
    });
    return {
      version: await browser.version(),
      newPage: async (init) => {
        const page = await browser.newPage();
        await page.setViewport({ width: 960, height: 600 });
        await page.evaluateOnNewDocument(init);
        return page;
      },
      close: () => browser.close(),
    };
  }
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
      // A room page asks for a camera and microphone: fake ones, granted.
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
    ],
  });
  return {
    version: `chromium ${browser.version()}`,
    newPage: async (init) => {
      const page = await browser.newPage({ viewport: { width: 960, height: 600 }, ignoreHTTPSErrors: true });
      await page.addInitScript(init);
      return page;
    },
    close: () => browser.close(),
  };
};

// What one page saw over the window, from its first and per-second samples.
const summary = (start, samples, shown) => {
  const end = samples[samples.length - 1];
  const numeric = Object.keys(end).filter((k) => typeof end[k] === 'number');
  const diff = Object.fromEntries(numeric.map((k) => [k, end[k] - start[k]]));
  diff.totalFreezesDuration = Math.round(diff.totalFreezesDuration * 1000) / 1000;
  const perSecond = samples.map((s, i) => s.framesDecoded - (i ? samples[i - 1] : start).framesDecoded);
  return {
    fps: diff.framesDecoded / seconds,
    minFramesInASecond: Math.min(...perSecond),
    framesShown: shown.frames,
    longestGapMs: Math.round(shown.maxGapMs),
    frameWidth: end.frameWidth,
    codecs: end.codecs,
    window: diff,
    perSecond,
  };
};

const whep = new URL(url).pathname.endsWith('/whep');
// The WHEP player's own origin: a blank page on the loopback. (Chromium lets a page reach a
// LAN address only from a secure context or one no more public than it: not about:blank.)
const playerHome = whep
  ? await new Promise((resolve) => {
      const server = createServer((_, res) => res.end('<!doctype html><title>player</title><body></body>'));
      server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${server.address().port}/` }));
    })
  : null;
const browsers = [];
// Per page: from asking for the page (or posting the offer) to its first decoded frame, as
// sampled every 20 ms (so up to ~20 ms late).
const firstFrameMs = [];
try {
  const pages = [];
  for (let i = 0; i < pageCount; i++) {
    const browser = await launch();
    browsers.push(browser);
    const page = await browser.newPage(recordPeerConnections);
    const opened = Date.now();
    if (whep) {
      const door = new URL(url);
      const token = door.searchParams.get('token');
      door.search = '';
      await page.goto(playerHome.url);
      await page.evaluate(whepPlayer, { door: door.href, token });
    } else {
      await page.goto(url);
    }
    const deadline = Date.now() + 30000;
    for (;;) {
      const s = await page.evaluate(inbound);
      if (s.framesDecoded > 0 && s.frameWidth > 0) {
        firstFrameMs.push(Date.now() - opened);
        break;
      }
      if (Date.now() > deadline) throw new Error(`no decoded frame within 30 s at ${url} (page ${i + 1})`);
      await new Promise((r) => setTimeout(r, 20));
    }
    pages.push(page);
  }
  await new Promise((r) => setTimeout(r, settleMs));
  const starts = [];
  for (const page of pages) {
    await page.evaluate(timeFrames);
    starts.push(await page.evaluate(inbound));
  }
  if (talk) {
    await pages[0].evaluate(() => window.peercam.talk.press());
    const until = Date.now() + 10000;
    while ((await pages[0].evaluate(() => window.peercam.talk.state)) !== 'talking') {
      if (Date.now() > until) {
        const heard = await pages[0].evaluate(() => window.peercam.talk.heard);
        throw new Error(`the camera did not give the floor: ${JSON.stringify(heard)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const samples = pages.map(() => []);
  const began = Date.now();
  for (let i = 1; i <= seconds; i++) {
    await new Promise((r) => setTimeout(r, began + i * 1000 - Date.now()));
    for (const [n, page] of pages.entries()) samples[n].push(await page.evaluate(inbound));
  }
  const each = [];
  for (const [n, page] of pages.entries()) {
    each.push(summary(starts[n], samples[n], await page.evaluate(() => window.__gaps())));
  }
  // The device's counts while every page still watches (its encoders among them).
  const stats = whep
    ? { session: await pages[0].evaluate(() => window.__whep) }
    : await pages[0].evaluate(() => fetch('/api/stats').then((r) => r.json()));
  const talked = talk
    ? await pages[0].evaluate(() => {
        const t = { state: window.peercam.talk.state, heard: window.peercam.talk.heard };
        window.peercam.talk.release();
        return t;
      })
    : undefined;
  // The first page's figures at the top level, as a single-page report has always had them.
  const report = { seconds, browser: browsers[0].version, firstFrameMs, ...each[0], pages: each, stats, talk: talked };
  process.stdout.write(`${JSON.stringify(report)}\n`);
} finally {
  await Promise.all(browsers.map((b) => b.close()));
  playerHome?.server.close();
}
