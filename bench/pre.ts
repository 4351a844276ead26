/**
 * Proxy re-encryption benchmark: hospital encrypt (with and without its platform emergency grant), patient decrypt,
 * delegate, cloud convert, reader decrypt (first record of a delegation and cached) — CPU time alternated with a
 * pairing, medians of rounds (bench/lib/measure.ts) —, the encryptions and decryptions again as a fresh process's
 * first call (bench/lib/fresh-pre.ts), and a batch conversion on one core vs worker threads (wall
 * time: throughput across threads).
 *
 *   node --import tsx bench/pre.ts
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { abe, curve, pre } from '@medshare/crypto';
import { alternate, cpuMs, freshProcesses, ms, ratio } from './lib/measure.ts';
import { measurePrimitives, primitiveOps, primitiveRows } from './lib/primitives.ts';
import { printTable } from './lib/report.ts';

await abe.init();
const prim = measurePrimitives();
printTable('Primitives (BLS12-381, mcl-wasm; CPU time alternated with the pairing)', ['operation', 'ms', 'pairings'], primitiveRows(prim));

const ta = abe.setup();
const patient = pre.generatePatientKey('patient-bench');
const bundle = pre.publicKeys(patient);
const POLICY = '(role:doctor and dept:cardiology) or role:emergency';
const record = randomBytes(4096);
const ct = pre.encrypt(bundle, 'lab', 'rec', record);
const header = pre.openRecordHeader(ct);
const rk = pre.delegate(patient, 'lab', ta.publicKey, POLICY);
const precomputed = pre.precompute(rk);
const converted = pre.convert(rk, ct);
const convertedHeader = pre.openConvertedHeader(converted);
const userKey = abe.keygen(ta.masterKey, 'role:doctor, dept:cardiology');
const warmReader = pre.createReader(userKey);
warmReader.decrypt(converted);
const capsule = pre.emergencyCapsule(ta.publicKey, 'role:emergency');
const encodedPatient = pre.encodePatientKey(patient);

const ops: Array<[string, () => unknown]> = [
  ['hospital encrypt (4 KiB record)', () => pre.encrypt(bundle, 'lab', 'rec', record)],
  ['hospital encrypt with its platform emergency grant (one capsule per upload)', () => pre.encryptWithEmergencyGrant(bundle, 'lab', 'rec', record, capsule)],
  ['patient decrypt (4 KiB record)', () => pre.decrypt(patient, ct)],
  ['patient decrypt, first record of a freshly decoded key (derives the category key)', () => pre.decrypt(pre.decodePatientKey(encodedPatient), ct)],
  ['patient delegate (category → policy)', () => pre.delegate(patient, 'lab', ta.publicKey, POLICY)],
  ['cloud convert (header decoded and converted; payload copied)', () => pre.convertHeader(rk, pre.openRecordHeader(ct))],
  ['  of which: the conversion alone', () => pre.convertHeader(rk, header)],
  ["cloud convert, rk1's lines precomputed (how the platform holds keys)", () => pre.convertHeader(precomputed, pre.openRecordHeader(ct))],
  ['reader decrypt, first record of a delegation', () => pre.createReader(userKey).decrypt(converted)],
  ['reader decrypt, cached delegation (H(X) with precomputed lines)', () => warmReader.decrypt(converted)],
  ['  of which: recovering R alone', () => warmReader.recordSecret(convertedHeader)],
];
const m = alternate('pairing', { pairing: primitiveOps().pairing, ...Object.fromEntries(ops) });
printTable(
  'Proxy re-encryption, 4 KiB records (CPU time alternated with a pairing)',
  ['operation', 'ms', 'pairings'],
  ops.map(([name]) => [name, ms(m[name]!.ms), ratio(m[name]!.ratio)]),
);

// The same operations as a fresh process's first call (bench/lib/fresh-pre.ts), beside the warm figures above.
const FRESH_PROCESSES = 5;
const freshDir = mkdtempSync(join(tmpdir(), 'medshare-bench-pre-'));
const freshRows: string[][] = [];
try {
  writeFileSync(join(freshDir, 'public-keys'), pre.encodePublicKeys(patient));
  writeFileSync(join(freshDir, 'record'), record);
  writeFileSync(join(freshDir, 'patient-key'), encodedPatient);
  writeFileSync(join(freshDir, 'ciphertext'), ct);
  writeFileSync(join(freshDir, 'user-key'), abe.encodeUserKey(userKey));
  writeFileSync(join(freshDir, 'converted'), converted);
  for (const [label, operation] of [
    ['hospital encrypt (4 KiB record)', 'encrypt'],
    ['patient decrypt', 'patient'],
    ['reader decrypt, first record of a delegation', 'reader'],
  ] as const) {
    const run = freshProcesses(new URL('./lib/fresh-pre.ts', import.meta.url), [freshDir, operation], FRESH_PROCESSES)[0]!;
    const optional = (x: number | undefined) => (x === undefined ? '' : ratio(x));
    freshRows.push([label, ms(run.ms), ratio(run.ratio), optional(run.mainRatio), optional(run.startRatio)]);
  }
} finally {
  rmSync(freshDir, { recursive: true, force: true });
}
printTable(
  `In a fresh process (its first call after start-up; medians of ${FRESH_PROCESSES} processes; ratio to the pairing measured afterwards in the same process)`,
  ['operation', 'ms', 'pairings', 'pairings, main thread', 'start-up (abe.init) pairings'],
  freshRows,
);

// A gateway that has encrypted 128 records builds the fixed-base table of e(g1, g2) (EncryptionInputs): the same two
// operations with it, and the table's one-off cost.
const tableStart = cpuMs();
curve.precomputeGtBase();
const tableMs = cpuMs() - tableStart;
const gatewayOps: Array<[string, () => unknown]> = [
  ['hospital encrypt, fixed-base table of e(g1, g2) built (a gateway after 128 records)', () => pre.encrypt(bundle, 'lab', 'rec', record)],
  ['  with its platform emergency grant', () => pre.encryptWithEmergencyGrant(bundle, 'lab', 'rec', record, capsule)],
];
const g = alternate('pairing', { pairing: primitiveOps().pairing, ...Object.fromEntries(gatewayOps) });
printTable(
  'Hospital encryption in a long-running gateway (CPU time alternated with a pairing)',
  ['operation', 'ms', 'pairings'],
  [
    ...gatewayOps.map(([name]) => [name, ms(g[name]!.ms), ratio(g[name]!.ratio)]),
    ['building the table (once per thread; 4.7 MB)', ms(tableMs), ratio(tableMs / g['pairing']!.ms)],
  ],
);

// Batch conversion: one core (this thread) vs one worker per core.
const BATCH = 600;
const headers = Array.from({ length: BATCH }, (_, i) => pre.openRecordHeader(pre.encrypt(bundle, 'lab', `r${i}`, record)).bytes);
const encodedRk = pre.encodeReEncryptionKey(rk);
let t = performance.now();
for (const h of headers) pre.convertHeader(rk, pre.openRecordHeader(h));
const oneCore = performance.now() - t;

const threads = Math.max(2, availableParallelism());
const workers = Array.from({ length: threads }, () => new Worker(new URL('./lib/convert-worker.mjs', import.meta.url), { workerData: { rk: encodedRk } }));
const run = (w: Worker, batch: Uint8Array[]) =>
  new Promise<Uint8Array[]>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
    w.postMessage(batch);
  });
const slices = (n: number) => workers.map((_, k) => headers.slice((k * n) / threads, ((k + 1) * n) / threads));
await Promise.all(workers.map((w, k) => run(w, slices(threads * 4)[k]!))); // warm-up: init and JIT in every worker
t = performance.now();
const results = await Promise.all(workers.map((w, k) => run(w, slices(BATCH)[k]!)));
const parallel = performance.now() - t;
await Promise.all(workers.map((w) => w.terminate()));
if (results.flat().length !== BATCH) throw new Error('batch conversion lost records');
printTable(
  `Batch conversion of ${BATCH} records`,
  ['setup', 'records/s', 'speed-up'],
  [
    ['one core (main thread)', (BATCH / (oneCore / 1000)).toFixed(0), '1.00'],
    [`${threads} worker threads`, (BATCH / (parallel / 1000)).toFixed(0), ratio(oneCore / parallel)],
  ],
);
