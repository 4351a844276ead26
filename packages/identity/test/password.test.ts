import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scryptSync } from 'node:crypto';
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';
import { findRecoveryCode, hashPassword, needsRehash, newRecoveryCodes, verifyPassword } from '../src/index.ts';

const FAST = { logN: 12, r: 8, p: 1 };

test('scrypt: RFC 7914 §12 test vector through node:crypto (the primitive we build on)', () => {
  const out = scryptSync('password', 'NaCl', 64, { N: 1024, r: 8, p: 16 });
  assert.equal(
    out.toString('hex'),
    'fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640',
  );
});

test('hash then verify; a wrong password fails; salts differ', async () => {
  const a = await hashPassword('correct horse battery staple', FAST);
  const b = await hashPassword('correct horse battery staple', FAST);
  assert.match(a, /^\$scrypt\$ln=12,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  assert.notEqual(a, b);
  assert.equal(await verifyPassword('correct horse battery staple', a), true);
  assert.equal(await verifyPassword('correct horse battery stapler', a), false);
});

test('passwords are NFKC-normalised (the same password typed on different keyboards verifies)', async () => {
  const stored = await hashPassword('ﬁnal-passphrase', FAST); // U+FB01 ligature
  assert.equal(await verifyPassword('final-passphrase', stored), true);
});

test('default parameters are the OWASP ones and needsRehash notices weaker ones', async () => {
  const stored = await hashPassword('correct horse battery staple', FAST);
  assert.equal(needsRehash(stored), true);
  assert.equal(needsRehash(stored, FAST), false);
});

test('hostile stored hashes and inputs get typed errors, never huge allocations', async () => {
  await assert.rejects(verifyPassword('x', 'not a hash'), MalformedInputError);
  await assert.rejects(verifyPassword('x', `$scrypt$ln=40,r=8,p=1$${'A'.repeat(22)}$${'A'.repeat(43)}`), MalformedInputError);
  await assert.rejects(verifyPassword('x', `$scrypt$ln=22,r=32,p=16$${'A'.repeat(22)}$${'A'.repeat(43)}`), LimitExceededError);
  await assert.rejects(hashPassword('', FAST), MalformedInputError);
  await assert.rejects(hashPassword('x'.repeat(2000), FAST), LimitExceededError);
});

test('recovery codes: ten distinct 80-bit codes, each usable once, format-tolerant', () => {
  const { codes, digests } = newRecoveryCodes();
  assert.equal(codes.length, 10);
  assert.equal(new Set(codes).size, 10);
  for (const code of codes) assert.match(code, /^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$/);
  const index = findRecoveryCode(digests, codes[3]!.toLowerCase().replace(/-/g, ' '));
  assert.equal(index, 3);
  digests.splice(index, 1);
  assert.equal(findRecoveryCode(digests, codes[3]!), -1);
  assert.equal(findRecoveryCode(digests, 'AAAA-AAAA-AAAA-AAAA'), -1);
});
