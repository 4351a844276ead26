/**
 * Cross-hospital statistics benchmark (issue 18): a 1,000-cell histogram under threshold exponential ElGamal on
 * BLS12-381 G1 — one hospital encrypting, the cloud adding 10 hospitals' ciphertexts, t = 6 of n = 10 hospitals
 * decrypting with proofs, the proofs checked, the totals combined and decoded — in G1-multiplication equivalents
 * per cell, with 100 G1 multiplications and a pairing measured alternately in the same process (CPU time,
 * medians). Then BFV from node-seal 6.0.3 (Microsoft SEAL) on the same workload: one key holder, no threshold.
 *
 *   node --import tsx bench/stats.ts            (ROUNDS=3 by default)
 */
import { curve, threshold } from '@medshare/crypto';
import { alternate, ratio } from './lib/measure.ts';

/** CPU ms per call of each operation, alternated with the pairing (medians of `rounds`). */
const cpuTimes = (ops: Record<string, () => unknown>, rounds: number): Record<string, number> =>
  Object.fromEntries(Object.entries(alternate('pairing', ops, { rounds })).map(([name, m]) => [name, m.ms]));
import { printTable } from './lib/report.ts';

const CELLS = 1000;
const HOSPITALS = 10;
const T = 6;
const ROUNDS = Number(process.env['ROUNDS'] ?? 3);

await curve.initCurve();
const g = curve.g1Generator();
const k = curve.randomFr();
const p = curve.g1Mul(g, curve.randomFr());
const q = curve.g2Mul(curve.g2Generator(), curve.randomFr());

const dkg = threshold.runDkg({ n: HOSPITALS, t: T });
const pk = dkg.publicKey;
const histograms = Array.from({ length: HOSPITALS }, () => Array.from({ length: CELLS }, () => Math.floor(Math.random() * 200) - 5));
const cts = histograms.map((h) => threshold.encrypt(pk, h));
const encoded = cts.map(threshold.encodeCiphertext);
const total = threshold.addCiphertexts(cts[0]!, ...cts.slice(1));
const partials = Array.from({ length: T }, (_, j) => threshold.partialDecrypt(dkg.shares[j]!, pk.verificationKeys[j]!, total));
const expected = histograms[0]!.map((_, c) => histograms.reduce((a, h) => a + BigInt(h[c]!), 0n));
const check = threshold.combine(pk, total, partials);
if (check.values.some((v, c) => v !== expected[c])) throw new Error('benchmark totals are wrong');
threshold.decodeSmall(g); // builds the baby-step table outside the measurement
// Range proofs (16 bits per count cell, as the service proves them) on 100 cells, scaled to 1,000 in the table:
// the cost is linear in the cells, and 1,000 would make each round minutes long.
const RANGE_CELLS = 100;
const RANGE_BITS = 16;
const rangeValues = histograms[0]!.slice(0, RANGE_CELLS);
const rangeWidths = new Array<number>(RANGE_CELLS).fill(RANGE_BITS);
const rangeContext = new TextEncoder().encode('bench');
const proven = threshold.encryptInRange(pk, rangeValues, rangeWidths, rangeContext);
if (threshold.rangeFailures(pk, proven.ciphertext, proven.proof, rangeContext).length > 0) throw new Error('benchmark range proof fails');

const ms = cpuTimes(
  {
    g1Mul100: () => {
      for (let i = 0; i < 100; i++) curve.g1Mul(p, k);
    },
    pairing: () => curve.pairing(p, q),
    encrypt: () => threshold.encrypt(pk, histograms[0]!),
    encode: () => threshold.encodeCiphertext(cts[0]!),
    decodeChecked: () => threshold.decodeCiphertext(encoded[0]!),
    aggregate: () => threshold.addCiphertexts(cts[0]!, ...cts.slice(1)),
    partial: () => threshold.partialDecrypt(dkg.shares[0]!, pk.verificationKeys[0]!, total),
    verify: () => threshold.verifyPartial(pk, total, partials[0]!),
    combineDecode: () => threshold.combineUnchecked(total, partials),
    rangeProve: () => threshold.encryptInRange(pk, rangeValues, rangeWidths, rangeContext),
    rangeVerify: () => threshold.rangeFailures(pk, proven.ciphertext, proven.proof, rangeContext),
  },
  ROUNDS,
);
const mul = ms['g1Mul100']! / 100;
const perCell = (x: number) => ratio(x / CELLS / mul);
const row = (name: string, t: number, times = 1): string[] => [name, (t * times).toFixed(0), ratio((t * times) / ms['pairing']!), perCell(t * times)];
printTable(
  `Threshold ElGamal, ${CELLS}-cell histogram, ${HOSPITALS} hospitals, t = ${T} (CPU ms, medians of ${ROUNDS})`,
  ['step', 'ms', 'pairings', 'G1 muls per cell'],
  [
    ['G1 scalar multiplication', mul.toFixed(3), ratio(mul / ms['pairing']!), '—'],
    ['pairing', ms['pairing']!.toFixed(3), '1.00', '—'],
    row('one hospital: encrypt 1,000 cells', ms['encrypt']!),
    row(`one hospital: encrypt 1,000 cells with ${RANGE_BITS}-bit range proofs (×10 of ${RANGE_CELLS} cells)`, ms['rangeProve']!, CELLS / RANGE_CELLS),
    row(`cloud: verify one contribution's range proofs (×10 of ${RANGE_CELLS} cells)`, ms['rangeVerify']!, CELLS / RANGE_CELLS),
    row('cloud: decode + subgroup-check one contribution', ms['decodeChecked']!),
    row("cloud: add 10 hospitals' ciphertexts", ms['aggregate']!),
    row('one hospital: partial decryption with its proof', ms['partial']!),
    row("verify one partial's proof", ms['verify']!),
    row('combine t partials (Lagrange) and decode (BSGS)', ms['combineDecode']!),
    row(`whole release: ${T} partials + ${T} verifications + combine/decode`, ms['partial']! * T + ms['verify']! * T + ms['combineDecode']!),
  ],
);
console.log(`range proof: ${threshold.encodeRangeProof(proven.proof).length} bytes for ${RANGE_CELLS} cells of ${RANGE_BITS} bits`);
console.log(
  `ciphertext: ${encoded[0]!.length} bytes for ${CELLS} cells (${(encoded[0]!.length / CELLS).toFixed(0)} B/cell); partial: ${threshold.encodePartial(partials[0]!).length} bytes`,
);

// BFV (node-seal 6.0.3, SEAL 3.x compiled to wasm): the same 1,000 counters batched into one ciphertext.
try {
  // node-seal's types describe its browser build; under Node its default export is the factory.
  const factory = (await import('node-seal')).default as unknown as (typeof import('node-seal'))['default'];
  const seal = await factory();
  const degree = 4096;
  const parms = seal.EncryptionParameters(seal.SchemeType.bfv);
  parms.setPolyModulusDegree(degree);
  parms.setCoeffModulus(seal.CoeffModulus.BFVDefault(degree, seal.SecurityLevel.tc128));
  parms.setPlainModulus(seal.PlainModulus.Batching(degree, 20));
  const context = seal.Context(parms, true, seal.SecurityLevel.tc128);
  const keys = seal.KeyGenerator(context);
  const encoder = seal.BatchEncoder(context);
  const encryptor = seal.Encryptor(context, keys.createPublicKey());
  const decryptor = seal.Decryptor(context, keys.secretKey());
  const evaluator = seal.Evaluator(context);
  const slots = (h: number[]) => Int32Array.from({ length: encoder.slotCount }, (_, i) => h[i] ?? 0);
  const bfvEncrypt = (h: number[]) => encryptor.encrypt(encoder.encode(slots(h)) as never)!;
  const bfvCts = histograms.map(bfvEncrypt);
  const bfvTotal = () => {
    const out = bfvCts[0]!.clone();
    for (const c of bfvCts.slice(1)) evaluator.add(out, c, out);
    return out;
  };
  const summed = bfvTotal();
  const decoded = encoder.decode(decryptor.decrypt(summed) as never, true) as Int32Array;
  if (expected.some((v, c) => BigInt(decoded[c]!) !== v)) throw new Error('BFV totals are wrong');
  const b = cpuTimes(
    {
      g1Mul100: () => {
        for (let i = 0; i < 100; i++) curve.g1Mul(p, k);
      },
      pairing: () => curve.pairing(p, q),
      encrypt: () => bfvEncrypt(histograms[0]!).delete(),
      aggregate: () => bfvTotal().delete(),
      decrypt: () => encoder.decode(decryptor.decrypt(summed) as never, true),
    },
    Math.max(ROUNDS, 5),
  );
  const bmul = b['g1Mul100']! / 100;
  const brow = (name: string, t: number): string[] => [name, t.toFixed(2), ratio(t / b['pairing']!), ratio(t / CELLS / bmul)];
  printTable(
    `BFV (node-seal 6.0.3, n = ${degree}, ${encoder.slotCount} slots, 128-bit), the same ${CELLS} counters in one ciphertext (CPU ms)`,
    ['step', 'ms', 'pairings', 'G1 muls per cell'],
    [
      brow('one hospital: encrypt 1,000 cells', b['encrypt']!),
      brow("cloud: add 10 hospitals' ciphertexts", b['aggregate']!),
      brow('the key holder: decrypt and decode (no threshold in SEAL)', b['decrypt']!),
    ],
  );
  console.log(
    `BFV ciphertext: ${summed.save().length} characters base64 (${((summed.save().length * 0.75) / 1024).toFixed(0)} KiB) for up to ${encoder.slotCount} cells`,
  );
} catch (error) {
  console.log(`BFV not measured: ${(error as Error).message}`);
}
