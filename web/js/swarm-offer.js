/**
 * A swarm's offer (docs/swarm.md, "Offer"): the manifest, the piece size and a BLAKE3 hash per piece,
 * read message by message from the sender, or made from the files a page sends; and the swarm digest
 * every peer carries in its bitfields.
 *
 * @module swarm-offer
 */

import { bytesToHex } from '../vendor/@noble/hashes/utils.js';
import { hasher } from './file-hash.js';
import { ManifestReader, checkManifest, isCount } from './manifest.js';
import { decodeHex } from './pake.js';
import { HASH_BYTES, MAX_PIECES, MAX_PIECE_BYTES, MIN_PIECE_BYTES, PieceError, PieceMap } from './swarm-pieces.js';
import { TransferError, printable, protocolError } from './transfer-error.js';
import { readSlice } from './transfer-send.js';

/** Piece hashes per `hashes` message, as the native sender sends them. */
const HASHES_PER_MESSAGE = 1024;

/**
 * An offer: what a swarm shares.
 * @typedef {object} SwarmContent
 * @property {{path: string, kind: 'file'|'dir', size: number}[]} entries
 * @property {number} totalBytes
 * @property {PieceMap} map
 * @property {Uint8Array} hashes 32 bytes per piece, in piece order
 * @property {string} digest the swarm digest, hex
 */

/** Domain separation of the swarm digest (ends in one zero byte). */
const SWARM_DIGEST_CONTEXT = 'peer-client swarm v1 manifest\0';

/**
 * The swarm digest (docs/swarm.md, "Offer"): BLAKE3 over a context, the piece size, each entry
 * (path length, path, kind, size, little-endian) and every piece hash.
 */
export async function swarmDigest(entries, pieceBytes, hashes) {
  const hash = await hasher();
  const encoder = new TextEncoder();
  const u64 = (n) => {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(n), true);
    return bytes;
  };
  hash.update(encoder.encode(SWARM_DIGEST_CONTEXT));
  hash.update(u64(pieceBytes));
  for (const entry of entries) {
    const path = encoder.encode(entry.path);
    hash.update(u64(path.length));
    hash.update(path);
    hash.update(Uint8Array.of(entry.kind === 'file' ? 1 : 0));
    hash.update(u64(entry.size));
  }
  hash.update(hashes);
  return bytesToHex(hash.digest());
}

/** Whether `bytes` hash to the 32 bytes of `hashes` at piece `piece`. */
export async function matches(hashes, piece, bytes) {
  const hash = await hasher();
  hash.update(bytes);
  const digest = hash.digest();
  const expected = hashes.subarray(piece * HASH_BYTES, (piece + 1) * HASH_BYTES);
  return digest.every((byte, i) => byte === expected[i]);
}

/**
 * The sender's offer as it arrives: `swarm_offer`, the entries, then the hashes.
 */
export class OfferReader {
  constructor() {
    this._head = null;
    this._manifest = null;
    this._map = null;
    this._hashes = null;
    this._filled = 0;
  }

  /**
   * Takes the next offer message; returns the offer once complete.
   * @returns {Promise<{entries: object[], totalBytes: number, map: PieceMap, hashes: Uint8Array, digest: string}|null>}
   */
  async push(message) {
    if (!this._head) {
      if (message.type !== 'swarm_offer') throw protocolError(`expected an offer, got ${printable(message.type)}`);
      if (!isCount(message.bytes) || !isCount(message.piece_bytes)) throw protocolError('the offer is malformed');
      this._head = message;
      this._manifest = new ManifestReader(message.entries);
    } else if (!this._manifest.isComplete) {
      if (message.type !== 'entry') throw protocolError(`expected a manifest entry, got ${printable(message.type)}`);
      this._manifest.push(message);
    } else if (message.type !== 'hashes' || typeof message.blake3 !== 'string') {
      throw protocolError(`expected piece hashes, got ${printable(message.type)}`);
    } else {
      const raw = decodeHex(message.blake3);
      if (!raw || raw.length % HASH_BYTES !== 0 || this._filled + raw.length > this._hashes.length) {
        throw protocolError("the piece hashes do not match the offer's pieces");
      }
      this._hashes.set(raw, this._filled);
      this._filled += raw.length;
    }
    if (!this._map && this._manifest.isComplete) {
      const entries = this._manifest.entries;
      checkManifest(entries, this._head.bytes);
      try {
        this._map = new PieceMap(entries, this._head.piece_bytes);
      } catch (err) {
        if (err instanceof PieceError) throw protocolError(err.message);
        throw err;
      }
      this._hashes = new Uint8Array(this._map.length * HASH_BYTES);
    }
    if (!this._map || this._filled < this._hashes.length) return null;
    const entries = this._manifest.entries;
    return {
      entries,
      totalBytes: this._head.bytes,
      map: this._map,
      hashes: this._hashes,
      digest: await swarmDigest(entries, this._map.pieceBytes, this._hashes),
    };
  }
}

/**
 * The piece size for `entries`: the smallest power of two from 1 MiB that keeps the pieces within
 * {@link MAX_PIECES}.
 * @throws {TransferError} when even 16 MiB pieces are too many
 */
export function pieceBytesFor(entries) {
  for (let pieceBytes = MIN_PIECE_BYTES; pieceBytes <= MAX_PIECE_BYTES; pieceBytes *= 2) {
    try {
      return new PieceMap(entries, pieceBytes).pieceBytes;
    } catch (err) {
      if (!(err instanceof PieceError)) throw err;
    }
  }
  throw new TransferError(
    `the files make more than ${MAX_PIECES} pieces of ${MAX_PIECE_BYTES >> 20} MiB; send fewer or smaller files at once`,
  );
}

/**
 * Hashes every piece of the files a page sends.
 * @param {{path: string, kind: 'file'|'dir', size: number}[]} entries
 * @param {Map<number, File>} files the file of each file entry, by entry index
 * @param {(hashedBytes: number) => void} [onHashed]
 * @returns {Promise<SwarmContent>}
 */
export async function makeOffer(entries, files, onHashed = () => {}) {
  const map = new PieceMap(entries, pieceBytesFor(entries));
  const hashes = new Uint8Array(map.length * HASH_BYTES);
  let hashed = 0;
  for (let piece = 0; piece < map.length; piece += 1) {
    const bytes = await readPiece(entries, files, map, piece);
    const hash = await hasher();
    hash.update(bytes);
    hashes.set(hash.digest(), piece * HASH_BYTES);
    hashed += bytes.length;
    onHashed(hashed);
  }
  const totalBytes = entries.reduce((sum, e) => sum + e.size, 0);
  return { entries, totalBytes, map, hashes, digest: await swarmDigest(entries, map.pieceBytes, hashes) };
}

/** Piece `piece` of the files a page sends; a file that changed since it was picked stops the transfer. */
export function readPiece(entries, files, map, piece) {
  const { entry, offset, length } = map.piece(piece);
  return readSlice(entries[entry].path, files.get(entry), offset, offset + length);
}

/** The messages that offer `content` to a receiver: `swarm_offer`, the entries, then the hashes. */
export function* offerMessages(content) {
  yield { type: 'swarm_offer', entries: content.entries.length, bytes: content.totalBytes, piece_bytes: content.map.pieceBytes };
  for (const entry of content.entries) yield { type: 'entry', path: entry.path, kind: entry.kind, size: entry.size };
  const step = HASHES_PER_MESSAGE * HASH_BYTES;
  for (let at = 0; at < content.hashes.length; at += step) {
    yield { type: 'hashes', blake3: bytesToHex(content.hashes.subarray(at, at + step)) };
  }
}
