/**
 * STREAM payload sealing and opening (packages/crypto/src/hybrid/stream.ts) against one-shot AES-256-GCM of the same
 * bytes, 4 KiB to 16 MiB: CPU time, each operation alternated in blocks with the reference in the same process,
 * medians of rounds (bench/lib/measure.ts). "seal, pieces" is what a streaming writer pays (the sealed chunks handed
 * out, not joined); "seal" and "open" return one buffer, as the in-memory API does.
 *
 *   node --import tsx bench/stream.ts [rounds=9]
 */
import { randomBytes } from 'node:crypto';
import { derivePayloadKey, headerDigest, openPayload, PayloadSealer, sealPayload } from '../packages/crypto/src/hybrid/stream.ts';
import { alternate, ratio } from './lib/measure.ts';
import { aesGcmOneShot } from './lib/primitives.ts';
import { printTable } from './lib/report.ts';

const ROUNDS = Number(process.argv[2] ?? 9);
const rows: string[][] = [];
for (const size of [4 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20]) {
  const record = randomBytes(size);
  const key = derivePayloadKey(randomBytes(576), headerDigest(randomBytes(100)), 'bench');
  const aad = headerDigest(randomBytes(100));
  const sealed = sealPayload(key, aad, record);
  const pieces = () => new PayloadSealer(key, aad).end(record);
  const m = alternate(
    'aes',
    { aes: aesGcmOneShot(record), seal: () => sealPayload(key, aad, record), pieces, open: () => openPayload(key, aad, sealed) },
    { rounds: ROUNDS },
  );
  const gbps = (t: number) => (size / 1e9 / (t / 1000)).toFixed(2);
  const label = size >= 1 << 20 ? `${size >> 20} MiB` : `${size >> 10} KiB`;
  rows.push([label, gbps(m['aes']!.ms), ratio(m['seal']!.ratio), ratio(m['pieces']!.ratio), ratio(m['open']!.ratio)]);
}
printTable(
  `STREAM (AES-256-GCM, 64 KiB chunks) ÷ one-shot AES-256-GCM of the same bytes (CPU time, medians of ${ROUNDS} rounds)`,
  ['size', 'one-shot GB/s', 'seal (joined)', 'seal, pieces', 'open (joined)'],
  rows,
);
