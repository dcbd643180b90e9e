// What every browser test needs: a peercam of its own on a free loopback port, a headless
// Chromium, pages that record their console, and waits on the page's `window.peercam` hooks.
// Everything started here is registered with the test context and stopped when the test
// ends, whether it passed or not.
//
// PEERCAM_TEST_SCHEME=https runs the same tests over https: pages open
// https://peercam.test:PORT/ (a name Chromium maps to 127.0.0.1, so that the page's secure
// context comes from https and not from being on localhost), and Chromium trusts exactly the
// keys of the certificates the test's devices made (--ignore-certificate-errors-spki-list).

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createHash, X509Certificate } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { chromium } from 'playwright-core';

export { sleep };

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository's root. */
export const repoRoot = path.resolve(here, '../../..');
/** Screenshots and logs; git-ignored. */
export const artifactsDir = path.join(repoRoot, 'artifacts');

const peercamBin = path.resolve(repoRoot, process.env.PEERCAM_BIN || 'target/debug/peercam');
const chromiumBin = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/** The scheme of the pages the tests open: `http` (default) or `https`. */
export const scheme = process.env.PEERCAM_TEST_SCHEME || 'http';
if (scheme !== 'http' && scheme !== 'https') {
  throw new Error(`PEERCAM_TEST_SCHEME must be http or https, not ${JSON.stringify(scheme)}`);
}

/**
 * A host name that is neither localhost nor an IP address, which every browser launched here
 * resolves to 127.0.0.1: a page there is a secure context only over https. The https pass
 * opens its pages there; http pages there show what a browser on the LAN sees over plain http.
 */
export const TEST_HOST = 'peercam.test';

const pageHost = scheme === 'https' ? TEST_HOST : '127.0.0.1';

const cleanups = new WeakMap();

/**
 * Runs `fn` when test `t` ends, after everything registered later: pages close before their
 * browser, and the browser before the server it talks to, so nothing outlives what it uses
 * and the server's log shows the members leaving.
 */
export function onCleanup(t, fn) {
  let stack = cleanups.get(t);
  if (!stack) {
    stack = [];
    cleanups.set(t, stack);
    t.after(async () => {
      const failures = [];
      while (stack.length) {
        try {
          await stack.pop()();
        } catch (err) {
          failures.push(err);
        }
      }
      if (failures.length) throw failures[0];
    });
  }
  stack.push(fn);
}

/** A path under artifacts/, creating the directory; `https-` before the name in the https pass. */
export async function artifact(name) {
  await mkdir(artifactsDir, { recursive: true });
  return path.join(artifactsDir, scheme === 'https' ? `https-${name}` : name);
}

/** A TCP port that was free a moment ago (peercam takes an explicit port, not 0). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Polls `probe` until `done(value)` holds, and returns that value. On timeout, throws with
 * `what` and the last value or error seen, which is usually what explains the failure.
 */
export async function waitFor(what, probe, done = Boolean, { timeout = 15000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (done(last)) return last;
    } catch (err) {
      if (err.fatal) throw err;
      last = err;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last seen: ${seen})`);
    }
    await sleep(interval);
  }
}

/**
 * Arguments for a peercam without its camera peer: signaling and the page only, so the
 * camera's conversation id is free and no GStreamer pipeline runs.
 */
export const NO_CAMERA = Object.freeze(['--no-camera']);

/**
 * A pipelines directory for `--pipelines-dir`: the shipped one plus the source `card`, colour
 * bars that move. Tests whose screenshots people look at use it: in a still picture the shipped
 * test pattern (a small ball on black) is hard to tell from an empty player. Removed at test end.
 */
export async function cardPipelines(t) {
  const dir = await mkdtemp(path.join(tmpdir(), 'peercam-pipelines-'));
  onCleanup(t, () => rm(dir, { recursive: true, force: true }));
  await cp(path.join(repoRoot, 'pipelines'), dir, { recursive: true });
  await writeFile(
    path.join(dir, 'sources', 'card.toml'),
    [
      'description = "moving colour bars"',
      'launch = "videotestsrc is-live=true pattern=smpte horizontal-speed=2 ! ' +
        'video/x-raw,width={width},height={height},framerate={fps}/1"',
      '',
      '[[elements]]',
      'factory = "videotestsrc"',
      'package = "gstreamer1.0-plugins-base"',
      '',
    ].join('\n'),
  );
  return dir;
}

/** Per test: the state directory of each port a device was started on, and the hashes of
 *  the public keys of its devices' certificates (what launchBrowser tells Chromium to trust). */
const devices = new WeakMap();

function devicesOf(t) {
  let d = devices.get(t);
  if (!d) {
    d = { stateDirs: new Map(), spkis: new Set() };
    devices.set(t, d);
  }
  return d;
}

/**
 * Starts `peercam serve` on a free loopback port with `args` appended, and waits until
 * `/api/info` answers. `config` is the TOML text of its configuration file (default empty:
 * the built-in defaults, never this machine's /etc/peercam). `port` asks for a
 * given port instead of a free one (to restart a device where its pages expect it).
 * Each device gets a temporary state directory ($STATE_DIRECTORY), where it makes its
 * certificate; a device started again on the port of an earlier one of the same test is the
 * same device and gets that one's (so the same certificate). `stateDir` names one instead.
 * Stopped at test end.
 *
 * Returns {url, port, info, token, link(path), api(path), log(), stop()}: `url` is where
 * pages open it (`http://127.0.0.1:PORT`, or `https://peercam.test:PORT` in the https pass);
 * `token` is the access token from the link in its start-up log (null with `auth.mode =
 * "none"`), and `link(path, base = url)` is `base + path` with `token=` added, what a person
 * opens; `api(path)` GETs a JSON route from this process with the token (a Bearer header),
 * over plain http on the same port.
 */
export async function startPeercam(
  t,
  args = [],
  { config = '', env = {}, port = 0, stateDir } = {},
) {
  const dir = await mkdtemp(path.join(tmpdir(), 'peercam-test-'));
  onCleanup(t, () => rm(dir, { recursive: true, force: true }));
  const configPath = path.join(dir, 'peercam.toml');
  await writeFile(configPath, config);
  const known = devicesOf(t).stateDirs;
  if (!stateDir && port && known.has(port)) stateDir = known.get(port);
  if (!stateDir) {
    const made = await mkdtemp(path.join(tmpdir(), 'peercam-state-'));
    // Registered before the device's own cleanup, so removed after it has stopped.
    onCleanup(t, () => rm(made, { recursive: true, force: true }));
    stateDir = made;
  }
  env = { STATE_DIRECTORY: stateDir, ...env };
  // Another process may take the port between freePort() and peercam's bind; try again then.
  let lastError;
  for (let attempt = 0; attempt < (port ? 1 : 3); attempt++) {
    try {
      const listen = port || (await freePort());
      const peercam = await launchPeercam(t, listen, ['--config', configPath, ...args], env);
      peercam.stateDir = stateDir;
      known.set(listen, stateDir);
      await trustCertificate(t, peercam, stateDir);
      return peercam;
    } catch (err) {
      lastError = err;
      if (!/binding|in use/i.test(err.message)) throw err;
    }
  }
  throw lastError;
}

/**
 * Reads the certificate a device made in `stateDir`, checks it is the one the device serves
 * (its fingerprint is /api/info's), and records the SHA-256 of its SubjectPublicKeyInfo for
 * the browsers this test launches afterwards. A device without TLS has nothing to trust.
 */
async function trustCertificate(t, peercam, stateDir) {
  if (!peercam.info.tls) return;
  const pem = await readFile(path.join(stateDir, 'cert.pem'), 'utf8').catch(() => null);
  if (!pem) return; // A configured certificate (tls.cert): the test deals with it.
  const cert = new X509Certificate(pem);
  if (cert.fingerprint256 !== peercam.info.fingerprint) {
    throw new Error(
      `${stateDir}/cert.pem (SHA-256 ${cert.fingerprint256}) is not the certificate the device ` +
        `serves (${peercam.info.fingerprint})`,
    );
  }
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  devicesOf(t).spkis.add(createHash('sha256').update(spki).digest('base64'));
}

/** peercams still running; killed if the test process exits without stopping them. */
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** peercams started per test, so that a second one gets a log file of its own. */
const started = new Map();

async function launchPeercam(t, port, args, env) {
  const instance = (started.get(t.name) || 0) + 1;
  started.set(t.name, instance);
  const logName = instance === 1 ? 'peercam.log' : `peercam-${instance}.log`;
  const url = `${scheme}://${pageHost}:${port}`;
  const httpUrl = `http://127.0.0.1:${port}`;
  const child = spawn(peercamBin, ['serve', '--listen', `127.0.0.1:${port}`, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info,peercam=debug', ...env },
  });
  let output = '';
  const collect = (chunk) => {
    output += chunk;
  };
  child.stdout.setEncoding('utf8').on('data', collect);
  child.stderr.setEncoding('utf8').on('data', collect);
  running.add(child);
  let exited = null;
  const exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child);
      exited = { code, signal };
      resolve(exited);
    });
    child.on('error', (err) => {
      running.delete(child);
      exited = { error: err };
      resolve(exited);
    });
  });

  let stopping = null;
  const stop = () => {
    stopping ??= (async () => {
      if (exited) return exited;
      // SIGINT is peercam's graceful shutdown; a process that ignores it is a bug worth
      // seeing in the log, but must not hang the suite.
      const since = Date.now();
      child.kill('SIGINT');
      // Unref'd: a pending timer would keep node alive 3 s after every test.
      const outcome = await Promise.race([exit, sleep(3000, null, { ref: false })]);
      if (outcome) {
        const how = outcome.code ?? outcome.signal ?? outcome.error?.message;
        output += `\n[harness] peercam exited (${how}) ${Date.now() - since} ms after SIGINT\n`;
        return outcome;
      }
      output += '\n[harness] peercam did not exit within 3 s of SIGINT; killing it\n';
      child.kill('SIGKILL');
      return exit;
    })();
    return stopping;
  };
  // The token, as the owner finds it: what `peercam token` reads (the state directory's
  // file, which a rotation replaces), else the link the device logged at start (a token set
  // in the configuration).
  const tokenFile = env.STATE_DIRECTORY && path.join(env.STATE_DIRECTORY, 'token');
  const token = () => {
    try {
      if (tokenFile) return readFileSync(tokenFile, 'utf8').trim();
    } catch {
      // No file: auth.mode = "none", a configured token, or not made yet.
    }
    return tokenInLog(output);
  };
  const api = async (route) => {
    const t = token();
    const headers = t ? { Authorization: `Bearer ${t}` } : {};
    const res = await fetch(`${httpUrl}${route}`, { headers });
    if (!res.ok) throw new Error(`GET ${route}: HTTP ${res.status}`);
    return res.json();
  };
  const link = (route = '/', base = url) => withToken(`${base}${route}`, token());
  const peercam = {
    url,
    port,
    info: null,
    get token() {
      return token();
    },
    link,
    api,
    log: () => output,
    stop,
    exited: () => exited,
  };
  onCleanup(t, async () => {
    await stop();
    // The server's log is the first thing to read when a test fails.
    await writeFile(await artifact(`${slug(t.name)}.${logName}`), output);
  });

  peercam.info = await waitFor(
    `peercam to answer on ${httpUrl}`,
    async () => {
      if (exited) {
        const how = exited.error ? exited.error.message : `exit ${exited.code ?? exited.signal}`;
        throw Object.assign(new Error(`peercam ended (${how}): ${output.trim()}`), { fatal: true });
      }
      // With the token: its file is made before the port answers.
      return api('/api/info').catch(() => null);
    },
    Boolean,
    { timeout: 10000, interval: 50 },
  ).catch(async (err) => {
    await stop();
    throw new Error(`${err.message}\n${output}`);
  });
  return peercam;
}

/** The access token in the link a device's start-up log shows
 *  (`open http://HOST:PORT/?token=T to watch`), or null. */
export function tokenInLog(log) {
  const found = /open \S+\?token=([A-Za-z0-9._-]+) to watch/.exec(log);
  return found ? found[1] : null;
}

/** `url` with `token=` added to its query, when there is a token. */
export function withToken(url, token) {
  if (!token) return url;
  const u = new URL(url);
  u.searchParams.set('token', token);
  return u.toString();
}

/**
 * Runs `peercam ARGS` (a command other than serve, e.g. `token --rotate`) with `env` added,
 * as a person would on the device; resolves to its stdout once it has succeeded.
 */
export function peercamCommand(args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(peercamBin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`peercam ${args.join(' ')}: exit ${code}: ${stderr}`));
    });
  });
}

/** A file-name-safe form of a test's name. */
export function slug(name) {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

/**
 * Launches headless Chromium with the flags known to work on this kind of machine
 * (shared/E2E_NOTES.md). `fakeMedia` gives getUserMedia a synthetic camera and microphone;
 * `fakeAudio` (a WAV file's path) is what that microphone hears, played in a loop.
 * Playwright gives each launch a fresh profile directory. Closed at test end.
 *
 * The browser resolves TEST_HOST to 127.0.0.1, and accepts the certificates of the devices
 * this test started before it, and no other: start the device first.
 */
export async function launchBrowser(t, { fakeMedia = true, fakeAudio = null } = {}) {
  const spkis = [...devicesOf(t).spkis];
  if (scheme === 'https' && !spkis.length) {
    throw new Error('https pass: no certificate to accept; start the device before the browser');
  }
  const args = [
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
    // Without these two, ICE never starts in a loopback-only namespace.
    '--allow-loopback-in-peer-connection',
    // Chromium keeps only the last --disable-features switch, so this replaces Playwright's
    // own list; none of its entries matter to these pages.
    '--disable-features=WebRtcHideLocalIpsWithMdns',
    `--host-resolver-rules=MAP ${TEST_HOST} 127.0.0.1`,
  ];
  // Certificate errors are ignored only for a certificate with one of these keys (SHA-256 of
  // its SubjectPublicKeyInfo, base64); Playwright's own --user-data-dir, which this flag
  // requires, is always there.
  if (spkis.length) args.push(`--ignore-certificate-errors-spki-list=${spkis.join(',')}`);
  if (fakeMedia) args.push('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream');
  if (fakeMedia && fakeAudio) args.push(`--use-file-for-fake-audio-capture=${fakeAudio}`);
  const browser = await chromium.launch({
    executablePath: chromiumBin,
    headless: true,
    chromiumSandbox: false,
    args,
  });
  onCleanup(t, () => browser.close());
  return browser;
}

/**
 * Opens `url` in a new context of `browser` (its own cookies and permissions, like another
 * person's browser) and records the page's console, uncaught errors, failed requests and
 * WebSockets.
 *
 * Returns {page, context, messages, sockets, problems(), assertClean()}; `assertClean` throws
 * if the page logged an error, threw, or failed to load anything, if it is not on `scheme`
 * (by default the pass's: http, or https in the https pass), or if a WebSocket it opened is
 * not ws (http) or wss (https). `ignoreFavicon` is for pages that are not the device's HTML
 * page. `init` is a function run in the page before its own scripts (a stand-in device).
 */
export async function openPage(
  t,
  browser,
  url,
  { name = 'page', ignoreFavicon = false, scheme: expected = scheme, init = null } = {},
) {
  const context = await browser.newContext({
    permissions: ['camera', 'microphone'],
    viewport: { width: 960, height: 600 },
  });
  onCleanup(t, () => context.close());
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  const messages = [];
  const failures = [];
  const sockets = [];
  page.on('console', (m) => messages.push({ type: m.type(), text: m.text(), url: m.location().url }));
  page.on('pageerror', (err) => failures.push(`uncaught: ${err.message}`));
  page.on('requestfailed', (req) => {
    failures.push(`request failed: ${req.url()} ${req.failure()?.errorText ?? ''}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) failures.push(`HTTP ${res.status()}: ${res.url()}`);
  });
  page.on('websocket', (ws) => sockets.push(ws.url()));
  const wsScheme = expected === 'https' ? 'wss:' : 'ws:';
  const problems = () => [
    ...failures,
    ...(new URL(page.url()).protocol === `${expected}:`
      ? []
      : [`page is on ${page.url()}, not ${expected}`]),
    ...sockets
      .filter((s) => new URL(s).protocol !== wsScheme)
      .map((s) => `WebSocket ${s} from a page on ${expected} (want ${wsScheme})`),
    ...messages
      .filter((m) => m.type === 'error')
      // A page that is not HTML (the JSON of /api/info) cannot say "no icon", so the
      // browser asks for /favicon.ico; the device serves none.
      .filter((m) => !(ignoreFavicon && m.url.endsWith('/favicon.ico')))
      .map((m) => `console.error: ${m.text} (${m.url})`),
  ];
  onCleanup(t, async () => {
    const log = messages.map((m) => `${m.type}: ${m.text}`).concat(failures).join('\n');
    await writeFile(await artifact(`${slug(t.name)}.${name}.console.log`), `${log}\n`);
  });
  await page.goto(url);
  return {
    page,
    context,
    messages,
    sockets,
    problems,
    assertClean() {
      const list = problems();
      if (list.length) throw new Error(`page ${name} had problems:\n  ${list.join('\n  ')}`);
    },
  };
}

/** Where the page is, as the page sees it: {protocol, host, secure (isSecureContext)}. */
export function pageOrigin(page) {
  return page.evaluate(() => ({
    protocol: location.protocol,
    host: location.host,
    secure: isSecureContext,
  }));
}

/** `window.peercam.stats()` of a page: least framesDecoded etc. across its remote peers. */
export function pageStats(page) {
  return page.evaluate(() => window.peercam.stats());
}

/**
 * Waits until the page has at least `peers` remote peers and each has decoded at least `n`
 * video frames of a known size; returns the stats.
 */
export function waitForFrames(page, n = 1, { peers = 1, timeout = 20000 } = {}) {
  return waitFor(
    `${peers} peer(s) with ${n} decoded frame(s) each`,
    () => pageStats(page),
    (s) => s.peers.length >= peers && s.framesDecoded >= n && s.frameWidth > 0,
    { timeout },
  );
}

/** Waits until the room page shows its own camera in its tile; returns the picture's width. */
export function waitForOwnCamera(page) {
  return waitFor(
    "the page's own camera",
    () => page.evaluate(() => document.querySelector('figure.local video')?.videoWidth ?? 0),
    (width) => width > 0,
  );
}

/** Waits until `window.peercam.state` is `state`; returns the page's status line. */
export async function waitForState(page, state, { timeout = 15000 } = {}) {
  try {
    await waitFor(`page state ${JSON.stringify(state)}`, () => pageState(page), (s) => s === state, {
      timeout,
    });
  } catch (err) {
    const history = await page.evaluate(() => window.peercam && window.peercam.history);
    throw new Error(`${err.message}; states so far: ${JSON.stringify(history)}`);
  }
  return page.evaluate(() => window.peercam.status);
}

/** The page's `window.peercam.state`, or '' before the script has run. */
export function pageState(page) {
  return page.evaluate(() => (window.peercam ? window.peercam.state : ''));
}
