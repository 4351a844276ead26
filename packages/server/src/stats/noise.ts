/**
 * Differential privacy of the released totals: the discrete Laplace (two-sided geometric) mechanism of Ghosh,
 * Roughgarden and Sundararajan ("Universally Utility-Maximizing Privacy Mechanisms", STOC 2009) adds Z with
 * P(Z = k) = (1 − α)/(1 + α) · α^|k|, α = exp(−ε/Δ), which is ε-differentially private for an integer query of L1
 * sensitivity Δ.
 *
 * Sampled exactly, with integer arithmetic only: Algorithms 1 (Bernoulli(exp(−γ)) for rational γ) and 2 (discrete
 * Laplace of rational scale t/s) of Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential Privacy"
 * (NeurIPS 2020). ε is the rational its decimal spells (at most 6 decimals, enforced by parseQuery), Δ an integer,
 * so the scale Δ/ε is rational and no floating-point number enters the sample: Mironov's attack on floating-point
 * Laplace noise (CCS 2012) has nothing to work on. Uniform integers come from node:crypto's `randomInt`
 * (unbiased, CSPRNG).
 *
 * Distributed: every one of the n hospitals adds one full discrete Laplace to every cell of its own histogram
 * before encrypting it. The released total thus carries any one honest hospital's noise, so it is ε-DP even against
 * all other hospitals together subtracting their own noise (post-processing). The price is variance: n · 2α/(1 − α)²,
 * n times one mechanism's. (Shares that only *together* make one discrete Laplace — Pólya NB(1/h, α) differences —
 * would cut that to n/h but have no exact integer sampler: they need Gamma variables.)
 */
import { randomInt } from 'node:crypto';

/** Bernoulli(n / d) for integers 0 ≤ n ≤ d, d ≥ 1. */
function bernoulli(n: number, d: number): boolean {
  return randomInt(0, d) < n;
}

/** Bernoulli(exp(−γ)) for γ = n/d ∈ [0, 1]: K counts draws until Bernoulli(γ/K) fails; exp(−γ) = P(K odd). */
function bernoulliExpSmall(n: number, d: number): boolean {
  let k = 1;
  while (bernoulli(n, d * k)) k++;
  return k % 2 === 1;
}

/** Bernoulli(exp(−n/d)) for integers n ≥ 0, d ≥ 1 (CKS 2020, Algorithm 1: ⌊γ⌋ draws of exp(−1), then the rest). */
export function bernoulliExp(n: number, d: number): boolean {
  if (!Number.isSafeInteger(n) || !Number.isSafeInteger(d) || n < 0 || d < 1) throw new RangeError('bernoulliExp needs integers n ≥ 0, d ≥ 1');
  for (let whole = Math.floor(n / d); whole > 0; whole--) if (!bernoulliExpSmall(1, 1)) return false;
  return bernoulliExpSmall(n % d, d);
}

/** An exact sample of the discrete Laplace of scale t/s: P(x) ∝ exp(−|x|·s/t), for integers s, t ≥ 1 (CKS 2020, Algorithm 2). */
export function discreteLaplace(t: number, s: number): number {
  if (!Number.isSafeInteger(t) || !Number.isSafeInteger(s) || t < 1 || s < 1 || t > 2 ** 40)
    throw new RangeError('discreteLaplace needs integers 1 ≤ t ≤ 2^40, s ≥ 1');
  for (;;) {
    const u = randomInt(0, t);
    if (!bernoulliExp(u, t)) continue;
    let v = 0;
    while (bernoulliExpSmall(1, 1)) v++;
    const y = Math.floor((u + t * v) / s);
    const negative = randomInt(0, 2) === 1;
    if (negative && y === 0) continue;
    return negative ? -y : y;
  }
}

/** ε as the exact fraction p/q its decimal spells (at most 6 decimals). @throws RangeError otherwise. */
export function epsilonFraction(epsilon: number): { p: number; q: number } {
  for (let q = 1; q <= 1_000_000; q *= 10) {
    const p = Math.round(epsilon * q);
    if (p > 0 && Number(`${p}e-${Math.log10(q)}`) === epsilon) return { p, q };
  }
  throw new RangeError(`epsilon ${epsilon} is not a positive decimal with at most 6 decimals`);
}

/** One hospital's noise for one cell of a measure of sensitivity Δ under ε (a decimal): discrete Laplace of scale Δ/ε. */
export function noiseSample(epsilon: number, sensitivity: number): number {
  if (!Number.isSafeInteger(sensitivity) || sensitivity < 1) throw new RangeError('the sensitivity is a positive integer');
  const { p, q } = epsilonFraction(epsilon);
  return discreteLaplace(sensitivity * q, p);
}

/** α = exp(−ε/Δ) of the discrete Laplace mechanism (a float: for stating the noise, never for sampling it). */
export function laplaceAlpha(epsilon: number, sensitivity: number): number {
  if (!(epsilon > 0) || !(sensitivity > 0)) throw new RangeError('epsilon and sensitivity must be positive');
  return Math.exp(-epsilon / sensitivity);
}

/** The variance of the total noise when each of n hospitals adds one discrete Laplace: n · 2α/(1 − α)². */
export function noiseVariance(alpha: number, n: number): number {
  return n * ((2 * alpha) / (1 - alpha) ** 2);
}
