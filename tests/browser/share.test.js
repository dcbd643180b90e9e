// The Share control: the camera's owner opens Share, a phone reads the QR code off the screen
// (zbarimg here, Debian's zbar-tools), and the link it carries opens the camera and plays in a
// browser that has never seen the camera (no cookie). The code is read from a screenshot of
// the dialog, as a phone's camera would see it.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';

import { artifact, launchBrowser, openPage, startPeercam, waitForFrames } from './lib/harness.js';

const run = promisify(execFile);

test('the Share QR code carries the link, and the link opens the camera and plays', { timeout: 90000 }, async (t) => {
  const peercam = await startPeercam(t, ['--source', 'test', '--ice-address', '127.0.0.1'], {
    config: '[camera]\nwidth = 640\nheight = 480\n',
  });
  const browser = await launchBrowser(t, { fakeMedia: false });

  // The owner's page, opened by its link; the Share button shows the code.
  const owner = await openPage(t, browser, peercam.link('/'), { name: 'owner' });
  await waitForFrames(owner.page, 5);
  await owner.page.click('#share');
  const dialog = owner.page.locator('#share-panel');
  await dialog.locator('img[src^="data:image/svg+xml"]').waitFor();
  const shown = (await dialog.locator('code.share-link').textContent()).trim();
  const shot = await artifact('share-dialog.png');
  await dialog.locator('img').screenshot({ path: shot });
  owner.assertClean();

  // What a phone reads off the screen.
  let read;
  try {
    read = (await run('zbarimg', ['--raw', '-q', shot])).stdout.trim();
  } catch (e) {
    throw new Error(`zbarimg (scripts/setup.sh --test installs zbar-tools): ${e.message}`);
  }
  assert.equal(read, shown, 'the code is the link shown beside it');
  const link = new URL(read);
  assert.equal(link.origin, new URL(peercam.url).origin, 'by the address the owner used');
  assert.equal(link.searchParams.get('token'), peercam.token);

  // The phone: a fresh browser context, no cookie. The link opens the camera and plays.
  const phone = await openPage(t, browser, read, { name: 'phone' });
  await waitForFrames(phone.page, 5);
  phone.assertClean();
});
