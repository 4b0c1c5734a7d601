// The browser engines the tests run in: Chromium (playwright-core) and Firefox (puppeteer-core over
// WebDriver BiDi). Both launchers return the same shape: newPage(), close(), pageErrors; each engine
// also says how the test sees the page's downloads.

import fs from 'node:fs';
import path from 'node:path';
import { launchBrowser } from './browser.js';
import { launchFirefox } from './firefox.js';

/** Polls `dir` until it holds `count` finished files (no `.part` left); returns them. */
async function settledDownloads(dir, count, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const names = fs.readdirSync(dir);
    const done = names.filter((name) => !name.endsWith('.part'));
    if (done.length >= count && done.length === names.length) {
      return done.map((name) => ({ name, file: path.join(dir, name) }));
    }
    if (Date.now() > deadline) throw new Error(`downloads in ${dir}: ${names.join(', ')} (wanted ${count})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export const ENGINES = [
  {
    name: 'chromium',
    launch: (options = {}) => launchBrowser(options),
    /** Saves the page's downloads into `dir`; the returned function waits for `count` of them. */
    collectDownloads(page, dir) {
      const saved = [];
      page.on('download', (download) => {
        const file = path.join(dir, download.suggestedFilename());
        saved.push(download.saveAs(file).then(() => ({ name: download.suggestedFilename(), file })));
      });
      return () => Promise.all(saved);
    },
    /** The returned function names the page's downloads that completed (each failed one is left out). */
    watchCompletedDownloads(page) {
      const downloads = [];
      page.on('download', (download) => downloads.push(download));
      return async () => {
        const completed = [];
        for (const download of downloads) if ((await download.failure()) === null) completed.push(download.suggestedFilename());
        return completed;
      };
    },
  },
  {
    name: 'firefox',
    launch: (options = {}) => launchFirefox(options),
    /** Firefox saves into the `downloadDir` it was launched with, which must be `dir`. */
    collectDownloads(_page, dir, count) {
      return () => settledDownloads(dir, count);
    },
    /**
     * Firefox creates a download's file, empty, when it starts and writes into `NAME.xxxx.part`;
     * a failed download leaves both. Completed: a file under its own name that holds data.
     */
    watchCompletedDownloads(_page, dir) {
      return async () =>
        fs.readdirSync(dir).filter((name) => !name.endsWith('.part') && fs.statSync(path.join(dir, name)).size > 0);
    },
  },
];
