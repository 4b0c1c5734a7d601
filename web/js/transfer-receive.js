/**
 * The receiving side of a transfer (docs/transfer.md §4–7): the offer, the decision, each file
 * into a sink and verified.
 *
 * @module transfer-receive
 */

import { bytesToHex } from '../vendor/@noble/hashes/utils.js';
import { hasher } from './file-hash.js';
import { ManifestReader, checkManifest, isCount } from './manifest.js';
import { Progress } from './progress.js';
import { IDLE_TIMEOUT_MS, RECEIVE_WINDOW, SLOWEST_HASH_RATE } from './transfer-limits.js';
import { TransferError, printable, protocolError } from './transfer-error.js';
import { TransferLink } from './transfer-link.js';

/**
 * An offer read from the sender, waiting for a decision.
 */
export class IncomingOffer {
  /** @hideconstructor */
  constructor(link, entries, total) {
    this._link = link;
    /** @readonly @type {{path: string, kind: 'file'|'dir', size: number}[]} */
    this.entries = entries;
    /** @readonly Total bytes. */
    this.totalBytes = total;
    /** @readonly */
    this.files = entries.filter((e) => e.kind === 'file').length;
    /** @readonly */
    this.dirs = entries.length - this.files;
  }

  /** Says no; nothing is written. */
  async decline() {
    this._link.sendMessage({ type: 'decline' });
    await this._link.close({ afterPeer: true });
  }

  /**
   * Accepts and receives every file into `sink`.
   * @param {Sink} sink
   * @param {{onStatus?: Function, onProgress?: Function}} [handlers]
   * @returns {Promise<{files: number, totalBytes: number, receivedBytes: number, seconds: number}>}
   */
  async accept(sink, { onStatus = () => {}, onProgress = () => {} } = {}) {
    try {
      const summary = await runReceive(this._link, this.entries, this.totalBytes, sink, onStatus, onProgress);
      await this._link.close({ afterPeer: true });
      return summary;
    } catch (err) {
      await this._link.stop(err);
      throw err;
    }
  }
}

/**
 * Connects to the sender of `code`, authenticates, and reads its offer.
 * @param {{url: string, code: Code, onStatus?: Function, signal?: AbortSignal}} options
 * @returns {Promise<IncomingOffer>}
 */
export async function receiveOffer({ url, code, onStatus = () => {}, signal }) {
  const link = await TransferLink.open({ url, code, role: 'receiver', onStatus, signal });
  try {
    const offer = await link.expect('offer', 'an offer');
    if (!isCount(offer.bytes)) throw protocolError('the offer is malformed');
    const reader = new ManifestReader(offer.entries);
    while (!reader.isComplete) reader.push(await link.expect('entry', 'a manifest entry'));
    const entries = reader.entries;
    checkManifest(entries, offer.bytes);
    return new IncomingOffer(link, entries, offer.bytes);
  } catch (err) {
    await link.stop(err);
    throw err;
  }
}

/** What a receiver says when the sender sends nothing while data is expected. */
const senderSilent = `the sender sent nothing for ${IDLE_TIMEOUT_MS / 1000} s; stopped waiting`;

async function runReceive(link, entries, total, sink, onStatus, onProgress) {
  await sink.prepare(entries);
  const claims = new Map();
  for (const [index, entry] of entries.entries()) {
    const held = await sink.held?.(entry);
    if (!held) continue;
    claims.set(index, held.offset);
    link.sendMessage({ type: 'resume', index, ...held });
  }
  // The channel cannot be paused: the window keeps what the sender sends ahead of the sink bounded.
  link.sendMessage({ type: 'accept', window: RECEIVE_WINDOW });
  let consumed = 0;
  let reported = 0;
  onStatus('receiving');
  const started = performance.now();
  const progress = new Progress(onProgress);
  progress.begin(total, entries.filter((e) => e.kind === 'file').length);
  let receivedBytes = 0;
  let skippedBytes = 0;
  for (const [index, entry] of entries.entries()) {
    if (entry.kind !== 'file') continue;
    progress.setFile(entry.path, entry.size);
    const claimed = claims.get(index) ?? 0;
    // The sender hashes its own copy of the bytes we claimed before it answers.
    const hashing = (claimed / SLOWEST_HASH_RATE) * 1000;
    const start = await link.expect('file', `the start of file ${index}`, IDLE_TIMEOUT_MS + hashing, senderSilent);
    if (start.index !== index) throw protocolError(`expected the start of file ${index}, got file ${start.index}`);
    if (start.offset !== 0 && start.offset !== claimed) {
      throw protocolError(`file ${index} starts at ${start.offset}, but ${claimed} bytes were held`);
    }
    const hash = await hasher();
    const out = await sink.open(entry.path, start.offset, hash, entry.size);
    progress.skip(start.offset);
    skippedBytes += start.offset;
    let remaining = entry.size - start.offset;
    try {
      while (remaining > 0) {
        const frame = await link.next(IDLE_TIMEOUT_MS, senderSilent);
        if (!frame.data) throw protocolError(`expected file data, got ${printable(frame.message.type)}`);
        const bytes = new Uint8Array(frame.data);
        if (bytes.length > remaining) throw protocolError(`more data than the size offered for ${JSON.stringify(printable(entry.path))}`);
        hash.update(bytes);
        await out.write(bytes);
        consumed += bytes.length;
        if (consumed - reported >= RECEIVE_WINDOW / 4) {
          link.sendMessage({ type: 'consumed', bytes: consumed });
          reported = consumed;
        }
        remaining -= bytes.length;
        receivedBytes += bytes.length;
        progress.advance(bytes.length);
      }
      const end = await link.expect('file_end', `the end of file ${index}`, IDLE_TIMEOUT_MS, senderSilent);
      if (end.index !== index) throw protocolError(`expected the end of file ${index}, got file ${end.index}`);
      if (bytesToHex(hash.digest()) !== end.blake3) {
        throw new TransferError(
          `${entry.path}: the received data does not match the sender's BLAKE3 hash; ${out.discarded}`,
          { kind: 'hash' },
        );
      }
    } catch (err) {
      // What arrived intact stays for a resume when the other side went away or fell silent, or
      // the disk filled up; anything else is dropped.
      if (err.kind === 'gone' || err.kind === 'timeout' || err.kind === 'write') await out.keep();
      else await out.abort();
      throw err;
    }
    await out.finish();
  }
  await link.expect('done', 'done', IDLE_TIMEOUT_MS, senderSilent);
  link.sendMessage({ type: 'done' });
  progress.end();
  onStatus('done');
  return { files: entries.filter((e) => e.kind === 'file').length, totalBytes: total, receivedBytes, skippedBytes, seconds: (performance.now() - started) / 1000 };
}
