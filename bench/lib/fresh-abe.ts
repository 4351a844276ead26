/**
 * One fresh-process decryption for bench/abe.ts: decodes the user key `key-N` and the ciphertext `SHAPE-N` from the
 * directory, measures the pairing (alternated after a warm-up, as every reference), then times the process's first
 * decryption. Prints one JSON line {ms, ratio, mainRatio}: mainRatio counts only the main thread's CPU time (Linux
 * schedstat), without V8's background compiler threads, which process CPU time includes.
 *
 *   node --import tsx bench/lib/fresh-abe.ts DIR N SHAPE
 */
import { existsSync, readFileSync } from 'node:fs';
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
/** This thread's CPU time in ms (schedstat's first field, ns), or NaN where the kernel does not report it. */
const SCHEDSTAT = '/proc/thread-self/schedstat';
const threadMs = () => (existsSync(SCHEDSTAT) ? Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]) / 1e6 : Number.NaN);
const threadStart = threadMs();
const start = cpuMs();
abe.decrypt(key, ciphertext);
const spent = cpuMs() - start;
const threadSpent = threadMs() - threadStart;
console.log(JSON.stringify({ ms: spent, ratio: spent / reference, mainRatio: threadSpent / reference }));
