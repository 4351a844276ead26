/**
 * One regression test per known attack on CP-ABE constructions and their encodings, named after it.
 */
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as abe from '../src/abe.ts';
import * as pre from '../src/pre.ts';
import { ObjectType, SchemeId, sealEnvelope } from '../src/encoding/envelope.ts';
import { CHUNK_BYTES, SEALED_CHUNK_BYTES } from '../src/hybrid/stream.ts';
import * as c from '../src/curve/bls12381.ts';
import { AccessDeniedError, IntegrityError, MalformedInputError, MedShareError, PolicySyntaxError } from '../src/errors.ts';
import * as fame from '../src/fame/scheme.ts';
import { attributeBytes, type Attribute } from '../src/policy/ast.ts';
import { integerBits } from '../src/policy/numeric.ts';
import { keyLabels, rowLabels } from '../src/policy/occurrence.ts';
import { concat, reseal, utf8 } from './helpers.ts';

let authority: ReturnType<typeof abe.setup>;
before(async () => {
  await abe.init();
  authority = abe.setup();
});

/** The KEM key a forged key recovers, compared with the real one: pooling must not reproduce it. */
function pooledKeyRecovers(policy: string, forged: fame.FameUserKey): boolean {
  const program = abe.compilePolicy(policy);
  const labels = rowLabels(program);
  const { key, encapsulation } = fame.encapsulate(authority.publicKey.fame, program, labels);
  try {
    return fame.decapsulate(forged, program, labels, encapsulation).isEqual(key);
  } catch (e) {
    if (e instanceof AccessDeniedError) return false;
    throw e;
  }
}

/** The components of `key` for every copy of `attribute`. */
function copiesOf(key: abe.UserKey, attribute: Attribute): fame.FameKeyComponent[] {
  const wanted = new Set(keyLabels([attribute], key.maxOccurrences).map(fame.labelKey));
  const copies = key.fame.components.filter((k) => wanted.has(fame.labelKey(k.label)));
  assert.equal(copies.length, key.maxOccurrences);
  return copies;
}

describe('collusion: users cannot pool key components', () => {
  test('collusion-pooling: a doctor in dermatology and a nurse in cardiology cannot read "role:doctor and dept:cardiology"', () => {
    const policy = 'role:doctor and dept:cardiology';
    const a = abe.keygen(authority.masterKey, 'role:doctor, dept:dermatology');
    const b = abe.keygen(authority.masterKey, 'role:nurse, dept:cardiology');
    assert.throws(() => abe.decrypt(a, abe.encrypt(authority.publicKey, policy, utf8('x'))), AccessDeniedError);
    assert.throws(() => abe.decrypt(b, abe.encrypt(authority.publicKey, policy, utf8('x'))), AccessDeniedError);
    const doctor = copiesOf(a, { kind: 'string', name: 'role', value: 'doctor' });
    const cardiology = copiesOf(b, { kind: 'string', name: 'dept', value: 'cardiology' });
    // Every way to assemble a key from the two users' parts: either user's sk0/sk' with both components.
    for (const base of [a.fame, b.fame]) {
      const forged: fame.FameUserKey = { k0: base.k0, kPrime: base.kPrime, components: [...doctor, ...cardiology] };
      assert.equal(pooledKeyRecovers(policy, forged), false);
    }
    // Mixing sk0 of one user with sk' of the other does not help either.
    const mixed: fame.FameUserKey = { k0: a.fame.k0, kPrime: b.fame.kPrime, components: [...doctor, ...cardiology] };
    assert.equal(pooledKeyRecovers(policy, mixed), false);
  });

  test('collusion-pooling: the full hybrid decryption of a pooled key fails authentication', () => {
    const a = abe.keygen(authority.masterKey, 'role:doctor');
    const b = abe.keygen(authority.masterKey, 'dept:cardiology');
    const pooled: abe.UserKey = {
      authorityId: a.authorityId,
      attributes: [...a.attributes, ...b.attributes],
      maxOccurrences: a.maxOccurrences,
      fame: { k0: a.fame.k0, kPrime: a.fame.kPrime, components: [...a.fame.components, ...b.fame.components] },
    };
    const ct = abe.encrypt(authority.publicKey, 'role:doctor and dept:cardiology', utf8('lab result'));
    assert.throws(() => abe.decrypt(pooled, ct), IntegrityError);
  });

  test('bsw07-integer-bit-mixing: users with level=1 and level=2 cannot pool bits into level == 3', () => {
    // One key may not hold two values of an integer attribute (its bits would mix).
    assert.throws(() => abe.keygen(authority.masterKey, 'level=1, level=2'), PolicySyntaxError);
    // 'level == 3' names each bit once: one copy per attribute is all the pooled key could use.
    const one = abe.keygen(authority.masterKey, 'level=1', { maxOccurrences: 1 });
    const two = abe.keygen(authority.masterKey, 'level=2', { maxOccurrences: 1 });
    // Bits 0 and 1 set come from `one` (bit 0) and `two` (bit 1); the rest are 0 in both.
    const components = integerBits('level', 3).flatMap((bit) => copiesOf(bit.bit === 0 ? one : two, bit));
    for (const base of [one.fame, two.fame]) {
      assert.equal(pooledKeyRecovers('level == 3', { k0: base.k0, kPrime: base.kPrime, components }), false);
    }
  });
});

describe('encoding attacks', () => {
  test('charm-ac17-hash-concatenation: attribute and column oracle inputs can never coincide', () => {
    // Charm's ac17 hashes attr ‖ str(l) ‖ str(t) and '0' ‖ str(j) ‖ str(l) ‖ str(t); the attribute "01" with
    // l = 1, t = 1 hashes "0111", which is also column 1's input, letting a key component stand in for sk'.
    // MedShare tags the kind and length-prefixes every field; check no attribute encoding is a column one.
    const tricky: Attribute[] = [
      { kind: 'string', name: '0', value: '1' },
      { kind: 'string', name: 'x', value: '\u0002' },
      { kind: 'bit', name: 'a', bit: 0, set: true },
    ];
    const column0 = new Uint8Array(4);
    for (const a of tricky) {
      for (const [l, t] of [
        [0, 0],
        [1, 1],
        [2, 1],
      ] as const) {
        const attributeInput = fame.oracleMessage('attribute', l, t, attributeBytes(a));
        assert.notDeepEqual(attributeInput, fame.oracleMessage('column', l, t, column0));
        assert.equal(attributeInput[0], 0x01);
      }
    }
    // Length prefixes make the attribute encoding injective: name/value boundaries cannot shift.
    assert.notDeepEqual(attributeBytes({ kind: 'string', name: 'ab', value: 'c' }), attributeBytes({ kind: 'string', name: 'a', value: 'bc' }));
  });

  test('cross-type-confusion: an integer bit and a string attribute with the same text are different attributes', () => {
    const ct = abe.encrypt(authority.publicKey, 'level >= 1', utf8('x'));
    const stringy = abe.keygen(authority.masterKey, 'level:"1", level:"0"');
    assert.throws(() => abe.decrypt(stringy, ct), AccessDeniedError);
  });

  test('policy-substitution: a weaker policy spliced into a header (checksum recomputed) does not decrypt', () => {
    const ct = abe.encrypt(authority.publicKey, 'role:doctor and dept:cardiology', utf8('x'));
    const header = abe.openHeader(ct);
    // The attacker keeps the FAME rows but claims the policy "role:doctor or dept:cardiology" (same rows).
    const weak = abe.compilePolicy('role:doctor or dept:cardiology');
    const forged: abe.CiphertextHeader = { ...header, policy: 'role:doctor or dept:cardiology', program: weak };
    const doctor = abe.keygen(authority.masterKey, 'role:doctor');
    assert.ok(!abe.decapsulate(doctor, forged).isEqual(abe.decapsulate(abe.keygen(authority.masterKey, 'role:doctor, dept:cardiology'), header)));
  });

  test('identity-point-injection: the identity in G1/G2 is refused wherever a point is decoded', () => {
    const infinity = new Uint8Array(48);
    infinity[0] = 0xc0;
    assert.throws(() => c.g1FromBytes(infinity), /identity/);
    const infinity2 = new Uint8Array(96);
    infinity2[0] = 0xc0;
    assert.throws(() => c.g2FromBytes(infinity2), /identity/);
  });
});

describe('STREAM payload attacks', () => {
  const payloadOf = (ct: Uint8Array) => ct.subarray(abe.openHeader(ct).bytes.length);
  const headerOf = (ct: Uint8Array) => ct.subarray(0, abe.openHeader(ct).bytes.length);
  /** The sealed chunks of a payload: full ones of SEALED_CHUNK_BYTES, then the (shorter) last. */
  const chunksOf = (payload: Uint8Array) => {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < payload.length; i += SEALED_CHUNK_BYTES) chunks.push(payload.subarray(i, i + SEALED_CHUNK_BYTES));
    return chunks;
  };
  const refused = (key: abe.UserKey, ct: Uint8Array, what: string) => assert.throws(() => abe.decrypt(key, ct), IntegrityError, what);

  test("stream-chunk-reorder-drop-duplicate-extend: every rearrangement of a payload's chunks fails authentication", () => {
    const key = abe.keygen(authority.masterKey, 'role:emergency');
    const ct = abe.encrypt(authority.publicKey, 'role:emergency', randomBytes(3 * CHUNK_BYTES + 100));
    const header = headerOf(ct);
    const [c0, c1, c2, last] = chunksOf(payloadOf(ct));
    assert.equal(last!.length, 100 + 16);
    const variants: Record<string, Uint8Array[]> = {
      'chunks 0 and 1 swapped': [c1!, c0!, c2!, last!],
      'chunk 1 dropped': [c0!, c2!, last!],
      'last chunk dropped (truncation at a chunk boundary)': [c0!, c1!, c2!],
      'chunk 0 duplicated': [c0!, c0!, c1!, c2!, last!],
      'last chunk duplicated (extension)': [c0!, c1!, c2!, last!, last!],
      'a full chunk moved to the end': [c1!, c2!, last!, c0!],
    };
    for (const [what, chunks] of Object.entries(variants)) refused(key, concat(header, ...chunks), what);
    assert.equal(abe.decrypt(key, concat(header, c0!, c1!, c2!, last!)).length, 3 * CHUNK_BYTES + 100);
  });

  test('stream-cross-ciphertext-splice: chunks or whole payloads moved between ciphertexts of one policy fail authentication', () => {
    const key = abe.keygen(authority.masterKey, 'role:emergency');
    const a = abe.encrypt(authority.publicKey, 'role:emergency', randomBytes(CHUNK_BYTES + 10));
    const b = abe.encrypt(authority.publicKey, 'role:emergency', randomBytes(CHUNK_BYTES + 10));
    const [a0, aLast] = chunksOf(payloadOf(a));
    const [b0, bLast] = chunksOf(payloadOf(b));
    refused(key, concat(headerOf(a), b0!, aLast!), 'first chunk from another ciphertext');
    refused(key, concat(headerOf(a), a0!, bLast!), 'last chunk from another ciphertext');
    refused(key, concat(headerOf(a), payloadOf(b)), "another ciphertext's whole payload");
  });

  test("stream-cross-record-splice: a converted record with another record's payload fails authentication", () => {
    const patient = pre.generatePatientKey('patient-splice');
    const bundle = pre.publicKeys(patient);
    const rk = pre.delegate(patient, 'lab', authority.publicKey, 'role:emergency');
    const reader = pre.createReader(abe.keygen(authority.masterKey, 'role:emergency'));
    const one = pre.convert(rk, pre.encrypt(bundle, 'lab', 'r1', randomBytes(CHUNK_BYTES + 5)));
    const two = pre.convert(rk, pre.encrypt(bundle, 'lab', 'r2', randomBytes(CHUNK_BYTES + 5)));
    const split = (ct: Uint8Array) => pre.openConvertedHeader(ct).bytes.length;
    assert.throws(() => reader.decrypt(concat(one.subarray(0, split(one)), two.subarray(split(two)))), IntegrityError);
  });
});

describe('resealed tampering (the checksum recomputed, so the cryptographic binding is what is tested)', () => {
  test('resealed-header-bit-flips: a flipped bit anywhere in an ABE header body never decrypts; each is a typed error', () => {
    const key = abe.keygen(authority.masterKey, 'role:emergency');
    const plaintext = utf8('lab result');
    const ct = abe.encrypt(authority.publicKey, 'role:doctor or role:emergency', plaintext);
    const bodyLength = abe.openHeader(ct).bytes.length - 12 - 32;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: bodyLength - 1 }), fc.integer({ min: 0, max: 7 }), (at, bit) => {
        const forged = reseal(ct, (body) => {
          const copy = body.slice();
          copy[at]! ^= 1 << bit;
          return copy;
        });
        assert.throws(() => abe.decrypt(key, forged), MedShareError, `byte ${at} bit ${bit}`);
      }),
      { numRuns: 60 },
    );
  });

  test('resealed-delegation-swap: a converted header whose delegation id is changed (checksum recomputed) fails the AEAD', () => {
    const patient = pre.generatePatientKey('patient-swap');
    const rk = pre.delegate(patient, 'lab', authority.publicKey, 'role:emergency');
    const converted = pre.convert(rk, pre.encrypt(pre.publicKeys(patient), 'lab', 'r1', utf8('x')));
    const reader = pre.createReader(abe.keygen(authority.masterKey, 'role:emergency'));
    assert.deepEqual(reader.decrypt(converted), utf8('x'));
    const header = pre.openConvertedHeader(converted);
    // The delegation id follows the core and c2'; rewrite it to another id (as a cloud mixing delegations would).
    const swapped = reseal(converted, (body) => {
      const copy = body.slice();
      const at = header.core.bytes.length + c.GT_BYTES;
      copy.set(randomBytes(16), at);
      return copy;
    });
    assert.notDeepEqual(pre.openConvertedHeader(swapped).delegationId, header.delegationId);
    assert.throws(() => pre.createReader(abe.keygen(authority.masterKey, 'role:emergency')).decrypt(swapped), IntegrityError);
  });

  test('random-body-past-the-magic: random bodies behind a valid prefix and checksum are typed errors for every decoder', () => {
    const samples: Array<[ObjectType, SchemeId, (b: Uint8Array) => unknown]> = [
      [ObjectType.AbeCiphertext, SchemeId.Fame, (b) => abe.openHeader(b)],
      [ObjectType.AbeUserKey, SchemeId.Fame, (b) => abe.decodeUserKey(b)],
      [ObjectType.AbePublicKey, SchemeId.Fame, (b) => abe.decodePublicKey(b)],
      [ObjectType.ReEncryptionKey, SchemeId.PreToFame, (b) => pre.decodeReEncryptionKey(b)],
      [ObjectType.ConvertedCiphertext, SchemeId.PreToFame, (b) => pre.openConvertedHeader(b)],
      [ObjectType.EmergencyCapsule, SchemeId.PreToFame, (b) => pre.decodeEmergencyCapsule(b)],
      [ObjectType.PreCiphertext, SchemeId.PreToFame, (b) => pre.openRecordHeader(b)],
    ];
    fc.assert(
      fc.property(fc.constantFrom(...samples), fc.uint8Array({ maxLength: 600 }), ([type, scheme, decode], body) => {
        assert.throws(() => decode(sealEnvelope(type, scheme, body)), MedShareError);
      }),
      { numRuns: 200 },
    );
  });

  test('truncation-past-the-magic: every prefix of a ciphertext longer than the magic is a typed error', () => {
    const key = abe.keygen(authority.masterKey, 'role:emergency');
    const ct = abe.encrypt(authority.publicKey, 'role:emergency', randomBytes(CHUNK_BYTES + 50));
    fc.assert(
      fc.property(fc.integer({ min: 4, max: ct.length - 1 }), (n) => {
        assert.throws(
          () => abe.decrypt(key, ct.subarray(0, n)),
          (e: unknown) => e instanceof IntegrityError || e instanceof MalformedInputError,
          `length ${n}`,
        );
      }),
      { numRuns: 60 },
    );
  });
});
