// Failures a person meets while a transfer runs, in both engines: a file that changes on disk after
// it was picked, and a full disk under the browser's downloads (a real tmpfs, so the tests run as
// root, as scripts/test does). Each side says what happened and what to do.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ENGINES } from './support/engines.js';
import { startSignalingServer } from './support/processes.js';
import { exited, randomFile, runPeerClient, startPageSend, tempDir } from './support/transfer.js';

const MiB = 1024 * 1024;

/** A new folder on a tmpfs of `size`, unmounted and removed after the test; a test that cannot mount it fails. */
function smallDisk(t, size) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'web-small-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    fs.rmdirSync(dir);
    throw new Error(`cannot mount a tmpfs for the full disk (the tests run as root, as scripts/test does): ${err.stderr ?? err}`);
  }
  t.after(() => {
    execFileSync('umount', ['--lazy', dir]);
    fs.rmdirSync(dir);
  });
  return dir;
}

/** Waits until the page's transfer ended; returns the sentence it shows. */
async function failure(page) {
  await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), undefined, { timeout: 60_000 });
  assert.equal(await page.getAttribute('body', 'data-transfer'), 'failed');
  return page.textContent('#transfer-error');
}

for (const engine of ENGINES) {
  test(`${engine.name}: a file that changes on disk after it was picked stops the send, and both sides say so`, { timeout: 90_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const dir = tempDir(t);
    const file = randomFile(dir, 'report.bin', 8 * MiB);
    const browser = await engine.launch();
    t.after(() => browser.close());
    const { page, code } = await startPageSend(browser, server.httpUrl, [file]);
    // Rewritten shorter, as a program that saves over it would.
    fs.writeFileSync(file, crypto.randomBytes(MiB));

    const receiver = runPeerClient('peer-client receive', ['receive', code, '--server', server.wsUrl, '--out', path.join(dir, 'out'), '--yes']);
    t.after(() => receiver.kill());
    const shown = await failure(page);
    assert.match(shown, /^report\.bin changed on disk \(or could no longer be read\) while it was being sent/);
    assert.match(shown, /pick it again and send again$/);
    assert.notEqual((await exited(receiver)).code, 0);
    assert.match(receiver.log(), /report\.bin changed on disk/);
    assert.deepEqual(browser.pageErrors, []);
  });

  test(`${engine.name}: a full disk under the downloads stops the transfer, and both sides say so`, { timeout: 90_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const dir = tempDir(t);
    const file = randomFile(dir, 'movie.bin', 24 * MiB);
    const code = '31-apple-tiger';
    const sender = runPeerClient('peer-client send', ['send', file, '--server', server.wsUrl, '--code', code]);
    t.after(() => sender.kill());
    await sender.waitForLine('Waiting for the receiver');

    const downloads = smallDisk(t, '4m');
    const browser = await engine.launch({ downloadDir: downloads, downloadsPath: downloads });
    t.after(() => browser.close());
    const page = await browser.newPage();
    await page.goto(`${server.httpUrl}#code=${code}`);
    await page.waitForSelector('#offer', { state: 'visible' });
    await page.click('#accept-download');
    const shown = await failure(page);
    assert.match(shown, /the browser stopped the download of movie\.bin/);
    assert.match(shown, /or the disk is full; free some space if it is, and receive again/);
    assert.notEqual((await exited(sender)).code, 0);
    assert.match(sender.log(), /the browser stopped the download of movie\.bin/);
  });
}
