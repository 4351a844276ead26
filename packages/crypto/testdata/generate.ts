/**
 * Regenerates the pinned test vectors in this folder. Run it ONLY when the format version changes on
 * purpose: `node --import tsx packages/crypto/testdata/generate.ts`. The test `testdata.test.ts` fails on
 * any unintended change to the encodings, because these bytes were produced by an earlier build.
 */
import { writeFileSync } from 'node:fs';
import * as abe from '../src/abe.ts';
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
