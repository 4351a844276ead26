// Ledger benchmark: batched appends on PGlite, and proof generation/verification up to 10^6 entries.
// Usage: node --import tsx bench/ledger.ts [--quick]
// Method for 10^6: the in-memory RFC 9162 tree (the one AuditLog keeps) is built from 10^6 leaf hashes of
// distinct synthetic entries (SHA-256 leaf hashing included in the build time). Appending 10^6 rows through
// PGlite would take minutes at the measured append rate and proves nothing more about proof cost, which
// depends only on the tree. Writes docs/benchmarks/ledger-*.svg.
import { performance } from 'node:perf_hooks';
import { cpus, totalmem } from 'node:os';
import { createHash, randomInt } from 'node:crypto';
import { openDatabase } from '@medshare/db';
import { AuditLog, MerkleTree, generateCheckpointKey, hashLeaf, verifyConsistency, verifyInclusion, type AuditEventInput } from '@medshare/ledger';
import { plotLines, printTable } from './lib/report.ts';

const quick = process.argv.includes('--quick');
const psn = (label: string) => `psn:${createHash('sha256').update(label).digest('base64url').slice(0, 22)}`;
const event = (i: number): AuditEventInput => ({
  type: 'record-access',
  patient: psn(`patient-${i % 1000}`),
  agents: [{ who: psn(`doctor-${i % 97}`), role: 'doctor' }],
  source: 'hospital-a',
  records: [{ hash: `sha256:${createHash('sha256').update(`record-${i}`).digest('hex')}`, category: 'lab' }],
});

async function appendBench(): Promise<[number, number][]> {
  const key = generateCheckpointKey('bench.medshare/audit');
  const rows: (string | number)[][] = [];
  const curve: [number, number][] = [];
  const total = quick ? 5_000 : 20_000;
  for (const maxBatch of [1, 10, 100, 500, 2_000]) {
    const db = await openDatabase();
    const log = await AuditLog.open(db, key.signer, { maxBatch });
    const n = maxBatch === 1 ? Math.min(total, 1_000) : total;
    await Promise.all(Array.from({ length: 100 }, (_, i) => log.append(event(i)))); // warm-up
    const start = performance.now();
    await Promise.all(Array.from({ length: n }, (_, i) => log.append(event(i))));
    const seconds = (performance.now() - start) / 1000;
    const checkpoints = (await db.query<{ c: number }>('SELECT count(*)::int AS c FROM ledger_checkpoints')).rows[0]!.c;
    rows.push([maxBatch, n, seconds.toFixed(2), Math.round(n / seconds), checkpoints]);
    curve.push([maxBatch, n / seconds]);
    await db.close();
  }
  printTable('Batched appends on PGlite (in memory), concurrent callers', ['max batch', 'entries', 'seconds', 'appends/s', 'checkpoints signed'], rows);
  return curve;
}

async function verifyBench(): Promise<void> {
  const key = generateCheckpointKey('bench.medshare/audit');
  const db = await openDatabase();
  const log = await AuditLog.open(db, key.signer);
  const n = quick ? 5_000 : 20_000;
  await Promise.all(Array.from({ length: n }, (_, i) => log.append(event(i))));
  const { verifyLog } = await import('@medshare/ledger');
  const start = performance.now();
  const report = await verifyLog(db, { log: key.signer.verifier });
  const seconds = (performance.now() - start) / 1000;
  printTable('Full audit verification on PGlite (recompute every leaf, check every checkpoint)', ['entries', 'checkpoints', 'ok', 'seconds', 'entries/s'], [
    [report.size, report.checkpoints, String(report.ok), seconds.toFixed(2), Math.round(report.size / seconds)],
  ]);
  await db.close();
}

function time<T>(runs: number, work: (i: number) => T): number {
  const start = performance.now();
  for (let i = 0; i < runs; i++) work(i);
  return ((performance.now() - start) * 1000) / runs;
}

function proofBench(): { name: string; points: [number, number][] }[] {
  const sizes = quick ? [1_000, 10_000, 100_000] : [1_000, 10_000, 100_000, 1_000_000];
  const tree = new MerkleTree();
  const rows: (string | number)[][] = [];
  const series = { ig: [] as [number, number][], iv: [] as [number, number][], cg: [] as [number, number][], cv: [] as [number, number][] };
  let buildMs = 0;
  for (const size of sizes) {
    const start = performance.now();
    for (let i = tree.size; i < size; i++) tree.append(hashLeaf(Buffer.from(`synthetic entry ${i}`)));
    buildMs += performance.now() - start;
    const root = tree.rootHash(size);
    const runs = 2_000;
    const indices = Array.from({ length: runs }, () => randomInt(size));
    const firsts = Array.from({ length: runs }, () => 1 + randomInt(size - 1));
    const incl = indices.map((i) => tree.inclusionProof(i, size));
    const cons = firsts.map((f) => tree.consistencyProof(f, size));
    const firstRoots = firsts.map((f) => tree.rootHash(f));
    const ig = time(runs, (k) => tree.inclusionProof(indices[k]!, size));
    const iv = time(runs, (k) => verifyInclusion(tree.leafHash(indices[k]!), indices[k]!, size, incl[k]!, root) || (() => { throw new Error('bad proof'); })());
    const cg = time(runs, (k) => tree.consistencyProof(firsts[k]!, size));
    const cv = time(runs, (k) => verifyConsistency(firsts[k]!, size, cons[k]!, firstRoots[k]!, root) || (() => { throw new Error('bad proof'); })());
    rows.push([size.toLocaleString('en'), (buildMs / 1000).toFixed(2), incl[0]!.length, ig.toFixed(1), iv.toFixed(1), cons[0]!.length, cg.toFixed(1), cv.toFixed(1), Math.round(process.memoryUsage().rss / 2 ** 20)]);
    series.ig.push([size, ig]);
    series.iv.push([size, iv]);
    series.cg.push([size, cg]);
    series.cv.push([size, cv]);
  }
  printTable('RFC 9162 proofs (mean of 2,000 random proofs per size)', ['tree size', 'build s (cumulative)', 'inclusion hashes', 'inclusion gen µs', 'inclusion verify µs', 'consistency hashes', 'consistency gen µs', 'consistency verify µs', 'RSS MiB'], rows);
  return [
    { name: 'inclusion gen', points: series.ig },
    { name: 'inclusion verify', points: series.iv },
    { name: 'consistency gen', points: series.cg },
    { name: 'consistency verify', points: series.cv },
  ];
}

console.log(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}${quick ? ' (quick run)' : ''}`);
const appendCurve = await appendBench();
await verifyBench();
const proofSeries = proofBench();
const points = (series: { name: string; points: [number, number][] }[]) => series.flatMap((s) => s.points.map(([x, y]) => ({ series: s.name, x, y })));
await plotLines('docs/benchmarks/ledger-appends.svg', points([{ name: 'appends/s', points: appendCurve }]), { title: 'Batched appends on PGlite', x: 'max entries per batch', y: 'appends per second', logX: true });
await plotLines('docs/benchmarks/ledger-proofs.svg', points(proofSeries), { title: 'Proof time vs tree size', x: 'tree size', y: 'microseconds per proof', logX: true });
console.log('\nPlots written to docs/benchmarks/ledger-appends.svg and docs/benchmarks/ledger-proofs.svg');
