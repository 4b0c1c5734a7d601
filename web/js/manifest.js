/**
 * Checks what a sender offers before anything is written: paths, sizes and counts
 * (docs/transfer.md §8).
 *
 * @module manifest
 */

import { MAX_ENTRIES, MAX_PATH_BYTES_TOTAL, PART_SUFFIX } from './transfer-limits.js';
import { TransferError, printable, protocolError } from './transfer-error.js';

/**
 * Checks a path offered by a sender (docs/transfer.md §8).
 * @param {unknown} path
 * @returns {string|null} why it is refused, or null when it is fine
 */
export function pathProblem(path) {
  if (typeof path !== 'string' || path === '') return 'it is empty';
  if (new TextEncoder().encode(path).length > 4096) return 'it is longer than 4096 bytes';
  if (path.startsWith('/')) return 'it is absolute';
  if (path.includes('\\')) return 'it contains a backslash';
  if (/\p{Cc}/u.test(path)) return 'it contains NUL or control characters';
  if (/^[A-Za-z]:/.test(path)) return 'it starts with a drive prefix';
  for (const part of path.split('/')) {
    if (part === '' || part === '.' || part === '..') return 'it has an empty, . or .. component';
    if (new TextEncoder().encode(part).length > 255) return 'a component is longer than 255 bytes';
  }
  return null;
}

/**
 * Checks a whole manifest: every path, unique paths, no `NAME.part` that is another entry, sizes
 * that are non-negative integers summing to `total`.
 * @param {{path: string, kind: 'file'|'dir', size: number}[]} entries
 * @param {number} total
 */
export function checkManifest(entries, total) {
  const seen = new Set();
  let sum = 0;
  for (const entry of entries) {
    const problem = pathProblem(entry.path);
    if (problem) {
      throw new TransferError(`refused the path ${JSON.stringify(printable(entry.path))} offered by the sender: ${problem}`);
    }
    if (seen.has(entry.path)) throw protocolError(`the path ${JSON.stringify(printable(entry.path))} is offered twice`);
    seen.add(entry.path);
    sum += entry.size;
  }
  for (const entry of entries) {
    if (entry.kind === 'file' && seen.has(entry.path + PART_SUFFIX)) {
      throw protocolError(`${JSON.stringify(printable(entry.path))} and its ${PART_SUFFIX} file are both offered`);
    }
  }
  if (sum !== total) throw protocolError("the offer's total does not match its entries");
}

/** A non-negative safe integer: a size, an offset, an index or a count. */
export const isCount = (n) => Number.isSafeInteger(n) && n >= 0;

/**
 * Reads an offer's `entry` messages one by one, checking each as it comes (sizes, kinds, the
 * paths' total length); {@link checkManifest} checks the whole once all are read.
 */
export class ManifestReader {
  /**
   * @param {unknown} count the entries announced
   * @throws {TransferError} for a count that is not one, or above {@link MAX_ENTRIES}
   */
  constructor(count) {
    if (!isCount(count)) throw protocolError('the offer is malformed');
    if (count > MAX_ENTRIES) throw protocolError(`the offer has ${count} entries, at most ${MAX_ENTRIES} are accepted`);
    this._count = count;
    this._pathBytes = 0;
    this._encoder = new TextEncoder();
    /** @type {{path: string, kind: 'file'|'dir', size: number}[]} */
    this.entries = [];
  }

  /** Whether every announced entry was read. */
  get isComplete() {
    return this.entries.length === this._count;
  }

  /**
   * Takes the next `entry` message.
   * @throws {TransferError}
   */
  push(entry) {
    if (this.isComplete) throw protocolError('more entries than the offer announced');
    if (typeof entry.path !== 'string' || (entry.kind !== 'file' && entry.kind !== 'dir') || !isCount(entry.size)) {
      throw protocolError('a manifest entry is malformed');
    }
    this._pathBytes += this._encoder.encode(entry.path).length;
    if (this._pathBytes > MAX_PATH_BYTES_TOTAL) {
      throw protocolError(`the manifest's paths take more than ${MAX_PATH_BYTES_TOTAL / (1024 * 1024)} MiB together`);
    }
    if (entry.kind === 'dir' && entry.size !== 0) throw protocolError(`directory ${JSON.stringify(printable(entry.path))} has a size`);
    this.entries.push({ path: entry.path, kind: entry.kind, size: entry.size });
  }
}
