// Helpers of the file-transfer tests: the native `peer-client send`/`receive`, test files, hashes.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child, REPO_ROOT } from './processes.js';

const TARGET_DIR = process.env.CARGO_TARGET_DIR
  ? path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR)
  : path.join(REPO_ROOT, 'target');

/** Files are written and hashed this many bytes at a time, so any size fits in memory. */
const FILE_PIECE_BYTES = 16 * 1024 * 1024;

function peerClientBinary() {
  const file = process.env.PEER_CLIENT_BIN ?? path.join(TARGET_DIR, 'debug', 'peer-client');
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist: build it first with \`cargo build --bins\``);
  return file;
}

/** Starts `peer-client ARGS...` (e.g. `send FILE --server URL --code CODE`). */
export function runPeerClient(label, args) {
  return new Child(label, peerClientBinary(), args, { RUST_LOG: process.env.RUST_LOG ?? 'info' });
}

/** A temporary directory, removed by the returned function. */
export function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'web-transfer-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `size` random bytes to `dir/name`; returns the path. */
export function randomFile(dir, name, size) {
  const file = path.join(dir, name);
  const fd = fs.openSync(file, 'w');
  try {
    for (let written = 0; written < size; ) {
      const piece = crypto.randomBytes(Math.min(FILE_PIECE_BYTES, size - written));
      fs.writeSync(fd, piece);
      written += piece.length;
    }
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/** SHA-256 of a file, hex. */
export function sha256File(file) {
  const hash = crypto.createHash('sha256');
  const piece = Buffer.alloc(FILE_PIECE_BYTES);
  const fd = fs.openSync(file, 'r');
  try {
    for (let read; (read = fs.readSync(fd, piece)) > 0; ) hash.update(piece.subarray(0, read));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** Waits for a child to exit (bounded); returns its exit status. */
export async function exited(child, timeoutMs = 60_000) {
  let timer;
  const status = await Promise.race([
    child.exited,
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (!status) throw new Error(`${child.label} did not exit within ${timeoutMs} ms\n${child.log()}`);
  return status;
}

/**
 * Opens the transfer page in a new page of `browser`, picks `files` and starts sending.
 * @returns {Promise<{page: import('playwright-core').Page, code: string}>} the page and the code it shows
 */
export async function startPageSend(browser, httpUrl, files) {
  const page = await browser.newPage();
  await page.goto(`${httpUrl}transfer.html`);
  await page.setInputFiles('#send-files', files);
  return { page, code: await getCode(page) };
}

/** Presses *Get a code* on a page whose files are chosen; returns the code it shows. */
export async function getCode(page) {
  await page.click('#send-start');
  await page.waitForFunction(() => document.body.dataset.code);
  return page.getAttribute('body', 'data-code');
}

/** Runs `peer-client receive CODE` into `out`, accepting without asking; asserts it succeeded. */
export async function receiveInto(t, wsUrl, code, out) {
  const receiver = runPeerClient('peer-client receive', ['receive', code, '--server', wsUrl, '--out', out, '--yes']);
  t.after(() => receiver.kill());
  const status = await exited(receiver);
  if (status.code !== 0) throw new Error(`peer-client receive failed (${status.code}):\n${receiver.log()}`);
}
