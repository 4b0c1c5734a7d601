/**
 * End-to-end authentication of a transfer, byte for byte as `peer-client` does it
 * (docs/transfer.md §3, docs/security.md): SPAKE2 over Ed25519 in its symmetric mode (as the
 * Rust `spake2` crate 0.4) turns the code into a shared key, and key-confirmation MACs bind both
 * DTLS fingerprints of the connection to that key, so a server in the middle is detected.
 *
 * @module pake
 */

import { ed25519 } from '../vendor/@noble/curves/ed25519.js';
import { sha256 } from '../vendor/@noble/hashes/sha2.js';
import { hkdf } from '../vendor/@noble/hashes/hkdf.js';
import { hmac } from '../vendor/@noble/hashes/hmac.js';
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from '../vendor/@noble/hashes/utils.js';

/** SPAKE2 identity (domain separation) of the transfer protocol, version 1. */
export const PAKE_IDENTITY = 'peer-client transfer v1';
/** Size of a SPAKE2 message: the tag byte `S` and a compressed Ed25519 point. */
export const PAKE_MESSAGE_BYTES = 33;
/** Size of a key-confirmation MAC (HMAC-SHA256). */
export const CONFIRMATION_BYTES = 32;

const Point = ed25519.Point;
const ORDER = Point.Fn.ORDER;
/** The symmetric-mode tag byte, ASCII `S`. */
const SYMMETRIC_TAG = 0x53;
/** The fixed point S of symmetric SPAKE2 over Ed25519 (as the `spake2` crate defines it). */
const S = Point.fromHex('6f00dae87c1be1a73b5922ef431cd8f57879569c222d22b1cd71e8546ab8e6f1');

/** The peer's key-exchange message cannot be used. */
export class PakeError extends Error {}

function bytesToBigIntBE(bytes) {
  return bytes.length === 0 ? 0n : BigInt(`0x${bytesToHex(bytes)}`);
}

/** The password as a scalar: HKDF-SHA256(salt "", ikm password, info "SPAKE2 pw", 48 bytes), big-endian, mod ℓ. */
function passwordScalar(password) {
  const okm = hkdf(sha256, password, new Uint8Array(0), utf8ToBytes('SPAKE2 pw'), 48);
  return bytesToBigIntBE(okm) % ORDER;
}

/** A uniformly random non-zero scalar mod ℓ. */
function randomScalar() {
  for (;;) {
    const bytes = crypto.getRandomValues(new Uint8Array(64));
    const x = bytesToBigIntBE(bytes) % ORDER;
    if (x !== 0n) return x;
  }
}

/** Bytewise comparison of two equal-length arrays. */
function compareBytes(a, b) {
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Multiplies, allowing the (negligible) zero scalar. */
function times(point, scalar) {
  return scalar === 0n ? Point.ZERO : point.multiply(scalar);
}

/**
 * One side's half-finished SPAKE2 exchange, symmetric mode.
 */
export class Pake {
  /**
   * @param {string} code The normalised code (the whole of it, nameplate included).
   */
  constructor(code) {
    this._password = utf8ToBytes(code);
    this._pw = passwordScalar(this._password);
    this._x = randomScalar();
    const X = Point.BASE.multiply(this._x).add(times(S, this._pw));
    this._own = X.toBytes();
    /** @readonly The message to send: `S` ‖ compress(X), 33 bytes. */
    this.message = concatBytes(Uint8Array.of(SYMMETRIC_TAG), this._own);
  }

  /**
   * Finishes with the peer's message. A wrong code is not detected here (both sides get a key,
   * different ones): key confirmation detects it.
   * @param {Uint8Array} peerMessage
   * @returns {Uint8Array} the 32-byte shared key K
   * @throws {PakeError}
   */
  finish(peerMessage) {
    if (peerMessage.length !== PAKE_MESSAGE_BYTES || peerMessage[0] !== SYMMETRIC_TAG) {
      throw new PakeError('the other side sent a malformed key-exchange message');
    }
    const theirs = peerMessage.slice(1);
    let Y;
    try {
      Y = Point.fromBytes(theirs);
    } catch {
      throw new PakeError('the other side sent a malformed key-exchange message');
    }
    const K = Y.subtract(times(S, this._pw)).multiply(this._x);
    const [first, second] =
      compareBytes(this._own, theirs) <= 0 ? [this._own, theirs] : [theirs, this._own];
    return sha256(
      concatBytes(sha256(this._password), sha256(utf8ToBytes(PAKE_IDENTITY)), first, second, K.toBytes()),
    );
  }
}

/**
 * A fingerprint as `algorithm HEX:HEX:...`, algorithm lowercase and hex uppercase.
 * @param {string} fingerprint
 * @returns {string}
 */
export function normalizeFingerprint(fingerprint) {
  const trimmed = fingerprint.trim();
  const space = trimmed.indexOf(' ');
  if (space < 0) return trimmed.replace(/[a-z]/g, (c) => c.toUpperCase());
  const algorithm = trimmed.slice(0, space).replace(/[A-Z]/g, (c) => c.toLowerCase());
  const value = trimmed.slice(space + 1).trim().replace(/[a-z]/g, (c) => c.toUpperCase());
  return `${algorithm} ${value}`;
}

/**
 * The first `a=fingerprint:` value of a session description.
 * @param {string} sdp
 * @returns {string|null}
 */
export function sdpFingerprint(sdp) {
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('a=fingerprint:')) return line.slice('a=fingerprint:'.length);
  }
  return null;
}

/**
 * The key-confirmation MAC `role` sends: HMAC-SHA256 under HKDF-SHA256(K, info
 * "peer-client transfer v1 confirm " ‖ role, 64 bytes) over
 * "peer-client transfer v1" ‖ 0 ‖ role ‖ 0 ‖ own ‖ 0 ‖ peer (fingerprints as `role` sees them).
 * @param {Uint8Array} key
 * @param {'sender'|'receiver'} role
 * @param {string} own
 * @param {string} peer
 * @returns {Uint8Array}
 */
export function confirmationMac(key, role, own, peer) {
  const roleKey = hkdf(sha256, key, undefined, utf8ToBytes(`peer-client transfer v1 confirm ${role}`), 64);
  const zero = Uint8Array.of(0);
  return hmac(
    sha256,
    roleKey,
    concatBytes(
      utf8ToBytes(PAKE_IDENTITY),
      zero,
      utf8ToBytes(role),
      zero,
      utf8ToBytes(normalizeFingerprint(own)),
      zero,
      utf8ToBytes(normalizeFingerprint(peer)),
    ),
  );
}

/**
 * Checks the MAC the peer (in `peerRole`) sent, against the fingerprints as this side sees them:
 * the peer's own fingerprint is our `remote`, and the one it saw for us is our `local`.
 * Constant time in the MAC's content.
 * @param {Uint8Array} key
 * @param {'sender'|'receiver'} peerRole
 * @param {{local: string, remote: string}} fingerprints
 * @param {Uint8Array} mac
 * @returns {boolean}
 */
export function verifyConfirmation(key, peerRole, fingerprints, mac) {
  const expected = confirmationMac(key, peerRole, fingerprints.remote, fingerprints.local);
  if (mac.length !== expected.length) return false;
  let diff = 0;
  for (let i = 0; i < expected.length; i += 1) diff |= expected[i] ^ mac[i];
  return diff === 0;
}

/**
 * Hex to bytes; null when it is not even-length hex.
 * @param {unknown} text
 * @returns {Uint8Array|null}
 */
export function decodeHex(text) {
  if (typeof text !== 'string' || !/^(?:[0-9a-fA-F]{2})*$/.test(text)) return null;
  return hexToBytes(text);
}
