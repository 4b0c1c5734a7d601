// Writes docs/transfer-desktop.png and docs/transfer-phone.png: the transfer page sending a few files
// from a desktop-width window to a phone-width one that opened its link, taken during the transfer.
// Run after `cargo build --bins`: node web/tests/make-transfer-screenshots.js

import fs from 'node:fs';
import path from 'node:path';
import { launchBrowser } from './support/browser.js';
import { REPO_ROOT, startSignalingServer } from './support/processes.js';
import { getCode, randomFile } from './support/transfer.js';

const MiB = 1024 * 1024;
const DESKTOP = path.join(REPO_ROOT, 'docs', 'transfer-desktop.png');
const PHONE = path.join(REPO_ROOT, 'docs', 'transfer-phone.png');

const dir = fs.mkdtempSync('/tmp/transfer-screenshots-');
const server = await startSignalingServer();
const desktop = await launchBrowser({ viewport: { width: 1000, height: 760 } });
const phone = await launchBrowser({ viewport: { width: 390, height: 844 } });
try {
  const album = path.join(dir, 'holiday');
  fs.mkdirSync(album);
  randomFile(album, 'beach.mov', 300 * MiB);
  randomFile(album, 'sunset.jpg', 4 * MiB);
  randomFile(album, 'notes.txt', 2000);

  const sender = await desktop.newPage();
  await sender.goto(`${server.httpUrl}transfer.html`);
  await sender.setInputFiles('#send-folder', album);
  await getCode(sender);
  const link = await sender.getAttribute('#send-link', 'href');

  const receiver = await phone.newPage();
  await receiver.goto(link);
  await receiver.waitForSelector('#offer', { state: 'visible' });
  await receiver.click('#accept-download');
  // A quarter of the way: both pages show the transfer running.
  await receiver.waitForFunction(() => {
    const bar = document.getElementById('transfer-progress');
    return bar.value > bar.max / 4;
  }, null, { timeout: 120_000 });
  await sender.screenshot({ path: DESKTOP, fullPage: true });
  await receiver.screenshot({ path: PHONE, fullPage: true });
  console.log(`wrote ${DESKTOP} and ${PHONE}`);
} finally {
  await desktop.close();
  await phone.close();
  await server.child.kill();
  fs.rmSync(dir, { recursive: true, force: true });
}
