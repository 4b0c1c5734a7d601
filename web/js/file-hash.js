/**
 * BLAKE3, the hash each transferred file is checked with: hash-wasm's WebAssembly build, about
 * twenty times the speed of BLAKE3 in plain JavaScript, which held a transfer to the rate the
 * main thread could hash (docs/benchmarks.md, "Transfers in the browser").
 *
 * @module file-hash
 */

// A UMD bundle: loaded as a module, it defines `globalThis.hashwasm`.
import '../vendor/hash-wasm/blake3.umd.min.js';
import { MAX_CHUNK_BYTES } from './transfer-limits.js';

const { createBLAKE3 } = globalThis.hashwasm;

/**
 * An incremental BLAKE3 hash.
 * @typedef {{update: (bytes: Uint8Array) => void, digest: () => Uint8Array}} Hasher
 */

/**
 * Hash instances whose digest was taken, ready for the next file: creating one (a WebAssembly
 * instance) costs ~80 µs against ~1.5 µs to reset one, which a folder of 100 000 small files feels.
 * As many as were ever in use at once.
 */
const idle = [];

/** A new incremental BLAKE3 hash; it cannot be fed after its digest was taken. @returns {Promise<Hasher>} */
export async function hasher() {
  const hash = idle.pop() ?? (await createBLAKE3());
  hash.init();
  let digested = false;
  return {
    update(bytes) {
      if (digested) throw new Error('this hash was already digested');
      hash.update(bytes);
    },
    digest() {
      if (digested) throw new Error('this hash was already digested');
      digested = true;
      const digest = hash.digest('binary');
      idle.push(hash);
      return digest;
    },
  };
}

/** Feeds the first `length` bytes of a Blob to `hash`, a chunk at a time. */
export async function hashBlob(blob, length, hash) {
  for (let at = 0; at < length; at += MAX_CHUNK_BYTES) {
    hash.update(new Uint8Array(await blob.slice(at, Math.min(length, at + MAX_CHUNK_BYTES)).arrayBuffer()));
  }
}
