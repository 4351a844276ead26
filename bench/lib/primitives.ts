/**
 * The pairing-group (and AES) reference primitives, measured alternated with a pairing in the same run as every
 * scheme benchmark, so results read as ratios ("3.1 pairings") that hold on a noisy or slower machine.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { curve } from '@medshare/crypto';
import { alternate, type AlternateOptions, type Measured } from './measure.ts';

export type PrimitiveName = 'pairing' | 'millerLoop' | 'finalExp' | 'multiPairing6' | 'g1Mul' | 'g2Mul' | 'gtExp' | 'hashToG1';
export type Primitives = Record<PrimitiveName, Measured>;

/** The operations, on random inputs, as closures for `alternate` (call after curve.initCurve()). */
export function primitiveOps(): Record<PrimitiveName, () => unknown> {
  const p = curve.g1Mul(curve.g1Generator(), curve.randomFr());
  const q = curve.g2Mul(curve.g2Generator(), curve.randomFr());
  const k = curve.randomFr();
  const x = curve.pairing(p, q);
  const f = curve.millerLoop(p, q);
  const ps = Array.from({ length: 6 }, () => curve.g1Mul(p, curve.randomFr()));
  const qs = Array.from({ length: 6 }, () => curve.g2Mul(q, curve.randomFr()));
  let counter = 0;
  return {
    pairing: () => curve.pairing(p, q),
    millerLoop: () => curve.millerLoop(p, q),
    finalExp: () => curve.finalExp(f),
    multiPairing6: () => curve.multiPairing(ps, qs),
    g1Mul: () => curve.g1Mul(p, k),
    g2Mul: () => curve.g2Mul(q, k),
    gtExp: () => curve.gtPow(x, k),
    hashToG1: () => curve.hashToG1(new TextEncoder().encode(`attribute-${counter++}`), 'MEDSHARE-BENCH'),
  };
}

/** Measures each primitive alternated with the pairing (CPU time, medians of rounds). */
export function measurePrimitives(options: AlternateOptions = {}): Primitives {
  return alternate('pairing', primitiveOps(), options) as Primitives;
}

/** One-shot AES-256-GCM over `bytes` (fresh key and nonce setup included): the reference for payload throughput. */
export function aesGcmOneShot(bytes: Uint8Array): () => unknown {
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  return () => {
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    const out = cipher.update(bytes);
    cipher.final();
    return [out, cipher.getAuthTag()];
  };
}

/** Markdown rows for the primitives table. */
export function primitiveRows(p: Primitives): string[][] {
  const rows: Array<[string, PrimitiveName]> = [
    ['pairing e(P,Q)', 'pairing'],
    ['Miller loop', 'millerLoop'],
    ['final exponentiation', 'finalExp'],
    ['multi-pairing, 6 pairs', 'multiPairing6'],
    ['G1 scalar multiplication', 'g1Mul'],
    ['G2 scalar multiplication', 'g2Mul'],
    ['GT exponentiation', 'gtExp'],
    ['hash to G1 (RFC 9380)', 'hashToG1'],
  ];
  return rows.map(([label, name]) => [label, p[name].ms.toFixed(3), p[name].ratio.toFixed(2)]);
}
