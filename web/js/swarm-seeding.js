/**
 * What a page sending to a swarm tells each receiver it has, as the native sender does (docs/swarm.md,
 * "What the sender tells each receiver it has"): at first a few pieces nobody has been sent yet,
 * different ones to each receiver, and one more each time one of them went out ("super-seeding").
 * Receivers can only ask for what they were told of, so each piece leaves the sender about once and
 * the receivers trade the rest. Once every piece went out, or none is fresh and {@link OPEN_AFTER_MS}
 * passed, the sender tells everyone of everything.
 *
 * Decisions only: no sockets; time is passed in (milliseconds). The tests load it in Node.
 *
 * @module swarm-seeding
 */

import { Bits } from './swarm-pieces.js';
import { REQUESTS_PER_PEER } from './swarm-scheduler.js';

/** Pieces told of to one receiver and not yet sent to it: twice what it may ask for at once. */
export const ADVERTISED_PER_PEER = 2 * REQUESTS_PER_PEER;
/** How long the last pieces told of may wait to be asked for before the sender tells of everything. */
export const OPEN_AFTER_MS = 5000;

/**
 * A message owed to a receiver: `{bitfield: Bits}` (first, or everything when opening up), or
 * `{have: piece}`.
 * @typedef {{bitfield: Bits}|{have: number}} Advert
 */

/** The sender's advertising. */
export class Seeding {
  /** @param {number} pieces */
  constructor(pieces) {
    this._pieces = pieces;
    /** Pieces neither sent to anyone nor told of to anyone. */
    this._fresh = new Uint8Array(pieces).fill(1);
    this._freshCount = pieces;
    /** No fresh piece lies below this one. */
    this._freshFrom = 0;
    /** @type {Map<number, unknown>} Pieces told of to one receiver and not yet sent. */
    this._assigned = new Map();
    /** @type {Map<unknown, Bits>} What each receiver was told. */
    this._told = new Map();
    this._open = pieces === 0;
    this._allToldSince = null;
  }

  /** Whether everything is told of to everyone now. */
  get isOpen() {
    return this._open;
  }

  _popFresh() {
    if (this._freshCount === 0) return null;
    while (this._fresh[this._freshFrom] === 0) this._freshFrom += 1;
    const piece = this._freshFrom;
    this._fresh[piece] = 0;
    this._freshCount -= 1;
    return piece;
  }

  _makeFresh(piece) {
    if (this._fresh[piece] === 1) return;
    this._fresh[piece] = 1;
    this._freshCount += 1;
    this._freshFrom = Math.min(this._freshFrom, piece);
    this._allToldSince = null;
  }

  /** A receiver proved the code: its first bitfield. @returns {Bits} */
  join(peer) {
    const told = this._open ? Bits.full(this._pieces) : new Bits(this._pieces);
    this._told.set(peer, told);
    if (!this._open) for (let i = 0; i < ADVERTISED_PER_PEER && this._tellFresh(peer); i += 1);
    return told.clone();
  }

  /** `piece` went out to `peer` at `now`: what to tell whom now. @returns {[unknown, Advert][]} */
  sent(peer, piece, now) {
    this._assigned.delete(piece);
    return this._spent(piece, peer, now);
  }

  /**
   * A receiver holds `piece` (from an earlier run, or from another receiver): it is no longer fresh,
   * and the receiver it was told of, if any, is told of another piece instead.
   */
  held(piece, now) {
    const told = this._assigned.get(piece);
    this._assigned.delete(piece);
    return this._spent(piece, told, now);
  }

  /**
   * `piece` is no longer fresh: `peer`, if any, is told of one more fresh piece; with none left, the
   * sender opens up once nothing told of waits (or the last pieces waited {@link OPEN_AFTER_MS}).
   */
  _spent(piece, peer, now) {
    if (this._open) return [];
    if (this._fresh[piece] === 1) {
      this._fresh[piece] = 0;
      this._freshCount -= 1;
    }
    const advert = peer === undefined ? null : this._tellFresh(peer);
    if (advert) return [advert];
    if (this._freshCount === 0 && this._assigned.size === 0) return this._openUp();
    return this.tick(now);
  }

  /** Tells `peer` of the next fresh piece, if one is left: the advert, or null. */
  _tellFresh(peer) {
    const piece = this._popFresh();
    if (piece === null) return null;
    this._assigned.set(piece, peer);
    this._told.get(peer)?.add(piece);
    return [peer, { have: piece }];
  }

  /** Time passed: opens up once the last pieces told of waited {@link OPEN_AFTER_MS}. */
  tick(now) {
    if (this._open) return [];
    if (this._freshCount === 0) this._allToldSince ??= now;
    if (this._allToldSince !== null && now - this._allToldSince >= OPEN_AFTER_MS) return this._openUp();
    return [];
  }

  /** `peer` left: the pieces told of to it alone go to others. */
  left(peer) {
    this._told.delete(peer);
    if (this._open) return [];
    for (const [piece, holder] of [...this._assigned]) {
      if (holder !== peer) continue;
      this._assigned.delete(piece);
      this._makeFresh(piece);
    }
    return this._refill();
  }

  /** No receiver holds `piece` any more (its holders left): it must go out again. */
  lost(piece) {
    if (this._open || this._assigned.has(piece) || piece >= this._pieces) return [];
    this._makeFresh(piece);
    return this._refill();
  }

  /** Tops up every receiver told of fewer than {@link ADVERTISED_PER_PEER} pieces not yet sent. */
  _refill() {
    const adverts = [];
    const waiting = new Map();
    for (const holder of this._assigned.values()) waiting.set(holder, (waiting.get(holder) ?? 0) + 1);
    for (const peer of this._told.keys()) {
      for (let i = waiting.get(peer) ?? 0; i < ADVERTISED_PER_PEER; i += 1) {
        const advert = this._tellFresh(peer);
        if (!advert) return adverts;
        adverts.push(advert);
      }
    }
    return adverts;
  }

  _openUp() {
    this._open = true;
    const adverts = [];
    for (const [peer, told] of this._told) {
      for (let piece = 0; piece < this._pieces; piece += 1) told.add(piece);
      adverts.push([peer, { bitfield: Bits.full(this._pieces) }]);
    }
    return adverts;
  }
}
