/**
 * Dealerless distributed key generation for the threshold ElGamal key: the protocol of Gennaro, Jarecki, Krawczyk
 * and Rabin, "Secure Distributed Key Generation for Discrete-Log Based Cryptosystems" (EUROCRYPT '99; J.
 * Cryptology 20(1), 2007), Fig. 2 ("DKG"), which fixes the bias in Pedersen's earlier protocol (EUROCRYPT '91) by
 * committing with Pedersen commitments first and revealing Feldman commitments (Feldman, FOCS '87) only once the
 * qualified set is fixed.
 *
 * Phase 1 (Pedersen-VSS): every dealer i picks random f_i, f'_i of degree t − 1, broadcasts
 *   C_ik = a_ik·G + b_ik·H  (k = 0..t−1)
 * and sends (s_ij, s'_ij) = (f_i(j), f'_i(j)) privately to j, who checks s_ij·G + s'_ij·H = Σ_k j^k·C_ik and
 * otherwise broadcasts a complaint. The dealer answers each complaint by publishing that pair; a dealer with t or
 * more complaints (t published shares would reveal its secret), or whose answer fails the check, is disqualified.
 * QUAL is the set of the others.
 *
 * Phase 2 (Feldman extraction): every dealer in QUAL broadcasts A_ik = a_ik·G. Participant j checks
 * s_ij·G = Σ_k j^k·A_ik; on failure j publishes its Pedersen-valid pair, which proves the dealer cheated, and the
 * other participants publish their pairs for that dealer so that f_i is reconstructed from t of them (checked
 * against the Pedersen commitments): the dealer stays in QUAL (its shares are fixed) but its A_i0 is computed.
 *
 * Result: y = Σ_{i∈QUAL} A_i0, x_j = Σ_{i∈QUAL} s_ij, Y_j = Σ_{i∈QUAL} Σ_k j^k·A_ik.
 *
 * H is a second generator whose discrete logarithm to G nobody knows: RFC 9380 hash_to_curve of a fixed string.
 *
 * `runDkg` plays the protocol for n participants that exchange messages through a `DkgChannel` (the identity by
 * default). A deployment delivers the private shares over authenticated, encrypted point-to-point channels; the
 * broadcasts over the cloud's bulletin board. Everything a participant checks is here, in pure functions.
 */
import type { Fr, G1 } from '../curve/bls12381.ts';
import { frAdd, frFromBigInt, frMul, g1Add, g1Generator, g1Mul, hashToG1, msmG1 } from '../curve/bls12381.ts';
import { checkParameters, keyIdOf, type KeyShare, type ThresholdParameters, type ThresholdPublicKey } from './keys.ts';
import { evaluatePolynomial, lagrangeCoefficients, randomPolynomial, type Polynomial } from './scalars.ts';

const PEDERSEN_DST = 'MedShare-v1-threshold-DKG-Pedersen-generator_XMD:SHA-256_SSWU_RO_';

let pedersenH: G1 | undefined;
/** The Pedersen commitment generator H (nothing up the sleeve: a hash to the curve). */
export function pedersenGenerator(): G1 {
  pedersenH ??= hashToG1(new TextEncoder().encode('H'), PEDERSEN_DST);
  return pedersenH.clone();
}

/** What a dealer keeps to itself. */
export interface DealerSecret {
  dealer: number;
  f: Polynomial;
  blind: Polynomial;
}

/** The pair (f_i(j), f'_i(j)) dealer i sends to recipient j. */
export interface DealtShare {
  dealer: number;
  recipient: number;
  share: Fr;
  blinding: Fr;
}

/** Phase 1 of one dealer: its secret polynomials, its Pedersen commitments (broadcast) and one share per participant. */
export function deal(params: ThresholdParameters, dealer: number): { secret: DealerSecret; commitments: G1[]; shares: DealtShare[] } {
  checkParameters(params);
  const f = randomPolynomial(params.t - 1);
  const blind = randomPolynomial(params.t - 1);
  const g = g1Generator();
  const h = pedersenGenerator();
  const commitments = f.map((a, k) => g1Add(g1Mul(g, a), g1Mul(h, blind[k]!)));
  const shares = Array.from({ length: params.n }, (_, i) => ({
    dealer,
    recipient: i + 1,
    share: evaluatePolynomial(f, i + 1),
    blinding: evaluatePolynomial(blind, i + 1),
  }));
  return { secret: { dealer, f, blind }, commitments, shares };
}

/** Σ_k j^k·C_k: the committed polynomial evaluated "in the exponent" at j. */
export function evaluateCommitments(commitments: readonly G1[], j: number): G1 {
  const powers: Fr[] = [];
  let power = frFromBigInt(1n);
  const x = frFromBigInt(BigInt(j));
  for (let k = 0; k < commitments.length; k++) {
    powers.push(power);
    power = frMul(power, x);
  }
  return msmG1(commitments, powers);
}

/** Phase 1 check by the recipient: s·G + s'·H = Σ_k j^k·C_k. */
export function verifyDealtShare(commitments: readonly G1[], share: DealtShare): boolean {
  const lhs = g1Add(g1Mul(g1Generator(), share.share), g1Mul(pedersenGenerator(), share.blinding));
  return lhs.isEqual(evaluateCommitments(commitments, share.recipient));
}

/** Phase 2 broadcast of a qualified dealer: A_k = a_k·G. */
export function feldmanCommitments(secret: DealerSecret): G1[] {
  const g = g1Generator();
  return secret.f.map((a) => g1Mul(g, a));
}

/** Phase 2 check by the recipient: s·G = Σ_k j^k·A_k. */
export function verifyFeldmanShare(feldman: readonly G1[], share: DealtShare): boolean {
  return g1Mul(g1Generator(), share.share).isEqual(evaluateCommitments(feldman, share.recipient));
}

/** Why a dealer was disqualified or had its polynomial reconstructed. */
export type DealerFault =
  | 'too-many-complaints' // t or more participants complained: answering would reveal its secret
  | 'no-answer' // accused, it published nothing
  | 'bad-answer' // the share it published does not match its Pedersen commitments
  | 'bad-commitments' // phase 1 commitments of the wrong size
  | 'feldman-mismatch'; // phase 2 commitments inconsistent with its shares (its polynomial was reconstructed)

/** How messages travel. A deployment's channel is the network; tests interpose adversaries here. */
export interface DkgChannel {
  /** The Pedersen commitments dealer i broadcasts. */
  commitments?(dealer: number, honest: G1[]): G1[];
  /** The share dealer i sends privately to recipient j. */
  share?(honest: DealtShare): DealtShare;
  /** What dealer i publishes when j complains; undefined means it stays silent. */
  answer?(honest: DealtShare): DealtShare | undefined;
  /** Complaints a participant files although its share verified (false accusations). */
  falseComplaints?(recipient: number): number[];
  /** The Feldman commitments dealer i broadcasts in phase 2. */
  feldman?(dealer: number, honest: G1[]): G1[];
}

/** The outcome of a DKG run: the joint key, every participant's share, and who misbehaved. */
export interface DkgResult {
  publicKey: ThresholdPublicKey;
  shares: KeyShare[];
  qualified: number[];
  faults: { dealer: number; fault: DealerFault; accusers: number[] }[];
}

/**
 * Runs the protocol among participants 1..n (each one's checks are the functions above) and returns the key.
 * Throws RangeError on bad parameters, and an Error if fewer than t dealers qualify (no key can be made safely).
 */
export function runDkg(params: ThresholdParameters, channel: DkgChannel = {}): DkgResult {
  checkParameters(params);
  const { n, t } = params;
  const indices = Array.from({ length: n }, (_, i) => i + 1);
  const dealt = indices.map((i) => deal(params, i));
  const broadcast = dealt.map(({ commitments }, k) => channel.commitments?.(k + 1, commitments) ?? commitments);
  // received[i][j]: what recipient j holds from dealer i (after the channel and any complaint answers).
  const received = dealt.map(({ shares }) => shares.map((s) => channel.share?.(s) ?? s));
  const faults: DkgResult['faults'] = [];
  const disqualified = new Set<number>();

  // Phase 1: complaints and answers.
  for (const i of indices) {
    const commitments = broadcast[i - 1]!;
    if (commitments.length !== t) {
      faults.push({ dealer: i, fault: 'bad-commitments', accusers: indices.filter((j) => j !== i) });
      disqualified.add(i);
      continue;
    }
    const accusers = indices.filter(
      (j) => !verifyDealtShare(commitments, received[i - 1]![j - 1]!) || (channel.falseComplaints?.(j) ?? []).includes(i),
    );
    if (accusers.length === 0) continue;
    if (accusers.length >= t) {
      faults.push({ dealer: i, fault: 'too-many-complaints', accusers });
      disqualified.add(i);
      continue;
    }
    for (const j of accusers) {
      const honest = dealt[i - 1]!.shares[j - 1]!;
      const answer = channel.answer ? channel.answer(honest) : honest;
      if (answer === undefined || answer.dealer !== i || answer.recipient !== j || !verifyDealtShare(commitments, answer)) {
        faults.push({ dealer: i, fault: answer === undefined ? 'no-answer' : 'bad-answer', accusers });
        disqualified.add(i);
        break;
      }
      received[i - 1]![j - 1] = answer; // everyone saw it published; j adopts it
    }
  }
  const qualified = indices.filter((i) => !disqualified.has(i));
  if (qualified.length < t) throw new Error(`only ${qualified.length} dealers qualified; at least ${t} are needed`);

  // Phase 2: Feldman commitments, checked by every recipient; a mismatch gets the dealer's polynomial reconstructed.
  const publicShareOf = new Map<number, (j: number) => G1>();
  for (const i of qualified) {
    const honest = feldmanCommitments(dealt[i - 1]!.secret);
    const feldman = channel.feldman?.(i, honest) ?? honest;
    const shares = received[i - 1]!;
    const accusers = feldman.length === t ? indices.filter((j) => !verifyFeldmanShare(feldman, shares[j - 1]!)) : indices;
    if (accusers.length === 0) {
      publicShareOf.set(i, (j) => evaluateCommitments(feldman, j));
      continue;
    }
    // Every participant publishes its (Pedersen-valid) pair from dealer i; any t of them fix f_i.
    const valid = shares.filter((s) => verifyDealtShare(broadcast[i - 1]!, s)).slice(0, t);
    const lambdasAt = (j: number) => lagrangeCoefficients(valid.map((s) => s.recipient), j);
    const fAt = (j: number) => lambdasAt(j).reduce((acc, l, k) => frAdd(acc, frMul(l, valid[k]!.share)), frFromBigInt(0n));
    publicShareOf.set(i, (j) => g1Mul(g1Generator(), fAt(j)));
    faults.push({ dealer: i, fault: 'feldman-mismatch', accusers });
  }

  const sum = (points: G1[]) => points.reduce((a, b) => g1Add(a, b));
  const y = sum(qualified.map((i) => publicShareOf.get(i)!(0)));
  const verificationKeys = indices.map((j) => sum(qualified.map((i) => publicShareOf.get(i)!(j))));
  const publicKey: ThresholdPublicKey = { n, t, y, verificationKeys };
  const keyId = keyIdOf(publicKey);
  const shares = indices.map((j) => ({
    index: j,
    secret: qualified.map((i) => received[i - 1]![j - 1]!.share).reduce((a, b) => frAdd(a, b)),
    keyId,
  }));
  return { publicKey, shares, qualified, faults };
}
