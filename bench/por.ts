/**
 * Proofs of storage (issue 17): KZG chunk commitments (Kate–Zaverucha–Goldberg, ASIACRYPT 2010) over the Ethereum
 * ceremony SRS, D = 1,024 sectors of 31 bytes per chunk by default. Tagging one MiB at the gateway and the cloud's
 * upload check of it; the chunk size against tagging and proving cost; the cloud's proof and the auditor's
 * verification (with its split: hashing the served tag sets, decoding the sampled commitments, the
 * multi-exponentiation, the two-pair multi-pairing) for challenges of c = 460 chunks over 10, 1,000 and 10,000
 * records; tag overhead and proof sizes. Every figure is CPU time (process.cpuUsage, median), alternated in the
 * same rounds with a pairing and a G1 multiplication and given as a ratio to them.
 *
 *   node --import tsx bench/por.ts            (ROUNDS=5 by default)
 */
import { createHash, randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { curve, por } from '@medshare/crypto';
import { cpuAlternating, ratio } from './lib/measure.ts';
import { printTable } from './lib/report.ts';

const ROUNDS = Number(process.env['ROUNDS'] ?? 5);
const SAMPLES = 460;
const MIB = 1 << 20;
/** Records in the challenge benchmarks: 900 bytes each, one chunk (a FHIR Observation's ciphertext is ~1-2 KB). */
const RECORD_BYTES = 900;
const D = por.DEFAULT_CHUNK_SECTORS;

await curve.initCurve();
console.log(
  `load average at start: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
const p = curve.g1Mul(curve.g1Generator(), curve.randomFr());
const q = curve.g2Mul(curve.g2Generator(), curve.randomFr());
const k = curve.randomFr();
const reference = { pairing: () => curve.pairing(p, q), g1Mul: () => curve.g1Mul(p, k) };
const sha = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
// Decode every power of τ once, so that no measured step pays the SRS's lazy decoding.
const srsStart = process.cpuUsage();
for (let i = 0; i < por.MAX_CHUNK_SECTORS; i++) por.srsPower(i);
const srsUsage = process.cpuUsage(srsStart);
console.log(`decoding the ${por.MAX_CHUNK_SECTORS} powers of τ (once per process, lazily): ${((srsUsage.user + srsUsage.system) / 1000).toFixed(0)} ms CPU`);

// Tagging one MiB, and the cloud's check of it at upload.
const mib = new Uint8Array(randomBytes(MIB));
const mibTags = por.encodeTagSet(por.commitChunks(mib, D));
const record2k = mib.subarray(0, 2048);
const perMib = cpuAlternating(
  {
    ...reference,
    tag2KiB: () => por.commitChunks(record2k, D),
    tagMiB: () => por.commitChunks(mib, D),
    checkMiB: () => {
      if (!por.verifyTagSets([{ data: mib, tags: por.decodeTagSet(mibTags) }])) throw new Error('tags do not verify');
    },
  },
  Math.max(3, Math.floor(ROUNDS / 2)),
);
const pr = (x: number, m = perMib) => ratio(x / m['pairing']!);
const mu = (x: number, m = perMib) => ratio(x / m['g1Mul']!);
printTable(
  `Tagging (D = ${D} sectors, ${por.chunkCount(MIB, D)} chunks per MiB; CPU ms, medians)`,
  ['step', 'ms', 'pairings', 'G1 muls'],
  [
    ['pairing', perMib['pairing']!.toFixed(3), '1.00', mu(perMib['pairing']!)],
    ['G1 scalar multiplication', perMib['g1Mul']!.toFixed(3), pr(perMib['g1Mul']!), '1.00'],
    ['gateway: tag one 2 KiB record (1 chunk, 67 sectors)', perMib['tag2KiB']!.toFixed(2), pr(perMib['tag2KiB']!), mu(perMib['tag2KiB']!)],
    ['gateway: tag 1 MiB of ciphertext', perMib['tagMiB']!.toFixed(0), pr(perMib['tagMiB']!), mu(perMib['tagMiB']!)],
    [
      'cloud: check the tags of 1 MiB at upload (decode with subgroup checks + batch check)',
      perMib['checkMiB']!.toFixed(0),
      pr(perMib['checkMiB']!),
      mu(perMib['checkMiB']!),
    ],
  ],
);
console.log(
  `tag storage: ${mibTags.length} bytes per MiB = ${((100 * mibTags.length) / MIB).toFixed(3)} % (96 bytes per ${D * por.SECTOR_BYTES}-byte chunk + 7 per record)`,
);
const small = por.encodeTagSet(por.commitChunks(mib.subarray(0, RECORD_BYTES), D)).length;
console.log(`a ${RECORD_BYTES}-byte record: ${small} bytes of tags = ${((100 * small) / RECORD_BYTES).toFixed(1)} %`);

// The chunk size D: tagging cost per MiB, the cloud's proof over c = 460 full chunks, the overhead.
const sizes = [256, 1024, 4096];
const full = sizes.map((d) => {
  const data = new Uint8Array(randomBytes(SAMPLES * d * por.SECTOR_BYTES));
  const files = Array.from({ length: SAMPLES }, (_, i) => ({ name: new TextEncoder().encode(`c${i}`), chunks: 1 }));
  const stored = Array.from({ length: SAMPLES }, (_, i) => ({
    data: data.subarray(i * d * por.SECTOR_BYTES, (i + 1) * d * por.SECTOR_BYTES),
    chunkSectors: d,
  }));
  return { d, challenge: { nonce: por.freshNonce(), samples: SAMPLES, files }, stored };
});
const bySize = cpuAlternating(
  {
    ...reference,
    ...Object.fromEntries(sizes.map((d) => [`tag${d}`, () => por.commitChunks(mib, d)])),
    ...Object.fromEntries(full.map((f) => [`prove${f.d}`, () => por.prove(f.challenge, f.stored)])),
  },
  Math.max(3, Math.floor(ROUNDS / 2)),
);
printTable(
  `Chunk size D (CPU ms, medians): tagging 1 MiB, and the cloud's proof when all c = ${SAMPLES} sampled chunks are full`,
  ['D', 'chunk bytes', 'tag overhead', 'tag 1 MiB ms', 'pairings', 'prove 460 full chunks ms', 'pairings'],
  sizes.map((d) => [
    String(d),
    String(d * por.SECTOR_BYTES),
    `${((100 * por.POINT_BYTES) / (d * por.SECTOR_BYTES)).toFixed(3)} %`,
    bySize[`tag${d}`]!.toFixed(0),
    pr(bySize[`tag${d}`]!, bySize),
    bySize[`prove${d}`]!.toFixed(0),
    pr(bySize[`prove${d}`]!, bySize),
  ]),
);

// Challenges over many records.
const rows: string[][] = [];
const split: string[][] = [];
const largest = 10_000;
process.stderr.write(`tagging ${largest} records...\n`);
const records = Array.from({ length: largest }, (_, i) => {
  const data = new Uint8Array(randomBytes(RECORD_BYTES));
  const tags = por.encodeTagSet(por.commitChunks(data, D));
  return { name: new TextEncoder().encode(`record-${i}`), data, tags, hash: sha(tags) };
});
for (const n of [10, 1_000, 10_000]) {
  const set = records.slice(0, n);
  const challenge: por.Challenge = { nonce: por.freshNonce(), samples: SAMPLES, files: set.map((r) => ({ name: r.name, chunks: 1 })) };
  const stored = set.map((r) => ({ data: r.data, chunkSectors: D }));
  const proofBytes = por.encodeProof(por.prove(challenge, stored));
  const { samples, point } = por.expandChallenge(challenge);
  /** The auditor's whole check: expand, hash the served tag sets against the ledger, decode, verify. */
  const verify = () => {
    const expanded = por.expandChallenge(challenge);
    const commitments = expanded.samples.map((s) => {
      const served = set[s.file]!;
      if (sha(served.tags) !== served.hash) throw new Error('tag set does not match');
      return por.decodeCommitmentsAt(served.tags, [s.chunk])[0]!;
    });
    const proof = por.decodeProof(proofBytes, challenge) as por.AggregateProof;
    return por.verifyAggregate(challenge, commitments, proof, expanded);
  };
  if (!verify()) throw new Error('honest proof fails');
  const commitments = samples.map((s) => por.decodeCommitmentsAt(set[s.file]!.tags, [s.chunk])[0]!);
  const proof = por.decodeProof(proofBytes, challenge) as por.AggregateProof;
  const fr = (x: bigint) => curve.frFromBigInt(x);
  const msmPoints = [...commitments, curve.g1Generator(), proof.pi];
  const msmScalars = [...samples.map((s) => s.weightScalar), fr(-proof.y), fr(point)];
  const shortPoints = commitments;
  const shortScalars = samples.map((s) => s.weightScalar);
  const lhs = curve.msmG1(msmPoints, msmScalars);
  const ms = cpuAlternating(
    {
      ...reference,
      prove: () => por.prove(challenge, stored),
      verify,
      expand: () => por.expandChallenge(challenge),
      hashTagSets: () => samples.forEach((s) => sha(set[s.file]!.tags)),
      decode: () => samples.forEach((s) => por.decodeCommitmentsAt(set[s.file]!.tags, [s.chunk])),
      msm: () => curve.msmG1(msmPoints, msmScalars),
      msmSplit: () => curve.g1Add(curve.msmG1(shortPoints, shortScalars), curve.msmG1([curve.g1Generator(), proof.pi], [fr(-proof.y), fr(point)])),
      pairings: () => curve.multiPairing([lhs, curve.g1Neg(proof.pi)], [curve.g2Generator(), por.srsTauG2()]),
    },
    ROUNDS,
  );
  const x = (name: string) => ratio(ms[name]! / ms['pairing']!);
  rows.push([
    n.toLocaleString('en'),
    String(samples.length),
    ms['pairing']!.toFixed(2),
    ms['g1Mul']!.toFixed(3),
    ms['prove']!.toFixed(0),
    x('prove'),
    ms['verify']!.toFixed(1),
    x('verify'),
    String(proofBytes.length),
  ]);
  split.push([n.toLocaleString('en'), x('expand'), x('hashTagSets'), x('decode'), x('msm'), x('msmSplit'), x('pairings'), x('verify')]);
}
printTable(
  `Challenge of c = ${SAMPLES} chunks over ${RECORD_BYTES}-byte records (CPU ms, medians of ${ROUNDS})`,
  ['records', 'chunks sampled', 'pairing ms', 'G1 mul ms', 'cloud: prove ms', 'pairings', 'auditor: verify ms', 'pairings', 'proof bytes'],
  rows,
);
printTable(
  "The auditor's verification, split (pairing-equivalents)",
  [
    'records',
    'expand challenge',
    'hash served tag sets',
    'decode c commitments (on curve) + π',
    'multi-exp: one MSM of c + 2 terms',
    '(alternative: c-term 128-bit MSM + 2-term MSM)',
    'multi-pairing (2 pairs)',
    'total verify',
  ],
  split,
);
console.log(
  `load average at end: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
