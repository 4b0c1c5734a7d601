// File transfer in headless Chromium beyond the basic native interop: streaming into a directory
// (the origin-private file system stands in for a picked folder, which needs a person), page to
// page (also between Chromium and Firefox, both ways), and a sender that lies about a hash or offers
// a path outside the target.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { launchBrowser } from './support/browser.js';
import { ENGINES } from './support/engines.js';
import { startSignalingServer } from './support/processes.js';
import { exited, randomFile, runPeerClient, sha256File, startPageSend, tempDir } from './support/transfer.js';

const MiB = 1024 * 1024;

/** Receives `code` in `page` with the module API into OPFS folder `folder`; returns {summary} or {error}. */
function receiveIntoOpfs(page, wsUrl, code, folder) {
  return page.evaluate(
    async ({ wsUrl, code, folder }) => {
      const { Code, directorySink, receiveOffer } = await import('/js/transfer.js');
      const root = await navigator.storage.getDirectory();
      const dir = await root.getDirectoryHandle(folder, { create: true });
      try {
        const offer = await receiveOffer({ url: wsUrl, code: Code.parse(code) });
        return { summary: await offer.accept(directorySink(dir)) };
      } catch (err) {
        return { error: err.message };
      }
    },
    { wsUrl, code, folder },
  );
}

/** Every entry under OPFS folder `folder`: path → sha256 hex for files, 'dir' for folders. */
function listOpfs(page, folder) {
  return page.evaluate(async (folder) => {
    const root = await navigator.storage.getDirectory();
    const out = {};
    const walk = async (dir, prefix) => {
      for await (const [name, handle] of dir.entries()) {
        const p = prefix ? `${prefix}/${name}` : name;
        if (handle.kind === 'directory') {
          out[p] = 'dir';
          await walk(handle, p);
        } else {
          const bytes = await (await handle.getFile()).arrayBuffer();
          const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
          out[p] = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
        }
      }
    };
    await walk(await root.getDirectoryHandle(folder), '');
    return out;
  }, folder);
}

test('a folder from peer-client streams into a directory handle, verified; existing files are not replaced', { timeout: 120_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const dir = tempDir(t);
  const tree = path.join(dir, 'album');
  fs.mkdirSync(path.join(tree, 'sub'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'empty'));
  randomFile(tree, 'a.bin', 3 * MiB + 1);
  randomFile(path.join(tree, 'sub'), 'b.bin', 700_000);
  randomFile(tree, 'zero', 0);
  const sender = runPeerClient('peer-client send', ['send', tree, '--server', server.wsUrl, '--code', '31-piano-tiger']);
  t.after(() => sender.kill());
  await sender.waitForLine('Waiting for the receiver');

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${server.httpUrl}transfer.html`);
  const result = await receiveIntoOpfs(page, server.wsUrl, '31-piano-tiger', 'inbox');
  assert.equal(result.error, undefined, `${result.error}\n${sender.log()}`);
  assert.equal(result.summary.files, 3);
  assert.equal((await exited(sender)).code, 0, sender.log());

  const sha = (p) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
  assert.deepEqual(await listOpfs(page, 'inbox'), {
    album: 'dir',
    'album/a.bin': sha(path.join(tree, 'a.bin')),
    'album/sub': 'dir',
    'album/sub/b.bin': sha(path.join(tree, 'sub/b.bin')),
    'album/empty': 'dir',
    'album/zero': sha(path.join(tree, 'zero')),
  });

  // The same offer again into the same folder: refused before anything is written.
  const again = runPeerClient('peer-client send', ['send', tree, '--server', server.wsUrl, '--code', '32-piano-tiger']);
  t.after(() => again.kill());
  await again.waitForLine('Waiting for the receiver');
  const second = await receiveIntoOpfs(page, server.wsUrl, '32-piano-tiger', 'inbox');
  assert.match(second.error ?? '', /album\/a\.bin already exists; nothing was changed/);
  assert.notEqual((await exited(again)).code, 0);
  assert.match(again.log(), /already exists/);
  assert.deepEqual(browser.pageErrors, []);
});

test('page to page: the link a page shows brings the files to another page', { timeout: 120_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const dir = tempDir(t);
  const file = randomFile(dir, 'movie.bin', 3 * MiB + 99);

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const { page: sender } = await startPageSend(browser, server.httpUrl, [file]);
  const link = await sender.getAttribute('#send-link', 'href');

  const receiver = await browser.newPage();
  const saved = [];
  receiver.on('download', (d) => saved.push(d.saveAs(path.join(dir, `got-${d.suggestedFilename()}`)).then(() => d.suggestedFilename())));
  await receiver.goto(link);
  await receiver.waitForSelector('#offer', { state: 'visible' });
  await receiver.click('#accept-download');
  await receiver.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout: 60_000 });
  assert.equal(await receiver.getAttribute('body', 'data-transfer'), 'done', await receiver.textContent('#transfer-error'));
  assert.deepEqual(await Promise.all(saved), ['movie.bin']);
  assert.equal(sha256File(path.join(dir, 'got-movie.bin')), sha256File(file));
  await sender.waitForFunction(() => document.body.dataset.transfer === 'done', null, { timeout: 30_000 });
  assert.deepEqual(browser.pageErrors, []);
});

for (const [from, to] of [ENGINES, [...ENGINES].reverse()]) {
  test(`page to page: a ${from.name} page's link brings the files to a ${to.name} page`, { timeout: 120_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const dir = tempDir(t);
    const files = [randomFile(dir, 'movie.bin', 3 * MiB + 99), randomFile(dir, 'notes.txt', 4321)];
    const downloads = path.join(dir, 'downloads');
    fs.mkdirSync(downloads);

    const sendingBrowser = await from.launch();
    t.after(() => sendingBrowser.close());
    const { page: sender } = await startPageSend(sendingBrowser, server.httpUrl, files);
    const link = await sender.getAttribute('#send-link', 'href');

    const receivingBrowser = await to.launch({ downloadDir: downloads });
    t.after(() => receivingBrowser.close());
    const receiver = await receivingBrowser.newPage();
    const saved = to.collectDownloads(receiver, downloads, files.length);
    await receiver.goto(link);
    await receiver.waitForSelector('#offer', { state: 'visible' });
    await receiver.click('#accept-download');
    await receiver.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout: 60_000 });
    assert.equal(await receiver.getAttribute('body', 'data-transfer'), 'done', await receiver.textContent('#transfer-error'));
    const got = await saved();
    assert.deepEqual(got.map((d) => d.name).sort(), ['movie.bin', 'notes.txt']);
    for (const { name, file } of got) assert.equal(sha256File(file), sha256File(path.join(dir, name)), `${name} differs`);
    await sender.waitForFunction(() => document.body.dataset.transfer === 'done', null, { timeout: 30_000 });
    assert.deepEqual(sendingBrowser.pageErrors, []);
    assert.deepEqual(receivingBrowser.pageErrors, []);
  });
}

/** Starts a hostile sender in `page` that runs `script` after the receiver accepted (or not). */
function hostileSender(page, wsUrl, code, { entries, afterAccept }) {
  return page.evaluate(
    async ({ wsUrl, code, entries, afterAccept }) => {
      // `{longPaths: n}`: n unique paths of 4096 bytes, made here rather than passed in.
      if (entries.longPaths) {
        entries = Array.from({ length: entries.longPaths }, (_, i) => ({
          path: String(i).padStart(5, '0') + 'x'.repeat(4091),
          kind: 'file',
          size: 0,
        }));
      }
      const { Code, TransferLink } = await import('/js/transfer.js');
      const link = await TransferLink.open({ url: wsUrl, code: Code.parse(code), role: 'sender' });
      link.sendMessage({ type: 'offer', entries: entries.length, bytes: entries.reduce((s, e) => s + e.size, 0) });
      for (const [i, entry] of entries.entries()) {
        link.sendMessage({ type: 'entry', ...entry });
        // Let a long manifest drain: a data channel refuses more than 16 MiB queued.
        if (i % 250 === 249) await new Promise((resolve) => setTimeout(resolve, 300));
      }
      try {
        const accepted = await link.next(20_000);
        if (afterAccept && accepted.message?.type === 'accept') {
          link.sendMessage({ type: 'file', index: 0, offset: 0 });
          for (let sent = 0; sent < entries[0].size; sent += 100_000) {
            await link.sendData(new Uint8Array(Math.min(100_000, entries[0].size - sent)).fill(7));
          }
          link.sendMessage({ type: 'file_end', index: 0, blake3: '00'.repeat(32) });
          await link.next(20_000);
        }
        return 'no error';
      } catch (err) {
        return err.message;
      } finally {
        await link.close();
      }
    },
    { wsUrl, code, entries, afterAccept },
  );
}

for (const engine of ENGINES) {
  test(`${engine.name}: a hash that does not match or a path outside the target ends with a clear error and nothing saved`, { timeout: 120_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const downloadDir = path.join(tempDir(t), 'downloads');
    fs.mkdirSync(downloadDir);
    const browser = await engine.launch({ downloadDir });
    t.after(() => browser.close());

    for (const { code, entries, afterAccept, error } of [
      {
        code: '51-apple-tiger',
        entries: [{ path: 'x.bin', kind: 'file', size: 300_000 }],
        afterAccept: true,
        error: /x\.bin: the received data does not match the sender's BLAKE3 hash/,
      },
      {
        code: '52-apple-tiger',
        entries: [{ path: '../evil', kind: 'file', size: 0 }],
        afterAccept: false,
        error: /refused the path "\.\.\/evil" offered by the sender/,
      },
      {
        // 4097 paths of 4096 bytes: each allowed, together over the 16 MiB bound.
        code: '54-apple-tiger',
        entries: { longPaths: 4097 },
        afterAccept: false,
        error: /the manifest's paths take more than 16 MiB together/,
      },
    ]) {
      const evil = await browser.newPage();
      await evil.goto(`${server.httpUrl}transfer.html`);
      const evilDone = hostileSender(evil, server.wsUrl, code, { entries, afterAccept });
      await evil.waitForTimeout(300); // the hostile sender joins first
      const page = await browser.newPage();
      const completed = engine.watchCompletedDownloads(page, downloadDir);
      await page.goto(`${server.httpUrl}#code=${code}`);
      if (afterAccept) {
        await page.waitForSelector('#offer', { state: 'visible' });
        await page.click('#accept-download');
      }
      await page.waitForSelector('#transfer-error', { state: 'visible' });
      assert.match(await page.textContent('#transfer-error'), error);
      assert.equal(await page.$$eval('#received-list li', (items) => items.length), 0);
      // A streamed download began with the file and failed with it: nothing complete was saved.
      assert.deepEqual(await completed(), []);
      // The sender is told why.
      assert.match(await evilDone, /the other side stopped the transfer/);
      await evil.close();
      await page.close();
    }
    // Where downloads cannot stream (a page without a secure context), files wait in memory: an
    // offer too large for that is refused before anything is written.
    const page = await browser.newPage();
    await page.goto(`${server.httpUrl}transfer.html`);
    const refusal = await page.evaluate(async (size) => {
      const { blobSink } = await import('/js/transfer.js');
      return blobSink(() => {})
        .prepare([{ path: 'huge.iso', kind: 'file', size }])
        .then(() => 'accepted', (err) => err.message);
    }, 3 * 1024 * MiB);
    assert.match(refusal, /too large to hold in the browser's memory .*nothing was written/);
    assert.deepEqual(browser.pageErrors, []);
  });
}

test('an interrupted receive into a directory resumes: what arrived is not sent again', { timeout: 180_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const dir = tempDir(t);
  const file = randomFile(dir, 'large.bin', 24 * MiB + 5);
  const code = '61-piano-tiger';
  const first = runPeerClient('peer-client send', ['send', file, '--server', server.wsUrl, '--code', code]);
  t.after(() => first.kill());
  await first.waitForLine('Waiting for the receiver');

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${server.httpUrl}transfer.html`);
  // Receive, and kill the sender once a few MiB have arrived.
  const interrupted = page.evaluate(
    async ({ wsUrl, code }) => {
      const { Code, directorySink, receiveOffer } = await import('/js/transfer.js');
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('resume', { create: true });
      const offer = await receiveOffer({ url: wsUrl, code: Code.parse(code) });
      try {
        await offer.accept(directorySink(dir), {
          onProgress: ({ done }) => {
            window.arrived = done;
            if (done > 4 * 1024 * 1024) window.enoughArrived = true;
          },
        });
        return 'finished';
      } catch (err) {
        return err.message;
      }
    },
    { wsUrl: server.wsUrl, code },
  );
  try {
    await page.waitForFunction(() => window.enoughArrived === true, null, { timeout: 60_000 });
  } catch (err) {
    // Say how far it got, and what the sender saw, so a stall can be diagnosed.
    const arrived = await page.evaluate(() => window.arrived ?? 0).catch(() => '?');
    throw new Error(`${err.message}\nbytes arrived: ${arrived}\nsender:\n${first.log()}`);
  }
  await first.kill('SIGKILL');
  assert.match(await interrupted, /the other side went away/);
  const partSize = await page.evaluate(async () => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('resume');
    return (await (await dir.getFileHandle('large.bin.part')).getFile()).size;
  });
  assert.ok(partSize > 4 * MiB && partSize < 24 * MiB, `part file of ${partSize} bytes`);

  const second = runPeerClient('peer-client send', ['send', file, '--server', server.wsUrl, '--code', code]);
  t.after(() => second.kill());
  await second.waitForLine('Waiting for the receiver');
  const result = await receiveIntoOpfs(page, server.wsUrl, code, 'resume');
  assert.equal(result.error, undefined, `${result.error}\n${second.log()}`);
  assert.equal(result.summary.skippedBytes, partSize);
  assert.equal(result.summary.receivedBytes, 24 * MiB + 5 - partSize);
  assert.equal((await exited(second)).code, 0, second.log());
  assert.deepEqual(await listOpfs(page, 'resume'), { 'large.bin': sha256File(file) });
  assert.deepEqual(browser.pageErrors, []);
});

test('the server serves the transfer page and its modules from its built-in copy', { timeout: 60_000 }, async (t) => {
  const server = await startSignalingServer({ embedded: true });
  t.after(() => server.child.kill());
  for (const file of [
    'transfer.html',
    'js/transfer.js',
    'download-worker.js',
    'vendor/@noble/curves/ed25519.js',
    'vendor/hash-wasm/blake3.umd.min.js',
    'vendor/@paulmillr/qr/index.js',
  ]) {
    const response = await fetch(new URL(file, server.httpUrl));
    assert.equal(response.status, 200, file);
    assert.match(response.headers.get('content-type'), file.endsWith('.js') ? /javascript/ : /html/, file);
  }
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  // The whole module graph loads under the page's Content-Security-Policy.
  await page.goto(`${server.httpUrl}transfer.html`);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  // The download worker is served from the built-in copy too, and takes over.
  const worker = await page.evaluate(async () => {
    const { downloadWorker } = await import('/js/download-stream.js');
    const registration = await downloadWorker();
    return { script: registration.active.scriptURL, scope: registration.scope };
  });
  assert.deepEqual(worker, { script: `${server.httpUrl}download-worker.js`, scope: `${server.httpUrl}download/` });
  assert.deepEqual(browser.pageErrors, []);
});
