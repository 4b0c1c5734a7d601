// Screenshots of the transfer page during a transfer, at desktop width (the sender) and phone width
// (the receiver, which opened the sender's link), in light and dark colour schemes; the phone page
// must fit its width. Written to a temporary folder, or over docs/transfer-desktop.png and
// docs/transfer-phone.png (shown in the README) with UPDATE_SCREENSHOTS=1:
//
//   UPDATE_SCREENSHOTS=1 node --test web/tests/transfer-screenshots.test.js

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { launchBrowser } from './support/browser.js';
import { REPO_ROOT, startSignalingServer } from './support/processes.js';
import { getCode, randomFile, tempDir } from './support/transfer.js';

const MiB = 1024 * 1024;
/** PNG files start with these eight bytes. */
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Width and height of a PNG file (its IHDR chunk). */
function pngSize(file) {
  const bytes = fs.readFileSync(file);
  assert.ok(bytes.subarray(0, 8).equals(PNG_SIGNATURE), `${file} is not a PNG`);
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

for (const colorScheme of ['light', 'dark']) {
  test(`screenshots of a transfer at desktop and phone width (${colorScheme})`, { timeout: 120_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const dir = tempDir(t);
    const update = process.env.UPDATE_SCREENSHOTS === '1' && colorScheme === 'light';
    const shots = update ? path.join(REPO_ROOT, 'docs') : dir;
    const album = path.join(dir, 'holiday');
    fs.mkdirSync(album);
    randomFile(album, 'beach.mov', 96 * MiB);
    randomFile(album, 'sunset.jpg', 4 * MiB);
    randomFile(album, 'notes.txt', 2000);

    const desktop = await launchBrowser({ viewport: { width: 1000, height: 760 } });
    t.after(() => desktop.close());
    const phone = await launchBrowser({ viewport: { width: 390, height: 844 } });
    t.after(() => phone.close());
    const sender = await desktop.newPage();
    const receiver = await phone.newPage();
    for (const page of [sender, receiver]) await page.emulateMedia({ colorScheme });

    await sender.goto(`${server.httpUrl}transfer.html`);
    await sender.setInputFiles('#send-folder', album);
    await getCode(sender);
    await receiver.goto(await sender.getAttribute('#send-link', 'href'));
    await receiver.waitForSelector('#offer', { state: 'visible' });
    await receiver.click('#accept-download');
    // A quarter of the way: both pages show the transfer running.
    await receiver.waitForFunction(() => {
      const bar = document.getElementById('transfer-progress');
      return bar.value > bar.max / 4;
    }, null, { timeout: 60_000 });
    const desktopShot = path.join(shots, 'transfer-desktop.png');
    const phoneShot = path.join(shots, 'transfer-phone.png');
    await sender.screenshot({ path: desktopShot, fullPage: true });
    await receiver.screenshot({ path: phoneShot, fullPage: true });

    assert.equal(pngSize(desktopShot).width, 1000);
    assert.equal(pngSize(phoneShot).width, 390);
    // Nothing wider than the phone: no sideways scrolling.
    assert.ok(await receiver.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
    // The page follows the colour scheme: dark text on a light page, light text on a dark one.
    const text = await receiver.evaluate(() => getComputedStyle(document.body).color);
    const [r, g, b] = text.match(/\d+/g).map(Number);
    assert.equal((r + g + b) / 3 < 128, colorScheme === 'light', `text colour ${text} in the ${colorScheme} scheme`);
    await receiver.waitForFunction(() => document.body.dataset.transfer === 'done', null, { timeout: 60_000 });
    assert.deepEqual([...desktop.pageErrors, ...phone.pageErrors], []);
  });
}
