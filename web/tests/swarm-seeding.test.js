// What a page sending to a swarm tells each receiver it has (js/swarm-seeding.js), without a browser.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ADVERTISED_PER_PEER, OPEN_AFTER_MS, Seeding } from '../js/swarm-seeding.js';

test('each receiver is told of different pieces', () => {
  const s = new Seeding(40);
  const a = [...s.join('a')];
  const b = [...s.join('b')];
  assert.equal(a.length, ADVERTISED_PER_PEER);
  assert.equal(b.length, ADVERTISED_PER_PEER);
  assert.ok(a.every((piece) => !b.includes(piece)));
});

test('a piece sent makes room for one more; the end opens everything after a while', () => {
  const s = new Seeding(ADVERTISED_PER_PEER + 1);
  const [first] = s.join('a');
  assert.deepEqual(s.sent('a', first, 0), [['a', { have: ADVERTISED_PER_PEER }]]);
  // Nothing fresh is left, but pieces told of are not sent yet: the sender waits for them.
  assert.deepEqual(s.sent('a', 1, 0), []);
  assert.deepEqual(s.tick(OPEN_AFTER_MS / 2), []);
  const opened = s.tick(OPEN_AFTER_MS);
  assert.equal(opened.length, 1);
  assert.equal(opened[0][0], 'a');
  assert.ok(opened[0][1].bitfield.isFull);
  assert.ok(s.join('b').isFull);
  assert.deepEqual(s.sent('b', 3, 0), []);
});

test('once every piece went out, everything is told at once', () => {
  const s = new Seeding(2);
  s.join('a');
  assert.deepEqual(s.sent('a', 0, 0), []);
  const opened = s.sent('a', 1, 0);
  assert.equal(opened.length, 1);
  assert.ok(opened[0][1].bitfield.isFull);
});

test('pieces told of to a receiver that left go to another', () => {
  const s = new Seeding(2 * ADVERTISED_PER_PEER);
  const a = [...s.join('a')];
  s.join('b');
  assert.equal(s.join('c').count, 0);
  const adverts = s.left('a');
  assert.equal(adverts.length, ADVERTISED_PER_PEER);
  assert.ok(adverts.every(([peer, advert]) => peer === 'c' && a.includes(advert.have)));
});

test('a piece whose holders left goes out again', () => {
  const s = new Seeding(ADVERTISED_PER_PEER + 2);
  const [piece] = s.join('a');
  s.sent('a', piece, 0);
  s.left('a');
  const b = [...s.join('b')];
  assert.deepEqual(s.lost(piece), [], 'b is told of all it may ask for');
  assert.deepEqual(s.lost(999), []);
  // As b's pieces go out, the lost piece is told of again.
  const told = b.flatMap((sent) => s.sent('b', sent, 0)).map(([, advert]) => advert);
  assert.ok(told.some((advert) => advert.have === piece || advert.bitfield?.has(piece)));
});

test('pieces a receiver holds already are not fresh: what it lacks is told of at once', () => {
  const pieces = ADVERTISED_PER_PEER + 4;
  const s = new Seeding(pieces);
  const told = s.join('a');
  // A receiver resuming holds all but the last two pieces; the sender learns it after telling it of eight.
  const adverts = [];
  for (let piece = 0; piece < pieces - 2; piece += 1) adverts.push(...s.held(piece, 0));
  const toldOf = (piece) => adverts.some(([, advert]) => advert.have === piece || advert.bitfield?.has(piece));
  assert.ok(!told.has(pieces - 1));
  assert.ok(toldOf(pieces - 1) && toldOf(pieces - 2), JSON.stringify(adverts));
  // Once both went out, everything is told of.
  assert.deepEqual(s.sent('a', pieces - 2, 0), []);
  const opened = s.sent('a', pieces - 1, 0);
  assert.equal(opened.length, 1);
  assert.ok(opened[0][1].bitfield.isFull);
});

test('nothing to send is open from the start', () => {
  const s = new Seeding(0);
  assert.equal(s.join('a').length, 0);
  assert.ok(s.isOpen);
  assert.deepEqual(s.sent('a', 0, 0), []);
});
