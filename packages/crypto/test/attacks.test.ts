/**
 * One regression test per known attack on CP-ABE constructions and their encodings, named after it.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as abe from '../src/abe.ts';
import * as c from '../src/curve/bls12381.ts';
import { AccessDeniedError, IntegrityError, PolicySyntaxError } from '../src/errors.ts';
import * as fame from '../src/fame/scheme.ts';
import { attributeBytes, type Attribute } from '../src/policy/ast.ts';
import { integerBits } from '../src/policy/numeric.ts';
import { keyLabels, rowLabels } from '../src/policy/occurrence.ts';
import { utf8 } from './helpers.ts';

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
    const one = abe.keygen(authority.masterKey, 'level=1');
    const two = abe.keygen(authority.masterKey, 'level=2');
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
      for (const [l, t] of [[0, 0], [1, 1], [2, 1]] as const) {
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
