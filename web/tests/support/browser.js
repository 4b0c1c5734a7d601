// Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core, and helpers for the chat page.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { chromiumPid } from './memory.js';

/** Where Debian's chromium package puts the browser; CHROMIUM_PATH overrides it. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Flags for a quiet headless browser that talks to nothing but the test's loopback server. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Default bound of every wait on the page. */
export const PAGE_TIMEOUT_MS = 20_000;

/**
 * Launches Chromium with a new, empty user-data dir. Every page it opens is a separate peer.
 * `args` are further command-line flags; `downloadsPath` is where downloads are written while they
 * run (a temporary folder otherwise); `preferences` is the profile's `Preferences` file as the
 * browser finds it at start (the choices a user made in its settings).
 * @returns {Promise<{context: import('playwright-core').BrowserContext, newPage: Function, close: Function}>}
 */
export async function launchBrowser({ viewport = { width: 1000, height: 700 }, args = [], downloadsPath, preferences } = {}) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium package (apt-get install chromium) or set CHROMIUM_PATH`);
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'web-tests-chromium-'));
  if (preferences) {
    fs.mkdirSync(path.join(userDataDir, 'Default'));
    fs.writeFileSync(path.join(userDataDir, 'Default', 'Preferences'), JSON.stringify(preferences));
  }
  const removeDir = () => fs.rmSync(userDataDir, { recursive: true, force: true });
  // Also on an abrupt end of the test process (a test that timed out, say).
  process.once('exit', removeDir);
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS, ...args],
      viewport,
      downloadsPath,
      timeout: 30_000,
    });
  } catch (err) {
    removeDir();
    throw err;
  }
  context.setDefaultTimeout(PAGE_TIMEOUT_MS);
  const pageErrors = [];
  return {
    context,
    /** The browser's main process. */
    pid: chromiumPid(userDataDir),
    /** Uncaught exceptions of all pages, for assertions. */
    pageErrors,
    async newPage() {
      const page = await context.newPage();
      page.on('pageerror', (err) => pageErrors.push(err));
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      removeDir();
      process.off('exit', removeDir);
    },
  };
}

/**
 * Opens the chat page on `room` under `name` and waits until the server welcomed it.
 * @returns {Promise<string>} the page's peer id
 */
export async function openChat(page, httpUrl, room, name) {
  const url = new URL(httpUrl);
  url.search = new URLSearchParams({ room, name }).toString();
  await page.goto(url.href);
  await page.waitForFunction(() => document.body.dataset.peerId);
  return page.evaluate(() => document.body.dataset.peerId);
}

/**
 * Waits until the page lists peer `peerId` (or, without an id, any peer) with a link state in
 * `states` and an open `chat` channel; returns that peer's id.
 */
export async function waitForLink(page, { peerId = null, states = ['direct', 'relayed'] } = {}) {
  const handle = await page.waitForFunction(
    ({ peerId, states }) =>
      [...document.querySelectorAll('#peer-list .peer')].find(
        (item) =>
          (peerId === null || item.dataset.peerId === peerId) &&
          states.includes(item.dataset.state) &&
          item.dataset.chat === 'open',
      )?.dataset.peerId,
    { peerId, states },
  );
  return handle.jsonValue();
}

/** Waits until `count` peers have an open chat channel ("Connected to …" shown for each). */
export async function waitForConnected(page, count) {
  await page.waitForFunction(
    (count) => [...document.querySelectorAll('#messages .system')].filter((m) => m.textContent.startsWith('Connected to')).length >= count,
    count,
  );
}

/** Types a message in the compose box and sends it. */
export async function sendMessage(page, text) {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
}

/** Waits for a message from someone else whose text is exactly `text`; returns `{from, text}`. */
export async function waitForMessage(page, text) {
  await page.waitForFunction(
    (text) => [...document.querySelectorAll('#messages .message:not(.mine) .text')].some((t) => t.textContent === text),
    text,
  );
  return page.evaluate((text) => {
    const item = [...document.querySelectorAll('#messages .message:not(.mine)')].find(
      (m) => m.querySelector('.text').textContent === text,
    );
    return { from: item.querySelector('.from').textContent, text: item.querySelector('.text').textContent };
  }, text);
}
