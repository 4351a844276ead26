/**
 * Distributed discrete Laplace noise. The discrete Laplace (two-sided geometric) mechanism of Ghosh, Roughgarden
 * and Sundararajan ("Universally Utility-Maximizing Privacy Mechanisms", STOC 2009) adds Z with
 * P(Z = k) ∝ α^|k|, α = exp(−ε/Δ), which is ε-differentially private for an integer query of L1 sensitivity Δ.
 *
 * Z is the difference of two Geometric(1 − α) variables, and a geometric variable is infinitely divisible: it is
 * the sum of h independent Pólya (negative binomial) variables NB(1/h, α). So each of n hospitals adds, in every
 * cell, its share NB(1/h, α) − NB(1/h, α); any h honest hospitals' shares alone sum to a full discrete Laplace
 * (Goryczka and Xiong, "A Comprehensive Comparison of Multiparty Secure Additions with Differential Privacy",
 * IEEE TDSC 14(5), 2017, § 5.2). We take h = n − t + 1: with at most t − 1 hospitals colluding (the threshold
 * assumption of the key) at least h honest shares are in every total, so subtracting the colluders' own shares
 * leaves at least the noise ε promises. The released total carries n/h times that variance, the price of not
 * trusting anyone with the noise.
 *
 * NB(r, α) is sampled as Poisson(Gamma(r, α/(1 − α))) (the Gamma–Poisson mixture), Gamma by Marsaglia and Tsang
 * ("A Simple Method for Generating Gamma Variables", ACM TOMS 26(3), 2000) with the U^{1/r} boost for r < 1,
 * uniforms from node:crypto's CSPRNG. The samplers use floating point: they are not the exact integer samplers of
 * Canonne, Kamath and Steinke (NeurIPS 2020), and Mironov's floating-point attack (CCS 2012) on Laplace noise is
 * not excluded for the last bits — docs/crypto.md states this limit.
 */
import { randomFillSync } from 'node:crypto';

/** CSPRNG output fetched 4 KiB at a time (one system call per 512 uniforms), each byte used once. */
const pool = Buffer.alloc(4096);
let used = pool.length;

/** A uniform double in (0, 1) with 53 random bits. */
function uniform(): number {
  for (;;) {
    if (used === pool.length) {
      randomFillSync(pool);
      used = 0;
    }
    const x = (pool.readUInt32BE(used) * 2 ** 21 + (pool.readUInt32BE(used + 4) >>> 11)) / 2 ** 53;
    pool.fill(0, used, used + 8);
    used += 8;
    if (x > 0) return x;
  }
}

function normal(): number {
  return Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** Gamma(shape, 1). */
function gamma(shape: number): number {
  if (shape < 1) return gamma(shape + 1) * uniform() ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = uniform();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** Poisson(λ), by Knuth's product method on chunks of at most 30 (exp(−30) is far from underflow). */
function poisson(lambda: number): number {
  let total = 0;
  for (let left = lambda; left > 0; left -= 30) {
    const limit = Math.exp(-Math.min(left, 30));
    let k = 0;
    let p = uniform();
    while (p > limit) {
      k++;
      p *= uniform();
    }
    total += k;
  }
  return total;
}

/** NB(r, α): failures before r successes of probability 1 − α (Pólya for non-integer r). */
export function polya(r: number, alpha: number): number {
  return poisson(gamma(r) * (alpha / (1 - alpha)));
}

/** α = exp(−ε/Δ) of the discrete Laplace mechanism. */
export function laplaceAlpha(epsilon: number, sensitivity: number): number {
  if (!(epsilon > 0) || !(sensitivity > 0)) throw new RangeError('epsilon and sensitivity must be positive');
  return Math.exp(-epsilon / sensitivity);
}

/** One hospital's noise share for one cell: NB(1/h, α) − NB(1/h, α). */
export function noiseShare(alpha: number, honest: number): number {
  return polya(1 / honest, alpha) - polya(1 / honest, alpha);
}

/** The variance of the total noise when all n hospitals add shares for h: (n/h) · 2α/(1 − α)². */
export function noiseVariance(alpha: number, n: number, honest: number): number {
  return (n / honest) * ((2 * alpha) / (1 - alpha) ** 2);
}
