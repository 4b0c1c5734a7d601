/**
 * The sending side of a transfer (docs/transfer.md §4–7).
 *
 * @module transfer-send
 */

import { bytesToHex } from '../vendor/@noble/hashes/utils.js';
import { Code } from './code.js';
import { hashBlob, hasher } from './file-hash.js';
import { checkManifest, isCount } from './manifest.js';
import { Progress } from './progress.js';
import { ACK_CHECK_MS, CODE_ATTEMPTS, MAX_ENTRIES } from './transfer-limits.js';
import { TransferError, printable, protocolError } from './transfer-error.js';
import { TransferLink, acknowledgementWatch } from './transfer-link.js';

/**
 * Sends `files` under `code` (docs/transfer.md §4–7). With a generated code (`codeFixed` false)
 * an occupied number is replaced by a new code, shown through `onCode`.
 *
 * @param {object} options
 * @param {string} options.url
 * @param {{path: string, file: File}[]} options.files relative `/`-separated paths and their contents
 * @param {string[]} [options.dirs] folders to create on the receiver (parents before children);
 *   the parents of every file are added
 * @param {Code} [options.code] a chosen code; a generated one otherwise
 * @param {(code: Code) => void} [options.onCode] the code to tell the receiver
 * @param {(status: string) => void} [options.onStatus]
 * @param {(progress: object) => void} [options.onProgress]
 * @param {AbortSignal} [options.signal]
 * @returns {Promise<{files: number, dirs: number, totalBytes: number, sentBytes: number, skippedBytes: number, seconds: number}>}
 */
export async function sendFiles({ url, files, dirs = [], code, onCode = () => {}, onStatus = () => {}, onProgress = () => {}, signal }) {
  const { entries, total } = manifestOf(files, dirs);
  let link;
  for (let attempt = 1; ; attempt += 1) {
    const tried = code ?? Code.generate();
    try {
      link = await TransferLink.open({
        url,
        code: tried,
        role: 'sender',
        exclusive: !code,
        onStatus,
        onJoined: onCode,
        signal,
      });
      break;
    } catch (err) {
      if (err.kind === 'in-use' && !code && attempt < CODE_ATTEMPTS) continue;
      throw err;
    }
  }
  try {
    const summary = await runSend(link, files, entries, total, onStatus, onProgress);
    await link.close();
    return summary;
  } catch (err) {
    await link.stop(err);
    throw err;
  }
}

/**
 * The manifest of `files` and `dirs`: the folders first (every file's parents added, sorted, so a
 * folder comes before everything in it), then the files in their order.
 * @param {{path: string, file: File}[]} files
 * @param {string[]} dirs
 * @returns {{entries: {path: string, kind: 'file'|'dir', size: number}[], total: number}}
 * @throws {TransferError} for too many entries or a path the receiver would refuse
 */
export function manifestOf(files, dirs) {
  const folders = new Set(dirs);
  for (const { path } of files) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i += 1) folders.add(parts.slice(0, i).join('/'));
  }
  const entries = [...folders].sort().map((path) => ({ path, kind: 'dir', size: 0 }));
  for (const { path, file } of files) entries.push({ path, kind: 'file', size: file.size });
  if (entries.length > MAX_ENTRIES) throw new TransferError(`at most ${MAX_ENTRIES} files and folders can be sent at once`);
  const total = entries.reduce((sum, e) => sum + e.size, 0);
  checkManifest(entries, total);
  return { entries, total };
}

async function runSend(link, files, entries, total, onStatus, onProgress) {
  link.sendMessage({ type: 'offer', entries: entries.length, bytes: total });
  for (const entry of entries) link.sendMessage({ type: 'entry', ...entry });
  onStatus('offered');
  const resume = new Map();
  for (;;) {
    const { message, data } = await link.next();
    if (message?.type === 'accept') {
      link.setWindow(message.window);
      break;
    }
    if (message?.type === 'decline') {
      throw new TransferError('the receiver declined the transfer', { peerKnows: true, kind: 'declined' });
    }
    if (message?.type === 'resume') {
      const entry = entries[message.index];
      if (!isCount(message.index) || !entry || !isCount(message.offset) || message.offset > entry.size) {
        throw protocolError(`resume offset ${message.offset} for entry ${message.index} does not fit the manifest`);
      }
      resume.set(message.index, { offset: message.offset, blake3: String(message.blake3) });
      continue;
    }
    throw protocolError(`expected accept or decline, got ${data ? 'file data' : printable(message.type)}`);
  }
  onStatus('sending');
  const started = performance.now();
  const progress = new Progress(onProgress);
  progress.begin(total, files.length);
  const chunk = link.chunkBytes;
  let sentBytes = 0;
  let skippedBytes = 0;
  const firstFile = entries.length - files.length;
  for (const [i, { path, file }] of files.entries()) {
    const index = firstFile + i;
    progress.setFile(path, file.size);
    let hash = await hasher();
    let offset = 0;
    const claim = resume.get(index);
    if (claim) {
      await unchanged(path, () => hashBlob(file, claim.offset, hash));
      if (bytesToHex(hash.digest()) === claim.blake3) offset = claim.offset;
      hash = await hasher();
      await unchanged(path, () => hashBlob(file, offset, hash));
    }
    link.sendMessage({ type: 'file', index, offset });
    skippedBytes += offset;
    progress.skip(offset);
    for (let at = offset; at < file.size; at += chunk) {
      const end = Math.min(file.size, at + chunk);
      const bytes = await readSlice(path, file, at, end);
      hash.update(bytes);
      await link.sendData(bytes);
      sentBytes += bytes.length;
      progress.advance(bytes.length);
      // The receiver may have stopped (disk full, ...): hear it now.
      if (link.hasPending) {
        const frame = await link.next();
        throw protocolError(`expected nothing while data flows, got ${frame.data ? 'file data' : printable(frame.message.type)}`);
      }
    }
    link.sendMessage({ type: 'file_end', index, blake3: bytesToHex(hash.digest()) });
  }
  link.sendMessage({ type: 'done' });
  onStatus('confirming');
  await receiverDone(link);
  progress.end();
  onStatus('done');
  return {
    files: files.length,
    dirs: entries.length - files.length,
    totalBytes: total,
    sentBytes,
    skippedBytes,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Bytes `start` to `end` of `file` (picked as `path`); a file that changed or went away since it was
 * picked stops the transfer.
 * @returns {Promise<Uint8Array>}
 */
export async function readSlice(path, file, start, end) {
  const bytes = await unchanged(path, async () => new Uint8Array(await file.slice(start, end).arrayBuffer()));
  // A file cut short after it was picked reads short rather than failing in some browsers.
  if (bytes.length !== end - start) throw changedWhileSending(path);
  return bytes;
}

/** The stop of a transfer whose file changed on disk after it was picked. */
function changedWhileSending(path, cause) {
  const why = cause ? ` (${cause.name ?? cause})` : '';
  return new TransferError(
    `${path} changed on disk (or could no longer be read) while it was being sent${why}; ` +
      'pick it again and send again',
    { kind: 'changed' },
  );
}

/** Runs `read`, a read of the file at `path`; a failure means the file changed since it was picked. */
async function unchanged(path, read) {
  try {
    return await read();
  } catch (err) {
    throw changedWhileSending(path, err);
  }
}

/**
 * Waits for the receiver's `done`. Up to 1 MiB may still be on its way when the last chunk is queued
 * (minutes of data on a slow lossy link), so the wait is bounded by {@link IDLE_TIMEOUT_MS} from the
 * last acknowledgement (the channel's `bufferedAmount` falling), as the native sender bounds it.
 * @param {TransferLink} link
 */
async function receiverDone(link) {
  const acknowledging = acknowledgementWatch(link.channel);
  for (;;) {
    try {
      return await link.expect('done', "the receiver's done", ACK_CHECK_MS);
    } catch (err) {
      if (!(err instanceof TransferError) || err.kind !== 'timeout') throw err;
    }
    if (!acknowledging()) {
      throw new TransferError('timed out waiting for the receiver to confirm the files', { kind: 'timeout' });
    }
  }
}
