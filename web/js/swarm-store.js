/**
 * Where a page in a swarm keeps the pieces it verified: it serves them to other receivers in any
 * order and hands each file over once all its pieces are in, so it needs random access that the
 * downloads and a picked folder do not give. The origin-private file system (OPFS) gives it, on
 * disk: one file per piece under `swarm-<digest>/`, kept across reloads for a resume. Without OPFS
 * (no secure context), pieces stay in memory, at most {@link MAX_BLOB_FILE_BYTES} in all.
 *
 * Only the current swarm's pieces are kept: opening a store removes what other swarms left, and a
 * swarm whose every file was handed over removes its own.
 *
 * @module swarm-store
 */

import { MAX_BLOB_FILE_BYTES } from './transfer-limits.js';
import { TransferError, printable } from './transfer-error.js';

const DIRECTORY_PREFIX = 'swarm-';

/**
 * Pieces kept by number.
 * @typedef {object} PieceStore
 * @property {string} kind `disk` (OPFS) or `memory`
 * @property {(piece: number, bytes: Uint8Array) => Promise<void>} write
 * @property {(piece: number) => Promise<Uint8Array>} read
 * @property {() => Promise<number[]>} held the pieces an earlier run of this swarm left
 * @property {() => Promise<void>} remove forgets every piece (every file was handed over)
 */

/**
 * A store for the swarm whose digest is `digestHex`, of `totalBytes` in all.
 * @returns {Promise<PieceStore>}
 * @throws {TransferError} when neither OPFS nor enough memory is there
 */
export async function openPieceStore(digestHex, totalBytes) {
  let root = null;
  try {
    root = (await navigator.storage?.getDirectory?.()) ?? null;
  } catch {
    // OPFS is refused here (site data blocked, or a private window): memory it is.
  }
  if (root) return diskStore(root, DIRECTORY_PREFIX + digestHex.slice(0, 32));
  if (totalBytes > MAX_BLOB_FILE_BYTES) {
    throw new TransferError(
      `${totalBytes} bytes are too many to hold in the browser's memory (at most ${MAX_BLOB_FILE_BYTES}); ` +
        'open this page over https (or on localhost) to keep the pieces on disk; nothing was written',
    );
  }
  return memoryStore();
}

async function diskStore(root, name) {
  for await (const [entry, handle] of root.entries()) {
    if (entry.startsWith(DIRECTORY_PREFIX) && entry !== name && handle.kind === 'directory') {
      await root.removeEntry(entry, { recursive: true }).catch(() => {});
    }
  }
  const dir = await root.getDirectoryHandle(name, { create: true });
  return {
    kind: 'disk',
    async write(piece, bytes) {
      try {
        const writable = await (await dir.getFileHandle(String(piece), { create: true })).createWritable();
        await writable.write(bytes);
        await writable.close();
      } catch (err) {
        const why = err?.name === 'QuotaExceededError' ? "the disk, or this site's share of it, is full" : printable(err?.message ?? err);
        throw new TransferError(`cannot keep piece ${piece}: ${why}; free some space and receive again to resume`, { kind: 'write' });
      }
    },
    async read(piece) {
      const file = await (await dir.getFileHandle(String(piece))).getFile();
      return new Uint8Array(await file.arrayBuffer());
    },
    async held() {
      const pieces = [];
      for await (const entry of dir.keys()) if (/^(0|[1-9][0-9]*)$/.test(entry)) pieces.push(Number(entry));
      return pieces;
    },
    async remove() {
      await root.removeEntry(name, { recursive: true });
    },
  };
}

function memoryStore() {
  const pieces = new Map();
  return {
    kind: 'memory',
    async write(piece, bytes) {
      pieces.set(piece, bytes);
    },
    async read(piece) {
      const bytes = pieces.get(piece);
      if (!bytes) throw new TransferError(`piece ${piece} is not here`);
      return bytes;
    },
    async held() {
      return [];
    },
    async remove() {
      pieces.clear();
    },
  };
}
