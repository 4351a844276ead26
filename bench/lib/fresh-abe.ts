/**
 * One fresh-process decryption for bench/abe.ts: decodes the user key `key-N` and the ciphertext `SHAPE-N` from the
 * directory, measures the pairing (alternated after a warm-up, as every reference), then times the process's first
 * decryption. Prints one JSON line {ms, ratio}.
 *
 *   node --import tsx bench/lib/fresh-abe.ts DIR N SHAPE
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { abe } from '@medshare/crypto';
import { alternate, cpuMs } from './measure.ts';
import { primitiveOps } from './primitives.ts';

const [dir, n, shape] = process.argv.slice(2) as [string, string, string];
await abe.init();
const key = abe.decodeUserKey(readFileSync(join(dir, `key-${n}`)));
const ciphertext = new Uint8Array(readFileSync(join(dir, `${shape}-${n}`)));
const { pairing } = primitiveOps();
const reference = alternate('pairing', { pairing }, { rounds: 5 })['pairing']!.ms;
const start = cpuMs();
abe.decrypt(key, ciphertext);
const spent = cpuMs() - start;
console.log(JSON.stringify({ ms: spent, ratio: spent / reference }));
