/**
 * The peers table of docs/benchmarks.md: reads the JSON lines of bench/peers/circl/main.go (CIRCL TKN20) on stdin,
 * measures MedShare's FAME on the same cases in this process (CPU time alternated with mcl's pairing, medians of
 * rounds, as bench/lib/measure.ts), and prints one markdown table with each library's cost in its own pairings.
 * Run through bench/peers/circl.sh.
 */
import { readFileSync } from 'node:fs';
import { abe } from '@medshare/crypto';
import { alternate, ms, ratio } from '../lib/measure.ts';
import { primitiveOps } from '../lib/primitives.ts';
import { printTable } from '../lib/report.ts';

interface PeerResult {
  op: string;
  n: number;
  ms: number;
  pairings: number;
  pairingMs: number;
}

const LABELS: Record<string, string> = {
  keygen: 'keygen',
  'encrypt-and': 'encrypt AND',
  'decrypt-and': 'decrypt AND',
  'encrypt-or': 'encrypt OR',
  'decrypt-or': 'decrypt OR',
};
const circl = readFileSync(0, 'utf8')
  .trim()
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line) as PeerResult);
await abe.init();
const { pairing } = primitiveOps();
const { masterKey, publicKey } = abe.setup();
const payload = new Uint8Array(4096);
const rows: string[][] = [];
for (const n of [...new Set(circl.map((r) => r.n))]) {
  const names = Array.from({ length: n }, (_, i) => `attr:f${i}`);
  // K = 1, one component per attribute as in a TKN20 key (a default MedShare key, K = 8, holds 8 copies).
  const key = abe.keygen(masterKey, names.join(', '), { maxOccurrences: 1 });
  const cts = { and: abe.encrypt(publicKey, names.join(' and '), payload), or: abe.encrypt(publicKey, names.join(' or '), payload) };
  const ours = alternate('pairing', {
    pairing,
    keygen: () => abe.keygen(masterKey, names.join(', '), { maxOccurrences: 1 }),
    'encrypt-and': () => abe.encrypt(publicKey, names.join(' and '), payload),
    'decrypt-and': () => abe.decrypt(key, cts.and),
    'encrypt-or': () => abe.encrypt(publicKey, names.join(' or '), payload),
    'decrypt-or': () => abe.decrypt(key, cts.or),
  });
  for (const peer of circl.filter((r) => r.n === n)) {
    const mine = ours[peer.op]!;
    rows.push([LABELS[peer.op] ?? peer.op, String(n), ms(mine.ms), ratio(mine.ratio), ms(peer.ms), ratio(peer.pairings), ratio(peer.pairings / mine.ratio)]);
  }
  rows.push(['pairing (reference)', String(n), ms(ours['pairing']!.ms), '1.00', ms(circl.find((r) => r.n === n)!.pairingMs), '1.00', '']);
}
printTable(
  'MedShare FAME (mcl-wasm) against CIRCL TKN20 (Go), each in its own pairings, 4 KiB messages',
  ['operation', 'attributes', 'MedShare ms', 'MedShare pairings', 'CIRCL ms', 'CIRCL pairings', 'CIRCL / MedShare (pairings)'],
  rows,
);
