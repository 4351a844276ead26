/**
 * The pairing-group primitives, measured in the same run as every scheme benchmark so results read as
 * ratios ("3.1 pairings") that hold on a noisy or slower machine.
 */
import { curve } from '@medshare/crypto';
import { timeIt } from './measure.ts';

export interface Primitives {
  pairing: number;
  millerLoop: number;
  finalExp: number;
  multiPairing6: number;
  g1Mul: number;
  g2Mul: number;
  gtExp: number;
  hashToG1: number;
}

/** Measures each primitive (median milliseconds). Call after curve.initCurve(). */
export function measurePrimitives(): Primitives {
  const p = curve.g1Mul(curve.g1Generator(), curve.randomFr());
  const q = curve.g2Mul(curve.g2Generator(), curve.randomFr());
  const k = curve.randomFr();
  const x = curve.pairing(p, q);
  const f = curve.millerLoop(p, q);
  const ps = Array.from({ length: 6 }, () => curve.g1Mul(p, curve.randomFr()));
  const qs = Array.from({ length: 6 }, () => curve.g2Mul(q, curve.randomFr()));
  let counter = 0;
  return {
    pairing: timeIt(() => curve.pairing(p, q)),
    millerLoop: timeIt(() => curve.millerLoop(p, q)),
    finalExp: timeIt(() => curve.finalExp(f)),
    multiPairing6: timeIt(() => curve.multiPairing(ps, qs)),
    g1Mul: timeIt(() => curve.g1Mul(p, k)),
    g2Mul: timeIt(() => curve.g2Mul(q, k)),
    gtExp: timeIt(() => curve.gtPow(x, k)),
    hashToG1: timeIt(() => curve.hashToG1(new TextEncoder().encode(`attribute-${counter++}`), 'MEDSHARE-BENCH')),
  };
}

/** Markdown rows for the primitives table. */
export function primitiveRows(p: Primitives): string[][] {
  return [
    ['pairing e(P,Q)', p.pairing, 1],
    ['Miller loop', p.millerLoop, p.millerLoop / p.pairing],
    ['final exponentiation', p.finalExp, p.finalExp / p.pairing],
    ['multi-pairing, 6 pairs', p.multiPairing6, p.multiPairing6 / p.pairing],
    ['G1 scalar multiplication', p.g1Mul, p.g1Mul / p.pairing],
    ['G2 scalar multiplication', p.g2Mul, p.g2Mul / p.pairing],
    ['GT exponentiation', p.gtExp, p.gtExp / p.pairing],
    ['hash to G1 (RFC 9380)', p.hashToG1, p.hashToG1 / p.pairing],
  ].map(([name, t, r]) => [name as string, (t as number).toFixed(3), (r as number).toFixed(2)]);
}
