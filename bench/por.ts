/**
 * Proofs of storage (issue 17): Shacham–Waters tags with s = 32 sectors (992-byte blocks). Tagging one MiB at the
 * gateway and checking those tags at the cloud; the cloud's proof and the auditor's verification for challenges of
 * c = 460 blocks over 10, 1,000 and 10,000 records of 3 hospitals; tag storage overhead and proof sizes. Every
 * figure is CPU time (median), alternated in the same process with a pairing and a G1 multiplication and given as
 * a ratio to them.
 *
 *   node --import tsx bench/por.ts            (ROUNDS=5 by default)
 */
import { randomBytes } from 'node:crypto';
import { curve, por } from '@medshare/crypto';
import { cpuAlternating, ratio } from './lib/measure.ts';
import { printTable } from './lib/report.ts';

const ROUNDS = Number(process.env['ROUNDS'] ?? 5);
const SAMPLES = 460;
const HOSPITALS = 3;
const MIB = 1 << 20;
/** Records in the challenge benchmarks: 900 bytes each, one block (a FHIR Observation's ciphertext is ~1-2 KB). */
const RECORD_BYTES = 900;

await curve.initCurve();
const p = curve.g1Mul(curve.g1Generator(), curve.randomFr());
const q = curve.g2Mul(curve.g2Generator(), curve.randomFr());
const k = curve.randomFr();
const keys = Array.from({ length: HOSPITALS }, () => por.generateKey());
const publicKeys = keys.map((x) => x.publicKey);
const reference = { pairing: () => curve.pairing(p, q), g1Mul: () => curve.g1Mul(p, k) };

// Tagging one MiB.
const mib = new Uint8Array(randomBytes(MIB));
const mibName = new TextEncoder().encode('one-mebibyte');
const mibTags = por.tagFile(keys[0]!, mibName, mib);
const record2k = mib.subarray(0, 2048);
const perMib = cpuAlternating(
  {
    ...reference,
    tag2KiB: () => por.tagFile(keys[0]!, mibName, record2k),
    tagMiB: () => por.tagFile(keys[0]!, mibName, mib),
    checkMiB: () => {
      if (!por.verifyTagSet(publicKeys[0]!, mibName, mib, mibTags)) throw new Error('tags do not verify');
    },
  },
  Math.max(3, Math.floor(ROUNDS / 2)),
);
const pr = (x: number) => ratio(x / perMib['pairing']!);
const mu = (x: number) => ratio(x / perMib['g1Mul']!);
printTable(
  `Tagging (s = ${por.DEFAULT_SECTORS}, ${por.blockCount(MIB)} blocks per MiB; CPU ms, medians)`,
  ['step', 'ms', 'pairings', 'G1 muls'],
  [
    ['pairing', perMib['pairing']!.toFixed(3), '1.00', mu(perMib['pairing']!)],
    ['G1 scalar multiplication', perMib['g1Mul']!.toFixed(3), pr(perMib['g1Mul']!), '1.00'],
    ['gateway: tag one 2 KiB record (3 blocks)', perMib['tag2KiB']!.toFixed(2), pr(perMib['tag2KiB']!), mu(perMib['tag2KiB']!)],
    ['gateway: tag 1 MiB of ciphertext', perMib['tagMiB']!.toFixed(0), pr(perMib['tagMiB']!), mu(perMib['tagMiB']!)],
    ['cloud: check the tags of 1 MiB at upload', perMib['checkMiB']!.toFixed(0), pr(perMib['checkMiB']!), mu(perMib['checkMiB']!)],
  ],
);
const tagBytes = por.encodeTagSet(mibTags).length;
console.log(
  `tag storage: ${tagBytes} bytes per MiB = ${((100 * tagBytes) / MIB).toFixed(2)} % (48 bytes per ${por.DEFAULT_SECTORS * por.SECTOR_BYTES}-byte block + 6 per record)`,
);
const small = por.encodeTagSet(por.tagFile(keys[0]!, mibName, mib.subarray(0, RECORD_BYTES))).length;
console.log(`a ${RECORD_BYTES}-byte record: ${small} bytes of tags = ${((100 * small) / RECORD_BYTES).toFixed(1)} %`);

// The verifier's multi-exponentiation with full-size and with 128-bit coefficients (c hashes plus 3 × 32 u-terms).
const msmPoints = Array.from({ length: SAMPLES + 96 }, (_, i) => curve.hashToG1(new TextEncoder().encode(`p${i}`), 'MEDSHARE-BENCH'));
const fullScalars = msmPoints.map(() => curve.randomFr());
const shortScalars = msmPoints.map(() => curve.frFromBigInt(BigInt('0x' + randomBytes(16).toString('hex'))));
const msm = cpuAlternating(
  {
    ...reference,
    full: () => curve.msmG1(msmPoints, fullScalars),
    short: () => curve.msmG1(msmPoints, shortScalars),
  },
  ROUNDS,
);
console.log(
  `multi-exponentiation of ${msmPoints.length} terms in G1: full scalars ${ratio(msm['full']! / msm['pairing']!)} pairings, 128-bit scalars ${ratio(msm['short']! / msm['pairing']!)} pairings`,
);

// Challenges over many records.
const rows: string[][] = [];
const largest = 10_000;
process.stderr.write(`tagging ${largest} records...\n`);
const records = Array.from({ length: largest }, (_, i) => {
  const data = new Uint8Array(randomBytes(RECORD_BYTES));
  const name = new TextEncoder().encode(`record-${i}`);
  return { name, data, key: i % HOSPITALS, tags: por.tagFile(keys[i % HOSPITALS]!, name, data) };
});
for (const n of [10, 1_000, 10_000]) {
  const set = records.slice(0, n);
  const challenge = (): por.Challenge => ({
    nonce: por.freshNonce(),
    sectors: por.DEFAULT_SECTORS,
    keys: HOSPITALS,
    samples: SAMPLES,
    files: set.map((r) => ({ name: r.name, blocks: r.tags.tags.length, key: r.key })),
  });
  const stored = set.map((r) => ({ data: r.data, tags: r.tags }));
  const fixed = challenge();
  const proof = por.prove(fixed, stored) as por.AggregateProof;
  if (!por.verifyAggregate(fixed, publicKeys, proof)) throw new Error('honest proof fails');
  const sampled = por.expandChallenge(fixed).length;
  const ms = cpuAlternating(
    {
      ...reference,
      prove: () => por.prove(fixed, stored),
      verify: () => por.verifyAggregate(fixed, publicKeys, proof),
      hashes: () => {
        for (const s of por.expandChallenge(fixed)) curve.hashToG1(new Uint8Array([s.block, s.file & 0xff, s.file >> 8]), 'MEDSHARE-BENCH');
      },
    },
    ROUNDS,
  );
  const size = por.encodeProof(proof).length;
  rows.push([
    n.toLocaleString('en'),
    String(sampled),
    ms['pairing']!.toFixed(2),
    ms['g1Mul']!.toFixed(3),
    ms['prove']!.toFixed(0),
    ratio(ms['prove']! / ms['pairing']!),
    ms['verify']!.toFixed(0),
    ratio(ms['verify']! / ms['pairing']!),
    ratio(ms['hashes']! / ms['pairing']!),
    ratio((ms['verify']! - ms['hashes']!) / ms['pairing']!),
    String(size),
  ]);
}
printTable(
  `Challenge of c = ${SAMPLES} blocks over records of ${HOSPITALS} hospitals (CPU ms, medians of ${ROUNDS})`,
  [
    'records',
    'blocks sampled',
    'pairing ms',
    'G1 mul ms',
    'cloud: prove ms',
    'pairings',
    'auditor: verify ms',
    'pairings',
    'of which hashing c blocks to G1',
    'rest: multi-exp + multi-pairing',
    'proof bytes',
  ],
  rows,
);
console.log(
  `the verification's pairing part: one multi-pairing of ${HOSPITALS + 1} pairs (${HOSPITALS + 1} Miller loops, one final exponentiation), whatever the number of records`,
);
