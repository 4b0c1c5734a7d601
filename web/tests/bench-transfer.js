// Prints file-transfer throughput between a page and the native peer-client, in each engine, beside
// the bare data channel between the same two endpoints in the same run (it is not a test):
//   - bare channel: the page and `peer-client bench-peer` in a room; the page sends on `bench-up` and
//     is sent to on `bench-down`, with the transfer's message size and send thresholds
//   - peer-client send → page, into each sink the engine has: a directory (the origin-private file
//     system stands in for a folder the user picked), a streamed download, memory (Blob)
//   - page → peer-client receive, the file picked on the transfer page
// Each transfer row gives its share of the bare channel in the same direction.
//
//   node web/tests/bench-transfer.js [--mib 256] [--engines chromium,firefox] [--runs 1]
//
// Release binaries: PEER_CLIENT_BIN=target/release/peer-client SIGNALING_SERVER_BIN=target/release/signaling-server

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ENGINES } from './support/engines.js';
import { startSignalingServer } from './support/processes.js';
import { exited, randomFile, runPeerClient, sha256File } from './support/transfer.js';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    engines: { type: 'string', default: 'chromium,firefox' },
    runs: { type: 'string', default: '1' },
  },
});
const bytes = Number(values.mib) * 1024 * 1024;
const runs = Number(values.runs);
const rate = (seconds) => bytes / 1e6 / seconds;
const dir = fs.mkdtempSync('/tmp/bench-transfer-');
const server = await startSignalingServer();
let codes = 0;
const nextCode = () => `${(codes += 1)}-apple-tiger`;

/**
 * Runs `fn(arg)` in the page and polls for its result from here: one wait of minutes inside the
 * page would outlast a driver's call timeout.
 */
async function inPage(page, fn, arg) {
  // An expression, not a function: the page's Content-Security-Policy refuses `new Function`.
  await page.evaluate(
    `window.benchJob = { done: false };
    (${fn.toString()})(${JSON.stringify(arg)}).then(
      (value) => (window.benchJob = { done: true, value }),
      (err) => (window.benchJob = { done: true, error: String(err?.stack ?? err) }),
    );`,
  );
  for (;;) {
    const job = await page.evaluate(() => window.benchJob);
    if (job.done) {
      if (job.error) throw new Error(job.error);
      return job.value;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The bare channel both ways between the page and `peer-client bench-peer`: seconds each way. */
async function bareChannel(page, room) {
  const peer = runPeerClient('bench-peer', ['bench-peer', '--server', server.wsUrl, '--room', room]);
  try {
    await peer.waitForLine('bench peer in room');
    return await inPage(
      page,
      async ({ wsUrl, room, bytes }) => {
        const { joinRoom } = await import('/js/room.js');
        const { MAX_CHUNK_BYTES, SEND_HIGH_WATER, SEND_LOW_WATER } = await import('/js/transfer-limits.js');
        const joined = joinRoom(wsUrl, room, { name: 'bench' });
        const peerId = await new Promise((resolve) =>
          joined.addEventListener('channel-open', (e) => e.detail.label === 'chat' && resolve(e.detail.peerId)),
        );
        const up = await joined.openChannel(peerId, 'bench-up');
        up.bufferedAmountLowThreshold = SEND_LOW_WATER;
        const counted = new Promise((resolve) => up.addEventListener('message', (e) => resolve(JSON.parse(e.data)), { once: true }));
        const chunk = new Uint8Array(MAX_CHUNK_BYTES);
        let started = performance.now();
        for (let sent = 0; sent < bytes; sent += chunk.length) {
          if (up.bufferedAmount > SEND_HIGH_WATER) {
            await new Promise((resolve) => up.addEventListener('bufferedamountlow', resolve, { once: true }));
          }
          up.send(chunk.subarray(0, Math.min(chunk.length, bytes - sent)));
        }
        up.send('end');
        const answer = await counted;
        if (answer.bytes !== bytes) throw new Error(`bench-peer counted ${answer.bytes} bytes of ${bytes}`);
        const upSeconds = (performance.now() - started) / 1000;

        const down = await joined.openChannel(peerId, 'bench-down');
        down.binaryType = 'arraybuffer';
        let received = 0;
        const ended = new Promise((resolve) =>
          down.addEventListener('message', (e) => (typeof e.data === 'string' ? resolve() : (received += e.data.byteLength))),
        );
        started = performance.now();
        down.send(JSON.stringify({ bytes }));
        await ended;
        if (received !== bytes) throw new Error(`received ${received} bytes of ${bytes}`);
        const downSeconds = (performance.now() - started) / 1000;
        joined.close();
        return { upSeconds, downSeconds };
      },
      { wsUrl: server.wsUrl, room, bytes },
    );
  } finally {
    await peer.kill();
  }
}

/** `peer-client send` → the page into a directory (origin-private) or memory; seconds. */
async function sendToPageSink(page, file, sinkKind) {
  const code = nextCode();
  const sender = runPeerClient('send', ['send', file, '--server', server.wsUrl, '--code', code]);
  try {
    await sender.waitForLine('Waiting for the receiver');
    const result = await inPage(
      page,
      async ({ wsUrl, code, sinkKind }) => {
        const { Code, blobSink, directorySink, receiveOffer } = await import('/js/transfer.js');
        const root = await navigator.storage.getDirectory();
        await root.removeEntry('bench', { recursive: true }).catch(() => {});
        const sink =
          sinkKind === 'directory'
            ? directorySink(await root.getDirectoryHandle('bench', { create: true }))
            : blobSink(() => {});
        const offer = await receiveOffer({ url: wsUrl, code: Code.parse(code) });
        const summary = await offer.accept(sink);
        await root.removeEntry('bench', { recursive: true }).catch(() => {});
        return summary;
      },
      { wsUrl: server.wsUrl, code, sinkKind },
    );
    await exited(sender);
    return result.seconds;
  } finally {
    sender.kill();
  }
}

/** `peer-client send` → the transfer page's "Accept (download)"; seconds from the click to done. */
async function sendToDownload(engine, page, file, downloads) {
  const code = nextCode();
  const sender = runPeerClient('send', ['send', file, '--server', server.wsUrl, '--code', code]);
  try {
    await sender.waitForLine('Waiting for the receiver');
    const saved = engine.collectDownloads(page, downloads, 1);
    await page.goto(`${server.httpUrl}#code=${code}`);
    await page.waitForSelector('#offer', { state: 'visible' });
    const started = performance.now();
    await page.click('#accept-download');
    while (!['done', 'failed'].includes(await page.getAttribute('body', 'data-transfer'))) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const seconds = (performance.now() - started) / 1000;
    if ((await page.getAttribute('body', 'data-transfer')) !== 'done') throw new Error(await page.textContent('#transfer-error'));
    const [got] = await saved();
    const size = fs.statSync(got.file).size;
    fs.rmSync(got.file);
    if (size !== bytes) throw new Error(`the download holds ${size} bytes of ${bytes}`);
    await exited(sender);
    return seconds;
  } finally {
    sender.kill();
  }
}

/** The page sends `file` → `peer-client receive`; seconds as the receiver counts them. */
async function pageToNative(page, file, digest) {
  await page.goto(`${server.httpUrl}transfer.html`);
  await page.setInputFiles('#send-files', [file]);
  await page.click('#send-start');
  await page.waitForFunction(() => document.body.dataset.code);
  const code = await page.getAttribute('body', 'data-code');
  const out = path.join(dir, 'out');
  const receiver = runPeerClient('receive', ['receive', code, '--server', server.wsUrl, '--out', out, '--yes', '--json']);
  await exited(receiver, 600_000);
  const done = JSON.parse(receiver.output.find((l) => l.line.includes('"event":"done"')).line);
  const got = path.join(out, path.basename(file));
  const same = sha256File(got) === digest;
  fs.rmSync(out, { recursive: true });
  if (!same) throw new Error('page → peer-client: the file differs');
  return done.seconds;
}

const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];

try {
  const file = randomFile(dir, 'data.bin', bytes);
  const digest = sha256File(file);
  console.log(`${values.mib} MiB each, ${runs} run(s), median rate; share = of the bare channel in the same direction`);
  for (const engine of ENGINES.filter((e) => values.engines.split(',').includes(e.name))) {
    const downloads = path.join(dir, `downloads-${engine.name}`);
    fs.mkdirSync(downloads);
    const browser = await engine.launch({ downloadDir: downloads });
    const figures = { up: [], down: [], directory: [], download: [], blob: [], send: [] };
    try {
      const page = await browser.newPage();
      for (let run = 0; run < runs; run += 1) {
        await page.goto(`${server.httpUrl}transfer.html`);
        const bare = await bareChannel(page, `bench-${engine.name}-${run}`);
        figures.up.push(rate(bare.upSeconds));
        figures.down.push(rate(bare.downSeconds));
        await page.goto(`${server.httpUrl}transfer.html`);
        figures.directory.push(rate(await sendToPageSink(page, file, 'directory')));
        figures.download.push(rate(await sendToDownload(engine, page, file, downloads)));
        await page.goto(`${server.httpUrl}transfer.html`);
        figures.blob.push(rate(await sendToPageSink(page, file, 'blob')));
        figures.send.push(rate(await pageToNative(page, file, digest)));
      }
    } finally {
      await browser.close();
    }
    const line = (label, list, anchor) =>
      console.log(
        `${engine.name.padEnd(8)} ${label.padEnd(40)} ${median(list).toFixed(1).padStart(6)} MB/s` +
          (anchor ? `  ${((median(list) / median(anchor)) * 100).toFixed(0).padStart(3)} %` : '') +
          `   (${list.map((r) => r.toFixed(1)).join(' / ')})`,
      );
    line('bare channel, native → page', figures.down);
    line('peer-client send → page, directory', figures.directory, figures.down);
    line('peer-client send → page, download', figures.download, figures.down);
    line('peer-client send → page, memory', figures.blob, figures.down);
    line('bare channel, page → native', figures.up);
    line('page → peer-client receive', figures.send, figures.up);
  }
} finally {
  await server.child.kill();
  fs.rmSync(dir, { recursive: true, force: true });
}
