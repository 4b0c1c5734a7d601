/**
 * BLAKE3, the hash each transferred file is checked with.
 *
 * @module file-hash
 */

import { blake3 } from '../vendor/@noble/hashes/blake3.js';
import { MAX_CHUNK_BYTES } from './transfer-limits.js';

/** An incremental BLAKE3 hash. */
export function hasher() {
  return blake3.create();
}

/** Feeds the first `length` bytes of a Blob to `hash`, a chunk at a time. */
export async function hashBlob(blob, length, hash) {
  for (let at = 0; at < length; at += MAX_CHUNK_BYTES) {
    hash.update(new Uint8Array(await blob.slice(at, Math.min(length, at + MAX_CHUNK_BYTES)).arrayBuffer()));
  }
}
