// Ledger benchmark: batched appends on PGlite, and proof generation/verification up to 10^6 entries.
// Usage: node --import tsx bench/ledger.ts [--quick]
// Method for 10^6: the in-memory RFC 9162 tree (the one AuditLog keeps) is built from 10^6 leaf hashes of
// distinct synthetic entries (SHA-256 leaf hashing included in the build time). Appending 10^6 rows through
// PGlite would take minutes at the measured append rate and proves nothing more about proof cost, which
// depends only on the tree. Writes docs/img/ledger-*.svg.
import { performance } from 'node:perf_hooks';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { createHash, randomInt } from 'node:crypto';
import { openDatabase } from '@medshare/db';
import { AuditLog, MerkleTree, generateCheckpointKey, hashLeaf, verifyConsistency, verifyInclusion, type AuditEventInput } from '@medshare/ledger';

const quick = process.argv.includes('--quick');
const psn = (label: string) => `psn:${createHash('sha256').update(label).digest('base64url').slice(0, 22)}`;
const event = (i: number): AuditEventInput => ({
  type: 'record-access',
  patient: psn(`patient-${i % 1000}`),
  agents: [{ who: psn(`doctor-${i % 97}`), role: 'doctor' }],
  source: 'hospital-a',
  records: [{ hash: `sha256:${createHash('sha256').update(`record-${i}`).digest('hex')}`, category: 'lab' }],
});

function table(title: string, header: string[], rows: (string | number)[][]): void {
  console.log(`\n### ${title}\n`);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

/** A minimal line chart (log-scaled x) as SVG text. */
function svgChart(title: string, xLabel: string, yLabel: string, series: { name: string; points: [number, number][] }[]): string {
  const W = 640, H = 360, L = 70, R = 150, T = 40, B = 50;
  const xs = series.flatMap((s) => s.points.map((p) => Math.log10(p[0])));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const y1 = Math.max(...ys) * 1.1;
  const px = (x: number) => L + ((Math.log10(x) - x0) / (x1 - x0 || 1)) * (W - L - R);
  const py = (y: number) => H - B - (y / y1) * (H - T - B);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${title}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`, `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">${xLabel}</text>`,
    `<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">${yLabel}</text>`];
  for (let i = 0; i <= 4; i++) {
    const y = (y1 * i) / 4;
    parts.push(`<text x="${L - 6}" y="${py(y) + 4}" text-anchor="end">${y >= 100 ? y.toFixed(0) : y.toFixed(1)}</text>`);
  }
  for (const x of [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))]) {
    parts.push(`<text x="${px(x)}" y="${H - B + 16}" text-anchor="middle">${x >= 1000 ? `10^${Math.round(Math.log10(x))}` : x}</text>`);
  }
  series.forEach((s, i) => {
    const color = colors[i % colors.length];
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of s.points) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${color}"/>`);
    parts.push(`<text x="${W - R + 10}" y="${T + 16 * i + 10}" fill="${color}">${s.name}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

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
  table('Batched appends on PGlite (in memory), concurrent callers', ['max batch', 'entries', 'seconds', 'appends/s', 'checkpoints signed'], rows);
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
  table('Full audit verification on PGlite (recompute every leaf, check every checkpoint)', ['entries', 'checkpoints', 'ok', 'seconds', 'entries/s'], [
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
  table('RFC 9162 proofs (mean of 2,000 random proofs per size)', ['tree size', 'build s (cumulative)', 'inclusion hashes', 'inclusion gen µs', 'inclusion verify µs', 'consistency hashes', 'consistency gen µs', 'consistency verify µs', 'RSS MiB'], rows);
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
mkdirSync(new URL('../docs/img/', import.meta.url), { recursive: true });
writeFileSync(new URL('../docs/img/ledger-appends.svg', import.meta.url), svgChart('Batched appends on PGlite', 'max entries per batch (log scale)', 'appends per second', [{ name: 'appends/s', points: appendCurve }]));
writeFileSync(new URL('../docs/img/ledger-proofs.svg', import.meta.url), svgChart('Proof time vs tree size', 'tree size (log scale)', 'microseconds per proof', proofSeries));
console.log('\nPlots written to docs/img/ledger-appends.svg and docs/img/ledger-proofs.svg');
