import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import * as abe from '../src/abe.ts';
import {
  AccessDeniedError,
  IntegrityError,
  LimitExceededError,
  MalformedInputError,
  MedShareError,
  PolicySyntaxError,
  UnsupportedError,
} from '../src/errors.ts';
import { CHUNK_BYTES } from '../src/hybrid/stream.ts';
import { ByteReader, ByteWriter } from '../src/encoding/bytes.ts';
import { attributeBytes } from '../src/policy/ast.ts';
import { DEFAULT_POLICY_LIMITS } from '../src/policy/parser.ts';
import * as pre from '../src/pre.ts';
import { attributeList, policyText, occurrencesNeeded } from './arbitraries.ts';
import { nonSubgroupG1, reseal, utf8 } from './helpers.ts';

let authority: ReturnType<typeof abe.setup>;
before(async () => {
  await abe.init();
  authority = abe.setup();
});

const POLICY = '(role:doctor and dept:cardiology) or role:emergency';

describe('CP-ABE correctness', () => {
  test('a key decrypts exactly when its attributes satisfy the policy (random policies, keys, payloads)', () => {
    fc.assert(
      fc.property(policyText, attributeList, fc.uint8Array({ maxLength: 300 }), (policy, attributes, plaintext) => {
        const key = abe.keygen(authority.masterKey, attributes, { maxOccurrences: occurrencesNeeded(policy) });
        const ciphertext = abe.encrypt(authority.publicKey, policy, plaintext);
        if (abe.satisfies(attributes, policy)) {
          assert.deepEqual(abe.decrypt(key, ciphertext), plaintext);
        } else {
          assert.throws(() => abe.decrypt(key, ciphertext), AccessDeniedError);
        }
      }),
      { numRuns: 40 },
    );
  });

  test('payloads across chunk boundaries round-trip (0, 1, CHUNK-1, CHUNK, CHUNK+1, 3·CHUNK bytes)', () => {
    const key = abe.keygen(authority.masterKey, 'role:emergency');
    for (const size of [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES]) {
      const plaintext = randomBytes(size);
      assert.deepEqual(Buffer.from(abe.decrypt(key, abe.encrypt(authority.publicKey, POLICY, plaintext))), plaintext, `size ${size}`);
    }
  });

  test('streaming encryption and decryption agree with the one-shot API for random split points', () => {
    const key = abe.keygen(authority.masterKey, 'role:doctor, dept:cardiology');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 * CHUNK_BYTES }), fc.array(fc.integer({ min: 1, max: 50_000 }), { maxLength: 8 }), (size, cuts) => {
        const plaintext = randomBytes(size);
        const { header, sealer } = abe.encryptStream(authority.publicKey, POLICY);
        const pieces: Uint8Array[] = [header];
        let offset = 0;
        for (const cut of cuts) {
          pieces.push(...sealer.push(plaintext.subarray(offset, offset + cut)));
          offset += cut;
        }
        pieces.push(...sealer.push(plaintext.subarray(offset)), ...sealer.finish());
        const ciphertext = Buffer.concat(pieces);
        assert.deepEqual(Buffer.from(abe.decrypt(key, ciphertext)), plaintext);
        const parsed = abe.openHeader(ciphertext);
        const opener = abe.decryptStream(key, parsed);
        const out: Uint8Array[] = [];
        const payload = ciphertext.subarray(parsed.bytes.length);
        for (let i = 0; i < payload.length; i += 7777) out.push(...opener.push(payload.subarray(i, i + 7777)));
        out.push(opener.finish());
        assert.deepEqual(Buffer.concat(out), plaintext);
      }),
      { numRuns: 15 },
    );
  });

  test('every key and header survives encode → decode → encode byte for byte', () => {
    const user = abe.keygen(authority.masterKey, 'role:doctor, dept:"internal medicine", level=4');
    const pk = abe.encodePublicKey(authority.publicKey);
    const msk = abe.encodeMasterKey(authority.masterKey);
    const uk = abe.encodeUserKey(user);
    assert.deepEqual(abe.encodePublicKey(abe.decodePublicKey(pk)), pk);
    assert.deepEqual(abe.encodeMasterKey(abe.decodeMasterKey(msk)), msk);
    assert.deepEqual(abe.encodeUserKey(abe.decodeUserKey(uk)), uk);
    assert.deepEqual(abe.decodePublicKey(pk).authorityId, authority.publicKey.authorityId);
    // A decoded key still decrypts, and a decoded master key still issues working keys.
    const ct = abe.encrypt(abe.decodePublicKey(pk), 'level >= 3 and role:doctor', utf8('x'));
    assert.deepEqual(abe.decrypt(abe.decodeUserKey(uk), ct), utf8('x'));
    assert.deepEqual(abe.decrypt(abe.keygen(abe.decodeMasterKey(msk), 'role:doctor, level=9'), ct), utf8('x'));
  });
});

describe('CP-ABE refusal', () => {
  test('a dermatologist cannot read a cardiology record', () => {
    const ct = abe.encrypt(authority.publicKey, POLICY, utf8('lab result'));
    const derm = abe.keygen(authority.masterKey, 'role:doctor, dept:dermatology');
    assert.throws(
      () => abe.decrypt(derm, ct),
      (e: unknown) => e instanceof AccessDeniedError && /does not satisfy/.test(e.message),
    );
  });

  test('numeric thresholds refuse values outside the range', () => {
    const ct = abe.encrypt(authority.publicKey, 'role:doctor and level >= 3', utf8('x'));
    assert.throws(() => abe.decrypt(abe.keygen(authority.masterKey, 'role:doctor, level=2'), ct), AccessDeniedError);
    assert.deepEqual(abe.decrypt(abe.keygen(authority.masterKey, 'role:doctor, level=3'), ct), utf8('x'));
  });

  test('a key from another authority is refused by name', () => {
    const other = abe.setup();
    const ct = abe.encrypt(authority.publicKey, 'role:emergency', utf8('x'));
    assert.throws(() => abe.decrypt(abe.keygen(other.masterKey, 'role:emergency'), ct), /different attribute authority/);
  });
});

describe('CP-ABE hostile input', () => {
  test('truncation at every length of a user key is a typed error, never a crash', () => {
    const uk = abe.encodeUserKey(abe.keygen(authority.masterKey, 'role:doctor, level=2'));
    for (let n = 0; n < uk.length; n += 7) {
      assert.throws(
        () => abe.decodeUserKey(uk.subarray(0, n)),
        (e: unknown) => e instanceof MedShareError,
        `length ${n}`,
      );
    }
  });

  test('extended, random, wrong-type, wrong-version, wrong-scheme and wrong-curve objects are refused clearly', () => {
    const pk = abe.encodePublicKey(authority.publicKey);
    assert.throws(() => abe.decodePublicKey(Buffer.concat([pk, Buffer.from([0])])), /1 unexpected trailing bytes/);
    assert.throws(() => abe.decodePublicKey(abe.encodeMasterKey(authority.masterKey)), /expected an abe public key, got an abe master key/);
    assert.throws(
      () => abe.decodePublicKey(reseal(pk, undefined, { 4: 2 })),
      (e: unknown) => e instanceof UnsupportedError && /format version 2/.test(e.message),
    );
    assert.throws(
      () => abe.decodePublicKey(reseal(pk, undefined, { 6: 9 })),
      (e: unknown) => e instanceof UnsupportedError && /scheme id 9/.test(e.message),
    );
    assert.throws(
      () => abe.decodePublicKey(reseal(pk, undefined, { 7: 2 })),
      (e: unknown) => e instanceof UnsupportedError && /only BLS12-381/.test(e.message),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        assert.throws(() => abe.decodeUserKey(bytes), MedShareError);
        assert.throws(() => abe.openHeader(bytes), MedShareError);
      }),
    );
  });

  test('a non-subgroup point behind a valid checksum is refused (invalid-curve / small-subgroup injection)', () => {
    const key = abe.keygen(authority.masterKey, 'role:emergency');
    const ct = abe.encrypt(authority.publicKey, 'role:emergency', utf8('x'));
    const rogue = nonSubgroupG1();
    const forged = reseal(ct, (body) => patchFirstRow(body, rogue));
    assert.throws(
      () => abe.decrypt(key, forged),
      (e: unknown) => e instanceof MalformedInputError && /ciphertext rows: not in the prime-order subgroup/.test(e.message),
    );
    // An off-curve point is refused while decoding.
    const offCurve = rogue.slice();
    offCurve[95]! ^= 1;
    assert.throws(() => abe.openHeader(reseal(ct, (body) => patchFirstRow(body, offCurve))), /row 0: not a point on the curve/);
  });

  test('absurd counts behind a valid checksum are refused before any allocation', () => {
    const uk = abe.encodeUserKey(abe.keygen(authority.masterKey, 'role:doctor'));
    const huge = reseal(uk, (body) => {
      const copy = body.slice();
      // The component count follows authority id, attribute text, K (u16), 3 G2 and 3 G1 elements.
      const textLength = new DataView(copy.buffer).getUint32(16);
      new DataView(copy.buffer).setUint32(16 + 4 + textLength + 2 + 3 * 96 + 3 * 48, 0xffffffff);
      return copy;
    });
    assert.throws(() => abe.decodeUserKey(huge), /count 4294967295 exceeds the limit of 8/);
  });

  test('oversized policies are refused with the configured bound', () => {
    const big = Array.from({ length: 40 }, (_, i) => `level >= ${i + 1}`).join(' or ');
    assert.throws(
      () => abe.encrypt(authority.publicKey, big, utf8('x')),
      (e: unknown) => e instanceof LimitExceededError && /limit is 1024/.test(e.message),
    );
    assert.throws(() => abe.encrypt(authority.publicKey, 'role:', utf8('x')), PolicySyntaxError);
  });
});

/** Replaces the first ciphertext row's first G1 element (uncompressed; after id, policy text, ct0 and count). */
function patchFirstRow(body: Uint8Array, point: Uint8Array): Uint8Array {
  const copy = body.slice();
  const textLength = new DataView(copy.buffer).getUint32(16);
  copy.set(point, 16 + 4 + textLength + 3 * 192 + 4);
  return copy;
}

describe('CP-ABE tamper detection', () => {
  test('flipping any byte of a ciphertext is detected: IntegrityError (or MalformedInputError for the magic)', () => {
    const key = abe.keygen(authority.masterKey, 'role:emergency');
    const ct = abe.encrypt(authority.publicKey, 'role:doctor or role:emergency', randomBytes(40));
    for (let i = 0; i < ct.length; i++) {
      const bad = ct.slice();
      bad[i]! ^= 1 << (i % 8);
      assert.throws(
        () => abe.decrypt(key, bad),
        (e: unknown) => (i < 4 ? e instanceof MalformedInputError : e instanceof IntegrityError),
        `byte ${i}`,
      );
    }
  });

  test('a rewritten header with a recomputed checksum is still caught by the payload AEAD', () => {
    const key = abe.keygen(authority.masterKey, 'role:emergency');
    const ct = abe.encrypt(authority.publicKey, 'role:emergency or role:nurse', utf8('secret'));
    // Swap the order of the two policy operands: same rows, same satisfiability, different header.
    const swapped = reseal(ct, (body) => {
      const text = Buffer.from(body);
      const at = text.indexOf('role:emergency or role:nurse');
      text.write('role:nurse or role:emergency'.padEnd(28), at);
      return new Uint8Array(text);
    });
    assert.throws(() => abe.decrypt(key, swapped), IntegrityError);
  });
});

describe('CP-ABE occurrence bound K (one-use copies)', () => {
  test('a policy naming one attribute more than K times is refused with LIMIT, naming the attribute', () => {
    const nine = Array.from({ length: 9 }, (_, i) => `(role:doctor and dept:d${i})`).join(' or ');
    assert.throws(
      () => abe.encrypt(authority.publicKey, nine, utf8('x')),
      (e: unknown) => e instanceof LimitExceededError && /names 'role:doctor' 9 times; at most 8/.test(e.message),
    );
    const comparisons = Array.from({ length: 9 }, (_, i) => `level >= ${i + 2}`).join(' or ');
    assert.throws(
      () => abe.compilePolicy(comparisons),
      (e: unknown) => e instanceof LimitExceededError && /bit \d+ of 'level' \(from its comparisons\) 9 times/.test(e.message),
    );
    // Eight uses are within the default bound and decrypt with a default key.
    const eight = Array.from({ length: 8 }, (_, i) => `(role:doctor and dept:d${i})`).join(' or ');
    assert.deepEqual(abe.decrypt(abe.keygen(authority.masterKey, 'role:doctor, dept:d7'), abe.encrypt(authority.publicKey, eight, utf8('ok'))), utf8('ok'));
    assert.throws(() => abe.keygen(authority.masterKey, 'role:doctor', { maxOccurrences: 0 }), LimitExceededError);
    assert.throws(() => abe.keygen(authority.masterKey, 'role:doctor', { maxOccurrences: 65 }), LimitExceededError);
  });

  test('a key with fewer copies than a satisfied policy needs is refused, saying so; a larger bound is configurable', () => {
    const policy = '(role:doctor and dept:a) or (role:doctor and dept:b) or (role:doctor and dept:c)';
    const ct = abe.encrypt(authority.publicKey, policy, utf8('ok'));
    const small = abe.keygen(authority.masterKey, 'role:doctor, dept:c', { maxOccurrences: 2 });
    assert.throws(
      () => abe.decrypt(small, ct),
      (e: unknown) => e instanceof AccessDeniedError && /names an attribute 3 times but this key carries 2 copies/.test(e.message),
    );
    // Its first two copies still serve the rows they label.
    assert.deepEqual(abe.decrypt(abe.keygen(authority.masterKey, 'role:doctor, dept:b', { maxOccurrences: 2 }), ct), utf8('ok'));
    const limits = { ...DEFAULT_POLICY_LIMITS, maxOccurrences: 10 };
    const ten = Array.from({ length: 10 }, (_, i) => `(role:doctor and dept:d${i})`).join(' or ');
    const wide = abe.keygen(authority.masterKey, 'role:doctor, dept:d9', { maxOccurrences: 10 });
    const decoded = abe.decodeUserKey(abe.encodeUserKey(wide));
    assert.equal(decoded.maxOccurrences, 10);
    const tenCt = abe.encrypt(authority.publicKey, ten, utf8('ten'), limits);
    assert.deepEqual(abe.decapsulate(decoded, abe.openHeader(tenCt, limits)).isEqual(abe.decapsulate(wide, abe.openHeader(tenCt, limits))), true);
  });

  test('attribute encodings refuse fields over 65,535 bytes instead of wrapping their u16 length', () => {
    const long = 'x'.repeat(65_536);
    assert.throws(
      () => attributeBytes({ kind: 'string', name: 'role', value: long }),
      (e: unknown) => e instanceof LimitExceededError && /65536 bytes exceeds the limit of 65535/.test(e.message),
    );
    assert.throws(() => attributeBytes({ kind: 'bit', name: long, bit: 0, set: true }), LimitExceededError);
    assert.equal(attributeBytes({ kind: 'string', name: 'role', value: 'x'.repeat(65_535) }).length, 1 + 2 + 4 + 2 + 65_535);
  });

  test('text fields keep a leading U+FEFF: what is read is exactly what was written', () => {
    const reader = new ByteReader(new ByteWriter().text('\uFEFFrole:doctor').finish(), 'test');
    assert.equal(reader.text(100), '\uFEFFrole:doctor');
    // Before, the patient id came back without it, so the key re-encoded to other bytes than it was read from.
    const patient = pre.generatePatientKey('\uFEFFpatient');
    assert.equal(pre.decodePatientKey(pre.encodePatientKey(patient)).patientId, '\uFEFFpatient');
  });
});
