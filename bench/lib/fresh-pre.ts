/**
 * One fresh-process proxy re-encryption operation for bench/pre.ts, its inputs read from the directory, reported by
 * bench/lib/first-call.ts: `encrypt` (a hospital encrypts a 4 KiB record for a patient's public keys), `patient`
 * (the patient decrypts it), `reader` (a reader decrypts a converted record: its first record of a delegation).
 *
 *   node --import tsx bench/lib/fresh-pre.ts DIR encrypt|patient|reader
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { abe, pre } from '@medshare/crypto';
import { reportFirstCall } from './first-call.ts';

const [dir, operation] = process.argv.slice(2) as [string, string];
const read = (name: string) => new Uint8Array(readFileSync(join(dir, name)));
await reportFirstCall(() => {
  switch (operation) {
    case 'encrypt': {
      const bundle = pre.decodePublicKeys(read('public-keys'));
      const record = read('record');
      return () => pre.encrypt(bundle, 'lab', 'rec', record);
    }
    case 'patient': {
      const patient = pre.decodePatientKey(read('patient-key'));
      const ciphertext = read('ciphertext');
      return () => pre.decrypt(patient, ciphertext);
    }
    case 'reader': {
      const userKey = abe.decodeUserKey(read('user-key'));
      const converted = read('converted');
      return () => pre.createReader(userKey).decrypt(converted);
    }
    default:
      throw new Error(`unknown operation '${operation}'`);
  }
});
