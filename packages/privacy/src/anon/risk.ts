/**
 * Re-identification risk of a release, from its equivalence-class sizes (El Emam & Dankar,
 * "Protecting Privacy Using k-Anonymity", JAMIA 2008; El Emam, "Guide to the De-Identification of
 * Personal Health Information", 2013; ARX's risk analysis follows the same definitions):
 * - prosecutor (the attacker knows the target is in the release): a record's risk is 1/f, f its
 *   class's size; highest = 1/min f, average = (#classes)/n;
 * - journalist (the attacker does not know; the release is a sample of a population of N
 *   people): a record's risk is 1/F, F its class's size in the population, estimated as f/π with
 *   the sampling fraction π = n/N (never below f); highest = 1/min F, average = mean of 1/F;
 * - marketer (the attacker re-identifies as many records as possible): the expected share of
 *   records matched correctly, (1/n)·Σ_classes f/F; with the population equal to the release, #classes/n;
 * - each model's share of records whose risk exceeds a threshold (default 0.2 = 1/5).
 * Population uniqueness (the share of the release's records that are unique in the population)
 * is estimated with the Pitman sampling model (Hoshino, "Applying Pitman's Sampling Formula to
 * Microdata Disclosure Risk Assessment", J. Official Statistics 17(4), 2001; Dankar, El Emam,
 * Neisa, Roffey, "Estimating the re-identification risk of clinical data sets", BMC Med. Inform.
 * Decis. Mak. 2012, recommend it): the parameters (θ, α) are fitted to the class sizes by maximum
 * likelihood, and each sample unique stays unique in the population with the probability that
 * the Pitman (two-parameter Chinese restaurant) process adds none of the other N − n people to its
 * class: Π_{m=n}^{N-1} (θ + m − 1 + α)/(θ + m).
 */
import { MalformedInputError } from '@medshare/crypto';

export interface RiskModelFigures {
  highest: number;
  average: number;
  /** Share of records whose risk exceeds the threshold. */
  recordsAboveThreshold: number;
}

export interface RiskReport {
  threshold: number;
  records: number;
  populationSize: number;
  prosecutor: RiskModelFigures;
  journalist: RiskModelFigures;
  marketer: number;
  /** Share of records unique in the release (class of size 1). */
  sampleUniqueShare: number;
  /** Pitman-model estimate of the share of the release's records unique in the population. */
  populationUniqueShare: number;
  pitman: { theta: number; alpha: number };
}

/**
 * Risk figures for a release with the given class sizes.
 * @param populationSize N, at least the number of records (default: the release is the population)
 * @throws MalformedInputError for a population smaller than the release or a threshold outside (0, 1]
 */
export function riskReport(classSizes: number[], options: { populationSize?: number; threshold?: number } = {}): RiskReport {
  const n = classSizes.reduce((a, b) => a + b, 0);
  const N = options.populationSize ?? n;
  const threshold = options.threshold ?? 0.2;
  if (!(N >= n) || !Number.isFinite(N)) throw new MalformedInputError(`population size ${N} is smaller than the release (${n} records)`);
  if (!(threshold > 0 && threshold <= 1)) throw new MalformedInputError('risk threshold must be within (0, 1]');
  const fraction = N === 0 ? 1 : n / N;
  const population = (f: number) => Math.max(f, f / fraction);
  let prosecutorAbove = 0;
  let journalistSum = 0;
  let journalistAbove = 0;
  let journalistHighest = 0;
  let smallest = Infinity;
  let uniques = 0;
  for (const f of classSizes) {
    smallest = Math.min(smallest, f);
    if (1 / f > threshold) prosecutorAbove += f;
    const F = population(f);
    journalistSum += f / F;
    journalistHighest = Math.max(journalistHighest, 1 / F);
    if (1 / F > threshold) journalistAbove += f;
    if (f === 1) uniques++;
  }
  const share = (x: number) => (n === 0 ? 0 : x / n);
  const pitman = fitPitman(classSizes);
  return {
    threshold,
    records: n,
    populationSize: N,
    prosecutor: { highest: classSizes.length === 0 ? 0 : 1 / smallest, average: share(classSizes.length), recordsAboveThreshold: share(prosecutorAbove) },
    journalist: { highest: journalistHighest, average: share(journalistSum), recordsAboveThreshold: share(journalistAbove) },
    marketer: share(journalistSum),
    sampleUniqueShare: share(uniques),
    populationUniqueShare: share(uniques * staysUnique(pitman, n, N)),
    pitman,
  };
}

/** The Pitman log-likelihood of a partition with the given class sizes (Pitman 1995, eq. for the EPPF). */
export function pitmanLogLikelihood(classSizes: number[], theta: number, alpha: number): number {
  const n = classSizes.reduce((a, b) => a + b, 0);
  const K = classSizes.length;
  let value = 0;
  // Π_{i=1}^{K-1} (θ + iα)
  if (alpha > 0) value += (K - 1) * Math.log(alpha) + logGamma(theta / alpha + K) - logGamma(theta / alpha + 1);
  else value += (K - 1) * Math.log(theta);
  // / (θ + 1)_{n-1}
  value -= logGamma(theta + n) - logGamma(theta + 1);
  // Π_j (1 − α)_{n_j − 1}
  for (const size of classSizes) value += logGamma(size - alpha) - logGamma(1 - alpha);
  return value;
}

/** Maximum-likelihood (θ, α) by nested golden-section search (θ on a log scale, α in [0, 1)). */
export function fitPitman(classSizes: number[]): { theta: number; alpha: number } {
  if (classSizes.length < 2) return { theta: 1e-6, alpha: 0 };
  const bestTheta = (alpha: number) => golden((u) => pitmanLogLikelihood(classSizes, Math.exp(u), alpha), Math.log(1e-6), Math.log(1e9));
  const alpha = golden((a) => pitmanLogLikelihood(classSizes, Math.exp(bestTheta(a)), a), 0, 0.999);
  return { theta: Math.exp(bestTheta(alpha)), alpha };
}

/** Probability that a sample unique gets nobody else of a population of N (n sampled) under Pitman(θ, α). */
function staysUnique({ theta, alpha }: { theta: number; alpha: number }, n: number, N: number): number {
  if (N <= n) return 1;
  return Math.exp(logGamma(theta + N - 1 + alpha) - logGamma(theta + n - 1 + alpha) - logGamma(theta + N) + logGamma(theta + n));
}

function golden(f: (x: number) => number, lo: number, hi: number): number {
  const ratio = (Math.sqrt(5) - 1) / 2;
  let a = lo;
  let b = hi;
  let c = b - ratio * (b - a);
  let d = a + ratio * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let i = 0; i < 80 && b - a > 1e-7; i++) {
    if (fc > fd) ((b = d), (d = c), (fd = fc), (c = b - ratio * (b - a)), (fc = f(c)));
    else ((a = c), (c = d), (fc = fd), (d = a + ratio * (b - a)), (fd = f(d)));
  }
  return (a + b) / 2;
}

/** ln Γ(x) for x > 0 (Lanczos approximation, g = 7, 9 terms; relative error about 1e-15). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
    9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  const z = x - 1;
  let sum = c[0] as number;
  for (let i = 1; i < 9; i++) sum += (c[i] as number) / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}
