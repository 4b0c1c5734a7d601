/**
 * Code phrases such as `7-crossword-banana`, exactly as `peer-client send`/`receive` read them
 * (docs/transfer.md §1): a public nameplate (the number, which picks the room on the signaling
 * server) and secret words (which only the two people know and which feed the PAKE).
 *
 * @module code
 */

import { sha256 } from '../vendor/@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '../vendor/@noble/hashes/utils.js';
import { WORDS } from './words.js';

/** Least estimated entropy, in bits, of a code's secret part. */
export const MIN_SECRET_BITS = 16;
/** Words in a generated code's secret part (8 bits each). */
const GENERATED_WORDS = 2;
/** Generated nameplates are drawn from 1..=this. */
const MAX_NAMEPLATE = 999;
/** Longest nameplate, in digits. */
const MAX_NAMEPLATE_DIGITS = 6;
/** Longest code accepted, in bytes. */
const MAX_CODE_BYTES = 256;
/** Prefix of the room names derived from nameplates. */
const ROOM_PREFIX = 'transfer-';
/** Domain separation of the room-name hash (ends in one zero byte). */
const ROOM_CONTEXT = 'peer-client transfer v1 room\0';
/** Prefix of the rooms of swarms (one sender, several receivers: docs/swarm.md). */
const SWARM_ROOM_PREFIX = 'swarm-';
/** Domain separation of a swarm's room-name hash. */
const SWARM_ROOM_CONTEXT = 'peer-client swarm v1 room\0';

/** A code that cannot be used; `message` says why, in the words of the native client. */
export class CodeError extends Error {}

/** A uniformly random integer in [0, n) for n ≤ 2^16, without modulo bias. */
function randomBelow(n) {
  const limit = 65536 - (65536 % n);
  const buffer = new Uint16Array(1);
  for (;;) {
    crypto.getRandomValues(buffer);
    if (buffer[0] < limit) return buffer[0] % n;
  }
}

/**
 * Estimated entropy of a secret part: a list word counts 8 bits, a run of digits log2(10) per
 * digit, any other word 2 bits per character.
 * @param {string} secret
 * @returns {number}
 */
export function secretBits(secret) {
  const listBits = Math.log2(WORDS.length);
  let bits = 0;
  for (const word of secret.split('-')) {
    if (!word) continue;
    if (WORDS.includes(word)) bits += listBits;
    else if (/^[0-9]+$/.test(word)) bits += word.length * Math.log2(10);
    else bits += [...word].length * 2;
  }
  return bits;
}

/** A normalised code phrase `NAMEPLATE-SECRET`. */
export class Code {
  /** @hideconstructor */
  constructor(text, nameplateLength) {
    /** @readonly The whole normalised code (the PAKE password). */
    this.text = text;
    /** @readonly The public number that picks the room. */
    this.nameplate = text.slice(0, nameplateLength);
  }

  /** @returns {Code} a fresh code: a number in 1–999 and two random words from the list. */
  static generate() {
    const nameplate = String(1 + randomBelow(MAX_NAMEPLATE));
    const words = Array.from({ length: GENERATED_WORDS }, () => WORDS[randomBelow(WORDS.length)]);
    return new Code(`${nameplate}-${words.join('-')}`, nameplate.length);
  }

  /**
   * Reads a code typed by a person: case and surrounding spaces do not matter, spaces between
   * words count as dashes. Refuses malformed codes and secrets below {@link MIN_SECRET_BITS}.
   * @param {string} input
   * @returns {Code}
   * @throws {CodeError}
   */
  static parse(input) {
    const text = String(input)
      .split(/\s+/)
      .filter((part) => part !== '')
      .join('-')
      .replace(/[A-Z]/g, (c) => c.toLowerCase());
    const malformed = (why) =>
      new CodeError(`that is not a valid code (${why}); a code looks like 7-crossword-banana`);
    if (utf8ToBytes(text).length > MAX_CODE_BYTES) {
      throw malformed(`it is longer than ${MAX_CODE_BYTES} bytes`);
    }
    const dash = text.indexOf('-');
    if (dash < 0) throw malformed('it needs a number, a dash, then secret words');
    const nameplate = text.slice(0, dash);
    const secret = text.slice(dash + 1);
    if (!new RegExp(`^[0-9]{1,${MAX_NAMEPLATE_DIGITS}}$`).test(nameplate)) {
      throw malformed(`it must start with a number of 1 to ${MAX_NAMEPLATE_DIGITS} digits`);
    }
    if (/\p{Cc}/u.test(secret)) throw malformed('it contains control characters');
    const bits = secretBits(secret);
    if (bits < MIN_SECRET_BITS) {
      throw new CodeError(
        `that code is too short to be safe: its secret part carries about ${Math.round(bits)} bits, ` +
          `at least ${MIN_SECRET_BITS} are needed (two words from the list, or a longer phrase)`,
      );
    }
    return new Code(text, nameplate.length);
  }

  /**
   * The room to join: `transfer-` and the first 32 hex digits of
   * SHA-256(`peer-client transfer v1 room\0` ‖ nameplate). The secret never reaches the server.
   * @returns {string}
   */
  room() {
    const digest = sha256(utf8ToBytes(ROOM_CONTEXT + this.nameplate));
    return ROOM_PREFIX + bytesToHex(digest).slice(0, 32);
  }

  /**
   * The room of a swarm under this code: `swarm-` and the first 32 hex digits of
   * SHA-256(`peer-client swarm v1 room\0` ‖ nameplate), apart from the one-to-one room.
   * @returns {string}
   */
  swarmRoom() {
    const digest = sha256(utf8ToBytes(SWARM_ROOM_CONTEXT + this.nameplate));
    return SWARM_ROOM_PREFIX + bytesToHex(digest).slice(0, 32);
  }

  toString() {
    return this.text;
  }
}
