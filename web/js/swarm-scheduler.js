/**
 * Which piece to ask which peer for: a swarm receiver's decisions, without sockets or storage (time
 * is passed in, in milliseconds), the same rules as the native client's (docs/swarm.md, "Which piece
 * from whom"):
 *
 * - **Rarest first.** A peer with a free request slot is asked for the missing piece, among those it
 *   has, that the fewest connected peers have; ties go by a random order of this receiver's own.
 * - **Bounded.** At most {@link REQUESTS_PER_PEER} pieces are asked of one peer at a time.
 * - **Endgame.** Once every missing piece is asked for and at most four are missing, a free slot
 *   may ask a second peer for a piece that waited twice as long as pieces usually take (plus
 *   0.5 s; 2 s before any piece arrived).
 * - **Leaving is normal.** A peer that leaves, stalls or sends a bad piece gives back what was
 *   asked of it.
 *
 * No browser API here: the tests load it in Node.
 *
 * @module swarm-scheduler
 */

import { Bits, PieceError } from './swarm-pieces.js';

/** Pieces asked of one peer at a time. */
export const REQUESTS_PER_PEER = 4;
/** Missing pieces at most for the endgame to begin. */
const ENDGAME_PIECES = REQUESTS_PER_PEER;
/** Peers one piece is asked of at once, in the endgame. */
export const MAX_ASKED_PER_PIECE = 2;
/** How long a piece is waited for before the endgame asks again, until arrivals tell. */
const FIRST_ENDGAME_WAIT_MS = 2000;
/** Added to twice the usual time of a piece before the endgame asks again. */
const ENDGAME_SLACK_MS = 500;

/**
 * A receiver's view of a swarm: what it has, what each peer has, what is asked of whom.
 */
export class Scheduler {
  /**
   * @param {Bits} have the pieces held already (from an earlier run)
   * @param {() => number} random a number in [0, 1), for the tie-break order
   */
  constructor(have, random = Math.random) {
    const pieces = have.length;
    this._have = have;
    this._missing = pieces - have.count;
    /** Connected peers that have each piece. */
    this._availability = new Uint16Array(pieces);
    /** Peers each piece is asked of right now. */
    this._asked = new Uint8Array(pieces);
    /** Random tie-break order. */
    this._rank = new Uint32Array(pieces);
    for (let piece = 0; piece < pieces; piece += 1) this._rank[piece] = piece;
    for (let i = pieces - 1; i > 0; i -= 1) {
      const j = Math.floor(random() * (i + 1));
      [this._rank[i], this._rank[j]] = [this._rank[j], this._rank[i]];
    }
    /** Missing pieces asked of nobody. */
    this._waiting = this._missing;
    /** Missing pieces asked of someone, with when each was first asked. */
    this._inFlight = new Map();
    /** How long a piece usually takes from request to arrival (a moving average), ms. */
    this._pieceTime = null;
    /** @type {Map<unknown, {has: Bits, asked: {piece: number, at: number}[], heard: number}>} */
    this._peers = new Map();
  }

  /** The pieces this receiver has. */
  get have() {
    return this._have;
  }

  get isComplete() {
    return this._missing === 0;
  }

  /** Missing pieces that no connected peer has. */
  unavailable() {
    let count = 0;
    for (let piece = 0; piece < this._have.length; piece += 1) {
      if (this._availability[piece] === 0 && !this._have.has(piece)) count += 1;
    }
    return count;
  }

  /** Whether `peer` has every piece. */
  peerIsComplete(peer) {
    return this._peers.get(peer)?.has.isFull ?? false;
  }

  /**
   * A peer announced the pieces it has (again: what it adds).
   * @throws {PieceError}
   */
  addPeer(peer, has, now) {
    if (has.length !== this._have.length) {
      throw new PieceError(`a bitfield of ${has.length} pieces for an offer of ${this._have.length}`);
    }
    if (this._peers.has(peer)) {
      for (const piece of has) this.peerHas(peer, piece);
      return;
    }
    for (const piece of has) this._changeAvailability(piece, 1);
    this._peers.set(peer, { has, asked: [], heard: now });
  }

  /**
   * A peer announced one more piece.
   * @throws {PieceError}
   */
  peerHas(peer, piece) {
    if (!Number.isSafeInteger(piece) || piece < 0 || piece >= this._have.length) throw new PieceError(`piece ${piece} does not exist`);
    const view = this._peers.get(peer);
    if (!view) throw new PieceError("a piece announced before the peer's bitfield");
    if (!view.has.add(piece)) this._changeAvailability(piece, 1);
  }

  /** A peer left (or is dropped): what was asked of it is asked of others. */
  removePeer(peer) {
    const view = this._peers.get(peer);
    if (!view) return;
    this._peers.delete(peer);
    for (const piece of view.has) this._changeAvailability(piece, -1);
    for (const { piece } of view.asked) this._unask(piece);
  }

  /** Requests to send now, as `[peer, piece]`: fills each peer's free slots, rarest first. */
  nextRequests(now) {
    const requests = [];
    for (const [peer, view] of this._peers) {
      while (view.asked.length < REQUESTS_PER_PEER) {
        const piece = this._pick(view, now);
        if (piece === null) break;
        this._ask(view, piece, now);
        requests.push([peer, piece]);
      }
    }
    return requests;
  }

  _pick(view, now) {
    if (this._waiting > 0) {
      let best = null;
      for (const piece of view.has) {
        if (this._have.has(piece) || this._asked[piece] !== 0) continue;
        if (
          best === null ||
          this._availability[piece] < this._availability[best] ||
          (this._availability[piece] === this._availability[best] && this._rank[piece] < this._rank[best])
        ) {
          best = piece;
        }
      }
      return best;
    }
    if (this._missing > ENDGAME_PIECES) return null;
    const wait = this._pieceTime === null ? FIRST_ENDGAME_WAIT_MS : this._pieceTime * 2 + ENDGAME_SLACK_MS;
    for (const [piece, since] of this._inFlight) {
      if (
        !this._have.has(piece) &&
        view.has.has(piece) &&
        this._asked[piece] < MAX_ASKED_PER_PIECE &&
        now - since >= wait &&
        !view.asked.some((asked) => asked.piece === piece)
      ) {
        return piece;
      }
    }
    return null;
  }

  _ask(view, piece, now) {
    if (this._asked[piece] === 0) {
      this._waiting -= 1;
      this._inFlight.set(piece, now);
    }
    this._asked[piece] += 1;
    if (view.asked.length === 0) view.heard = now;
    view.asked.push({ piece, at: now });
  }

  _unask(piece) {
    this._asked[piece] = Math.max(0, this._asked[piece] - 1);
    if (this._asked[piece] === 0 && this._inFlight.delete(piece) && !this._have.has(piece)) this._waiting += 1;
  }

  _changeAvailability(piece, by) {
    this._availability[piece] = Math.max(0, Math.min(0xffff, this._availability[piece] + by));
  }

  /** Whether `piece` is asked of `peer` and not arrived yet. */
  isAskedOf(peer, piece) {
    return this._peers.get(peer)?.asked.some((asked) => asked.piece === piece) ?? false;
  }

  /**
   * Piece `piece` arrived from `peer` and matched its hash: `'new'`, or `'duplicate'` when
   * another peer's copy came first (the endgame).
   * @throws {PieceError} when it was not asked of that peer
   */
  arrived(peer, piece, now) {
    const view = this._peers.get(peer);
    const at = view?.asked.findIndex((asked) => asked.piece === piece) ?? -1;
    if (at < 0) throw new PieceError(`piece ${piece} was sent without being asked for`);
    const [{ at: askedAt }] = view.asked.splice(at, 1);
    view.heard = now;
    const took = Math.max(0, now - askedAt);
    this._pieceTime = this._pieceTime === null ? took : (this._pieceTime * 3 + took) / 4;
    if (this._have.add(piece)) {
      this._unask(piece);
      return 'duplicate';
    }
    this._missing -= 1;
    this._unask(piece);
    return 'new';
  }

  /** Peers with requests outstanding and nothing arriving for `limitMs`: drop them. */
  stalled(now, limitMs) {
    const stalled = [];
    for (const [peer, view] of this._peers) if (view.asked.length > 0 && now - view.heard >= limitMs) stalled.push(peer);
    return stalled;
  }
}
