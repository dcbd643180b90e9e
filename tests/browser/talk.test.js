// Push to talk: viewers' voices through the device's speaker, one at a time, while everyone
// keeps watching and hearing the camera. The device's "speaker" here is a file the test reads
// (pipelines/speaker/file.toml in a pipelines directory of the test's own), written at the
// pace a sound card would play it; the talking browser's microphone is Chromium's fake
// device playing a 1200 Hz tone (a WAV file), and the camera's microphone the 440 Hz test
// tone. https only: browsers give pages the microphone only in a secure context.

import assert from 'node:assert/strict';
import { open, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';

import {
  artifact,
  cardPipelines,
  launchBrowser,
  openPage,
  pageStats,
  scheme,
  sleep,
  startPeercam,
  waitFor,
  waitForFrames,
} from './lib/harness.js';

const HTTPS_ONLY = { timeout: 120000, skip: scheme !== 'https' && 'runs in the https pass' };

/** The talking browser's voice. */
const VOICE_HZ = 1200;
/** The speaker's format (crate::speaker::CAPS). */
const RATE = 48000;

/** A pipelines directory whose speaker `file` writes what it plays to `speaker.raw`. */
async function speakerPipelines(t) {
  const dir = await cardPipelines(t);
  const raw = path.join(dir, 'speaker.raw');
  await writeFile(
    path.join(dir, 'speaker', 'file.toml'),
    [
      'description = "a file, written as fast as a sound card would play it"',
      `launch = "audioconvert ! audio/x-raw,format=S16LE,rate=${RATE},channels=1 ! ` +
        `filesink location=${raw} append=true sync=true buffer-mode=unbuffered"`,
      '',
      '[[elements]]',
      'factory = "filesink"',
      'package = "libgstreamer1.0-0"',
      '',
    ].join('\n'),
  );
  await writeFile(raw, '');
  return { dir, raw };
}

/** A WAV file of a tone (16-bit mono), what Chromium's fake microphone plays. */
async function toneWav(file, hz, seconds = 2) {
  const n = RATE * seconds;
  const data = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) {
    data.writeInt16LE(Math.round(12000 * Math.sin((2 * Math.PI * hz * i) / RATE)), i * 2);
  }
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(RATE, 24);
  header.writeUInt32LE(RATE * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  await writeFile(file, Buffer.concat([header, data]));
}

/** Samples of the speaker file from byte `from` on. */
async function samplesFrom(raw, from) {
  const f = await open(raw, 'r');
  try {
    const { size } = await f.stat();
    const length = Math.max(0, size - from) & ~1;
    const buf = Buffer.alloc(length);
    await f.read(buf, 0, length, from);
    const out = new Int16Array(length / 2);
    for (let i = 0; i < out.length; i++) out[i] = buf.readInt16LE(i * 2);
    return out;
  } finally {
    await f.close();
  }
}

/** {rms, hz}: loudness and (by zero crossings) frequency of `samples`. */
function analyse(samples) {
  let sum = 0;
  let crossings = 0;
  for (let i = 0; i < samples.length; i++) {
    sum += samples[i] * samples[i];
    if (i && (samples[i - 1] < 0) !== (samples[i] < 0)) crossings++;
  }
  const seconds = samples.length / RATE;
  return {
    rms: samples.length ? Math.sqrt(sum / samples.length) : 0,
    hz: seconds ? crossings / 2 / seconds : 0,
  };
}

/**
 * Runs in the page before its scripts: a careless or malicious viewer that puts a 600 Hz tone
 * on its sound sender as soon as its connection is up, without asking for the floor.
 */
function sendsUnasked() {
  const Real = window.RTCPeerConnection;
  function Hostile(...args) {
    const pc = new Real(...args);
    pc.addEventListener('connectionstatechange', async () => {
      if (pc.connectionState !== 'connected') return;
      const t = pc.getTransceivers().find((x) => x.receiver.track.kind === 'audio');
      if (!t) return;
      const ctx = new AudioContext();
      await ctx.resume();
      const osc = ctx.createOscillator();
      osc.frequency.value = 600;
      const out = ctx.createMediaStreamDestination();
      osc.connect(out);
      osc.start();
      await t.sender.replaceTrack(out.stream.getAudioTracks()[0]);
      window.sendingUnasked = true;
    });
    return pc;
  }
  Hostile.prototype = Real.prototype;
  window.RTCPeerConnection = Hostile;
}

async function startTalkingCamera(t) {
  const { dir, raw } = await speakerPipelines(t);
  const peercam = await startPeercam(t, ['--source', 'card', '--ice-address', '127.0.0.1'], {
    config:
      `[camera]\nwidth = 640\nheight = 480\npipelines_dir = "${dir}"\n` +
      '[audio]\nsource = "test"\n[talkback]\noutput = "file"\n',
  });
  return { peercam, raw, dir };
}

function talk(page) {
  return page.evaluate(() => ({
    state: window.peercam.talk.state,
    heard: window.peercam.talk.heard,
    notice: window.peercam.notice,
  }));
}

function waitForTalk(page, what, done) {
  return waitFor(what, () => talk(page), done);
}

test('push to talk: one viewer is heard, the next is told someone is talking', HTTPS_ONLY, async (t) => {
  const { peercam, raw, dir } = await startTalkingCamera(t);
  const wav = path.join(dir, 'voice.wav');
  await toneWav(wav, VOICE_HZ);
  const browser = await launchBrowser(t, { fakeAudio: wav });
  const a = await openPage(t, browser, peercam.link('/'), { name: 'a' });
  const b = await openPage(t, browser, peercam.link('/'), { name: 'b', init: sendsUnasked });
  for (const viewer of [a, b]) {
    await waitForFrames(viewer.page, 10);
    await viewer.page.click('#sound');
  }
  // B sends its tone without asking: nothing reaches the speaker, which stays closed.
  await waitFor('B sending unasked', () => b.page.evaluate(() => window.sendingUnasked === true), Boolean);
  await sleep(2000);
  assert.equal((await stat(raw)).size, 0, 'the speaker played what nobody asked to say');
  // The camera's microphone and the speaker are both on: the microphone's echo of the
  // speaker is cancelled (tests/echo.rs in peercam-media measures how well).
  assert.match(peercam.log(), /talkback: file \(as configured\); the microphone's echo of it is cancelled/);
  const framesAtStart = (await pageStats(a.page)).framesDecoded;
  const started = Date.now();
  assert.equal(await a.page.isVisible('#talk'), true, 'the talk button is shown');
  assert.equal(await a.page.textContent('#talk'), 'Hold to talk');

  // A holds the button: the camera plays A's voice.
  await a.page.locator('#talk').dispatchEvent('pointerdown', { button: 0, pointerId: 1 });
  await waitForTalk(a.page, 'A talking', (s) => s.state === 'talking');
  assert.equal(await a.page.textContent('#talk'), 'Talking… release to stop');
  assert.equal((await peercam.api('/api/stats')).camera.talking, true);

  // B asks meanwhile and is told, in words.
  await b.page.evaluate(() => window.peercam.talk.press());
  const refused = await waitForTalk(b.page, 'B refused', (s) => s.heard.some((h) => h.state === 'busy'));
  assert.equal(refused.state, 'idle');
  assert.match(refused.notice, /^You cannot talk now: someone else is talking to the camera/);
  await b.page.screenshot({ path: await artifact('talk-busy.png') });

  // What the speaker played over the last second is A's tone alone, not B's unasked one
  // (quieter than the file: the page asks for the browser's noise suppression, which takes
  // a steady tone for noise).
  await sleep(3000);
  const { size } = await stat(raw);
  const heard = analyse(await samplesFrom(raw, Math.max(0, size - RATE * 2)));
  assert.ok(heard.rms > 300, `the speaker played sound: ${JSON.stringify(heard)}`);
  assert.ok(Math.abs(heard.hz - VOICE_HZ) < 40, `A's ${VOICE_HZ} Hz tone: ${JSON.stringify(heard)}`);

  // A lets go; the speaker closes; now B may talk.
  await a.page.locator('#talk').dispatchEvent('pointerup', { button: 0, pointerId: 1 });
  await waitForTalk(a.page, 'A done', (s) => s.state === 'idle' && s.heard.some((h) => h.state === 'off'));
  await waitFor('the floor free', () => peercam.api('/api/stats'), (s) => s.camera.talking === false);
  await b.page.evaluate(() => window.peercam.talk.press());
  await waitForTalk(b.page, 'B talking', (s) => s.state === 'talking');
  await b.page.evaluate(() => window.peercam.talk.release());
  await waitForTalk(b.page, 'B done', (s) => s.state === 'idle');

  // Both heard the camera's own sound (through its echo canceller, which runs while the
  // device has a speaker) and kept watching throughout.
  for (const viewer of [a, b]) {
    await waitFor(
      "the camera's sound",
      () => pageStats(viewer.page),
      (s) => s.peers[0].totalSamplesReceived > RATE && s.peers[0].audioLevel > 0,
    );
  }
  const frames = (await pageStats(a.page)).framesDecoded - framesAtStart;
  const fps = frames / ((Date.now() - started) / 1000);
  assert.ok(fps >= 25, `A decoded ${fps.toFixed(1)} fps while people talked`);
  for (const viewer of [a, b]) {
    viewer.assertClean();
    assert.deepEqual(await viewer.page.evaluate(() => window.peercam.errors), []);
  }
});

/**
 * Runs in the page before its scripts: the microphone is a 1200 Hz tone from Web Audio,
 * silent until `window.voice.on()` (which returns when, by the page's clock, the sound
 * started) and again after `window.voice.off()`. Nothing else in the page changes.
 */
function voiceOnCue() {
  const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  let ctx = null;
  let gain = null;
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    if (!constraints || !constraints.audio || constraints.video) return real(constraints);
    ctx = ctx || new AudioContext();
    await ctx.resume();
    const osc = ctx.createOscillator();
    osc.frequency.value = 1200;
    gain = ctx.createGain();
    gain.gain.value = 0;
    const out = ctx.createMediaStreamDestination();
    osc.connect(gain).connect(out);
    osc.start();
    return out.stream;
  };
  window.voice = {
    on() {
      gain.gain.setValueAtTime(0.5, ctx.currentTime);
      return Date.now();
    },
    off() {
      gain.gain.setValueAtTime(0, ctx.currentTime);
    },
  };
}

/** When (by this process's clock) the speaker file first has sound after byte `from`. */
async function soundAfter(raw, from, { timeout = 3000 } = {}) {
  const block = (RATE / 100) * 2; // 10 ms
  const deadline = Date.now() + timeout;
  let at = from;
  while (Date.now() < deadline) {
    const samples = await samplesFrom(raw, at);
    for (let i = 0; i + block / 2 <= samples.length; i += block / 2) {
      if (analyse(samples.subarray(i, i + block / 2)).rms > 1000) return Date.now();
    }
    at += Math.floor(samples.length / (block / 2)) * block;
    await sleep(2);
  }
  return null;
}

test('mouth to speaker: how long a word takes to reach the device', HTTPS_ONLY, async (t) => {
  const { peercam, raw } = await startTalkingCamera(t);
  const browser = await launchBrowser(t);
  const viewer = await openPage(t, browser, peercam.link('/'), { name: 'talker', init: voiceOnCue });
  const { page } = viewer;
  await waitForFrames(page, 10);
  await page.evaluate(() => window.peercam.talk.press());
  await waitForTalk(page, 'talking', (s) => s.state === 'talking');
  await sleep(1000);

  const delays = [];
  for (let i = 0; i < 10; i++) {
    const { size } = await stat(raw);
    const spoke = await page.evaluate(() => window.voice.on());
    const heard = await soundAfter(raw, size);
    await page.evaluate(() => window.voice.off());
    assert.ok(heard, `word ${i + 1} never reached the speaker`);
    delays.push(heard - spoke);
    await sleep(700);
  }
  await page.evaluate(() => window.peercam.talk.release());
  const sorted = [...delays].sort((x, y) => x - y);
  const median = sorted[Math.floor(sorted.length / 2)];
  console.log(
    `mouth to speaker (10 words, ms): median ${median}, min ${sorted[0]}, max ${sorted.at(-1)}; ` +
      `all: ${delays.join(' ')}`,
  );
  assert.ok(median < 400, `median ${median} ms`);
  viewer.assertClean();
});
