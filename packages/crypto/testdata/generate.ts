/**
 * Regenerates the pinned test vectors in this folder. Run it ONLY when the format version changes on
 * purpose: `node --import tsx packages/crypto/testdata/generate.ts`. The test `testdata.test.ts` fails on
 * any unintended change to the encodings, because these bytes were produced by an earlier build.
 */
import { writeFileSync } from 'node:fs';
import * as abe from '../src/abe.ts';
import * as pre from '../src/pre.ts';
import { armor } from '../src/encoding/armor.ts';
import { ObjectType } from '../src/encoding/envelope.ts';

await abe.init();
const dir = new URL('.', import.meta.url);
const { publicKey, masterKey } = abe.setup();
const userKey = abe.keygen(masterKey, 'role:doctor, dept:cardiology, level=3');
const plaintext = new TextEncoder().encode('{"resourceType":"Observation","status":"final"}');
const ciphertext = abe.encrypt(publicKey, '(role:doctor and dept:cardiology and level >= 2) or role:emergency', plaintext);

writeFileSync(new URL('abe-public.key', dir), armor(ObjectType.AbePublicKey, abe.encodePublicKey(publicKey)));
writeFileSync(new URL('abe-master.key', dir), armor(ObjectType.AbeMasterKey, abe.encodeMasterKey(masterKey)));
writeFileSync(new URL('abe-user.key', dir), armor(ObjectType.AbeUserKey, abe.encodeUserKey(userKey)));
writeFileSync(new URL('abe-ciphertext.bin', dir), ciphertext);
writeFileSync(new URL('abe-plaintext.json', dir), plaintext);

// Proxy re-encryption: a patient key, its signed bundle, a lab record, a delegation, the converted record.
const patient = pre.generatePatientKey('patient-testvector');
const record = pre.encrypt(pre.publicKeys(patient), 'lab', 'record-1', plaintext);
const rk = pre.delegate(patient, 'lab', publicKey, '(role:doctor and dept:cardiology) or role:emergency');
writeFileSync(new URL('patient.key', dir), armor(ObjectType.PatientSecretKey, pre.encodePatientKey(patient)));
writeFileSync(new URL('patient.pub', dir), armor(ObjectType.PatientPublicKeys, pre.encodePublicKeys(patient)));
writeFileSync(new URL('pre-record.ct', dir), record);
writeFileSync(new URL('lab.rk', dir), armor(ObjectType.ReEncryptionKey, pre.encodeReEncryptionKey(rk)));
writeFileSync(new URL('pre-record.abe.ct', dir), pre.convert(rk, record));
