// Prints what a streamed download costs the browser (it is not a test): `peer-client send` of one
// file → the transfer page's "Accept (download)" in each engine, with the browser's memory sampled
// throughout (resident, all its processes, and the processes that run pages) against the idle
// page, the rate, and the file checked against the sent one.
//
//   node web/tests/bench-download.js [--mib 4096] [--engines chromium,firefox]
//
// Release binaries: PEER_CLIENT_BIN=target/release/peer-client SIGNALING_SERVER_BIN=target/release/signaling-server

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ENGINES } from './support/engines.js';
import { browserMemory, sampleMemory } from './support/memory.js';
import { startSignalingServer } from './support/processes.js';
import { exited, randomFile, runPeerClient, sha256File } from './support/transfer.js';

const { values } = parseArgs({
  options: { mib: { type: 'string', default: '4096' }, engines: { type: 'string', default: 'chromium,firefox' } },
});
const bytes = Number(values.mib) * 1024 * 1024;
const MiB = (n) => `${(n / 1024 / 1024).toFixed(0)} MiB`;
const dir = fs.mkdtempSync('/tmp/bench-download-');
const server = await startSignalingServer();
try {
  const file = randomFile(dir, 'data.bin', bytes);
  const digest = sha256File(file);
  for (const [n, engine] of ENGINES.filter((e) => values.engines.split(',').includes(e.name)).entries()) {
    const downloads = path.join(dir, `downloads-${engine.name}`);
    fs.mkdirSync(downloads);
    const code = `${n + 1}-apple-tiger`;
    const sender = runPeerClient('send', ['send', file, '--server', server.wsUrl, '--code', code]);
    await sender.waitForLine('Waiting for the receiver');
    const browser = await engine.launch({ downloadDir: downloads });
    try {
      const page = await browser.newPage();
      const saved = engine.collectDownloads(page, downloads, 1);
      await page.goto(`${server.httpUrl}#code=${code}`);
      await page.waitForSelector('#offer', { state: 'visible' });
      await page.waitForTimeout(2000);
      const idle = browserMemory(browser.pid);
      const sampler = sampleMemory(browser.pid);
      const started = performance.now();
      await page.click('#accept-download');
      // Polled from here: one wait of many minutes inside the page outlasts a driver's call timeout.
      while (!['done', 'failed'].includes(await page.getAttribute('body', 'data-transfer'))) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      const seconds = (performance.now() - started) / 1000;
      const peak = sampler.stop();
      const state = await page.getAttribute('body', 'data-transfer');
      if (state !== 'done') throw new Error(`${engine.name}: ${await page.textContent('#transfer-error')}`);
      const [got] = await saved();
      const same = sha256File(got.file) === digest;
      await exited(sender);
      console.log(
        `peer-client send → ${engine.name} download: ${MiB(bytes)} in ${seconds.toFixed(1)} s, ` +
          `${(bytes / 1e6 / seconds).toFixed(1)} MB/s; page processes ${MiB(idle.pages)} idle, ` +
          `+${MiB(peak.pages - idle.pages)} at most; whole browser ${MiB(idle.total)} idle, ` +
          `+${MiB(peak.total - idle.total)} at most (most: a ${peak.grower.kind} process, +${MiB(peak.grower.growth)}); ` +
          `file ${same ? 'identical' : 'DIFFERS'}`,
      );
      fs.rmSync(got.file);
    } finally {
      sender.kill();
      await browser.close();
    }
  }
} finally {
  await server.child.kill();
  fs.rmSync(dir, { recursive: true, force: true });
}
