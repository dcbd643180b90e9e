// Browser-to-browser video chat through the server: the page's room mode joins a MESH
// conversation with a (fake) camera, and every member sees every other's video.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  NO_CAMERA,
  artifact,
  launchBrowser,
  openPage,
  pageOrigin,
  pageStats,
  scheme,
  sleep,
  startPeercam,
  waitFor,
  waitForFrames,
  waitForOwnCamera,
  waitForState,
} from './lib/harness.js';

test('two pages in a mesh room see each other', { timeout: 60000 }, async (t) => {
  const peercam = await startPeercam(t, NO_CAMERA);
  const browser = await launchBrowser(t);
  const url = peercam.link('/?room=mesh-test');
  const a = await openPage(t, browser, url, { name: 'a' });
  const b = await openPage(t, browser, url, { name: 'b' });

  const pages = [a.page, b.page];
  await Promise.all(pages.map((p) => waitForFrames(p, 1, { peers: 1 })));
  const ids = await Promise.all(pages.map((p) => p.evaluate(() => window.peercam.id)));
  assert.ok(ids[0] && ids[1] && ids[0] !== ids[1], `distinct member ids: ${ids}`);
  assert.deepEqual(await a.page.evaluate(() => window.peercam.peers()), [ids[1]]);
  assert.deepEqual(await b.page.evaluate(() => window.peercam.peers()), [ids[0]]);

  // Video that keeps arriving, not a single frame that got through: decoded frames must grow
  // between two looks a second apart, on both sides.
  const first = await Promise.all(pages.map(pageStats));
  await sleep(1000);
  const second = await Promise.all(pages.map(pageStats));
  for (const [i, name] of ['a', 'b'].entries()) {
    assert.ok(
      second[i].framesDecoded > first[i].framesDecoded,
      `page ${name} decodes: ${first[i].framesDecoded} → ${second[i].framesDecoded}`,
    );
    assert.ok(second[i].frameWidth > 0 && second[i].videoWidth > 0, `page ${name} has a size`);
  }
  for (const p of pages) {
    const status = await waitForState(p, 'live');
    assert.match(status, /Live in room “mesh-test” with 1 other/);
  }
  // The camera needs a secure context: on 127.0.0.1 any scheme gives one; in the https pass the
  // page is on a name that is not localhost, so it comes from https alone.
  const { host } = new URL(url);
  const signaling = `${scheme === 'https' ? 'wss' : 'ws'}://${host}/signaling`;
  for (const p of [a, b]) {
    assert.deepEqual(await pageOrigin(p.page), { protocol: `${scheme}:`, host, secure: true });
    assert.deepEqual(p.sockets, [signaling]);
    await waitForOwnCamera(p.page);
  }

  await a.page.screenshot({ path: await artifact('mesh-page-a.png') });
  await b.page.screenshot({ path: await artifact('mesh-page-b.png') });

  // B leaving must take its tile off A's page and put A back to waiting.
  await b.page.evaluate(() => window.peercam.leave());
  await waitForState(a.page, 'waiting');
  assert.deepEqual(await a.page.evaluate(() => window.peercam.peers()), []);

  for (const p of [a, b]) {
    p.assertClean();
    assert.deepEqual(await p.page.evaluate(() => window.peercam.errors), []);
  }
});

test('inviting the camera where there is none says so', { timeout: 60000 }, async (t) => {
  const peercam = await startPeercam(t, NO_CAMERA);
  const browser = await launchBrowser(t);
  const a = await openPage(t, browser, peercam.link('/?room=lonely&invite=1'), { name: 'a' });

  await waitForState(a.page, 'waiting');
  const notice = await waitFor(
    'the refused invitation on the page',
    () => a.page.evaluate(() => window.peercam.notice),
    Boolean,
  );
  assert.match(notice, /^MEMBER_NOT_FOUND: /);
  const errors = await a.page.evaluate(() => window.peercam.errors);
  assert.deepEqual(errors.map((e) => e.code), ['MEMBER_NOT_FOUND']);
  // The button asks again, and the refusal stays an explanation, not a failure.
  await a.page.click('#invite');
  await waitFor(
    'a second refusal',
    () => a.page.evaluate(() => window.peercam.errors.length),
    (n) => n === 2,
  );
  assert.equal(await a.page.evaluate(() => window.peercam.state), 'waiting');
  a.assertClean();
});
