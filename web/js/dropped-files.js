/**
 * What the user dropped on the page: files and whole folders, walked into relative paths the way
 * a folder picker names them (`album/sub/a.jpg`), empty folders included.
 *
 * @module dropped-files
 */

import { MAX_ENTRIES } from './transfer-limits.js';
import { TransferError } from './transfer-error.js';

/**
 * The dropped items as file system entries (folders can be walked), or as plain files where the
 * browser gives no entry; must run inside the `drop` event, after which the items are gone.
 * @returns {(FileSystemEntry|File)[]}
 */
export function droppedEntries(dataTransfer) {
  return [...dataTransfer.items]
    .filter((item) => item.kind === 'file')
    .map((item) => item.webkitGetAsEntry?.() ?? item.getAsFile())
    .filter(Boolean);
}

const fileOf = (entry) => new Promise((resolve, reject) => entry.file(resolve, reject));

/** Every child of a folder: the reader answers in batches until it has nothing left. */
async function childrenOf(dir) {
  const reader = dir.createReader();
  const children = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return children;
    children.push(...batch);
  }
}

/**
 * Walks the dropped entries into files with their relative paths and the folders that hold no
 * file (sent so the receiver creates them too).
 * @param {(FileSystemEntry|File)[]} entries from {@link droppedEntries}
 * @returns {Promise<{files: {path: string, file: File}[], dirs: string[]}>}
 */
export async function walkDropped(entries) {
  const files = [];
  const dirs = [];
  const pending = [...entries];
  let seen = 0;
  while (pending.length > 0) {
    const entry = pending.shift();
    seen += 1;
    if (seen > MAX_ENTRIES) throw new TransferError(`at most ${MAX_ENTRIES} files and folders can be sent at once`);
    if (entry instanceof File) {
      files.push({ path: entry.name, file: entry });
      continue;
    }
    const path = entry.fullPath.replace(/^\/+/, '');
    if (entry.isFile) {
      files.push({ path, file: await fileOf(entry) });
    } else if (entry.isDirectory) {
      const children = await childrenOf(entry);
      if (children.length === 0) dirs.push(path);
      pending.push(...children);
    }
  }
  return { files, dirs };
}
