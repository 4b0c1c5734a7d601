// Code phrases and the key exchange of the page, against the native client's definitions
// (no browser needed: the same modules run in Node).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from './support/processes.js';

const { WORDS } = await import(path.join(REPO_ROOT, 'web/js/words.js'));
const { Code, CodeError } = await import(path.join(REPO_ROOT, 'web/js/code.js'));
const { Pake, PakeError, confirmationMac, verifyConfirmation, sdpFingerprint } = await import(
  path.join(REPO_ROOT, 'web/js/pake.js')
);

test('the word list is the native one, word for word and in order', () => {
  const rust = fs.readFileSync(path.join(REPO_ROOT, 'peer-client/src/auth/words.rs'), 'utf8');
  const body = rust.slice(rust.indexOf('WORDS'));
  const native = [...body.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  assert.equal(native.length, 256);
  assert.deepEqual([...WORDS], native);
  assert.equal(new Set(WORDS).size, 256);
});

test('codes are read like the native client reads them', () => {
  assert.equal(Code.parse('  7 Crossword   BANANA ').text, '7-crossword-banana');
  assert.equal(Code.parse('7-crossword-banana').nameplate, '7');
  for (const weak of ['7-banana', '7-1234', '7-abc']) assert.throws(() => Code.parse(weak), /too short to be safe/);
  for (const bad of ['banana-apple', '-apple-banana', '1234567-apple-banana', '7', `7-${'a'.repeat(300)}`]) {
    assert.throws(() => Code.parse(bad), CodeError, bad);
  }
  assert.ok(Code.parse('7-correcthorse'));
  assert.ok(Code.parse('7-123456'));
  for (let i = 0; i < 200; i += 1) {
    const code = Code.generate();
    assert.match(code.text, /^[1-9][0-9]{0,2}-[a-z]+-[a-z]+$/);
    assert.equal(Code.parse(code.text).text, code.text);
  }
});

test('the room is derived from the number only, as docs/transfer.md says', () => {
  const expected = (nameplate) =>
    'transfer-' +
    crypto.createHash('sha256').update(`peer-client transfer v1 room\0${nameplate}`).digest('hex').slice(0, 32);
  assert.equal(Code.parse('7-crossword-banana').room(), expected('7'));
  assert.equal(Code.parse('7-apple-tiger').room(), expected('7'));
  assert.equal(Code.parse('812-apple-tiger').room(), expected('812'));
  assert.ok(!Code.parse('7-crossword-banana').room().includes('banana'));
});

test('SPAKE2: same code, same key; other code, other key; bad messages refused', () => {
  const a = new Pake('7-apple-tiger');
  const b = new Pake('7-apple-tiger');
  assert.equal(a.message.length, 33);
  assert.equal(a.message[0], 0x53);
  const ka = a.finish(b.message);
  assert.deepEqual(ka, b.finish(a.message));
  const c = new Pake('7-apple-banana');
  assert.notDeepEqual(a.finish(c.message), c.finish(a.message));
  assert.throws(() => a.finish(new Uint8Array(3)), PakeError);
  const wrongTag = Uint8Array.from(b.message);
  wrongTag[0] = 0x41;
  assert.throws(() => a.finish(wrongTag), PakeError);
});

test('key confirmation binds both fingerprints and the role', () => {
  const a = new Pake('7-apple-tiger');
  const b = new Pake('7-apple-tiger');
  const [ka, kb] = [a.finish(b.message), b.finish(a.message)];
  const atSender = { local: 'sha-256 AA:01', remote: 'sha-256 BB:02' };
  const atReceiver = { local: 'SHA-256 bb:02', remote: 'sha-256 AA:01' };
  const mac = confirmationMac(ka, 'sender', atSender.local, atSender.remote);
  assert.ok(verifyConfirmation(kb, 'sender', atReceiver, mac));
  // A relay in the middle: each side sees another certificate.
  assert.ok(!verifyConfirmation(kb, 'sender', { local: 'sha-256 BB:02', remote: 'sha-256 EE:EE' }, mac));
  // A reflected MAC does not pass.
  const own = confirmationMac(kb, 'receiver', atReceiver.local, atReceiver.remote);
  assert.ok(!verifyConfirmation(kb, 'sender', atReceiver, own));
  assert.ok(!verifyConfirmation(kb, 'sender', atReceiver, mac.slice(0, 31)));
  assert.equal(sdpFingerprint('v=0\r\na=group:BUNDLE 0\r\na=fingerprint:sha-256 AB:CD\r\n'), 'sha-256 AB:CD');
  assert.equal(sdpFingerprint('v=0\r\n'), null);
});
