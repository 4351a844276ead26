/**
 * Platform emergency grants (docs/crypto.md §10): the encrypting hospital grants each record to a capsule under
 * the platform's emergency policy; the cloud converts with capsule + grant; a reader whose key satisfies the
 * policy decrypts. Tested four ways: correctness on random inputs, refusal, tamper, hostile input.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as abe from '../src/abe.ts';
import * as pre from '../src/pre.ts';
import { AccessDeniedError, IntegrityError, MedShareError } from '../src/errors.ts';
import { attributeList, policyText, occurrencesNeeded } from './arbitraries.ts';
import { reseal, utf8 } from './helpers.ts';

const EMERGENCY = 'role:emergency';
let ta: ReturnType<typeof abe.setup>;
let patient: pre.PatientSecretKey;
let bundle: pre.PatientPublicKeys;
let medic: abe.UserKey;

before(async () => {
  await abe.init();
  ta = abe.setup();
  patient = pre.generatePatientKey('patient-er');
  bundle = pre.publicKeys(patient);
  medic = abe.keygen(ta.masterKey, 'role:emergency, hospital:riverside');
});

/** What the cloud does with what the hospital uploaded: decode the capsule, build the grant's key, convert. */
function cloudConvert(capsule: Uint8Array, grant: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return pre.convert(pre.emergencyGrantKey(pre.decodeEmergencyCapsule(capsule), grant), ciphertext);
}

function upload(capsule: pre.EmergencyCapsule, recordId: string, plaintext: Uint8Array, category = 'lab') {
  const { ciphertext, emergencyGrant } = pre.encryptWithEmergencyGrant(bundle, category, recordId, plaintext, capsule);
  return { ciphertext, grant: emergencyGrant!, capsule: pre.encodeEmergencyCapsule(capsule) };
}

describe('emergency grants: correctness', () => {
  test('on random payloads, categories, policies and keys: a key satisfying the policy reads, the patient still reads', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 40_000 }),
        fc.constantFrom(...pre.DEFAULT_CATEGORIES),
        policyText,
        attributeList,
        (plaintext, category, policy, attributes) => {
          const { ciphertext, grant, capsule } = upload(pre.emergencyCapsule(ta.publicKey, policy), `rec-${category}`, plaintext, category);
          assert.deepEqual(pre.decrypt(patient, ciphertext), plaintext);
          const reader = pre.createReader(abe.keygen(ta.masterKey, attributes, { maxOccurrences: occurrencesNeeded(policy) }));
          const converted = cloudConvert(capsule, grant, ciphertext);
          if (abe.satisfies(attributes, policy)) assert.deepEqual(reader.decrypt(converted), plaintext);
          else assert.throws(() => reader.decrypt(converted), AccessDeniedError);
        },
      ),
      { numRuns: 20 },
    );
  });

  test('one capsule serves every record of an upload; the reader opens it once', () => {
    const capsule = pre.emergencyCapsule(ta.publicKey, EMERGENCY);
    const reader = pre.createReader(medic);
    for (let i = 0; i < 4; i++) {
      const { ciphertext, grant, capsule: encoded } = upload(capsule, `r${i}`, utf8(`record ${i}`));
      assert.deepEqual(reader.decrypt(cloudConvert(encoded, grant, ciphertext)), utf8(`record ${i}`));
    }
    assert.equal(reader.cachedDelegations, 1);
  });

  test("a record with a grant is an ordinary record: the patient's own delegations still convert it", () => {
    const { ciphertext } = upload(pre.emergencyCapsule(ta.publicKey, EMERGENCY), 'r1', utf8('glucose 5.1'));
    const cardiologist = abe.keygen(ta.masterKey, 'role:doctor, dept:cardiology');
    const rk = pre.delegate(patient, 'lab', ta.publicKey, 'role:doctor and dept:cardiology');
    assert.deepEqual(pre.createReader(cardiologist).decrypt(pre.convert(rk, ciphertext)), utf8('glucose 5.1'));
  });

  test('capsules round-trip through their encoding; H(X) is not in it', () => {
    const capsule = pre.emergencyCapsule(ta.publicKey, '(role:emergency and level >= 2) or role:trauma');
    const encoded = pre.encodeEmergencyCapsule(capsule);
    const decoded = pre.decodeEmergencyCapsule(encoded);
    assert.equal(decoded.policy, '(role:emergency and level >= 2) or role:trauma');
    assert.deepEqual(decoded.delegationId, capsule.delegationId);
    assert.deepEqual(pre.encodeEmergencyCapsule(decoded), encoded);
    assert.equal(Buffer.from(encoded).includes(Buffer.from(capsule.hashOfX.serialize())), false);
  });
});

describe('emergency grants: refusal', () => {
  test('keys that do not satisfy the emergency policy are refused, and cannot pool attributes', () => {
    const capsule = pre.emergencyCapsule(ta.publicKey, 'role:emergency and hospital:riverside');
    const { ciphertext, grant, capsule: encoded } = upload(capsule, 'r1', utf8('troponin 0.9'));
    const converted = cloudConvert(encoded, grant, ciphertext);
    // Each holds half of the policy; FAME binds a key's attributes together, so neither key opens it.
    for (const attributes of ['role:emergency, hospital:st-marys', 'role:doctor, hospital:riverside', 'role:doctor, dept:cardiology']) {
      assert.throws(() => pre.createReader(abe.keygen(ta.masterKey, attributes)).decrypt(converted), AccessDeniedError, attributes);
    }
    assert.deepEqual(pre.createReader(medic).decrypt(converted), utf8('troponin 0.9'));
  });

  test('a grant converts its own record only, and only with its own capsule', () => {
    const capsule = pre.emergencyCapsule(ta.publicKey, EMERGENCY);
    const first = upload(capsule, 'r1', utf8('first'));
    const second = upload(capsule, 'r2', utf8('second'));
    assert.throws(() => cloudConvert(first.capsule, first.grant, second.ciphertext), /shares record 'r1' only/);
    const other = pre.encodeEmergencyCapsule(pre.emergencyCapsule(ta.publicKey, EMERGENCY));
    assert.throws(() => cloudConvert(other, first.grant, first.ciphertext), /made under another capsule/);
  });

  test("a grant made for one patient's key does not convert another patient's record of the same id", () => {
    const capsule = pre.emergencyCapsule(ta.publicKey, EMERGENCY);
    const mine = upload(capsule, 'r1', utf8('mine'));
    const someoneElse = pre.encrypt(pre.publicKeys(pre.generatePatientKey('patient-other')), 'lab', 'r1', utf8('theirs'));
    assert.throws(() => cloudConvert(mine.capsule, mine.grant, someoneElse), AccessDeniedError);
  });
});

describe('emergency grants: tamper and hostile input', () => {
  test('flipping any byte of a capsule or a grant is detected with a typed error', () => {
    const { ciphertext, grant, capsule } = upload(pre.emergencyCapsule(ta.publicKey, EMERGENCY), 'r1', utf8('x'));
    for (const [name, bytes] of [
      ['capsule', capsule],
      ['grant', grant],
    ] as const) {
      for (let i = 0; i < bytes.length; i++) {
        const flipped = bytes.slice();
        flipped[i]! ^= 0x01;
        const attempt = () =>
          pre.createReader(medic).decrypt(name === 'capsule' ? cloudConvert(flipped, grant, ciphertext) : cloudConvert(capsule, flipped, ciphertext));
        assert.throws(attempt, MedShareError, `${name} byte ${i}`);
      }
    }
  });

  test("a changed c2' behind a valid checksum fails the payload's authentication", () => {
    const { ciphertext, grant, capsule } = upload(pre.emergencyCapsule(ta.publicKey, EMERGENCY), 'r1', utf8('x'));
    const forged = reseal(grant, (body) => {
      const copy = body.slice();
      copy[copy.length - 1]! ^= 0x01;
      return copy;
    });
    assert.throws(() => pre.createReader(medic).decrypt(cloudConvert(capsule, forged, ciphertext)), IntegrityError);
  });

  test('truncated, random, wrong-type and oversized inputs are typed errors', () => {
    const { grant, capsule } = upload(pre.emergencyCapsule(ta.publicKey, EMERGENCY), 'r1', utf8('x'));
    for (let n = 0; n < capsule.length; n += 7) assert.throws(() => pre.decodeEmergencyCapsule(capsule.subarray(0, n)), MedShareError);
    for (let n = 0; n < grant.length; n += 7) assert.throws(() => pre.decodeEmergencyGrant(grant.subarray(0, n)), MedShareError);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), (bytes) => {
        assert.throws(() => pre.decodeEmergencyCapsule(bytes), MedShareError);
        assert.throws(() => pre.decodeEmergencyGrant(bytes), MedShareError);
      }),
    );
    assert.throws(() => pre.decodeEmergencyGrant(capsule), /expected an emergency grant, got an emergency capsule/);
    const rk = pre.encodeReEncryptionKey(pre.delegate(patient, 'lab', ta.publicKey, EMERGENCY));
    assert.throws(() => pre.decodeEmergencyCapsule(rk), /expected an emergency capsule, got a re-encryption key/);
    const padded = reseal(grant, (body) => new Uint8Array([...body, 0]));
    assert.throws(() => pre.decodeEmergencyGrant(padded), MedShareError);
  });
});
