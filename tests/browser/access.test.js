// The camera is private: a person opens the link the device printed at start (with its
// access token), watches, comes back later by the plain address (the cookie the device set),
// and, once the owner has replaced the token (`peercam token --rotate`), is told in words
// that the camera needs its new link. The printed link is the device's own https one, so this
// runs in the http pass only.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  artifact,
  launchBrowser,
  openPage,
  peercamCommand,
  scheme,
  startPeercam,
  waitFor,
  waitForFrames,
  waitForState,
} from './lib/harness.js';

const ONCE = { timeout: 90000, skip: scheme === 'https' && 'runs in the http pass' };

test('the printed link opens the camera, the bare address works after, a new token ends it', ONCE, async (t) => {
  const peercam = await startPeercam(t, ['--source', 'test', '--ice-address', '127.0.0.1'], {
    config: '[camera]\nwidth = 640\nheight = 480\n',
  });
  // What the owner reads in the journal: `open https://127.0.0.1:PORT/?token=... to watch`.
  const printed = /open (https:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}) to watch/.exec(
    peercam.log(),
  );
  assert.ok(printed, `no link in the log:\n${peercam.log()}`);
  const link = printed[1];
  const bare = `https://127.0.0.1:${peercam.port}/`;
  // `peercam token` prints the same token.
  const said = await peercamCommand(['token'], { STATE_DIRECTORY: peercam.stateDir });
  assert.equal(new URL(said.trim()).searchParams.get('token'), new URL(link).searchParams.get('token'));

  const browser = await launchBrowser(t, { fakeMedia: false });
  // Without the link: the page says how to get it.
  const stranger = await openPage(t, browser, bare, { name: 'stranger', scheme: 'https' });
  assert.match(await stranger.page.textContent('body'), /needs its access link/);
  assert.match(await stranger.page.textContent('body'), /peercam token/);

  const viewer = await openPage(t, browser, link, { name: 'viewer', scheme: 'https' });
  const { page } = viewer;
  await waitForFrames(page, 5);
  // The token has left the address bar.
  assert.equal(page.url(), bare);
  viewer.assertClean();
  await page.screenshot({ path: await artifact('access-opened-link.png') });

  // Next time: the plain address (a bookmark), in the same browser.
  const again = await page.goto(bare);
  assert.equal(again.status(), 200);
  await waitForFrames(page, 5);
  assert.equal(page.url(), bare);
  viewer.assertClean();

  // The owner replaces the token while the page watches: the page says it needs the new link.
  const rotated = await peercamCommand(['token', '--rotate'], {
    STATE_DIRECTORY: peercam.stateDir,
  });
  const newLink = rotated.trim().replace(/^https:\/\/[^/]+/, `https://127.0.0.1:${peercam.port}`);
  assert.notEqual(new URL(newLink).searchParams.get('token'), new URL(link).searchParams.get('token'));
  const status = await waitForState(page, 'error');
  assert.match(status, /access token has changed: open the new link/);
  assert.match(await page.textContent('#status'), /new link/);
  await page.screenshot({ path: await artifact('access-token-changed.png') });
  // Reloading the plain address now gets the page that explains, not the camera.
  const refused = await page.reload();
  assert.equal(refused.status(), 401);
  assert.match(await page.textContent('body'), /needs its access link/);

  // The new link works again, and leaves the address bar too.
  await page.goto(newLink);
  await waitFor('the page to watch again', () => page.url(), (u) => u === bare);
  await waitForFrames(page, 5);
  await waitFor(
    'the camera to serve the one page again',
    async () => (await peercam.api('/api/stats')).camera,
    (c) => c.connected === 1 && c.peers === 1,
  );
});
