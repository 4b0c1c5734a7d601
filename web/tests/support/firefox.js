// Headless Firefox (Debian's firefox-esr) driven by puppeteer-core over WebDriver BiDi, behind the
// few page methods the tests use, named and shaped as playwright's (which drives Chromium), so one
// test body runs in both engines.

import fs from 'node:fs';
import puppeteer from 'puppeteer-core';
import { PAGE_TIMEOUT_MS } from './browser.js';

/** Where Debian's firefox-esr package puts the browser; FIREFOX_PATH overrides it. */
const FIREFOX = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';

/** Preferences for a quiet browser that talks to nothing but the test's own hosts. */
const FIREFOX_PREFS = {
  // Raw host candidates, as Chromium's tests get them (its mDNS names would need a resolver).
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.peerconnection.ice.loopback': true,
  'app.update.enabled': false,
  'browser.shell.checkDefaultBrowser': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
};

/** Firefox's report of a WebSocket it could not open. */
const WEBSOCKET_REFUSED = /can.t establish a connection to the server at wss?:/;
/** How Firefox reports a streamed download the page ended as failed (a file that failed its check). */
const DOWNLOAD_FAILED = /^Failed to load ‘.*’\. A ServiceWorker intercepted the request and encountered an unexpected error\.$/;

/**
 * Launches Firefox; every page it opens is a separate peer. Same shape as `launchBrowser`.
 */
export async function launchFirefox({ downloadDir = null } = {}) {
  if (!fs.existsSync(FIREFOX)) {
    throw new Error(`${FIREFOX} not found: install Debian's firefox-esr package or set FIREFOX_PATH`);
  }
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: { ...FIREFOX_PREFS, ...downloadPrefs(downloadDir) },
    // Without network events: puppeteer's BiDi session otherwise keeps response bodies for
    // inspection, so a download's bytes pile up in the browser's main process, which is what
    // the memory figures must not count (and no test reads the page's requests).
    networkEnabled: false,
    timeout: 60_000,
  });
  const pageErrors = [];
  return {
    engine: 'firefox',
    /** The browser's main process. */
    pid: browser.process()?.pid ?? null,
    pageErrors,
    async newPage() {
      const page = await browser.newPage();
      page.setDefaultTimeout(PAGE_TIMEOUT_MS);
      page.on('pageerror', (err) => {
        // Firefox reports a WebSocket that cannot connect as an error of the page, where
        // Chromium only logs it; the page handles it (it reconnects), so it is no page error.
        // The same goes for a download the page failed on purpose.
        if (!WEBSOCKET_REFUSED.test(err.message) && !DOWNLOAD_FAILED.test(err.message)) pageErrors.push(err);
      });
      return new FirefoxPage(page);
    },
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

/** Saves every download into `dir` without asking (Firefox has no download events to hook). */
function downloadPrefs(dir) {
  if (!dir) return {};
  return {
    'browser.download.dir': dir,
    'browser.download.folderList': 2,
    'browser.download.useDownloadDir': true,
    'browser.download.always_ask_before_handling_new_types': false,
    'browser.download.start_downloads_in_tmp_dir': false,
    'browser.download.alwaysOpenPanel': false,
  };
}

/** A puppeteer page with playwright's names for what the tests do. */
class FirefoxPage {
  constructor(page) {
    this.page = page;
  }

  on(event, handler) {
    this.page.on(event, handler);
  }

  goto(url) {
    return this.page.goto(url);
  }

  url() {
    return this.page.url();
  }

  async $$eval(selector, fn, arg) {
    return this.page.$$eval(selector, fn, arg);
  }

  evaluate(fn, arg) {
    return this.page.evaluate(fn, arg);
  }

  /** playwright order: (fn, arg, options); puppeteer's: (fn, options, arg). */
  waitForFunction(fn, arg, options = {}) {
    return this.page.waitForFunction(fn, { timeout: options.timeout ?? PAGE_TIMEOUT_MS, polling: 50 }, arg);
  }

  waitForSelector(selector, { state = 'attached', timeout = PAGE_TIMEOUT_MS } = {}) {
    return this.page.waitForSelector(selector, { visible: state === 'visible', hidden: state === 'hidden', timeout });
  }

  async getAttribute(selector, name) {
    await this.page.waitForSelector(selector);
    return this.page.$eval(selector, (element, name) => element.getAttribute(name), name);
  }

  waitForTimeout(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  async inputValue(selector) {
    await this.page.waitForSelector(selector);
    return this.page.$eval(selector, (element) => element.value);
  }

  async isVisible(selector) {
    return this.page.evaluate((selector) => {
      const element = document.querySelector(selector);
      return Boolean(element && !element.hidden && element.getClientRects().length && getComputedStyle(element).visibility !== 'hidden');
    }, selector);
  }

  async textContent(selector) {
    await this.page.waitForSelector(selector);
    return this.page.$eval(selector, (element) => element.textContent);
  }

  async fill(selector, text) {
    await this.page.waitForSelector(selector);
    await this.page.$eval(
      selector,
      (element, text) => {
        element.value = text;
        element.dispatchEvent(new Event('input', { bubbles: true }));
      },
      text,
    );
  }

  async press(selector, key) {
    await this.page.focus(selector);
    await this.page.keyboard.press(key);
  }

  async click(selector) {
    await this.page.waitForSelector(selector, { visible: true });
    await this.page.click(selector);
  }

  async setInputFiles(selector, files) {
    const input = await this.page.waitForSelector(selector);
    await input.uploadFile(...files);
  }

  close() {
    return this.page.close();
  }
}
