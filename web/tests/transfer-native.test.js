// File transfer between the page and the native peer-client, both ways, in headless Chromium (and
// the first two in Firefox too).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { launchBrowser } from './support/browser.js';
import { ENGINES } from './support/engines.js';
import { browserMemory, sampleMemory } from './support/memory.js';
import { startSignalingServer } from './support/processes.js';
import { readQrCode } from './support/qr.js';
import { exited, getCode, randomFile, receiveInto, runPeerClient, sha256File, startPageSend, tempDir } from './support/transfer.js';

const MiB = 1024 * 1024;

/** Starts `peer-client send PATHS --code CODE --json` and waits until it waits for its receiver. */
async function nativeSend(t, wsUrl, paths, code) {
  const sender = runPeerClient('peer-client send', ['send', ...paths, '--server', wsUrl, '--code', code, '--json']);
  t.after(() => sender.kill());
  await sender.waitForLine('"event":"code"', { stream: 'stdout' });
  return sender;
}

for (const engine of ENGINES) {
  test(`${engine.name}: native peer-client send → page receives, files verified`, { timeout: 120_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const dir = tempDir(t);
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    const files = [randomFile(src, 'big.bin', 5 * MiB + 12345), randomFile(src, 'small.txt', 1000), randomFile(src, 'empty', 0)];
    const code = '7-apple-tiger';
    const sender = await nativeSend(t, server.wsUrl, files, code);

    const downloads = path.join(dir, 'downloads');
    fs.mkdirSync(downloads);
    const browser = await engine.launch({ downloadDir: downloads });
    t.after(() => browser.close());
    const page = await browser.newPage();
    const saved = engine.collectDownloads(page, downloads, files.length);
    // The link the sender prints: the chat page forwards it to the transfer page.
    await page.goto(`${server.httpUrl}#code=${code}`);
    await page.waitForSelector('#offer', { state: 'visible' });
    assert.match(await page.textContent('#offer-summary'), /3 files, 5\.3 MB in all/);
    assert.deepEqual(await page.$$eval('#offer-list li', (items) => items.map((i) => i.textContent.split(' (')[0])), [
      'big.bin',
      'small.txt',
      'empty',
    ]);
    // The code left the address bar once read.
    assert.equal(new URL(page.url()).hash, '');
    // Downloads stream here (a secure context with a service worker): said before accepting.
    assert.match(await page.textContent('#download-note'), /saved as they arrive and complete only once verified/);
    await page.click('#accept-download');
    try {
      await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout: 60_000 });
    } catch (err) {
      // Say where it stood, so a stall can be told apart from a refusal.
      const status = await page.textContent('#transfer-status').catch(() => '?');
      throw new Error(`${err.message}\npage status: ${status}\nsender:\n${sender.log()}`);
    }
    assert.equal(await page.getAttribute('body', 'data-transfer'), 'done', await page.textContent('#transfer-error'));
    assert.match(await page.textContent('#transfer-status'), /BLAKE3-verified/);
    assert.equal(await page.textContent('#transfer-file'), 'File 3 of 3: empty — 100 % of 0 B');

    const got = await saved();
    assert.deepEqual(got.map((d) => d.name).sort(), ['big.bin', 'empty', 'small.txt']);
    assert.deepEqual(await page.$$eval('#received-list li', (items) => items.map((i) => i.textContent)), [
      'big.bin (5.3 MB) — in your downloads',
      'small.txt (1.0 kB) — in your downloads',
      'empty (0 B) — in your downloads',
    ]);
    for (const { name, file } of got) {
      assert.equal(sha256File(file), sha256File(path.join(src, name)), `${name} differs`);
    }
    const status = await exited(sender);
    assert.equal(status.code, 0, sender.log());
    assert.match(sender.output.map((l) => l.line).join('\n'), /"event":"done"/);
    assert.deepEqual(browser.pageErrors, []);
  });

  test(`${engine.name}: page sends → native peer-client receive, files verified`, { timeout: 120_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const dir = tempDir(t);
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    const files = [randomFile(src, 'photo.raw', 4 * MiB + 7), randomFile(src, 'notes.txt', 333)];

    const browser = await engine.launch();
    t.after(() => browser.close());
    const { page, code } = await startPageSend(browser, server.httpUrl, files);
    assert.match(code, /^[1-9][0-9]{0,2}-[a-z]+-[a-z]+$/);
    assert.equal(await page.textContent('#send-command'), `peer-client receive ${code} --server ${server.wsUrl}`);
    assert.equal(await page.getAttribute('#send-link', 'href'), `${server.httpUrl}#code=${code}`);
    // The QR code the page drew reads back as the link.
    assert.equal(await readQrCode(page, '#send-qr'), `${server.httpUrl}#code=${code}`);

    const out = path.join(dir, 'out');
    const receiver = runPeerClient('peer-client receive', ['receive', code, '--server', server.wsUrl, '--out', out, '--yes']);
    t.after(() => receiver.kill());
    const status = await exited(receiver);
    assert.equal(status.code, 0, receiver.log());
    for (const file of files) {
      assert.equal(sha256File(path.join(out, path.basename(file))), sha256File(file), `${path.basename(file)} differs`);
    }
    assert.deepEqual(fs.readdirSync(out).sort(), ['notes.txt', 'photo.raw']);
    await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout: 30_000 });
    assert.equal(await page.getAttribute('body', 'data-transfer'), 'done', await page.textContent('#transfer-error'));
    assert.deepEqual(browser.pageErrors, []);
  });
}

/** Most the page's processes may grow while a file streams to the downloads, whatever its size. */
const STREAMED_DOWNLOAD_GROWTH = 300 * MiB;

for (const engine of ENGINES) {
  test(`${engine.name}: a download larger than the bound streams with the page's memory within it`, { timeout: 300_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const dir = tempDir(t);
    // Held in memory, this file alone would break the bound.
    const file = randomFile(dir, 'large.bin', STREAMED_DOWNLOAD_GROWTH + 100 * MiB);
    const code = '8-apple-tiger';
    const sender = runPeerClient('peer-client send', ['send', file, '--server', server.wsUrl, '--code', code]);
    t.after(() => sender.kill());
    await sender.waitForLine('Waiting for the receiver');

    const downloads = path.join(dir, 'downloads');
    fs.mkdirSync(downloads);
    const browser = await engine.launch({ downloadDir: downloads });
    t.after(() => browser.close());
    const page = await browser.newPage();
    const saved = engine.collectDownloads(page, downloads, 1);
    await page.goto(`${server.httpUrl}#code=${code}`);
    await page.waitForSelector('#offer', { state: 'visible' });
    await page.waitForTimeout(1000);
    const idle = browserMemory(browser.pid);
    const sampler = sampleMemory(browser.pid);
    await page.click('#accept-download');
    // The file's own progress, with the time left, while it runs.
    await page.waitForFunction(
      () => /^File 1 of 1: large\.bin — \d+ % of 419\.4 MB, .+ left$/.test(document.getElementById('transfer-file').textContent),
      null,
      { timeout: 60_000 },
    );
    await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout: 240_000 });
    const peak = sampler.stop();
    assert.equal(await page.getAttribute('body', 'data-transfer'), 'done', await page.textContent('#transfer-error'));
    const [got] = await saved();
    assert.equal(sha256File(got.file), sha256File(file));
    const growth = peak.pages - idle.pages;
    assert.ok(growth <= STREAMED_DOWNLOAD_GROWTH, `the page's processes grew by ${Math.round(growth / MiB)} MiB`);
    assert.equal((await exited(sender)).code, 0, sender.log());
    assert.deepEqual(browser.pageErrors, []);
  });
}

for (const engine of ENGINES) {
  test(`${engine.name}: files dropped on the send card → native peer-client receive`, { timeout: 120_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const dir = tempDir(t);
    const browser = await engine.launch();
    t.after(() => browser.close());
    const page = await browser.newPage();
    await page.goto(`${server.httpUrl}transfer.html`);
    await page.waitForFunction(() => document.body.dataset.ready === 'true');
    // What a drop from the desktop hands the page: a DataTransfer holding files.
    await page.evaluate(() => {
      const bytes = (size, seed) => Uint8Array.from({ length: size }, (_, i) => (i * 31 + seed) % 251);
      const files = new DataTransfer();
      files.items.add(new File([bytes(300_000, 1)], 'dropped.bin'));
      files.items.add(new File(['hello from a drop'], 'note.txt'));
      const zone = document.getElementById('send-view');
      zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: files, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: files, bubbles: true, cancelable: true }));
    });
    await page.waitForFunction(() => document.getElementById('send-picked').textContent.startsWith('Ready'));
    assert.equal(await page.textContent('#send-picked'), 'Ready: 2 files, 300.0 kB.');
    const code = await getCode(page);
    const out = path.join(dir, 'out');
    await receiveInto(t, server.wsUrl, code, out);
    const expected = Buffer.from(Uint8Array.from({ length: 300_000 }, (_, i) => (i * 31 + 1) % 251));
    assert.ok(fs.readFileSync(path.join(out, 'dropped.bin')).equals(expected), 'dropped.bin differs');
    assert.equal(fs.readFileSync(path.join(out, 'note.txt'), 'utf8'), 'hello from a drop');
    await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout: 30_000 });
    assert.equal(await page.getAttribute('body', 'data-transfer'), 'done', await page.textContent('#transfer-error'));
    assert.deepEqual(browser.pageErrors, []);
  });
}

/** Drops the paths `files` from the disk on `selector`, as the desktop would (Chromium's DevTools drag). */
async function dropFromDisk(page, selector, files) {
  const zone = await page.locator(selector).boundingBox();
  const at = { x: zone.x + zone.width / 2, y: zone.y + zone.height / 2 };
  const data = { items: [], files, dragOperationsMask: 1 };
  const devtools = await page.context().newCDPSession(page);
  for (const type of ['dragEnter', 'dragOver', 'drop']) {
    await devtools.send('Input.dispatchDragEvent', { type, ...at, data });
  }
}

/** Everything under `root`, as sorted relative paths (folders end with `/`). */
function listTree(root) {
  return fs
    .readdirSync(root, { recursive: true, withFileTypes: true })
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)) + (entry.isDirectory() ? '/' : ''))
    .sort();
}

/** A folder `album` in `dir` with a file, a file in a subfolder and an empty folder; returns its files by relative path. */
function makeAlbum(dir) {
  const album = path.join(dir, 'album');
  fs.mkdirSync(path.join(album, 'sub'), { recursive: true });
  fs.mkdirSync(path.join(album, 'empty'));
  return {
    album,
    files: {
      'album/cover.bin': randomFile(album, 'cover.bin', 700_000),
      'album/sub/notes.txt': randomFile(path.join(album, 'sub'), 'notes.txt', 1234),
    },
  };
}

// A real drop from the disk: Chromium's DevTools protocol drags paths onto the page as the desktop
// would, so the folder arrives as a directory entry the page must walk (no API of the page is
// called by the test). Firefox's WebDriver BiDi has no drag carrying files.
test('Chromium: a folder from the disk dropped on the send card → native receive, tree kept', { timeout: 120_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const dir = tempDir(t);
  const { album, files: inAlbum } = makeAlbum(dir);
  const files = { ...inAlbum, 'loose.bin': randomFile(dir, 'loose.bin', 4321) };
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${server.httpUrl}transfer.html`);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  await dropFromDisk(page, '#send-view', [album, files['loose.bin']]);
  await page.waitForFunction(() => document.getElementById('send-picked').textContent.startsWith('Ready'));
  assert.equal(await page.textContent('#send-picked'), 'Ready: 3 files and 1 empty folder, 705.6 kB.');
  const code = await getCode(page);
  const out = path.join(dir, 'out');
  await receiveInto(t, server.wsUrl, code, out);
  for (const [name, source] of Object.entries(files)) {
    assert.equal(sha256File(path.join(out, name)), sha256File(source), `${name} differs`);
  }
  assert.ok(fs.statSync(path.join(out, 'album/empty')).isDirectory(), 'the empty folder was not made');
  await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout: 30_000 });
  assert.equal(await page.getAttribute('body', 'data-transfer'), 'done', await page.textContent('#transfer-error'));
  assert.deepEqual(browser.pageErrors, []);
});

// The receiving side of a drop: a folder from the disk dropped on the receive card while an offer
// waits is where the files go. Writing there takes the browser's leave, which Chromium asks the user
// for; the profile here holds the answer a user gives in the site's settings ("Edit files: allow"),
// so the browser's own permission check grants it and nobody has to click a prompt.
test('Chromium: a folder from the disk dropped on the receive card takes the files, tree kept', { timeout: 120_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const dir = tempDir(t);
  const { album, files: sources } = makeAlbum(dir);
  const code = '7-apple-tiger';
  const sender = await nativeSend(t, server.wsUrl, [album], code);
  // The folder the user drops already holds a file of their own.
  const dest = path.join(dir, 'dest');
  fs.mkdirSync(dest);
  fs.writeFileSync(path.join(dest, 'mine.txt'), 'not part of the transfer');

  const origin = new URL(server.httpUrl).origin;
  const preferences = { profile: { content_settings: { exceptions: { file_system_write_guard: { [`${origin},*`]: { setting: 1 } } } } } };
  const browser = await launchBrowser({ preferences });
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${server.httpUrl}#code=${code}`);
  await page.waitForSelector('#offer', { state: 'visible' });
  assert.equal(await page.textContent('#folder-note'), 'Or drop a folder on this card to save into it.');
  await dropFromDisk(page, '#receive-view', [dest]);
  await page.waitForFunction(() => document.getElementById('accept-folder').textContent === 'Save into “dest”');
  // Nothing is written before the user confirms where.
  assert.deepEqual(listTree(dest), ['mine.txt']);
  await page.click('#accept-folder');
  await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout: 60_000 });
  assert.equal(await page.getAttribute('body', 'data-transfer'), 'done', await page.textContent('#transfer-error'));
  assert.deepEqual(listTree(dest), ['album/', 'album/cover.bin', 'album/empty/', 'album/sub/', 'album/sub/notes.txt', 'mine.txt']);
  for (const [name, source] of Object.entries(sources)) {
    assert.equal(sha256File(path.join(dest, name)), sha256File(source), `${name} differs`);
  }
  assert.equal(fs.readFileSync(path.join(dest, 'mine.txt'), 'utf8'), 'not part of the transfer');
  assert.equal((await exited(sender)).code, 0, sender.log());
  assert.deepEqual(browser.pageErrors, []);
});

// The same drop where the browser says no (a user who refuses the prompt): the page says so, writes
// nothing, and the offer stays open for another choice. A dropped file is not a folder.
test('Chromium: a refused dropped folder, or a dropped file, leaves the offer open and the folder untouched', { timeout: 120_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const dir = tempDir(t);
  const file = randomFile(dir, 'report.bin', 300_000);
  const code = '7-apple-tiger';
  const sender = await nativeSend(t, server.wsUrl, [file], code);
  const dest = path.join(dir, 'dest');
  fs.mkdirSync(dest);

  const downloads = path.join(dir, 'downloads');
  fs.mkdirSync(downloads);
  const browser = await launchBrowser({ args: ['--deny-permission-prompts'], downloadsPath: downloads });
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${server.httpUrl}#code=${code}`);
  await page.waitForSelector('#offer', { state: 'visible' });
  await dropFromDisk(page, '#receive-view', [file]);
  await page.waitForFunction(() => document.getElementById('folder-note').dataset.state === 'refused');
  assert.equal(await page.textContent('#folder-note'), 'Drop a folder to save the files into, not a file.');
  await dropFromDisk(page, '#receive-view', [dest]);
  await page.waitForFunction(() => document.getElementById('accept-folder').textContent === 'Save into “dest”');
  await page.click('#accept-folder');
  await page.waitForFunction(() => document.getElementById('folder-note').textContent.startsWith('This browser did not'));
  assert.equal(
    await page.textContent('#folder-note'),
    'This browser did not let the page save into “dest”. Choose a folder with “Save into a folder…”, drop one again and allow it, or accept as a download.',
  );
  assert.equal(await page.textContent('#accept-folder'), 'Save into a folder…');
  assert.equal(await page.isVisible('#offer'), true);
  assert.equal(await page.getAttribute('body', 'data-transfer'), 'offered');
  assert.deepEqual(listTree(dest), []);
  // The offer is still whole: taken as a download, it arrives.
  const saved = page.waitForEvent('download');
  await page.click('#accept-download');
  await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout: 60_000 });
  assert.equal(await page.getAttribute('body', 'data-transfer'), 'done', await page.textContent('#transfer-error'));
  const download = await saved;
  assert.equal(sha256File(await download.path()), sha256File(file));
  assert.equal((await exited(sender)).code, 0, sender.log());
  assert.deepEqual(browser.pageErrors, []);
});

test('a wrong code in the page ends with a clear error and nothing saved', { timeout: 120_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const dir = tempDir(t);
  const file = randomFile(dir, 'secret.bin', 1 * MiB);
  const sender = runPeerClient('peer-client send', ['send', file, '--server', server.wsUrl, '--code', '7-apple-tiger']);
  t.after(() => sender.kill());
  await sender.waitForLine('Waiting for the receiver');

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  let downloads = 0;
  page.on('download', () => {
    downloads += 1;
  });
  // Same number (so the same room), other words.
  await page.goto(`${server.httpUrl}#code=7-apple-banana`);
  await page.waitForSelector('#transfer-error', { state: 'visible', timeout: 60_000 });
  // The page's own key confirmation refused (its words end with what it did not do); the
  // sender's error message, which says the same, arrives only after it.
  assert.equal(
    await page.textContent('#transfer-error'),
    'the code did not match, or someone is interfering with the connection; no file was written',
  );
  assert.equal(await page.isVisible('#offer'), false);
  assert.equal(await page.$$eval('#received-list li', (items) => items.length), 0);
  assert.equal(downloads, 0);
  const status = await exited(sender);
  assert.notEqual(status.code, 0);
  assert.match(sender.log(), /the code did not match/);
  assert.deepEqual(browser.pageErrors, []);
});

test('the page as sender refuses a receiver with a wrong code by itself; nothing is sent', { timeout: 120_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const dir = tempDir(t);
  const file = randomFile(dir, 'secret.bin', 1 * MiB);

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const { page, code } = await startPageSend(browser, server.httpUrl, [file]);
  // Same number (so the same room), other words.
  const [nameplate] = code.split('-');
  const wrong = `${nameplate}-${code.endsWith('-apple-tiger') ? 'apple-banana' : 'apple-tiger'}`;

  const out = path.join(dir, 'out');
  const receiver = runPeerClient('peer-client receive', ['receive', wrong, '--server', server.wsUrl, '--out', out, '--yes']);
  t.after(() => receiver.kill());
  await page.waitForSelector('#transfer-error', { state: 'visible', timeout: 60_000 });
  assert.equal(
    await page.textContent('#transfer-error'),
    'the code did not match, or someone is interfering with the connection; nothing was sent',
  );
  const status = await exited(receiver);
  assert.notEqual(status.code, 0);
  assert.match(receiver.log(), /the code did not match/);
  assert.equal(fs.existsSync(path.join(out, 'secret.bin')), false);
  assert.equal(fs.existsSync(path.join(out, 'secret.bin.part')), false);
  assert.deepEqual(browser.pageErrors, []);
});

test('a code nobody sends with is explained', { timeout: 60_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${server.httpUrl}transfer.html`);
  await page.fill('#receive-code', '42 Apple Tiger');
  await page.click('#receive-connect');
  await page.waitForSelector('#transfer-error', { state: 'visible' });
  assert.match(await page.textContent('#transfer-error'), /nobody is sending with code 42-…/);
  await page.fill('#receive-code', '42-banana');
  await page.click('#receive-connect');
  await page.waitForFunction(() => /too short to be safe/.test(document.getElementById('transfer-error').textContent));
  assert.deepEqual(browser.pageErrors, []);
});

test('page sends a folder → native peer-client receive keeps the relative paths', { timeout: 120_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const dir = tempDir(t);
  const album = path.join(dir, 'album');
  fs.mkdirSync(path.join(album, 'sub', 'deeper'), { recursive: true });
  const files = [
    randomFile(album, 'a.bin', 2 * MiB + 3),
    randomFile(path.join(album, 'sub'), 'b.txt', 10),
    randomFile(path.join(album, 'sub', 'deeper'), 'c.bin', 100_000),
  ];

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${server.httpUrl}transfer.html`);
  await page.setInputFiles('#send-folder', album);
  const code = await getCode(page);
  const out = path.join(dir, 'out');
  await receiveInto(t, server.wsUrl, code, out);
  for (const file of files) {
    const relative = path.relative(dir, file);
    assert.equal(sha256File(path.join(out, relative)), sha256File(file), `${relative} differs`);
  }
  await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout: 30_000 });
  assert.match(await page.textContent('#transfer-status'), /Sent 3 files and 3 folders/);
  assert.deepEqual(browser.pageErrors, []);
});

test('declining in the page tells peer-client send; cancelling a waiting send leaves the room', { timeout: 120_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const dir = tempDir(t);
  const file = randomFile(dir, 'unwanted.bin', 1000);
  const sender = runPeerClient('peer-client send', ['send', file, '--server', server.wsUrl, '--code', '8-apple-tiger']);
  t.after(() => sender.kill());
  await sender.waitForLine('Waiting for the receiver');

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${server.httpUrl}#code=8-apple-tiger`);
  await page.waitForSelector('#offer', { state: 'visible' });
  await page.click('#decline');
  await page.waitForFunction(() => document.body.dataset.transfer === 'declined');
  assert.notEqual((await exited(sender)).code, 0);
  assert.match(sender.log(), /the receiver declined the transfer/);

  // A send waiting for its receiver is cancelled: the code no longer leads anywhere.
  await page.goto(`${server.httpUrl}transfer.html`);
  await page.setInputFiles('#send-files', [file]);
  await page.click('#send-start');
  await page.waitForFunction(() => document.body.dataset.code);
  const code = await page.getAttribute('body', 'data-code');
  await page.click('#cancel');
  await page.waitForSelector('#transfer-error', { state: 'visible' });
  assert.match(await page.textContent('#transfer-error'), /the transfer was cancelled/);
  const receiver = runPeerClient('peer-client receive', ['receive', code, '--server', server.wsUrl, '--out', path.join(dir, 'out'), '--yes']);
  t.after(() => receiver.kill());
  assert.notEqual((await exited(receiver)).code, 0);
  assert.match(receiver.log(), /nobody is sending with code/);
  assert.equal(fs.existsSync(path.join(dir, 'out')), false);
  assert.deepEqual(browser.pageErrors, []);
});
