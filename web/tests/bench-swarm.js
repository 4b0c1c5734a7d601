// Prints how fast a page receives in a swarm (it is not a test): one `peer-client send --receivers 3`
// to two native `peer-client receive --swarm` and one page; the page's rate from its acceptance to
// holding every piece, and the time until the sender saw all three finish. Beside it, the same page
// receiving the same file from `peer-client send` alone (one-to-one), in the same run. Files go to
// the streamed downloads.
//
//   node web/tests/bench-swarm.js [--mib 64] [--engines chromium,firefox] [--runs 1]
//
// Release binaries: PEER_CLIENT_BIN=target/release/peer-client SIGNALING_SERVER_BIN=target/release/signaling-server

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ENGINES } from './support/engines.js';
import { startSignalingServer } from './support/processes.js';
import { exited, randomFile, runPeerClient } from './support/transfer.js';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '64' },
    engines: { type: 'string', default: 'chromium,firefox' },
    runs: { type: 'string', default: '1' },
  },
});
const bytes = Number(values.mib) * 1024 * 1024;
const runs = Number(values.runs);
const mbps = (seconds) => (bytes / 1e6 / seconds).toFixed(1);
const dir = fs.mkdtempSync('/tmp/bench-swarm-');
const file = randomFile(dir, 'data.bin', bytes);
const server = await startSignalingServer();
let codes = 0;
const nextCode = () => `${(codes += 1)}-apple-tiger`;

/**
 * Opens `link` in a fresh page and accepts into the downloads; resolves with the seconds until the
 * page held every file (in a swarm: before it stays to pass pieces on) and its final status.
 */
async function pageReceives(browser, link) {
  const page = await browser.newPage();
  await page.goto(link);
  await page.waitForSelector('#offer', { state: 'visible', timeout: 60_000 });
  const started = performance.now();
  await page.click('#accept-download');
  const held = () => ['sharing', 'done', 'failed'].includes(document.getElementById('transfer-status').dataset.state);
  await page.waitForFunction(held, null, { timeout: 900_000 });
  const seconds = (performance.now() - started) / 1000;
  await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, { timeout: 900_000 });
  if ((await page.getAttribute('body', 'data-transfer')) !== 'done') throw new Error(await page.textContent('#transfer-error'));
  const status = await page.textContent('#transfer-status');
  await page.close();
  return { seconds, status };
}

/** `peer-client send ARGS` once it printed its code: the child and the web link. */
async function sending(args) {
  const code = nextCode();
  const sender = runPeerClient('peer-client send', ['send', file, '--server', server.wsUrl, '--code', code, '--json', ...args]);
  const announced = JSON.parse(await sender.waitForLine('"event":"code"', { stream: 'stdout' }));
  return { sender, code, link: announced.web_link };
}

const rows = [];
try {
  for (const engine of ENGINES.filter((e) => values.engines.split(',').includes(e.name))) {
    const downloads = path.join(dir, `downloads-${engine.name}`);
    fs.mkdirSync(downloads);
    const browser = await engine.launch({ downloadDir: downloads });
    try {
      for (let run = 0; run < runs; run += 1) {
        const alone = await sending([]);
        const oneToOne = await pageReceives(browser, alone.link);
        await exited(alone.sender, 60_000);

        const swarm = await sending(['--receivers', '3']);
        const natives = ['a', 'b'].map((name) =>
          runPeerClient(`receive --swarm ${name}`, ['receive', '--swarm', swarm.code, '--server', server.wsUrl, '--out', path.join(dir, `${engine.name}-${run}-${name}`), '--yes', '--json']),
        );
        const swarmStarted = performance.now();
        const inSwarm = await pageReceives(browser, swarm.link);
        await exited(swarm.sender, 900_000);
        const swarmSeconds = (performance.now() - swarmStarted) / 1000;
        for (const native of natives) await exited(native, 60_000);
        const passed = inSwarm.status.match(/passed ([0-9.]+ [kMG]?B)/)?.[1] ?? '?';
        rows.push(
          `| ${engine.name} | ${mbps(oneToOne.seconds)} MB/s | ${mbps(inSwarm.seconds)} MB/s (passed on ${passed}) | ` +
            `${swarmSeconds.toFixed(1)} s | ${(oneToOne.seconds / inSwarm.seconds).toFixed(2)} |`,
        );
        console.error(rows.at(-1));
      }
    } finally {
      await browser.close();
    }
  }
} finally {
  server.child.kill();
  fs.rmSync(dir, { recursive: true, force: true });
}

console.log(`\n${values.mib} MiB, a page into the streamed downloads; ${runs} run(s) each\n`);
console.log('| engine | page, one sender alone | page in a swarm of 3 (to every piece held) | swarm until the sender saw all 3 finish | page in swarm / alone |');
console.log('|---|---|---|---|---|');
for (const row of rows) console.log(row);
