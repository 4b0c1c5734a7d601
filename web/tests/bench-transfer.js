// Prints file-transfer throughput between the page (headless Chromium) and the native peer-client
// (it is not a test): peer-client send → page into a directory handle (origin-private file system),
// peer-client send → page as a Blob, and page → peer-client receive.
//
//   node web/tests/bench-transfer.js [--mib 64]

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launchBrowser } from './support/browser.js';
import { startSignalingServer } from './support/processes.js';
import { exited, randomFile, runPeerClient, sha256File } from './support/transfer.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '64' } } });
const bytes = Number(values.mib) * 1024 * 1024;
const dir = fs.mkdtempSync('/tmp/bench-transfer-');
const server = await startSignalingServer();
const browser = await launchBrowser();
const mbps = (seconds) => `${(bytes / 1e6 / seconds).toFixed(1)} MB/s`;
try {
  const file = randomFile(dir, 'data.bin', bytes);
  const page = await browser.newPage();
  await page.goto(`${server.httpUrl}transfer.html`);

  for (const [n, sinkKind] of [[1, 'directory'], [2, 'blob']]) {
    const code = `${n}-apple-tiger`;
    const sender = runPeerClient('send', ['send', file, '--server', server.wsUrl, '--code', code]);
    await sender.waitForLine('Waiting for the receiver');
    const result = await page.evaluate(
      async ({ wsUrl, code, sinkKind }) => {
        const { Code, blobSink, directorySink, receiveOffer } = await import('/js/transfer.js');
        const root = await navigator.storage.getDirectory();
        await root.removeEntry('bench', { recursive: true }).catch(() => {});
        const sink =
          sinkKind === 'directory'
            ? directorySink(await root.getDirectoryHandle('bench', { create: true }))
            : blobSink((path, blob) => (window.lastBlobSize = blob.size));
        const offer = await receiveOffer({ url: wsUrl, code: Code.parse(code) });
        return offer.accept(sink);
      },
      { wsUrl: server.wsUrl, code, sinkKind },
    );
    await exited(sender);
    console.log(`peer-client send → page (${sinkKind}): ${values.mib} MiB in ${result.seconds.toFixed(2)} s, ${mbps(result.seconds)}`);
  }

  await page.goto(`${server.httpUrl}transfer.html`);
  await page.setInputFiles('#send-files', [file]);
  await page.click('#send-start');
  await page.waitForFunction(() => document.body.dataset.code);
  const code = await page.getAttribute('body', 'data-code');
  const out = path.join(dir, 'out');
  const receiver = runPeerClient('receive', ['receive', code, '--server', server.wsUrl, '--out', out, '--yes', '--json']);
  await exited(receiver, 600_000);
  const done = JSON.parse(receiver.output.find((l) => l.line.includes('"event":"done"')).line);
  if (sha256File(path.join(out, 'data.bin')) !== sha256File(file)) throw new Error('page → peer-client: the file differs');
  console.log(`page → peer-client receive: ${values.mib} MiB in ${done.seconds.toFixed(2)} s, ${mbps(done.seconds)}`);
} finally {
  await browser.close();
  await server.child.kill();
  fs.rmSync(dir, { recursive: true, force: true });
}
