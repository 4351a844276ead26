/**
 * CP-ABE (FAME) benchmark: setup, keygen, encrypt, decrypt for 1–50 attributes with AND and OR policies,
 * each also expressed in primitive-equivalents measured in the same run; decryption of policies that repeat
 * attributes (up to 50 leaves); keygen time and key size against the occurrence bound K; hybrid payload throughput.
 *
 *   node --import tsx bench/abe.ts          (writes docs/benchmarks/abe.svg)
 */
import { randomBytes } from 'node:crypto';
import { abe, curve } from '@medshare/crypto';
import { clearOracleCache } from '../packages/crypto/src/fame/scheme.ts';
import { derivePayloadKey, headerDigest, openPayload, sealPayload } from '../packages/crypto/src/hybrid/stream.ts';
import { alternateWith, ms, ratio, timeIt } from './lib/measure.ts';
import { measurePrimitives, primitiveRows } from './lib/primitives.ts';
import { plotLines, printTable, type Point } from './lib/report.ts';

await abe.init();
const prim = measurePrimitives();
printTable('Primitives (BLS12-381, mcl-wasm)', ['operation', 'ms', 'pairings'], primitiveRows(prim));

const { masterKey, publicKey } = abe.setup();
const setupMs = timeIt(() => abe.setup(), { minRuns: 5 });
const SIZES = [1, 5, 10, 20, 50];
const payload = randomBytes(1024);
const rows: string[][] = [];
const points: Point[] = [];
const results: Record<string, number[]> = { keygen: [], encryptAnd: [], encryptAndCold: [], decryptAnd: [], decryptOr: [] };

for (const n of SIZES) {
  const attributes = Array.from({ length: n }, (_, i) => `attr:a${i}`);
  const andPolicy = attributes.join(' and ');
  const orPolicy = attributes.join(' or ');
  const key = abe.keygen(masterKey, attributes.join(', '));
  const andCt = abe.encrypt(publicKey, andPolicy, payload);
  const orCt = abe.encrypt(publicKey, orPolicy, payload);
  const keygen = timeIt(() => abe.keygen(masterKey, attributes.join(', ')));
  const encryptAnd = timeIt(() => abe.encrypt(publicKey, andPolicy, payload));
  const encryptOr = timeIt(() => abe.encrypt(publicKey, orPolicy, payload));
  const encryptAndCold = timeIt(() => {
    clearOracleCache();
    abe.encrypt(publicKey, andPolicy, payload);
  });
  const decryptAnd = timeIt(() => abe.decrypt(key, andCt));
  const decryptOr = timeIt(() => abe.decrypt(key, orCt));
  results.keygen!.push(keygen);
  results.encryptAnd!.push(encryptAnd);
  results.encryptAndCold!.push(encryptAndCold);
  results.decryptAnd!.push(decryptAnd);
  results.decryptOr!.push(decryptOr);
  rows.push([
    String(n),
    ms(keygen),
    ratio(keygen / prim.g1Mul / n),
    ms(encryptAnd),
    ratio(encryptAnd / prim.g1Mul / n),
    ms(encryptOr),
    ms(encryptAndCold),
    ms(decryptAnd),
    ratio(decryptAnd / prim.pairing),
    ms(decryptOr),
    ratio(decryptOr / prim.pairing),
  ]);
  for (const [series, y] of [
    ['keygen', keygen],
    ['encrypt (AND, cached hashes)', encryptAnd],
    ['encrypt (AND, cold)', encryptAndCold],
    ['decrypt (AND)', decryptAnd],
    ['decrypt (OR)', decryptOr],
  ] as const) points.push({ series, x: n, y });
}

printTable(
  `FAME CP-ABE (setup ${ms(setupMs)} ms = ${ratio(setupMs / prim.pairing)} pairings)`,
  ['attributes', 'keygen ms', 'keygen G1-mul/attr', 'encrypt AND ms', 'encrypt G1-mul/attr', 'encrypt OR ms', 'encrypt AND cold ms', 'decrypt AND ms', 'decrypt AND pairings', 'decrypt OR ms', 'decrypt OR pairings'],
  rows,
);

/** Marginal cost per attribute between the smallest and largest sizes, in G1 multiplications. */
const slope = (series: number[]) => (series.at(-1)! - series[0]!) / (SIZES.at(-1)! - SIZES[0]!) / prim.g1Mul;
printTable('Marginal cost per additional attribute (1 → 50)', ['operation', 'G1-mul-equivalents per attribute'], [
  ['keygen', ratio(slope(results.keygen!))],
  ['encrypt, AND policy, cached hashes', ratio(slope(results.encryptAnd!))],
  ['encrypt, AND policy, cold hash cache', ratio(slope(results.encryptAndCold!))],
  ['decrypt, AND policy (pairings stay 6 Miller loops + 1 final exp.)', ratio(slope(results.decryptAnd!))],
]);

const g1 = curve.g1Generator();
const g2 = curve.g2Generator();
const pairing = () => curve.pairing(g1, g2);

// Policies that name attributes more than once (the one-use copies, docs/crypto.md §2): DNF with a shared attribute,
// an AND that names every attribute twice, and two comparisons on one integer (its bits repeat).
const repeatedRows: string[][] = [];
for (const leaves of [4, 10, 20, 50]) {
  const half = leaves / 2;
  const names = Array.from({ length: half }, (_, i) => `attr:a${i}`);
  // Clause i shares attr:s(i mod 6) with others: at most 5 uses of one attribute, within the default K = 8.
  const dnf = names.map((a, i) => `(attr:s${i % 6} and ${a})`).join(' or ');
  const twice = [...names, ...names].join(' and ');
  const key = abe.keygen(masterKey, [...Array.from({ length: 6 }, (_, i) => `attr:s${i}`), ...names].join(', '));
  for (const [shape, policy] of [['DNF (s_(i mod 6) and a_i) or …', dnf], ['AND, each attribute twice', twice]] as const) {
    const ct = abe.encrypt(publicKey, policy, payload);
    const { ms: t, ratio: r } = alternateWith(pairing, () => abe.decrypt(key, ct));
    repeatedRows.push([shape, String(abe.compilePolicy(policy).rows.length), ms(t), ratio(r)]);
  }
}
{
  const policy = '(level >= 3 and role:a) or (level >= 5 and role:b)';
  const key = abe.keygen(masterKey, 'role:b, level=7');
  const ct = abe.encrypt(publicKey, policy, payload);
  const { ms: t, ratio: r } = alternateWith(pairing, () => abe.decrypt(key, ct));
  repeatedRows.push([policy, String(abe.compilePolicy(policy).rows.length), ms(t), ratio(r)]);
}
printTable('Decryption of policies that repeat attributes (CPU time, alternated with a pairing)', ['policy', 'leaves', 'decrypt ms', 'decrypt pairings'], repeatedRows);

// Keygen and key size against the bound K, for a typical reader (3 string attributes + 1 integer = 35 expanded).
const READER = 'role:doctor, dept:cardiology, hospital:riverside, level=3';
const boundRows: string[][] = [];
for (const K of [1, 2, 4, 8, 16]) {
  const { ms: t, ratio: r } = alternateWith(pairing, () => abe.keygen(masterKey, READER, { maxOccurrences: K }), { runs: 5 });
  const bytes = abe.encodeUserKey(abe.keygen(masterKey, READER, { maxOccurrences: K })).length;
  boundRows.push([String(K), ms(t), ratio(r), String(bytes)]);
}
printTable(`Keygen against the occurrence bound K (${READER}; CPU time, alternated with a pairing)`, ['K', 'keygen ms', 'keygen pairings', 'key bytes'], boundRows);

// Hybrid payload throughput on 1 MiB records.
const record = randomBytes(1024 * 1024);
const payloadKey = derivePayloadKey(randomBytes(576), headerDigest(randomBytes(100)), 'bench');
const aad = headerDigest(randomBytes(100));
const sealed = sealPayload(payloadKey, aad, record);
const sealMs = timeIt(() => sealPayload(payloadKey, aad, record), { budgetMs: 1000 });
const openMs = timeIt(() => openPayload(payloadKey, aad, sealed), { budgetMs: 1000 });
const gbps = (t: number) => (record.length / 1e9 / (t / 1000)).toFixed(2);
printTable('Hybrid payload (AES-256-GCM STREAM, 64 KiB chunks) on 1 MiB records', ['operation', 'ms per MiB', 'GB/s'], [
  ['seal', ms(sealMs), gbps(sealMs)],
  ['open', ms(openMs), gbps(openMs)],
]);

const svg = new URL('../docs/benchmarks/abe.svg', import.meta.url).pathname;
await plotLines(svg, points, { title: 'FAME CP-ABE on BLS12-381 (mcl-wasm, one core)', x: 'attributes in key / policy', y: 'milliseconds', logY: true });
console.log(`\nplot written to ${svg}`);
