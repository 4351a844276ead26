/**
 * One fresh-process CP-ABE decryption for bench/abe.ts: decodes the user key `key-N` and the ciphertext `SHAPE-N`
 * from the directory and reports the first decryption (bench/lib/first-call.ts).
 *
 *   node --import tsx bench/lib/fresh-abe.ts DIR N SHAPE
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { abe } from '@medshare/crypto';
import { reportFirstCall } from './first-call.ts';

const [dir, n, shape] = process.argv.slice(2) as [string, string, string];
await reportFirstCall(() => {
  const key = abe.decodeUserKey(readFileSync(join(dir, `key-${n}`)));
  const ciphertext = new Uint8Array(readFileSync(join(dir, `${shape}-${n}`)));
  return () => abe.decrypt(key, ciphertext);
});
