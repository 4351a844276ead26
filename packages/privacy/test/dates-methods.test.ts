import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  cryptoHash,
  cryptoHashReference,
  dateShiftOffset,
  decryptValue,
  encryptValue,
  indicatesAgeOver89,
  partialDate,
  perturbNumber,
  shiftDate,
} from '../src/index.ts';

const NOW = new Date(Date.UTC(2026, 10, 24));

test('date-shift offset reproduces the reference tool: "example" with key "123" shifts 2000-01-01 to 2000-02-11', () => {
  assert.equal(dateShiftOffset('example', '123'), 41);
  assert.equal(shiftDate('2000-01-01', 41, NOW), '2000-02-11');
});

test('offsets stay within [-50, 50] for both algorithms and the HMAC variant depends on the key', () => {
  fc.assert(
    fc.property(fc.string(), fc.string(), (id, key) => {
      for (const algorithm of ['fold', 'hmac'] as const) {
        const o = dateShiftOffset(id, key, algorithm);
        assert.ok(o >= -50 && o <= 50);
      }
    }),
  );
  const offsets = new Set(['k1', 'k2', 'k3', 'k4', 'k5', 'k6'].map((k) => dateShiftOffset('patient-1', k, 'hmac')));
  assert.ok(offsets.size > 1);
});

test('a shifted dateTime keeps its date shift and time zone, with time 00:00:00', () => {
  assert.equal(shiftDate('2015-06-30T23:10:05+02:00', 1, NOW), '2015-07-01T00:00:00+02:00');
  assert.equal(shiftDate('2015-06-30T23:10:05.123Z', -30, NOW), '2015-05-31T00:00:00.000Z');
  assert.equal(shiftDate('2015-06-30T23:10:05', 0, NOW), '2015-06-30T00:00:00');
});

test('leap days shift correctly and partial dates are not shifted', () => {
  assert.equal(shiftDate('2020-02-29', 1, NOW), '2020-03-01');
  assert.equal(shiftDate('2020-03-01', -1, NOW), '2020-02-29');
  assert.equal(shiftDate('2019-03-01', -1, NOW), '2019-02-28');
  assert.equal(shiftDate('2020-02', 5, NOW), undefined);
  assert.equal(shiftDate('2020', 5, NOW), undefined);
});

test('ages 89 and 90: a date indicating an age over 89 is removed, 89 keeps its year', () => {
  assert.equal(indicatesAgeOver89('1937-11-24', NOW), false); // 89 today
  assert.equal(indicatesAgeOver89('1936-11-24', NOW), true); // 90 today
  assert.equal(indicatesAgeOver89('1936-11-25', NOW), false); // 90 tomorrow
  assert.equal(partialDate('1937-11-24', NOW), '1937');
  assert.equal(partialDate('1936-11-24', NOW), undefined);
  assert.equal(partialDate('1990-05', NOW), '1990');
  assert.equal(partialDate('2001-02-03T10:00:00-05:00', NOW), '2001');
  assert.equal(shiftDate('1930-01-01', 3, NOW), undefined);
});

test('dates are read as the pattern ^(\\d{4})(?:-(\\d{2})(?:-(\\d{2}))?)? reads them (year, partial dates, ages, shifts) on random date-like strings', () => {
  // The reader is hand-written (no match array per date); the pattern it replaced is the oracle here.
  const PATTERN = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?/;
  const overLimit = (m: RegExpExecArray) => {
    const month = m[2] ? Number(m[2]) : 1;
    const day = m[3] ? Number(m[3]) : 1;
    const before = NOW.getUTCMonth() + 1 < month || (NOW.getUTCMonth() + 1 === month && NOW.getUTCDate() < day);
    return NOW.getUTCFullYear() - Number(m[1]) - (before ? 1 : 0) > 89;
  };
  const dateLike = fc.array(fc.constantFrom('0', '1', '2', '3', '9', '-', 'T', ':', 'Z', '+', '.', 'x', '٣'), { maxLength: 16 }).map((c) => c.join(''));
  const prefixed = fc.tuple(fc.constantFrom('1930', '1936', '1937', '2019', '0000', '9999'), dateLike).map(([y, rest]) => y + rest);
  fc.assert(
    fc.property(fc.oneof(dateLike, prefixed), fc.integer({ min: -50, max: 50 }), (value, offset) => {
      const m = PATTERN.exec(value);
      assert.equal(partialDate(value, NOW), m && !overLimit(m) ? m[1] : undefined);
      assert.equal(indicatesAgeOver89(value, NOW), m !== null && overLimit(m));
      const shifted =
        m && m[3] && !overLimit(m) ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + offset)).toISOString().slice(0, 10) : undefined;
      assert.equal(shiftDate(value, offset, NOW)?.slice(0, 10), shifted);
    }),
    { numRuns: 2000 },
  );
});

test('cryptoHash is HMAC-SHA256 hex (RFC 4231 test case 2) and hashes only the id of a reference', () => {
  assert.equal(cryptoHash('what do ya want for nothing?', 'Jefe'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
  const h = cryptoHash('123', 'key');
  assert.equal(cryptoHashReference('Patient/123', 'key'), `Patient/${h}`);
  assert.equal(cryptoHashReference('https://example.org/fhir/Patient/123/_history/2', 'key'), `https://example.org/fhir/Patient/${h}/_history/2`);
  // As the reference tool: urn:uuid: only with a well-formed UUID (else the whole value is hashed), and `#id` hashes the contained id.
  const uuid = '9b00887f-9f0f-4c85-8aae-5fc643b4dff7';
  assert.equal(cryptoHashReference(`urn:uuid:${uuid}`, 'key'), `urn:uuid:${cryptoHash(uuid, 'key')}`);
  assert.equal(cryptoHashReference('urn:uuid:123', 'key'), cryptoHash('urn:uuid:123', 'key'));
  assert.equal(cryptoHashReference('urn:oid:1.2.3', 'key'), `urn:oid:${cryptoHash('1.2.3', 'key')}`);
  assert.equal(cryptoHashReference('#contained-1', 'key'), `#${cryptoHash('contained-1', 'key')}`);
});

test('urn:uuid references are read as the reference pattern reads them: a UUID id is hashed, anything else whole (random near-UUIDs)', () => {
  const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
  const char = fc.oneof(
    { arbitrary: fc.constantFrom('0', '9', 'a', 'f', 'A', 'F'), weight: 40 },
    { arbitrary: fc.constantFrom('g', 'G', '-', '/', '\n', 'é'), weight: 1 },
  );
  const nearUuid = fc.tuple(fc.array(char, { minLength: 35, maxLength: 37 }), fc.boolean()).map(([c, shaped]) => {
    if (shaped) for (const at of [8, 13, 18, 23]) if (at < c.length) c[at] = '-';
    return c.join('');
  });
  // Both sides are drawn: UUIDs and strings that miss by one character, one length or one hyphen.
  const drawn = fc.sample(nearUuid, { numRuns: 500, seed: 1 });
  assert.ok(drawn.some((id) => UUID.test(id)) && drawn.some((id) => !UUID.test(id)));
  fc.assert(
    fc.property(nearUuid, (id) => {
      const expected = UUID.test(id) ? `urn:uuid:${cryptoHash(id, 'k')}` : cryptoHash(`urn:uuid:${id}`, 'k');
      assert.equal(cryptoHashReference(`urn:uuid:${id}`, 'k'), expected);
    }),
    { numRuns: 3000 },
  );
});

test('encrypt round-trips, is randomised, and detects tampering and wrong keys', () => {
  const a = encryptValue('Jane Doe', 'secret');
  assert.notEqual(a, encryptValue('Jane Doe', 'secret'));
  assert.equal(decryptValue(a, 'secret'), 'Jane Doe');
  assert.throws(() => decryptValue(a, 'other'), { code: 'INTEGRITY' });
  const bytes = Buffer.from(a, 'base64');
  bytes[14] = (bytes[14] ?? 0) ^ 1;
  assert.throws(() => decryptValue(bytes.toString('base64'), 'secret'), { code: 'INTEGRITY' });
  assert.throws(() => encryptValue('x', ''), { code: 'MALFORMED' });
});

test('perturb stays within half the span (fixed and proportional) and rounds', () => {
  fc.assert(
    fc.property(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.double({ min: 0, max: 100, noNaN: true }), (value, span) => {
      const fixed = perturbNumber(value, span, 'fixed', 6, false);
      assert.ok(Math.abs(fixed - value) <= span / 2 + 1e-6);
      const proportional = perturbNumber(value, span / 100, 'proportional', 6, false);
      assert.ok(Math.abs(proportional - value) <= (Math.abs(value) * span) / 200 + 1e-6);
    }),
  );
  assert.ok(Number.isInteger(perturbNumber(70, 10, 'fixed', 2, true)));
});
