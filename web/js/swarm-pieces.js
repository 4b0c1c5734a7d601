/**
 * A swarm's pieces (docs/swarm.md, "Offer"): each file cut on its own into pieces of one size, the
 * last one shorter, numbered across the manifest in its order; and the bitfields peers exchange,
 * one bit per piece with the first piece in the highest bit of the first byte.
 *
 * No browser API here: the tests load it in Node.
 *
 * @module swarm-pieces
 */

/** Smallest piece a sender picks. */
export const MIN_PIECE_BYTES = 1 << 20;
/** Largest piece accepted (a few are held in memory per peer). */
export const MAX_PIECE_BYTES = 16 << 20;
/** Most pieces in one swarm: bounds the hashes held (8 MiB) and the bitfields. */
export const MAX_PIECES = 1 << 18;
/** BLAKE3 output bytes: one hash per piece. */
export const HASH_BYTES = 32;

/** What is wrong with an offer's pieces; the caller turns it into a protocol error. */
export class PieceError extends Error {}

/** Pieces of `size` bytes cut into `pieceBytes`. */
const piecesOf = (size, pieceBytes) => Math.ceil(size / pieceBytes);

/**
 * Where each piece lies: the manifest entry, the offset in that file, the length.
 */
export class PieceMap {
  /**
   * @param {{kind: 'file'|'dir', size: number}[]} entries
   * @param {number} pieceBytes a power of two from {@link MIN_PIECE_BYTES} to {@link MAX_PIECE_BYTES}
   * @throws {PieceError} for any other piece size, or more than {@link MAX_PIECES} pieces
   */
  constructor(entries, pieceBytes) {
    const powerOfTwo = Number.isSafeInteger(pieceBytes) && pieceBytes > 0 && (pieceBytes & (pieceBytes - 1)) === 0;
    if (!powerOfTwo || pieceBytes < MIN_PIECE_BYTES || pieceBytes > MAX_PIECE_BYTES) {
      throw new PieceError(`a piece size of ${pieceBytes} bytes is not a power of two from ${MIN_PIECE_BYTES} to ${MAX_PIECE_BYTES}`);
    }
    let count = 0;
    for (const entry of entries) if (entry.kind === 'file') count += piecesOf(entry.size, pieceBytes);
    if (count > MAX_PIECES) throw new PieceError(`the offer makes more than ${MAX_PIECES} pieces`);
    /** @readonly */
    this.pieceBytes = pieceBytes;
    /** @readonly Pieces in all. */
    this.length = count;
    this._sizes = entries.map((entry) => (entry.kind === 'file' ? entry.size : 0));
    /** First piece of each entry; one more item: the end. */
    this._first = new Uint32Array(entries.length + 1);
    /** Entry of each piece. */
    this._entry = new Uint32Array(count);
    let next = 0;
    for (const [index, size] of this._sizes.entries()) {
      this._first[index] = next;
      const end = next + piecesOf(size, pieceBytes);
      this._entry.fill(index, next, end);
      next = end;
    }
    this._first[entries.length] = next;
  }

  /**
   * Piece `index`: its entry, offset in the file and length; null past the last piece.
   * @returns {{entry: number, offset: number, length: number}|null}
   */
  piece(index) {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.length) return null;
    const entry = this._entry[index];
    const offset = (index - this._first[entry]) * this.pieceBytes;
    return { entry, offset, length: Math.min(this.pieceBytes, this._sizes[entry] - offset) };
  }

  /** The pieces of entry `entry`, as `[start, end)`. */
  ofEntry(entry) {
    return [this._first[entry], this._first[entry + 1]];
  }
}

/**
 * A set of pieces, stored as it travels: bit `i` is `0x80 >> (i % 8)` of byte `i / 8`.
 */
export class Bits {
  /** @param {number} length pieces in all */
  constructor(length) {
    /** @readonly */
    this.length = length;
    this.bytes = new Uint8Array(Math.ceil(length / 8));
    this._count = 0;
  }

  /** Every piece. */
  static full(length) {
    const bits = new Bits(length);
    for (let piece = 0; piece < length; piece += 1) bits.add(piece);
    return bits;
  }

  /**
   * Reads a bitfield of exactly `length` bits from hex; refuses any other length and bits set past
   * the last piece.
   * @throws {PieceError}
   */
  static decode(hex, length) {
    const bits = new Bits(length);
    const bad = () => new PieceError(`a bitfield that is not ${length} pieces long`);
    if (typeof hex !== 'string' || hex.length !== bits.bytes.length * 2 || !/^[0-9a-fA-F]*$/.test(hex)) throw bad();
    for (let at = 0; at < bits.bytes.length; at += 1) bits.bytes[at] = Number.parseInt(hex.slice(at * 2, at * 2 + 2), 16);
    const spare = bits.bytes.length * 8 - length;
    if (spare > 0 && (bits.bytes[bits.bytes.length - 1] & ((1 << spare) - 1)) !== 0) throw bad();
    for (const byte of bits.bytes) bits._count += popcount(byte);
    return bits;
  }

  /** A copy that changes apart from this one. */
  clone() {
    const copy = new Bits(this.length);
    copy.bytes.set(this.bytes);
    copy._count = this._count;
    return copy;
  }

  /** As hex, for a `bitfield` message. */
  encode() {
    return Array.from(this.bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
  }

  has(piece) {
    return Number.isSafeInteger(piece) && piece >= 0 && piece < this.length && (this.bytes[piece >> 3] & (0x80 >> (piece & 7))) !== 0;
  }

  /** Adds `piece`; returns whether it was there already. */
  add(piece) {
    if (this.has(piece)) return true;
    this.bytes[piece >> 3] |= 0x80 >> (piece & 7);
    this._count += 1;
    return false;
  }

  /** Pieces in the set. */
  get count() {
    return this._count;
  }

  get isFull() {
    return this._count === this.length;
  }

  /** The pieces in the set, in order. */
  *[Symbol.iterator]() {
    for (let at = 0; at < this.bytes.length; at += 1) {
      const byte = this.bytes[at];
      if (byte === 0) continue;
      for (let bit = 0; bit < 8; bit += 1) if (byte & (0x80 >> bit)) yield at * 8 + bit;
    }
  }
}

function popcount(byte) {
  let n = 0;
  for (let b = byte; b; b &= b - 1) n += 1;
  return n;
}
