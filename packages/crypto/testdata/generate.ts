/**
 * Writes the pinned test vectors of this folder that are missing; `--force` regenerates all of them (only when
 * a format version changes on purpose). The test `testdata.test.ts` fails on any unintended change to the
 * encodings, because these bytes were produced by an earlier build. New vectors are made from the pinned keys
 * already here, so they stay consistent with them:
 *   node --import tsx packages/crypto/testdata/generate.ts [--force]
 * `v1/` keeps the format-1 objects (written by the build before the one-use transformation, never regenerated):
 * testdata.test.ts checks that they are refused with a migration hint.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as abe from '../src/abe.ts';
import * as pre from '../src/pre.ts';
import { armor, dearmor } from '../src/encoding/armor.ts';
import { ObjectType } from '../src/encoding/envelope.ts';

await abe.init();
const dir = new URL('.', import.meta.url);
const force = process.argv.includes('--force');
const path = (name: string) => new URL(name, dir);
const pinned = (name: string) => !force && existsSync(path(name));
const readPinned = (name: string, type: ObjectType) => dearmor(new Uint8Array(readFileSync(path(name))), type);
const write = (name: string, bytes: Uint8Array | string) => {
  if (!pinned(name)) writeFileSync(path(name), bytes);
};
const POLICY = '(role:doctor and dept:cardiology) or role:emergency';
/** Repeats attributes (role:doctor twice, and the bits of `level` in both comparisons): pins the occurrence labels. */
const ABE_POLICY = '(role:doctor and dept:cardiology and level >= 2) or (role:doctor and level >= 3) or role:emergency';

// CP-ABE: an authority, a cardiologist's key and a ciphertext.
let publicKey: abe.PublicKey;
let masterKey: abe.MasterKey;
if (pinned('abe-public.key')) {
  publicKey = abe.decodePublicKey(readPinned('abe-public.key', ObjectType.AbePublicKey));
  masterKey = abe.decodeMasterKey(readPinned('abe-master.key', ObjectType.AbeMasterKey));
} else {
  ({ publicKey, masterKey } = abe.setup());
  writeFileSync(path('abe-public.key'), armor(ObjectType.AbePublicKey, abe.encodePublicKey(publicKey)));
  writeFileSync(path('abe-master.key'), armor(ObjectType.AbeMasterKey, abe.encodeMasterKey(masterKey)));
  writeFileSync(path('abe-plaintext.json'), new TextEncoder().encode('{"resourceType":"Observation","status":"final"}'));
}
const plaintext = new Uint8Array(readFileSync(path('abe-plaintext.json')));
write('abe-user.key', armor(ObjectType.AbeUserKey, abe.encodeUserKey(abe.keygen(masterKey, 'role:doctor, dept:cardiology, level=3'))));
write('abe-ciphertext.bin', abe.encrypt(publicKey, ABE_POLICY, plaintext));

// Proxy re-encryption: a patient key, its signed bundle, a lab record, a delegation, the converted record.
const patient = pinned('patient.key')
  ? pre.decodePatientKey(readPinned('patient.key', ObjectType.PatientSecretKey))
  : pre.generatePatientKey('patient-testvector');
write('patient.key', armor(ObjectType.PatientSecretKey, pre.encodePatientKey(patient)));
write('patient.pub', armor(ObjectType.PatientPublicKeys, pre.encodePublicKeys(patient)));
const record = pinned('pre-record.ct')
  ? new Uint8Array(readFileSync(path('pre-record.ct')))
  : pre.encrypt(pre.publicKeys(patient), 'lab', 'record-1', plaintext);
write('pre-record.ct', record);
if (!pinned('lab.rk')) {
  const rk = pre.delegate(patient, 'lab', publicKey, POLICY);
  writeFileSync(path('lab.rk'), armor(ObjectType.ReEncryptionKey, pre.encodeReEncryptionKey(rk)));
  writeFileSync(path('pre-record.abe.ct'), pre.convert(rk, record));
}

// Platform emergency access: a capsule, a record encrypted with its grant.
if (!pinned('emergency.capsule')) {
  const capsule = pre.emergencyCapsule(publicKey, POLICY);
  const { ciphertext, emergencyGrant } = pre.encryptWithEmergencyGrant(pre.publicKeys(patient), 'lab', 'record-2', plaintext, capsule);
  writeFileSync(path('emergency.capsule'), armor(ObjectType.EmergencyCapsule, pre.encodeEmergencyCapsule(capsule)));
  writeFileSync(path('emergency-record.grant'), armor(ObjectType.EmergencyGrant, emergencyGrant!));
  writeFileSync(path('emergency-record.ct'), ciphertext);
}
