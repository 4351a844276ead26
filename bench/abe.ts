/**
 * CP-ABE (FAME) benchmark: keygen, encrypt, decrypt for 1–100 attributes with AND and OR policies, in
 * primitive-equivalents; decryption in fresh processes (first call: JIT, empty caches) beside the warm loop;
 * policies that repeat attributes; keygen against the occurrence bound K (warm and cold attribute hashes); STREAM
 * payload sealing against one-shot AES-GCM. Every figure is CPU time alternated with its reference in the same
 * process, medians of rounds (bench/lib/measure.ts).
 *
 *   node --import tsx bench/abe.ts [--plots]      (--plots rewrites docs/benchmarks/abe.svg)
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { abe, curve } from '@medshare/crypto';
import { clearOracleCache } from '../packages/crypto/src/fame/scheme.ts';
import { derivePayloadKey, headerDigest, openPayload, sealPayload } from '../packages/crypto/src/hybrid/stream.ts';
import { alternate, freshProcesses, ms, ratio, wantsPlots } from './lib/measure.ts';
import { aesGcmOneShot, measurePrimitives, primitiveOps, primitiveRows } from './lib/primitives.ts';
import { plotLines, printTable, type Point } from './lib/report.ts';

await abe.init();
const prim = measurePrimitives();
printTable('Primitives (BLS12-381, mcl-wasm; CPU time alternated with the pairing)', ['operation', 'ms', 'pairings'], primitiveRows(prim));

const { masterKey, publicKey } = abe.setup();
const { pairing, g1Mul } = primitiveOps();
const SIZES = [1, 5, 10, 20, 50, 100];
const payload = randomBytes(1024);
const rows: string[][] = [];
const points: Point[] = [];
const perAttribute: Record<string, number[]> = { keygen: [], keygenNew: [], encryptAnd: [], encryptAndNew: [], encryptAndCold: [], decryptAnd: [] };

for (const n of SIZES) {
  const attributes = Array.from({ length: n }, (_, i) => `attr:a${i}`).join(', ');
  const andPolicy = Array.from({ length: n }, (_, i) => `attr:a${i}`).join(' and ');
  const orPolicy = Array.from({ length: n }, (_, i) => `attr:a${i}`).join(' or ');
  // K = 1: the cost of one attribute copy (a default key, K = 8, costs 8 copies per attribute: see the K table).
  const key = abe.keygen(masterKey, attributes, { maxOccurrences: 1 });
  const andCt = abe.encrypt(publicKey, andPolicy, payload);
  const orCt = abe.encrypt(publicKey, orPolicy, payload);
  const m = alternate(
    'pairing',
    {
      pairing,
      g1Mul,
      keygen: () => abe.keygen(masterKey, attributes, { maxOccurrences: 1 }),
      encryptAnd: () => abe.encrypt(publicKey, andPolicy, payload),
      encryptOr: () => abe.encrypt(publicKey, orPolicy, payload),
      // First use of the attributes: their hashes computed afresh, the columns' (shared by every policy) cached …
      encryptAndNew: () => {
        clearOracleCache('attributes');
        abe.encrypt(publicKey, andPolicy, payload);
      },
      // … and a process's first policy of this size: the columns' hashes too.
      encryptAndCold: () => {
        clearOracleCache();
        abe.encrypt(publicKey, andPolicy, payload);
      },
      decryptAnd: () => abe.decrypt(key, andCt),
      decryptOr: () => abe.decrypt(key, orCt),
      // Each cold operation refills the cache with what it hashed, so the warm ones of the next round stay warm.
      keygenNew: () => {
        clearOracleCache('attributes');
        abe.keygen(masterKey, attributes, { maxOccurrences: 1 });
      },
    },
    { rounds: n >= 50 ? 5 : 7 },
  );
  const inG1 = (name: string) => m[name]!.ratio / m['g1Mul']!.ratio;
  for (const name of Object.keys(perAttribute)) perAttribute[name]!.push(name.startsWith('decrypt') ? m[name]!.ratio : inG1(name));
  rows.push([
    String(n),
    ms(m['keygen']!.ms),
    ratio(inG1('keygen') / n),
    ratio(inG1('keygenNew') / n),
    ms(m['encryptAnd']!.ms),
    ratio(inG1('encryptAnd') / n),
    ms(m['encryptOr']!.ms),
    ratio(inG1('encryptAndNew') / n),
    ms(m['encryptAndCold']!.ms),
    ratio(inG1('encryptAndCold') / n),
    ms(m['decryptAnd']!.ms),
    ratio(m['decryptAnd']!.ratio),
    ms(m['decryptOr']!.ms),
    ratio(m['decryptOr']!.ratio),
  ]);
  for (const [series, name] of [
    ['keygen (K = 1)', 'keygen'],
    ['encrypt (AND, cached hashes)', 'encryptAnd'],
    ['encrypt (AND, cold)', 'encryptAndCold'],
    ['decrypt (AND)', 'decryptAnd'],
    ['decrypt (OR)', 'decryptOr'],
  ] as const) {
    points.push({ series, x: n, y: m[name]!.ms });
  }
}

printTable(
  'FAME CP-ABE, warm loop (CPU time alternated with a pairing and a G1 multiplication; keygen with K = 1)',
  [
    'attributes',
    'keygen ms',
    'keygen G1-mul/attr',
    'keygen, new attributes, G1-mul/attr',
    'encrypt AND ms',
    'encrypt G1-mul/attr',
    'encrypt OR ms',
    'encrypt AND, new attributes, G1-mul/attr',
    'encrypt AND cold ms',
    'cold G1-mul/attr',
    'decrypt AND ms',
    'decrypt AND pairings',
    'decrypt OR ms',
    'decrypt OR pairings',
  ],
  rows,
);

/** Marginal cost per additional attribute between 1 and 100 attributes. */
const slope = (series: number[]) => (series.at(-1)! - series[0]!) / (SIZES.at(-1)! - SIZES[0]!);
printTable(
  `Marginal cost per additional attribute (${SIZES[0]} → ${SIZES.at(-1)})`,
  ['operation', 'per attribute'],
  [
    ['keygen (per attribute copy)', `${ratio(slope(perAttribute['keygen']!))} G1-mul`],
    ['keygen, attributes never hashed before', `${ratio(slope(perAttribute['keygenNew']!))} G1-mul`],
    ['encrypt, AND policy, cached hashes', `${ratio(slope(perAttribute['encryptAnd']!))} G1-mul`],
    ['encrypt, AND policy, attributes never hashed before (columns cached)', `${ratio(slope(perAttribute['encryptAndNew']!))} G1-mul`],
    ['encrypt, AND policy, cold hash cache', `${ratio(slope(perAttribute['encryptAndCold']!))} G1-mul`],
    ['decrypt, AND policy (6 Miller loops + 1 final exp. whatever the size)', `${ratio(slope(perAttribute['decryptAnd']!))} pairings`],
  ],
);

// Decryption in fresh processes: each process initialises the curve (start-up), decodes the key and ciphertext, times
// its first decryption — policy compilation, JIT, wasm compilation and tier-up included — and only then measures the
// pairing (alternated, after a warm-up) as the reference (bench/lib/fresh-abe.ts says why in that order).
const FRESH_PROCESSES = 5;
const dir = mkdtempSync(join(tmpdir(), 'medshare-bench-abe-'));
const freshRows: string[][] = [];
try {
  for (const n of [10, 50, 100]) {
    const names = Array.from({ length: n }, (_, i) => `attr:f${i}`);
    writeFileSync(join(dir, `key-${n}`), abe.encodeUserKey(abe.keygen(masterKey, names.join(', '), { maxOccurrences: 1 })));
    for (const shape of ['and', 'or'] as const) writeFileSync(join(dir, `${shape}-${n}`), abe.encrypt(publicKey, names.join(` ${shape} `), payload));
    const fresh = (shape: string) => freshProcesses(new URL('./lib/fresh-abe.ts', import.meta.url), [dir, String(n), shape], FRESH_PROCESSES)[0]!;
    const [and, or] = [fresh('and'), fresh('or')];
    const optional = (x: number | undefined) => (x === undefined ? '' : ratio(x));
    freshRows.push([
      String(n),
      ms(and.ms),
      ratio(and.ratio),
      optional(and.mainRatio),
      ms(or.ms),
      ratio(or.ratio),
      optional(or.mainRatio),
      optional(and.startRatio),
      and.startRatio === undefined ? '' : ratio(and.startRatio + and.ratio),
    ]);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
printTable(
  `Decrypt in a fresh process (its first call, the first curve operation after start-up; medians of ${FRESH_PROCESSES} processes per cell; ratio to the pairing measured afterwards in the same process)`,
  [
    'attributes',
    'AND ms',
    'AND pairings',
    'AND pairings, main thread',
    'OR ms',
    'OR pairings',
    'OR pairings, main thread',
    'start-up (abe.init) pairings',
    'start-up + first AND decrypt',
  ],
  freshRows,
);

// Policies that name attributes more than once (the one-use copies, docs/crypto.md §2): DNF with a shared attribute,
// an AND that names every attribute twice, and two comparisons on one integer (its bits repeat).
const repeatedRows: string[][] = [];
const repeatedCase = (label: string, policy: string, key: abe.UserKey) => {
  const ct = abe.encrypt(publicKey, policy, payload);
  const m = alternate('pairing', { pairing, decrypt: () => abe.decrypt(key, ct) }, { rounds: 7 });
  repeatedRows.push([label, String(abe.compilePolicy(policy).rows.length), ms(m['decrypt']!.ms), ratio(m['decrypt']!.ratio)]);
};
for (const leaves of [4, 10, 20, 50]) {
  const half = leaves / 2;
  const names = Array.from({ length: half }, (_, i) => `attr:a${i}`);
  // Clause i shares attr:s(i mod 6) with others: at most 5 uses of one attribute, within the default K = 8.
  const dnf = names.map((a, i) => `(attr:s${i % 6} and ${a})`).join(' or ');
  const twice = [...names, ...names].join(' and ');
  const key = abe.keygen(masterKey, [...Array.from({ length: 6 }, (_, i) => `attr:s${i}`), ...names].join(', '), { maxOccurrences: 5 });
  repeatedCase('DNF (s_(i mod 6) and a_i) or …', dnf, key);
  repeatedCase('AND, each attribute twice', twice, key);
}
repeatedCase(
  '(level >= 3 and role:a) or (level >= 5 and role:b)',
  '(level >= 3 and role:a) or (level >= 5 and role:b)',
  abe.keygen(masterKey, 'role:b, level=7', { maxOccurrences: 2 }),
);
printTable(
  'Decryption of policies that repeat attributes (warm loop, alternated with a pairing)',
  ['policy', 'leaves', 'decrypt ms', 'decrypt pairings'],
  repeatedRows,
);

// Keygen and key size against the bound K, for a typical reader (3 string attributes + 1 integer = 35 expanded).
const READER = 'role:doctor, dept:cardiology, hospital:riverside, level=3';
const boundRows: string[][] = [];
for (const K of [1, 2, 4, 8, 16]) {
  const m = alternate('pairing', { pairing, keygen: () => abe.keygen(masterKey, READER, { maxOccurrences: K }) }, { rounds: K >= 8 ? 3 : 5, blockMs: 1 });
  const bytes = abe.encodeUserKey(abe.keygen(masterKey, READER, { maxOccurrences: K })).length;
  boundRows.push([String(K), ms(m['keygen']!.ms), ratio(m['keygen']!.ratio), ratio(m['keygen']!.ratio / K), String(bytes)]);
}
{
  // The same key with every attribute hash computed afresh: what a TA pays for attributes it has never hashed.
  const m = alternate(
    'pairing',
    {
      pairing,
      cold: () => {
        clearOracleCache();
        abe.keygen(masterKey, READER);
      },
    },
    { rounds: 3, blockMs: 1 },
  );
  boundRows.push(['8, cold hash cache', ms(m['cold']!.ms), ratio(m['cold']!.ratio), ratio(m['cold']!.ratio / 8), '']);
}
printTable(
  `Keygen against the occurrence bound K (${READER}; alternated with a pairing)`,
  ['K', 'keygen ms', 'keygen pairings', 'pairings per copy', 'key bytes'],
  boundRows,
);

// STREAM payload sealing and opening against one-shot AES-256-GCM of the same bytes.
const payloadRows: string[][] = [];
for (const size of [4 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20]) {
  const record = randomBytes(size);
  const key = derivePayloadKey(randomBytes(576), headerDigest(randomBytes(100)), 'bench');
  const aad = headerDigest(randomBytes(100));
  const sealed = sealPayload(key, aad, record);
  const m = alternate(
    'aes',
    { aes: aesGcmOneShot(record), seal: () => sealPayload(key, aad, record), open: () => openPayload(key, aad, sealed) },
    { rounds: size >= 4 << 20 ? 5 : 9 },
  );
  const gbps = (t: number) => (size / 1e9 / (t / 1000)).toFixed(2);
  const label = size >= 1 << 20 ? `${size >> 20} MiB` : `${size >> 10} KiB`;
  payloadRows.push([label, gbps(m['aes']!.ms), gbps(m['seal']!.ms), ratio(m['seal']!.ratio), gbps(m['open']!.ms), ratio(m['open']!.ratio)]);
}
printTable(
  'Hybrid payload (AES-256-GCM STREAM, 64 KiB chunks) against one-shot AES-256-GCM (CPU time)',
  ['size', 'one-shot GB/s', 'seal GB/s', 'seal / one-shot', 'open GB/s', 'open / one-shot'],
  payloadRows,
);

if (wantsPlots()) {
  const svg = new URL('../docs/benchmarks/abe.svg', import.meta.url).pathname;
  await plotLines(svg, points, {
    title: 'FAME CP-ABE on BLS12-381 (mcl-wasm, one core, CPU time)',
    x: 'attributes in key / policy',
    y: 'milliseconds',
    logY: true,
  });
  console.log(`\nplot written to ${svg}`);
}
console.log(
  `\nmachine load average at the end: ${(await import('node:os'))
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
