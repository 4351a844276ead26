import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { MalformedInputError } from '@medshare/crypto';
import { base32Decode, base32Encode, hotp, matchTotp, otpauthUri, totp, type TotpAlgorithm } from '../src/index.ts';

const vectors = JSON.parse(readFileSync(new URL('./vectors/rfc6238.json', import.meta.url), 'utf8')) as {
  seeds: Record<TotpAlgorithm, string>;
  totp: Array<{ time: number } & Record<TotpAlgorithm, string>>;
  hotp: string[];
};
const ALGORITHMS: TotpAlgorithm[] = ['SHA1', 'SHA256', 'SHA512'];

test('RFC 6238 Appendix B: every TOTP vector for SHA1, SHA256 and SHA512', () => {
  for (const row of vectors.totp) {
    for (const algorithm of ALGORITHMS) {
      const secret = Buffer.from(vectors.seeds[algorithm], 'ascii');
      assert.equal(totp(secret, row.time, { algorithm, digits: 8 }), row[algorithm], `${algorithm} at T=${row.time}`);
    }
  }
});

test('RFC 4226 Appendix D: HOTP counters 0-9', () => {
  const secret = Buffer.from(vectors.seeds.SHA1, 'ascii');
  vectors.hotp.forEach((code, counter) => assert.equal(hotp(secret, counter), code));
});

test('matchTotp accepts one step of drift either way and nothing further', () => {
  const secret = Buffer.from(vectors.seeds.SHA1, 'ascii');
  const now = 1_700_000_000;
  const step = Math.floor(now / 30);
  assert.equal(matchTotp(secret, totp(secret, now), now), step);
  assert.equal(matchTotp(secret, totp(secret, now - 30), now), step - 1);
  assert.equal(matchTotp(secret, totp(secret, now + 30), now), step + 1);
  assert.equal(matchTotp(secret, totp(secret, now - 60), now), undefined);
  assert.equal(matchTotp(secret, totp(secret, now + 60), now), undefined);
});

test('matchTotp refuses malformed codes without throwing', () => {
  const secret = Buffer.from(vectors.seeds.SHA1, 'ascii');
  for (const code of ['', '12345', '1234567', 'abcdef', '12345a', ' 123456', '１２３４５６']) assert.equal(matchTotp(secret, code, 59), undefined);
});

test('hotp rejects bad counters and digit counts with a typed error', () => {
  assert.throws(() => hotp(Buffer.alloc(20), -1), MalformedInputError);
  assert.throws(() => hotp(Buffer.alloc(20), 1.5), MalformedInputError);
  assert.throws(() => hotp(Buffer.alloc(20), 0, 5), MalformedInputError);
});

test('base32: RFC 4648 §10 vectors and round trip', () => {
  const cases: Array<[string, string]> = [
    ['', ''],
    ['f', 'MY'],
    ['fo', 'MZXQ'],
    ['foo', 'MZXW6'],
    ['foob', 'MZXW6YQ'],
    ['fooba', 'MZXW6YTB'],
    ['foobar', 'MZXW6YTBOI'],
  ];
  for (const [plain, encoded] of cases) {
    assert.equal(base32Encode(Buffer.from(plain)), encoded);
    assert.equal(Buffer.from(base32Decode(encoded.toLowerCase() + '======')).toString(), plain);
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => Buffer.from(base32Decode(base32Encode(bytes))).equals(Buffer.from(bytes))));
  assert.throws(() => base32Decode('MZXW1'), MalformedInputError);
});

test('otpauth URI carries the base32 secret and parameters', () => {
  const uri = new URL(otpauthUri(Buffer.from('12345678901234567890'), 'Hospital A', 'alice'));
  assert.equal(uri.protocol, 'otpauth:');
  assert.equal(uri.searchParams.get('secret'), 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
  assert.equal(uri.searchParams.get('digits'), '6');
  assert.equal(uri.searchParams.get('algorithm'), 'SHA1');
});
