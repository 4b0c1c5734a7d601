// A swarm with pages among its receivers (docs/swarm.md): a native `peer-client send --receivers N`,
// native `peer-client receive --swarm` processes and pages in Chromium and Firefox share one code;
// receivers pass pieces on to each other, pages included.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ENGINES } from './support/engines.js';
import { startSignalingServer } from './support/processes.js';
import { exited, randomFile, runPeerClient, sha256File, tempDir } from './support/transfer.js';

const MiB = 1024 * 1024;

/** `peer-client receive --swarm CODE` into `out`, with its JSON events and the further arguments `extra`. */
function nativeReceiver(t, wsUrl, code, out, extra = []) {
  const receiver = runPeerClient(`peer-client receive --swarm (${path.basename(out)})`, [
    'receive',
    '--swarm',
    code,
    '--server',
    wsUrl,
    '--out',
    out,
    '--yes',
    '--json',
    ...extra,
  ]);
  t.after(() => receiver.kill());
  return receiver;
}

/**
 * A signaling server and `peer-client send --receivers N PATHS… --code CODE` on it, once it printed
 * its code; a temporary folder holding `src/` for the files.
 * @returns {Promise<{server: object, dir: string, src: string, sender: object, announced: object}>}
 */
async function swarmSending(t, { receivers, code, files }) {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const paths = Object.entries(files).map(([name, size]) => randomFile(src, name, size));
  const sender = runPeerClient(`peer-client send --receivers ${receivers}`, [
    'send',
    '--receivers',
    String(receivers),
    ...paths,
    '--server',
    server.wsUrl,
    '--code',
    code,
    '--json',
  ]);
  t.after(() => sender.kill());
  const announced = JSON.parse(await sender.waitForLine('"event":"code"', { stream: 'stdout' }));
  return { server, dir, src, sender, announced };
}

/**
 * `engine` launched to save downloads into `dir/downloads`, with a page; `saved()` waits for `count`
 * downloads of that page.
 */
async function pageWithDownloads(t, engine, dir, count) {
  const downloads = path.join(dir, 'downloads');
  fs.mkdirSync(downloads);
  const browser = await engine.launch({ downloadDir: downloads });
  t.after(() => browser.close());
  const page = await browser.newPage();
  return { browser, page, saved: engine.collectDownloads(page, downloads, count) };
}

/**
 * A signaling server and a page of `engine` (launched with `launch`) sending `files` to a swarm of
 * `receivers`, once it shows its code.
 * @returns {Promise<{server: object, browser: object, page: object, code: string}>}
 */
async function pageSendingSwarm(t, engine, files, { receivers = 2, launch = {} } = {}) {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const browser = await engine.launch(launch);
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${server.httpUrl}transfer.html`);
  await page.setInputFiles('#send-files', files);
  await page.fill('#send-receivers', String(receivers));
  await page.click('#send-start');
  await page.waitForFunction(() => document.body.dataset.code);
  return { server, browser, page, code: await page.getAttribute('body', 'data-code') };
}

/** Opens `link` (a `#swarm=` link) and accepts the offer into the downloads. */
async function acceptSwarm(page, link) {
  await page.goto(link);
  await page.waitForSelector('#offer', { state: 'visible' });
  await page.click('#accept-download');
}

/** The `done` event a native peer printed last. */
function doneEvent(child) {
  const line = child.output.map((l) => l.line).find((l) => l.includes('"event":"done"'));
  assert.ok(line, `${child.label} printed no done event:\n${child.log()}`);
  return JSON.parse(line);
}

/** Waits until the page's transfer ended; says where it stood when it did not. */
async function pageEnded(page, others, timeout = 90_000) {
  try {
    await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout });
  } catch (err) {
    const status = await page.textContent('#transfer-status').catch(() => '?');
    throw new Error(`${err.message}\npage status: ${status}\n${others.map((c) => c.log()).join('\n')}`);
  }
  assert.equal(await page.getAttribute('body', 'data-transfer'), 'done', await page.textContent('#transfer-error'));
}

/** In the page: the names in its origin-private file system. */
async function keptPieces() {
  const names = [];
  for await (const name of (await navigator.storage.getDirectory()).keys()) names.push(name);
  return names;
}

/** Asserts that every file of `names` under `dir` equals the one under `src`. */
function sameFiles(dir, src, names) {
  for (const name of names) assert.equal(sha256File(path.join(dir, name)), sha256File(path.join(src, name)), `${dir}/${name} differs`);
}

for (const engine of ENGINES) {
  test(`${engine.name}: a native sender, two native receivers and a page share one code; every file verified`, { timeout: 180_000 }, async (t) => {
    const code = '7-apple-tiger';
    const names = ['big.bin', 'small.txt', 'empty'];
    const sizes = { 'big.bin': 12 * MiB + 4321, 'small.txt': 1000, empty: 0 };
    const { server, dir, src, sender, announced } = await swarmSending(t, { receivers: 3, code, files: sizes });
    assert.equal(announced.web_link, `${server.httpUrl}#swarm=${code}`);
    const { browser, page, saved } = await pageWithDownloads(t, engine, dir, names.length);
    if (engine.name === 'chromium') {
      // The link the sender prints opens the page in the swarm.
      await page.goto(announced.web_link);
    } else {
      // A code typed by hand: nobody sends it one-to-one, so the page looks for a swarm.
      await page.goto(`${server.httpUrl}transfer.html`);
      await page.waitForSelector('body[data-ready="true"]');
      await page.fill('#receive-code', code);
      await page.click('#receive-connect');
    }
    await page.waitForSelector('#offer', { state: 'visible' });
    assert.match(await page.textContent('#offer-summary'), /3 files, 12\.6 MB in all/);
    await page.click('#accept-download');

    const receivers = ['a', 'b'].map((name) => nativeReceiver(t, server.wsUrl, code, path.join(dir, name)));
    await pageEnded(page, [sender, ...receivers]);
    assert.match(await page.textContent('#transfer-status'), /every piece BLAKE3-verified/);
    // The pieces the page kept in its origin-private file system went once every file was handed over.
    assert.deepEqual(await page.evaluate(keptPieces), []);

    const got = await saved();
    assert.deepEqual(got.map((d) => d.name).sort(), [...names].sort());
    for (const { name, file } of got) assert.equal(sha256File(file), sha256File(path.join(src, name)), `${name} differs`);
    for (const [index, receiver] of receivers.entries()) {
      const status = await exited(receiver, 90_000);
      assert.equal(status.code, 0, receiver.log());
      sameFiles(path.join(dir, ['a', 'b'][index]), src, names);
    }
    const status = await exited(sender, 30_000);
    assert.equal(status.code, 0, sender.log());
    assert.equal(doneEvent(sender).receivers, 3, sender.log());
    assert.deepEqual(browser.pageErrors, []);
  });
}

test('chromium: the sender leaves once every piece is held somewhere; the page and a native receiver finish from each other', { timeout: 180_000 }, async (t) => {
  const code = '8-apple-tiger';
  const { server, dir, src, sender, announced } = await swarmSending(t, { receivers: 2, code, files: { 'video.bin': 24 * MiB + 77 } });
  const file = path.join(src, 'video.bin');
  const { browser, page, saved } = await pageWithDownloads(t, ENGINES[0], dir, 1);
  await acceptSwarm(page, announced.web_link);
  const receiver = nativeReceiver(t, server.wsUrl, code, path.join(dir, 'native'));

  // Each piece left the sender once, to one of the two: from here they have only each other.
  await sender.waitForLine('"event":"seeded"', { stream: 'stdout', timeoutMs: 90_000 });
  await sender.kill();

  await pageEnded(page, [receiver]);
  const [{ file: downloaded }] = await saved();
  assert.equal(sha256File(downloaded), sha256File(file));
  const status = await exited(receiver, 90_000);
  assert.equal(status.code, 0, receiver.log());
  sameFiles(path.join(dir, 'native'), src, ['video.bin']);
  // At `seeded` each piece had left the sender once, to one of them: each needed the other's.
  const passed = Number((await page.textContent('#transfer-status')).match(/passed ([0-9.]+) /)?.[1] ?? NaN);
  const nativeUploaded = doneEvent(receiver).uploaded_bytes;
  assert.ok(passed > 0 && nativeUploaded > 0, `page passed on ${passed}, the native receiver ${nativeUploaded} bytes`);
  assert.deepEqual(browser.pageErrors, []);
});

test('chromium: a page with a wrong code learns nothing of the swarm and says the code did not match', { timeout: 120_000 }, async (t) => {
  const [chromium] = ENGINES;
  const { server, sender } = await swarmSending(t, { receivers: 2, code: '9-apple-tiger', files: { 'secret.bin': 2 * MiB } });

  const browser = await chromium.launch();
  t.after(() => browser.close());
  const page = await browser.newPage();
  let downloads = 0;
  page.on('download', () => {
    downloads += 1;
  });
  await page.goto(`${server.httpUrl}#swarm=9-apple-lion`);
  await page.waitForFunction(() => document.body.dataset.transfer === 'failed', null, { timeout: 60_000 });
  assert.match(await page.textContent('#transfer-error'), /the code did not match/);
  assert.equal(await page.isVisible('#offer'), false);
  assert.equal(downloads, 0);
  // One failed proof is one guess: the sender names it and goes on waiting for its receivers.
  await sender.waitForLine(/"news":"dropped".*did not match|did not match.*"news":"dropped"/, { stream: 'stdout' });
  assert.equal(sender.exitStatus, null);
  assert.deepEqual(browser.pageErrors, []);
});

test('chromium: a page sends to a swarm of a native receiver and another page; the receivers pass pieces on', { timeout: 180_000 }, async (t) => {
  const [chromium] = ENGINES;
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const names = ['film.bin', 'notes.txt'];
  const files = [randomFile(src, 'film.bin', 16 * MiB + 999), randomFile(src, 'notes.txt', 4321)];

  const downloads = path.join(dir, 'downloads');
  fs.mkdirSync(downloads);
  const { server, browser, page: sending, code } = await pageSendingSwarm(t, chromium, files, { launch: { downloadDir: downloads } });
  const link = await sending.getAttribute('#send-link', 'href');
  assert.equal(link, `${server.httpUrl}#swarm=${code}`);
  assert.equal(await sending.textContent('#send-command'), `peer-client receive --swarm ${code} --server ${server.wsUrl}`);

  const receiving = await browser.newPage();
  const saved = chromium.collectDownloads(receiving, downloads, names.length);
  await receiving.goto(link);
  await receiving.waitForSelector('#offer', { state: 'visible' });
  assert.match(await receiving.textContent('#offer-summary'), /2 files, 16\.8 MB in all/);
  await receiving.click('#accept-download');
  const receiver = nativeReceiver(t, server.wsUrl, code, path.join(dir, 'native'));

  await pageEnded(sending, [receiver]);
  const sent = await sending.textContent('#transfer-status');
  assert.match(sent, /to 2 receivers/);
  assert.deepEqual(await sending.$$eval('#swarm-peers li', (items) => items.map((i) => i.textContent)), [
    'Receiver 1: 100 % — has every file',
    'Receiver 2: 100 % — has every file',
  ]);
  await pageEnded(receiving, [receiver]);
  const got = await saved();
  assert.deepEqual(got.map((d) => d.name).sort(), [...names].sort());
  for (const { name, file } of got) assert.equal(sha256File(file), sha256File(path.join(src, name)), `${name} differs`);
  const status = await exited(receiver, 90_000);
  assert.equal(status.code, 0, receiver.log());
  sameFiles(path.join(dir, 'native'), src, names);
  // Each piece left the sending page about once: it uploaded less than twice the files.
  const share = Number(sent.match(/\(([0-9.]+)× the files\)/)?.[1] ?? NaN);
  assert.ok(share < 2, sent);
  assert.deepEqual(browser.pageErrors, []);
});

test('chromium: a page reloaded in the middle of a swarm keeps the pieces it verified and fetches only the rest', { timeout: 180_000 }, async (t) => {
  const { dir, src, sender, announced } = await swarmSending(t, { receivers: 2, code: '10-apple-tiger', files: { 'archive.bin': 32 * MiB + 5 } });
  const file = path.join(src, 'archive.bin');
  const { browser, page, saved } = await pageWithDownloads(t, ENGINES[0], dir, 1);
  await acceptSwarm(page, announced.web_link);
  await page.waitForFunction(() => {
    const bar = document.getElementById('transfer-progress');
    return bar.value >= bar.max / 4;
  }, null, { timeout: 60_000 });
  const kept = (await page.evaluate(keptPieces)).length;
  assert.equal(kept, 1, 'one folder of pieces');

  // The same link again: the page finds its pieces and asks only for the rest.
  await acceptSwarm(page, announced.web_link);
  await pageEnded(page, [sender]);
  const status = await page.textContent('#transfer-status');
  const held = Number(status.match(/; ([0-9.]+) MB were already here/)?.[1] ?? NaN);
  assert.ok(held >= 8, status);
  const [{ file: downloaded }] = await saved();
  assert.equal(sha256File(downloaded), sha256File(file));
  assert.deepEqual(browser.pageErrors, []);
});

for (const engine of ENGINES) {
  test(`${engine.name}: a page sending to a swarm tells each guess that the code did not match, and the third guess stops it`, { timeout: 180_000 }, async (t) => {
    const dir = tempDir(t);
    const file = randomFile(dir, 'secret.bin', 2 * MiB);
    const { server, browser, page, code } = await pageSendingSwarm(t, engine, [file]);
    const wrong = `${code.split('-')[0]}-wrong-guess`;

    // Each guess learns from the page's key confirmation that its code is wrong: a page that
    // closed the link before that confirmation arrived left the guess blaming the path.
    for (const guess of [1, 2, 3]) {
      const out = path.join(dir, `guess${guess}`);
      const guesser = nativeReceiver(t, server.wsUrl, wrong, out);
      const status = await exited(guesser, 60_000);
      assert.notEqual(status.code, 0, guesser.log());
      const error = guesser.output.filter((l) => l.stream === 'stderr').map((l) => l.line).join('\n');
      assert.match(error, /did not match/, guesser.log());
      assert.equal(fs.existsSync(path.join(out, 'secret.bin')) || fs.existsSync(path.join(out, 'secret.bin.part')), false);
      if (guess < 3) assert.notEqual(await page.getAttribute('body', 'data-transfer'), 'failed', await page.textContent('#transfer-error'));
    }
    await page.waitForFunction(() => document.body.dataset.transfer === 'failed', null, { timeout: 30_000 });
    assert.match(await page.textContent('#transfer-error'), /someone may be guessing/);
    assert.deepEqual(browser.pageErrors, []);
  });
}

for (const engine of ENGINES) {
  test(`${engine.name}: a page sending to a swarm whose file changes on disk stops, and its receiver says why`, { timeout: 120_000 }, async (t) => {
    const dir = tempDir(t);
    const file = randomFile(dir, 'report.bin', 48 * MiB);
    const { server, browser, page, code } = await pageSendingSwarm(t, engine, [file]);
    // Its last MiB rewritten in place after it was offered: where the browser still reads the file
    // (Firefox), pieces flow until the page meets a changed one, with data in flight when it stops.
    const handle = fs.openSync(file, 'r+');
    fs.writeSync(handle, crypto.randomBytes(MiB), 0, MiB, 47 * MiB);
    fs.closeSync(handle);

    // Nobody else holds the pieces: without the sender it gives up after its idle timeout.
    const receiver = nativeReceiver(t, server.wsUrl, code, path.join(dir, 'out'), ['--idle-timeout', '2']);
    await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout: 60_000 });
    assert.equal(await page.getAttribute('body', 'data-transfer'), 'failed');
    assert.match(await page.textContent('#transfer-error'), /^report\.bin changed /);
    // The page's reason reaches the receiver before the link closes.
    assert.notEqual((await exited(receiver, 60_000)).code, 0);
    assert.match(receiver.log(), /the other side stopped the transfer: report\.bin changed /);
    assert.deepEqual(browser.pageErrors, []);
  });
}
