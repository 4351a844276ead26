// Ledger benchmark: batched appends on PGlite, and proof generation/verification up to 10^6 entries.
// Usage: node --import tsx bench/ledger.ts [--quick] [--scale-only] [--scale N]
// The scale section appends N (default 10^6; --quick 20,000) real entries to one PGlite log, then measures opening
// it (persisted tree, no entry read), an inclusion proof bundle from the database, the full audit, and SHA-256
// throughput in the same process.
// Method for 10^6: the in-memory RFC 9162 tree (the one AuditLog keeps) is built from 10^6 leaf hashes of
// distinct synthetic entries (SHA-256 leaf hashing included in the build time). Appending 10^6 rows through
// PGlite would take minutes at the measured append rate and proves nothing more about proof cost, which
// depends only on the tree. With --plots, writes docs/benchmarks/ledger-*.svg.
import { performance } from 'node:perf_hooks';
import { cpus, totalmem } from 'node:os';
import { createHash, randomInt } from 'node:crypto';
import { openDatabase } from '@medshare/db';
import {
  AuditLog,
  MerkleTree,
  buildInclusionBundle,
  generateCheckpointKey,
  hashChildren,
  hashLeaf,
  verifyConsistency,
  verifyInclusion,
  type AuditEventInput,
} from '@medshare/ledger';
import { cpuAlternating, wantsPlots } from './lib/measure.ts';
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
  printTable(
    'Full audit verification on PGlite (recompute every leaf, check every checkpoint)',
    ['entries', 'checkpoints', 'ok', 'seconds', 'entries/s'],
    [[report.size, report.checkpoints, String(report.ok), seconds.toFixed(2), Math.round(report.size / seconds)]],
  );
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
    const iv = time(
      runs,
      (k) =>
        verifyInclusion(tree.leafHash(indices[k]!), indices[k]!, size, incl[k]!, root) ||
        (() => {
          throw new Error('bad proof');
        })(),
    );
    const cg = time(runs, (k) => tree.consistencyProof(firsts[k]!, size));
    const cv = time(
      runs,
      (k) =>
        verifyConsistency(firsts[k]!, size, cons[k]!, firstRoots[k]!, root) ||
        (() => {
          throw new Error('bad proof');
        })(),
    );
    rows.push([
      size.toLocaleString('en'),
      (buildMs / 1000).toFixed(2),
      incl[0]!.length,
      ig.toFixed(1),
      iv.toFixed(1),
      cons[0]!.length,
      cg.toFixed(1),
      cv.toFixed(1),
      Math.round(process.memoryUsage().rss / 2 ** 20),
    ]);
    series.ig.push([size, ig]);
    series.iv.push([size, iv]);
    series.cg.push([size, cg]);
    series.cv.push([size, cv]);
  }
  printTable(
    'RFC 9162 proofs (mean of 2,000 random proofs per size)',
    [
      'tree size',
      'build s (cumulative)',
      'inclusion hashes',
      'inclusion gen µs',
      'inclusion verify µs',
      'consistency hashes',
      'consistency gen µs',
      'consistency verify µs',
      'RSS MiB',
    ],
    rows,
  );
  return [
    { name: 'inclusion gen', points: series.ig },
    { name: 'inclusion verify', points: series.iv },
    { name: 'consistency gen', points: series.cg },
    { name: 'consistency verify', points: series.cv },
  ];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cpuMs = (start: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
};

/** Times `work` in wall and CPU milliseconds. */
async function timed<T>(work: () => Promise<T>): Promise<{ value: T; wallMs: number; cpuMs: number }> {
  const cpu = process.cpuUsage();
  const wall = performance.now();
  const value = await work();
  return { value, wallMs: performance.now() - wall, cpuMs: cpuMs(cpu) };
}

async function scaleBench(n: number): Promise<void> {
  const key = generateCheckpointKey('bench.medshare/audit');
  const db = await openDatabase();
  const writer = await AuditLog.open(db, key.signer);
  const fill = await timed(async () => {
    for (let done = 0; done < n;) {
      const step = Math.min(20_000, n - done);
      await Promise.all(Array.from({ length: step }, (_, i) => writer.append(event(done + i))));
      done += step;
      if (done % 100_000 === 0) process.stderr.write(`  ${done.toLocaleString('en')} entries appended\n`);
    }
  });
  printTable(
    `Appending ${n.toLocaleString('en')} entries to one log on PGlite (max batch 2,000, concurrent callers)`,
    ['entries', 'wall s', 'appends/s (wall)', 'CPU s', 'appends per CPU s'],
    [
      [
        n.toLocaleString('en'),
        (fill.wallMs / 1000).toFixed(1),
        Math.round(n / (fill.wallMs / 1000)),
        (fill.cpuMs / 1000).toFixed(1),
        Math.round(n / (fill.cpuMs / 1000)),
      ],
    ],
  );
  const treeRows = (await db.query<{ c: number; b: number }>('SELECT count(*)::int AS c, sum(length(hashes))::bigint AS b FROM ledger_tree')).rows[0]!;
  // Opening as the CLI does (reader) and as the service does (writer, full audit in the background), 3 times each.
  const readerOpens: { wallMs: number; cpuMs: number }[] = [];
  let reader: AuditLog | undefined;
  for (let i = 0; i < 3; i++) {
    const t = await timed(() => AuditLog.openReader(db));
    reader = t.value.log;
    readerOpens.push(t);
  }
  const writerOpens: { wallMs: number; cpuMs: number }[] = [];
  let reopened: AuditLog | undefined;
  for (let i = 0; i < 3; i++) {
    const t = await timed(() => AuditLog.open(db, key.signer, { audit: 'background' }));
    await t.value.audited(); // not timed: lets the next open start from a quiet log
    reopened = t.value;
    writerOpens.push(t);
  }
  // An inclusion proof as `audit proof` makes it: the entry read and checked, its path, the latest checkpoint.
  const proofWall: number[] = [];
  const proofCpu: number[] = [];
  for (let i = 0; i < 200; i++) {
    const index = randomInt(n);
    const t = await timed(() => buildInclusionBundle(reader!, index));
    proofWall.push(t.wallMs);
    proofCpu.push(t.cpuMs);
  }
  const audit = await timed(async () => {
    const fresh = await AuditLog.open(db, key.signer, { audit: 'background' });
    await fresh.audited();
    return fresh.health().ok;
  });
  // SHA-256 in the same run: leaf hashes of real entry sizes and interior-node hashes, alternated.
  const entryBytes = Buffer.from((await reader!.entry(0)).bytes);
  const left = hashLeaf(Buffer.from('l'));
  const right = hashLeaf(Buffer.from('r'));
  const batch = 10_000;
  const sha = cpuAlternating(
    {
      leaf: () => {
        for (let i = 0; i < batch; i++) hashLeaf(entryBytes);
      },
      node: () => {
        for (let i = 0; i < batch; i++) hashChildren(left, right);
      },
    },
    15,
  );
  printTable(
    `Opening and proving at ${n.toLocaleString('en')} entries (medians; CPU = process.cpuUsage)`,
    ['measure', 'wall ms', 'CPU ms', 'note'],
    [
      [
        'AuditLog.openReader (CLI: proof, entries)',
        median(readerOpens.map((t) => t.wallMs)).toFixed(0),
        median(readerOpens.map((t) => t.cpuMs)).toFixed(0),
        `3 opens; reads ${treeRows.c} tree chunks, ${(Number(treeRows.b) / 2 ** 20).toFixed(1)} MiB`,
      ],
      [
        'AuditLog.open, audit in background (service)',
        median(writerOpens.map((t) => t.wallMs)).toFixed(0),
        median(writerOpens.map((t) => t.cpuMs)).toFixed(0),
        '3 opens; root checked against the signed checkpoint',
      ],
      [
        'inclusion proof bundle from the database',
        median(proofWall).toFixed(2),
        median(proofCpu).toFixed(2),
        `200 random entries: entry read + checked, path, checkpoint`,
      ],
      ['full audit (every entry rehashed; the old open)', audit.wallMs.toFixed(0), audit.cpuMs.toFixed(0), `ok=${audit.value}`],
    ],
  );
  const leafUs = (sha['leaf']! * 1000) / batch;
  const nodeUs = (sha['node']! * 1000) / batch;
  printTable(
    'SHA-256 in the same process (node:crypto, CPU medians of 15 × 10,000)',
    ['input', 'bytes', 'µs per hash', 'hashes/s', 'MB/s'],
    [
      ['leaf: 0x00 ‖ entry', entryBytes.length + 1, leafUs.toFixed(2), Math.round(1e6 / leafUs), ((entryBytes.length + 1) / leafUs).toFixed(0)],
      ['node: 0x01 ‖ left ‖ right', 65, nodeUs.toFixed(2), Math.round(1e6 / nodeUs), (65 / nodeUs).toFixed(0)],
    ],
  );
  console.log(
    `\nThe full audit costs ${(audit.cpuMs / 1000 / ((n * leafUs) / 1e6)).toFixed(1)} × the SHA-256 time of the leaves alone; opening costs ${(median(readerOpens.map((t) => t.cpuMs)) / ((n * leafUs) / 1000)).toFixed(3)} × it.`,
  );
  void reopened;
  await db.close();
}

console.log(
  `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}${quick ? ' (quick run)' : ''}`,
);
const scaleArg = process.argv.indexOf('--scale');
await scaleBench(scaleArg > 0 ? Number(process.argv[scaleArg + 1]) : quick ? 20_000 : 1_000_000);
if (process.argv.includes('--scale-only')) process.exit(0);
const appendCurve = await appendBench();
await verifyBench();
const proofSeries = proofBench();
const points = (series: { name: string; points: [number, number][] }[]) => series.flatMap((s) => s.points.map(([x, y]) => ({ series: s.name, x, y })));
if (wantsPlots()) {
  await plotLines('docs/benchmarks/ledger-appends.svg', points([{ name: 'appends/s', points: appendCurve }]), {
    title: 'Batched appends on PGlite',
    x: 'max entries per batch',
    y: 'appends per second',
    logX: true,
  });
  await plotLines('docs/benchmarks/ledger-proofs.svg', points(proofSeries), {
    title: 'Proof time vs tree size',
    x: 'tree size',
    y: 'microseconds per proof',
    logX: true,
  });
  console.log('\nPlots written to docs/benchmarks/ledger-appends.svg and docs/benchmarks/ledger-proofs.svg');
}
