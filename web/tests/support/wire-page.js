// The transfer page in headless Chromium as one end of a transfer, run as a program so that a test
// can start it inside a network namespace (the browser then uses that host's interfaces; see
// tests/tests/browser_lossy_wire.rs). Prints one JSON line per event on stdout.
//
//   node wire-page.js send HTTP_URL FILE            prints {"event":"code","code":…}, then {"event":"done",…}
//   node wire-page.js receive HTTP_URL CODE OUT_DIR  accepts the offer, saves the files in OUT_DIR,
//                                                    prints {"event":"done",…}
//
// "seconds" in the done event counts from the moment the page was asked to send or to open the
// code. Exits non-zero, with the page's error, if the transfer fails or takes longer than
// WIRE_PAGE_TIMEOUT_SECS (default 300). WIRE_PAGE_ENGINE=firefox runs the page in Firefox instead
// of Chromium.

import { ENGINES } from './engines.js';

const TIMEOUT_MS = Number(process.env.WIRE_PAGE_TIMEOUT_SECS ?? 300) * 1000;

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** Waits until the page's transfer is over; throws with the page's words if it failed. */
async function finished(page) {
  await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.transfer), null, {
    timeout: TIMEOUT_MS,
  });
  if ((await page.getAttribute('body', 'data-transfer')) !== 'done') {
    throw new Error(`the page's transfer failed: ${await page.textContent('#transfer-error')}`);
  }
}

/** The page's console, on stderr: what a failed run shows of the page's own view. */
function echoConsole(page) {
  page.on('console', (message) => process.stderr.write(`[page ${message.type()}] ${message.text()}\n`));
}

async function send(browser, httpUrl, file) {
  const page = await browser.newPage();
  echoConsole(page);
  await page.goto(new URL('transfer.html', httpUrl).href);
  await page.setInputFiles('#send-files', [file]);
  const started = performance.now();
  await page.click('#send-start');
  // The page gives up on the server by itself (its own step timeout) and says why: wait for that
  // rather than for a shorter bound of our own.
  await page.waitForFunction(() => document.body.dataset.code || document.body.dataset.transfer === 'failed', null, {
    timeout: TIMEOUT_MS,
  });
  if ((await page.getAttribute('body', 'data-transfer')) === 'failed') {
    throw new Error(`the page could not start sending: ${await page.textContent('#transfer-error')}`);
  }
  emit({ event: 'code', code: await page.getAttribute('body', 'data-code') });
  await finished(page);
  emit({ event: 'done', seconds: (performance.now() - started) / 1000 });
}

async function receive(engine, browser, httpUrl, code, outDir) {
  const page = await browser.newPage();
  echoConsole(page);
  const saved = engine.collectDownloads(page, outDir, 1);
  const started = performance.now();
  const url = new URL(httpUrl);
  url.hash = `code=${code}`;
  await page.goto(url.href);
  await page.waitForSelector('#offer', { state: 'visible', timeout: TIMEOUT_MS });
  await page.click('#accept-download');
  await finished(page);
  const seconds = (performance.now() - started) / 1000;
  const files = (await saved()).map(({ file }) => file);
  emit({ event: 'done', seconds, files });
}

async function main() {
  const [mode, httpUrl, ...rest] = process.argv.slice(2);
  if (!['send', 'receive'].includes(mode) || !httpUrl) {
    throw new Error('usage: wire-page.js send HTTP_URL FILE | receive HTTP_URL CODE OUT_DIR');
  }
  const name = process.env.WIRE_PAGE_ENGINE ?? 'chromium';
  const engine = ENGINES.find((known) => known.name === name);
  if (!engine) throw new Error(`WIRE_PAGE_ENGINE is chromium or firefox, not ${name}`);
  // Raw host addresses rather than mDNS names: another browser on the far host could not resolve
  // those, as mDNS does not cross the wire (Firefox's launcher turns them off itself).
  const browser = await engine.launch({
    args: ['--disable-features=WebRtcHideLocalIpsWithMdns'],
    downloadDir: mode === 'receive' ? rest[1] : null,
  });
  try {
    if (mode === 'send') {
      await send(browser, httpUrl, rest[0]);
    } else {
      await receive(engine, browser, httpUrl, rest[0], rest[1]);
    }
    if (browser.pageErrors.length) {
      throw new Error(`page errors: ${browser.pageErrors.join('; ')}`);
    }
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
