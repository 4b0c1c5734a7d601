// The page's swarm decisions without a browser (js/swarm-pieces.js, js/swarm-scheduler.js): they
// hold no socket and read the time they are given, so Node runs them directly.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Bits, MAX_PIECES, MIN_PIECE_BYTES, PieceError, PieceMap } from '../js/swarm-pieces.js';
import { MAX_ASKED_PER_PIECE, REQUESTS_PER_PEER, Scheduler } from '../js/swarm-scheduler.js';

/** A seeded random source, so every run draws the same tie-break order. */
function seeded(seed) {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

function bits(length, set) {
  const out = new Bits(length);
  for (const piece of set) out.add(piece);
  return out;
}

test('files are cut on their own, the last piece shorter; directories and empty files have none', () => {
  const map = new PieceMap(
    [
      { kind: 'dir', size: 0 },
      { kind: 'file', size: 0 },
      { kind: 'file', size: MIN_PIECE_BYTES * 2 + 5 },
      { kind: 'file', size: 7 },
    ],
    MIN_PIECE_BYTES,
  );
  assert.equal(map.length, 4);
  assert.deepEqual(map.ofEntry(0), [0, 0]);
  assert.deepEqual(map.ofEntry(1), [0, 0]);
  assert.deepEqual(map.ofEntry(2), [0, 3]);
  assert.deepEqual(map.ofEntry(3), [3, 4]);
  assert.deepEqual(map.piece(2), { entry: 2, offset: MIN_PIECE_BYTES * 2, length: 5 });
  assert.deepEqual(map.piece(3), { entry: 3, offset: 0, length: 7 });
  assert.equal(map.piece(4), null);
  assert.equal(map.piece(-1), null);
});

test('a piece size out of bounds, or too many pieces, is refused', () => {
  for (const bad of [0, 3, MIN_PIECE_BYTES / 2, MIN_PIECE_BYTES * 3, 32 << 20, 1.5, NaN]) {
    assert.throws(() => new PieceMap([{ kind: 'file', size: 10 }], bad), PieceError, String(bad));
  }
  assert.throws(() => new PieceMap([{ kind: 'file', size: (MAX_PIECES + 1) * MIN_PIECE_BYTES }], MIN_PIECE_BYTES), PieceError);
});

test('bitfields read as the native client writes them: the first piece is the highest bit', () => {
  assert.equal(bits(10, [0, 9]).encode(), '8040');
  const read = Bits.decode('8040', 10);
  assert.deepEqual([...read], [0, 9]);
  assert.equal(read.count, 2);
  assert.ok(Bits.full(10).isFull);
  assert.equal(Bits.full(10).encode(), 'ffc0');
  // Another length, a bit past the last piece, or not hex: refused.
  for (const bad of ['80', '804000', '8060', 'zz40', 8040]) assert.throws(() => Bits.decode(bad, 10), PieceError, String(bad));
});

test('the rarest piece a peer has is asked first, at most four per peer', () => {
  const s = new Scheduler(new Bits(6), seeded(1));
  s.addPeer('a', Bits.full(6), 0);
  s.addPeer('b', bits(6, [0, 1, 2, 3, 4]), 0);
  s.addPeer('c', bits(6, [0, 1, 2, 3]), 0);
  const requests = s.nextRequests(0);
  const of = (peer) => requests.filter(([p]) => p === peer).map(([, piece]) => piece);
  // Piece 5 is only at a, piece 4 at a and b, the rest everywhere: a is asked for the rarest first.
  assert.deepEqual(of('a').slice(0, 2), [5, 4]);
  assert.equal(of('a').length, REQUESTS_PER_PEER);
  assert.ok(requests.every(([peer]) => of(peer).length <= REQUESTS_PER_PEER));
  // Every piece is asked of somebody, once.
  assert.deepEqual(requests.map(([, piece]) => piece).sort(), [0, 1, 2, 3, 4, 5]);
});

test('receivers with their own tie-break ask the sender for different pieces', () => {
  const first = [];
  for (const seed of [1, 2, 3, 4]) {
    const s = new Scheduler(new Bits(64), seeded(seed));
    s.addPeer('sender', Bits.full(64), 0);
    first.push(s.nextRequests(0).map(([, piece]) => piece));
  }
  assert.ok(new Set(first.flat()).size > 8, `the same pieces were asked for: ${JSON.stringify(first)}`);
});

test('a piece sent without being asked for is refused; a duplicate is told apart', () => {
  const s = new Scheduler(new Bits(5), seeded(1));
  s.addPeer('a', Bits.full(5), 0);
  s.addPeer('b', Bits.full(5), 0);
  assert.throws(() => s.arrived('a', 0, 1), PieceError);
  const [[peer, piece]] = s.nextRequests(0);
  assert.ok(s.isAskedOf(peer, piece));
  assert.equal(s.arrived(peer, piece, 100), 'new');
  assert.ok(s.have.has(piece));
  assert.throws(() => s.arrived(peer, piece, 100), PieceError);
});

test('the endgame asks a second peer only for the last pieces, once they waited long', () => {
  const s = new Scheduler(new Bits(3), seeded(1));
  s.addPeer('slow', Bits.full(3), 0);
  assert.equal(s.nextRequests(0).length, 3);
  s.addPeer('fast', Bits.full(3), 0);
  // Every piece is asked of `slow`; before 2 s nobody else is asked.
  assert.deepEqual(s.nextRequests(1000), []);
  const again = s.nextRequests(2000);
  assert.equal(again.length, 3);
  assert.ok(again.every(([peer]) => peer === 'fast'));
  // Never more than two peers at once for one piece.
  s.addPeer('third', Bits.full(3), 2000);
  assert.deepEqual(s.nextRequests(10_000), []);
  assert.equal(MAX_ASKED_PER_PIECE, 2);
  // The first copy is new, the second a duplicate.
  const [, piece] = again[0];
  assert.equal(s.arrived('fast', piece, 2100), 'new');
  assert.equal(s.arrived('slow', piece, 2200), 'duplicate');
});

test('with many pieces missing there is no endgame', () => {
  const s = new Scheduler(new Bits(20), seeded(1));
  s.addPeer('a', Bits.full(20), 0);
  s.addPeer('b', bits(20, [0]), 0);
  const asked = s.nextRequests(0);
  assert.equal(asked.length, REQUESTS_PER_PEER + 1);
  // b holds one piece, asked of it or of a; never both, however long it waits.
  assert.ok(s.nextRequests(60_000).every(([, piece]) => asked.every(([, p]) => p !== piece)));
});

test('a peer that leaves or stalls gives back what was asked of it; missing pieces nobody has are counted', () => {
  const s = new Scheduler(new Bits(4), seeded(1));
  s.addPeer('a', bits(4, [0, 1]), 0);
  assert.equal(s.unavailable(), 2);
  assert.equal(s.nextRequests(0).length, 2);
  assert.deepEqual(s.stalled(59_999, 60_000), []);
  assert.deepEqual(s.stalled(60_000, 60_000), ['a']);
  s.removePeer('a');
  assert.equal(s.unavailable(), 4);
  s.addPeer('b', Bits.full(4), 60_000);
  assert.equal(s.unavailable(), 0);
  assert.deepEqual(
    s
      .nextRequests(60_000)
      .map(([, piece]) => piece)
      .sort(),
    [0, 1, 2, 3],
  );
});

test('announcements are checked: unknown pieces, a peer without a bitfield, a bitfield of another length', () => {
  const s = new Scheduler(new Bits(4), seeded(1));
  assert.throws(() => s.peerHas('a', 1), PieceError);
  s.addPeer('a', new Bits(4), 0);
  assert.throws(() => s.peerHas('a', 4), PieceError);
  assert.throws(() => s.peerHas('a', -1), PieceError);
  assert.throws(() => s.addPeer('b', new Bits(5), 0), PieceError);
  s.peerHas('a', 3);
  assert.equal(s.peerIsComplete('a'), false);
  // A later bitfield adds to the first.
  s.addPeer('a', bits(4, [0, 1, 2]), 0);
  assert.equal(s.peerIsComplete('a'), true);
});

test('a receiver that held pieces from an earlier run asks only for the rest', () => {
  const s = new Scheduler(bits(4, [1, 3]), seeded(1));
  s.addPeer('a', Bits.full(4), 0);
  assert.deepEqual(
    s
      .nextRequests(0)
      .map(([, piece]) => piece)
      .sort(),
    [0, 2],
  );
  assert.equal(s.isComplete, false);
  s.arrived('a', 0, 1);
  s.arrived('a', 2, 1);
  assert.equal(s.isComplete, true);
});
