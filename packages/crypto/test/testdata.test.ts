/**
 * Pinned vectors: keys and a ciphertext produced by an earlier build (testdata/generate.ts). Decoding them,
 * re-encoding them byte for byte and decrypting the ciphertext proves the formats have not drifted.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as abe from '../src/abe.ts';
import * as pre from '../src/pre.ts';
import { armor, dearmor } from '../src/encoding/armor.ts';
import { ObjectType } from '../src/encoding/envelope.ts';
import { UnsupportedError } from '../src/errors.ts';

const read = (name: string) => new Uint8Array(readFileSync(new URL(`../testdata/${name}`, import.meta.url)));

before(() => abe.init());

test('pinned keys decode and re-encode to the same bytes and the same armored text', () => {
  const cases = [
    ['abe-public.key', ObjectType.AbePublicKey, abe.decodePublicKey, abe.encodePublicKey],
    ['abe-master.key', ObjectType.AbeMasterKey, abe.decodeMasterKey, abe.encodeMasterKey],
    ['abe-user.key', ObjectType.AbeUserKey, abe.decodeUserKey, abe.encodeUserKey],
  ] as const;
  for (const [file, type, decode, encode] of cases) {
    const text = read(file);
    const bytes = dearmor(text, type);
    const again = (encode as (k: unknown) => Uint8Array)((decode as (b: Uint8Array) => unknown)(bytes));
    assert.deepEqual(again, bytes, file);
    assert.equal(armor(type, again), new TextDecoder().decode(text), file);
  }
});

test('the pinned ciphertext decrypts with the pinned user key to the pinned plaintext', () => {
  const userKey = abe.decodeUserKey(dearmor(read('abe-user.key'), ObjectType.AbeUserKey));
  assert.deepEqual(abe.decrypt(userKey, read('abe-ciphertext.bin')), read('abe-plaintext.json'));
  assert.equal(abe.formatAttributes(userKey.attributes), 'role:doctor, dept:cardiology, level=3');
  const header = abe.openHeader(read('abe-ciphertext.bin'));
  assert.equal(header.policy, '(role:doctor and dept:cardiology and level >= 2) or (role:doctor and level >= 3) or role:emergency');
  assert.ok(
    header.program.rows.some((row) => row.occurrence === 2),
    'the pinned policy repeats attributes',
  );
});

test('a key issued today by the pinned master key decrypts the pinned ciphertext', () => {
  const masterKey = abe.decodeMasterKey(dearmor(read('abe-master.key'), ObjectType.AbeMasterKey));
  const fresh = abe.keygen(masterKey, 'role:emergency');
  assert.deepEqual(abe.decrypt(fresh, read('abe-ciphertext.bin')), read('abe-plaintext.json'));
});

test('armor of one type is refused where another is expected, by name', () => {
  assert.throws(() => dearmor(read('abe-public.key'), ObjectType.AbeUserKey), /expected a medshare abe user key, got a medshare abe public key/);
});

test('pinned PRE objects: keys re-encode identically, the record and its conversion decrypt', () => {
  const patient = pre.decodePatientKey(dearmor(read('patient.key'), ObjectType.PatientSecretKey));
  assert.deepEqual(pre.encodePatientKey(patient), dearmor(read('patient.key'), ObjectType.PatientSecretKey));
  const bundle = pre.decodePublicKeys(dearmor(read('patient.pub'), ObjectType.PatientPublicKeys));
  assert.equal(bundle.patientId, 'patient-testvector');
  const rkBytes = dearmor(read('lab.rk'), ObjectType.ReEncryptionKey);
  const rk = pre.decodeReEncryptionKey(rkBytes);
  assert.deepEqual(pre.encodeReEncryptionKey(rk), rkBytes);
  assert.deepEqual(pre.decrypt(patient, read('pre-record.ct')), read('abe-plaintext.json'));
  const userKey = abe.decodeUserKey(dearmor(read('abe-user.key'), ObjectType.AbeUserKey));
  assert.deepEqual(pre.createReader(userKey).decrypt(read('pre-record.abe.ct')), read('abe-plaintext.json'));
  // Converting the pinned record today gives the pinned conversion byte for byte, with or without precomputation.
  assert.deepEqual(pre.convert(rk, read('pre-record.ct')), read('pre-record.abe.ct'));
  const precomputed = pre.precompute(rk);
  assert.deepEqual(pre.convert(precomputed, read('pre-record.ct')), read('pre-record.abe.ct'));
  pre.release(precomputed);
});

test('pinned emergency capsule and grant: they re-encode identically and convert the pinned record for the pinned reader', () => {
  const capsuleBytes = dearmor(read('emergency.capsule'), ObjectType.EmergencyCapsule);
  const capsule = pre.decodeEmergencyCapsule(capsuleBytes);
  assert.deepEqual(pre.encodeEmergencyCapsule(capsule), capsuleBytes);
  assert.equal(capsule.policy, '(role:doctor and dept:cardiology) or role:emergency');
  const grant = dearmor(read('emergency-record.grant'), ObjectType.EmergencyGrant);
  assert.equal(pre.decodeEmergencyGrant(grant).recordId, 'record-2');
  const record = read('emergency-record.ct');
  const patient = pre.decodePatientKey(dearmor(read('patient.key'), ObjectType.PatientSecretKey));
  assert.deepEqual(pre.decrypt(patient, record), read('abe-plaintext.json'));
  const userKey = abe.decodeUserKey(dearmor(read('abe-user.key'), ObjectType.AbeUserKey));
  assert.deepEqual(pre.createReader(userKey).decrypt(pre.convert(pre.emergencyGrantKey(capsule, grant), record)), read('abe-plaintext.json'));
});

test('format-1 vectors (before the one-use transformation) are refused with UNSUPPORTED and a migration hint', () => {
  const v1 = (name: string) => read(`v1/${name}`);
  const refused = (decode: () => unknown, hint: RegExp) =>
    assert.throws(decode, (e: unknown) => e instanceof UnsupportedError && /format version 1 is not supported/.test(e.message) && hint.test(e.message));
  refused(() => abe.decodeUserKey(dearmor(v1('abe-user.key'), ObjectType.AbeUserKey)), /issue the key again/);
  refused(() => abe.openHeader(v1('abe-ciphertext.bin')), /encrypt the plaintext again/);
  refused(() => pre.decodeReEncryptionKey(dearmor(v1('lab.rk'), ObjectType.ReEncryptionKey)), /delegates again/);
  refused(() => pre.openConvertedHeader(v1('pre-record.abe.ct')), /convert the stored record ciphertext again/);
  refused(() => pre.decodeEmergencyCapsule(dearmor(v1('emergency.capsule'), ObjectType.EmergencyCapsule)), /new emergency capsule/);
  refused(() => pre.decodeEmergencyGrant(dearmor(v1('emergency-record.grant'), ObjectType.EmergencyGrant)), /new emergency capsule/);
  // What did not change still reads: the v1 record ciphertext decrypts for its patient, and the TA's keys are the same.
  const patient = pre.decodePatientKey(dearmor(read('patient.key'), ObjectType.PatientSecretKey));
  assert.deepEqual(pre.decrypt(patient, v1('emergency-record.ct')), read('abe-plaintext.json'));
});
