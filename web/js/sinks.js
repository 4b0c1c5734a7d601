/**
 * Where a receiver puts files: a folder (File System Access API) or downloads.
 *
 * @module sinks
 */

import { bytesToHex, concatBytes } from '../vendor/@noble/hashes/utils.js';
import { hashBlob, hasher } from './file-hash.js';
import { MAX_BLOB_FILE_BYTES, PART_SUFFIX, WRITE_BATCH_BYTES } from './transfer-limits.js';
import { startDownload } from './download-stream.js';
import { TransferError, printable } from './transfer-error.js';

/**
 * Where received files go. Each kind takes a file as it arrives and presents it only once its hash
 * matched: a directory on disk (File System Access API), the browser's downloads (streamed), or
 * blobs in memory offered as downloads.
 * @typedef {object} Sink
 * @property {(entries: object[]) => Promise<void>} prepare checks targets, creates directories
 * @property {(entry: object) => Promise<{offset: number, blake3: string}|null>} [held] what an
 *   earlier, interrupted run left of a file (a resume claim)
 * @property {(path: string, offset: number, hash: object, size: number) => Promise<FileWriter>} open
 *   starts a file of `size` bytes at `offset` (feeding the bytes already held to `hash`)
 */

/**
 * One file being written.
 * @typedef {object} FileWriter
 * @property {(bytes: Uint8Array) => Promise<void>} write
 * @property {() => Promise<void>} finish the hash matched: the file gets its name
 * @property {() => Promise<void>} abort the hash did not match (or worse): what arrived is removed
 * @property {() => Promise<void>} keep the other side went away: what arrived stays for a resume
 * @property {string} discarded what {@link FileWriter.abort} does with what arrived, for the user
 */

/**
 * Writes into a directory handle (from `showDirectoryPicker()` or the origin-private file system):
 * each file goes to `NAME.part`, streamed, and gets its name only once its hash matched. An
 * existing file is never replaced.
 * @param {FileSystemDirectoryHandle} root
 * @returns {Sink}
 */
export function directorySink(root) {
  const dirOf = async (parts, create) => {
    let dir = root;
    for (const part of parts) dir = await dir.getDirectoryHandle(part, { create });
    return dir;
  };
  const exists = async (dir, name) => {
    try {
      await dir.getFileHandle(name);
      return true;
    } catch {
      try {
        await dir.getDirectoryHandle(name);
        return true;
      } catch {
        return false;
      }
    }
  };
  return {
    kind: 'directory',
    async prepare(entries) {
      for (const entry of entries) {
        const parts = entry.path.split('/');
        const name = parts.pop();
        let dir;
        try {
          dir = await dirOf(parts, false);
        } catch {
          continue; // the parent does not exist yet, so neither does the entry
        }
        if (entry.kind === 'file' && (await exists(dir, name))) {
          throw new TransferError(`${entry.path} already exists; nothing was changed (choose another folder)`);
        }
        if (entry.kind === 'dir') {
          try {
            await dir.getFileHandle(name);
            throw new TransferError(`${entry.path} already exists and is not a folder; nothing was changed`);
          } catch (err) {
            if (err instanceof TransferError) throw err;
          }
        }
      }
      for (const entry of entries) if (entry.kind === 'dir') await dirOf(entry.path.split('/'), true);
    },
    async held(entry) {
      if (entry.kind !== 'file' || entry.size === 0) return null;
      const parts = entry.path.split('/');
      const name = parts.pop();
      let file;
      try {
        file = await (await (await dirOf(parts, false)).getFileHandle(name + PART_SUFFIX)).getFile();
      } catch {
        return null;
      }
      if (file.size === 0 || file.size > entry.size) return null;
      const hash = await hasher();
      await hashBlob(file, file.size, hash);
      return { offset: file.size, blake3: bytesToHex(hash.digest()) };
    },
    async open(path, offset, hash) {
      const parts = path.split('/');
      const name = parts.pop();
      const dir = await dirOf(parts, true);
      const partName = name + PART_SUFFIX;
      const handle = await dir.getFileHandle(partName, { create: true });
      const writable = await handle.createWritable({ keepExistingData: offset > 0 });
      if (offset > 0) {
        await hashBlob(await handle.getFile(), offset, hash);
        await writable.truncate(offset);
        await writable.seek(offset);
      }
      // Frames are small (64–256 KiB); each write to the file system is a round trip to the
      // browser process, so they are gathered into writes of about WRITE_BATCH_BYTES.
      const batches = batched((joined) => writing(path, () => writable.write(joined)));
      return {
        write: (bytes) => batches.add(bytes),
        /** Keeps what arrived as `NAME.part`, for a later resume. */
        async keep() {
          await batches.flush().catch(() => {});
          await writable.close().catch(() => {});
        },
        async finish() {
          await batches.flush();
          await writing(path, () => writable.close());
          if (typeof handle.move === 'function') await handle.move(name);
          else {
            // Without move(): copy under the final name, then drop the part file.
            const target = await dir.getFileHandle(name, { create: true });
            const out = await target.createWritable();
            await out.write(await handle.getFile());
            await out.close();
            await dir.removeEntry(partName);
          }
        },
        async abort() {
          await writable.abort().catch(() => {});
          await dir.removeEntry(partName).catch(() => {});
        },
        discarded: 'the partial file was removed',
      };
    },
  };
}

/**
 * Streams each file into the browser's downloads as it arrives (js/download-stream.js), holding a
 * few MiB of it at most. The last chunk of a file is passed on only once the file's hash matched,
 * so a file that fails its check ends as a failed download, never as a complete one. A download
 * cannot be continued later: there are no resume claims, an interrupted file starts over.
 * @param {(path: string, size: number) => void} onFile a verified file was handed to the browser
 * @returns {Sink}
 */
export function downloadSink(onFile) {
  return {
    kind: 'download',
    async prepare() {},
    async open(path, _offset, _hash, size) {
      const download = await startDownload(path.split('/').join('_'), size);
      // Frames go as they come, the latest held back until the hash matched. (Gathering them into
      // 2 MiB chunks made Chromium's downloads faster, 12.6 → 20.6 MB/s, but the joined copies
      // raised Firefox's page memory during a 1 GiB download from +218 to +313 MiB, past the bound.)
      let last = null;
      const fail = (reason) => download.fail(reason);
      return {
        async write(bytes) {
          if (last) await download.write(last);
          last = bytes;
        },
        async finish() {
          if (last) await download.write(last);
          last = null;
          await download.close();
          onFile(path, size);
        },
        async abort() {
          fail('the file did not arrive intact');
        },
        discarded: 'the download was stopped as failed (delete what the browser may have kept of it)',
        async keep() {
          fail('the transfer stopped; a download cannot be continued, so the file starts over next time');
        },
      };
    },
  };
}

/**
 * Runs `write`, a write of the file at `path` into a folder; a failure becomes a sentence for the
 * user (a full disk above all), and what arrived stays for a resume.
 */
async function writing(path, write) {
  try {
    return await write();
  } catch (err) {
    const why = err?.name === 'QuotaExceededError' ? "the disk, or this site's share of it, is full" : printable(err?.message ?? err);
    throw new TransferError(`cannot write ${path}: ${why}; free some space and receive again to resume`, { kind: 'write' });
  }
}

/**
 * Gathers written bytes into chunks of about {@link WRITE_BATCH_BYTES} for `writeBatch`.
 * @param {(joined: Uint8Array) => Promise<void>} writeBatch
 */
function batched(writeBatch) {
  let batch = [];
  let bytes = 0;
  const flush = async () => {
    if (bytes === 0) return;
    const joined = batch.length === 1 ? batch[0] : concatBytes(...batch);
    batch = [];
    bytes = 0;
    await writeBatch(joined);
  };
  return {
    /** Adds `chunk`; writes the batch once it is full. */
    async add(chunk) {
      batch.push(chunk);
      bytes += chunk.length;
      if (bytes >= WRITE_BATCH_BYTES) await flush();
    },
    /** Writes what is gathered. */
    flush,
  };
}

/**
 * Keeps each file as a Blob in memory and hands it over (as a download) once verified; for pages
 * that can stream neither to a folder nor to the downloads (no secure context). Memory grows with
 * the file sizes.
 * @param {(path: string, blob: Blob) => void} onFile
 * @returns {Sink}
 */
export function blobSink(onFile) {
  return {
    kind: 'blob',
    async prepare(entries) {
      const largest = entries.reduce((max, e) => Math.max(max, e.size), 0);
      if (largest > MAX_BLOB_FILE_BYTES) {
        throw new TransferError(
          `a file of ${largest} bytes is too large to hold in the browser's memory (at most ${MAX_BLOB_FILE_BYTES}); ` +
            'open this page over https (or on localhost) to stream it to your downloads; nothing was written',
        );
      }
    },
    async open(path) {
      let parts = [];
      return {
        async write(bytes) {
          parts.push(bytes);
        },
        async finish() {
          onFile(path, new Blob(parts, { type: 'application/octet-stream' }));
          parts = [];
        },
        async abort() {
          parts = [];
        },
        discarded: 'nothing was kept',
        async keep() {
          parts = [];
        },
      };
    },
  };
}
