// https and plain http side by side: a room opened over plain http (no secure context, so no
// camera) points to itself on https with the certificate's fingerprint, and the browsers the
// tests launch accept the certificates of the tests' own devices and no others. Both open
// http and https pages themselves, whatever the pass, so they run in the http pass only.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  NO_CAMERA,
  TEST_HOST,
  artifact,
  launchBrowser,
  onCleanup,
  openPage,
  pageOrigin,
  scheme,
  startPeercam,
  waitForFrames,
  waitForOwnCamera,
  waitForState,
} from './lib/harness.js';

const ONCE = { timeout: 60000, skip: scheme === 'https' && 'runs in the http pass' };

test('over plain http a room links to itself on https', ONCE, async (t) => {
  const peercam = await startPeercam(t, ['--source', 'test', '--ice-address', '127.0.0.1'], {
    config: '[camera]\nwidth = 640\nheight = 480\n',
  });
  const browser = await launchBrowser(t);
  // Not localhost: over http, no secure context and so no camera, as on a LAN.
  const host = `${TEST_HOST}:${peercam.port}`;
  const http = await openPage(t, browser, peercam.link('/?room=x', `http://${host}`), {
    name: 'http',
    scheme: 'http',
  });
  const { page } = http;
  await waitForState(page, 'waiting');
  assert.deepEqual(await pageOrigin(page), { protocol: 'http:', host, secure: false });
  assert.equal(await page.evaluate(() => typeof navigator.mediaDevices), 'undefined');

  // The same room on https, with the token the page was opened with.
  const https = peercam.link('/?room=x', `https://${host}`);
  assert.equal(await page.getAttribute('#notice a', 'href'), https);
  assert.equal(await page.textContent('#notice a'), https);
  const { fingerprint } = await peercam.api('/api/info');
  assert.match(fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.equal(await page.textContent('#notice code'), fingerprint);
  const notice = await page.evaluate(() => window.peercam.notice);
  assert.match(notice, /^This browser allows the camera and microphone only on https:\/\//);
  assert.match(notice, /accept it only if the SHA-256 fingerprint it shows is [0-9A-F:]+\.$/);
  assert.equal(await page.locator('figure.local').count(), 0);
  await page.screenshot({ path: await artifact('room-over-http.png') });

  // The link's page has the camera, and the http page still sees the others.
  const secure = await openPage(t, browser, https, { name: 'https', scheme: 'https' });
  assert.deepEqual(await pageOrigin(secure.page), { protocol: 'https:', host, secure: true });
  await waitForOwnCamera(secure.page);
  await waitForFrames(page, 1);
  assert.match(await waitForState(page, 'live'), /with 1 other$/);
  assert.match(await waitForState(secure.page, 'live'), /with 1 other$/);
  assert.equal(await secure.page.evaluate(() => window.peercam.notice), '');
  // Inviting the device clears the notice's passing messages, not the link.
  await page.click('#invite');
  await waitForFrames(page, 1, { peers: 2 });
  assert.equal(await page.getAttribute('#notice a', 'href'), https);
  assert.equal(await page.evaluate(() => window.peercam.notice), notice);

  for (const p of [http, secure]) {
    p.assertClean();
    assert.deepEqual(await p.page.evaluate(() => window.peercam.errors), []);
  }
});

test('the browser accepts the certificates it was told of, and no other', ONCE, async (t) => {
  const known = await startPeercam(t, NO_CAMERA);
  const browser = await launchBrowser(t, { fakeMedia: false });
  // A device started after the browser: a certificate of its own, which nobody told it of.
  const other = await startPeercam(t, NO_CAMERA);
  assert.notEqual(other.info.fingerprint, known.info.fingerprint);

  const page = await openPage(t, browser, known.link('/', `https://${TEST_HOST}:${known.port}`), {
    scheme: 'https',
  });
  await waitForState(page.page, 'waiting');
  page.assertClean();

  const context = await browser.newContext();
  onCleanup(t, () => context.close());
  const stranger = await context.newPage();
  for (const host of [TEST_HOST, '127.0.0.1']) {
    await assert.rejects(
      stranger.goto(`https://${host}:${other.port}/`),
      /net::ERR_CERT_AUTHORITY_INVALID/,
    );
  }
  // Plain http needs no certificate.
  const plain = await context.newPage();
  await plain.goto(other.link('/', `http://${TEST_HOST}:${other.port}`));
  assert.equal(await plain.evaluate(() => location.protocol), 'http:');
});
