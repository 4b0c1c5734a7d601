// The transfer page with the keyboard alone (Chromium): a sender picks a file and gets a code, a
// receiver types the code and accepts, every step by Tab, Space, Enter and typing; each control
// reached shows where the focus is.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { launchBrowser } from './support/browser.js';
import { startSignalingServer } from './support/processes.js';
import { randomFile, sha256File, tempDir } from './support/transfer.js';

/** Presses Tab until the element `id` has the focus (at most 30 times); asserts its focus shows. */
async function tabTo(page, id) {
  for (let presses = 0; presses < 30; presses += 1) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const element = document.activeElement;
      const style = getComputedStyle(element);
      return { id: element.id, ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0 };
    });
    if (focused.id === id) {
      assert.ok(focused.ring, `#${id} has the focus but shows no focus ring`);
      return;
    }
  }
  assert.fail(`Tab never reached #${id}`);
}

test('a page sends a file to another page with the keyboard alone', { timeout: 90_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const dir = tempDir(t);
  const file = randomFile(dir, 'notes.bin', 300_000);
  const downloads = path.join(dir, 'downloads');
  fs.mkdirSync(downloads);
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const sender = await browser.newPage();
  await sender.goto(`${server.httpUrl}transfer.html`);
  await sender.waitForFunction(() => document.body.dataset.ready === 'true');
  await tabTo(sender, 'send-files');
  const chooser = sender.waitForEvent('filechooser');
  await sender.keyboard.press('Space');
  await (await chooser).setFiles([file]);
  await tabTo(sender, 'send-start');
  await sender.keyboard.press('Enter');
  await sender.waitForFunction(() => document.body.dataset.code);
  const code = await sender.getAttribute('body', 'data-code');

  const receiver = await browser.newPage();
  await receiver.goto(`${server.httpUrl}transfer.html`);
  await receiver.waitForFunction(() => document.body.dataset.ready === 'true');
  await tabTo(receiver, 'receive-code');
  await receiver.keyboard.type(code);
  await receiver.keyboard.press('Enter');
  await receiver.waitForSelector('#offer', { state: 'visible' });
  // The offer's first action takes the focus (Chromium: the folder), so Tab on to the download.
  const download = receiver.waitForEvent('download');
  assert.equal(await receiver.evaluate(() => document.activeElement.id), 'accept-folder');
  await tabTo(receiver, 'accept-download');
  await receiver.keyboard.press('Enter');
  const saved = path.join(downloads, 'notes.bin');
  await (await download).saveAs(saved);
  await receiver.waitForFunction(() => document.body.dataset.transfer === 'done');
  assert.equal(sha256File(saved), sha256File(file));
  assert.deepEqual(browser.pageErrors, []);
});
