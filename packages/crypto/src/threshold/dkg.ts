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
 * Everything a participant checks and decides is here, in pure functions over the public transcript (`DkgTranscript`:
 * what was broadcast) and its own private inputs: `complaintsOf` (phase 1), `qualify` (who is in QUAL, from the
 * complaints and the answers), `accusationsOf` (phase 2 reveals), `dkgOutcome` (the joint key, the same for every
 * participant and for the board) and `shareOf` (a participant's own secret share). A deployment delivers the
 * private shares encrypted to their recipient over the cloud's bulletin board (server stats/dkg-*.ts); `runDkg` plays
 * all n participants in one process through the same functions, for tests and the single-machine CLI, with a
 * `DkgChannel` on which tests interpose adversaries.
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
  const secret = { dealer, f: randomPolynomial(params.t - 1), blind: randomPolynomial(params.t - 1) };
  return { secret, ...dealingOf(params, secret) };
}

/** The commitments and shares of a dealer's polynomials (a participant that kept them recomputes its phase 1 messages). */
export function dealingOf(params: ThresholdParameters, secret: DealerSecret): { commitments: G1[]; shares: DealtShare[] } {
  checkParameters(params);
  if (secret.f.length !== params.t || secret.blind.length !== params.t) throw new RangeError(`a dealer's polynomials have degree t − 1 = ${params.t - 1}`);
  const g = g1Generator();
  const h = pedersenGenerator();
  const commitments = secret.f.map((a, k) => g1Add(g1Mul(g, a), g1Mul(h, secret.blind[k]!)));
  const shares = Array.from({ length: params.n }, (_, i) => ({
    dealer: secret.dealer,
    recipient: i + 1,
    share: evaluatePolynomial(secret.f, i + 1),
    blinding: evaluatePolynomial(secret.blind, i + 1),
  }));
  return { commitments, shares };
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

/**
 * What the participants broadcast, by sender index. Phase 1: `commitments` (Pedersen, per dealer), `complaints`
 * (per recipient: the dealers whose share failed its check), `answers` (per dealer: the pairs it publishes for its
 * accusers). Phase 2: `feldman` (per qualified dealer), `accusations` (per participant: its Pedersen-valid pairs
 * from dealers whose Feldman commitments fail its check), `reconstruction` (per participant: its pairs from every
 * dealer validly accused). Every participant and the board compute the same outcome from it.
 */
export interface DkgTranscript {
  commitments: ReadonlyMap<number, readonly G1[]>;
  complaints: ReadonlyMap<number, readonly number[]>;
  answers: ReadonlyMap<number, readonly DealtShare[]>;
  feldman: ReadonlyMap<number, readonly G1[]>;
  accusations: ReadonlyMap<number, readonly DealtShare[]>;
  reconstruction: ReadonlyMap<number, readonly DealtShare[]>;
}

/** A fault of one dealer and who accused it. */
export interface DkgFault {
  dealer: number;
  fault: DealerFault;
  accusers: number[];
}

const indicesOf = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** Phase 1 at recipient j: the dealers whose share (undefined: none arrived, or it did not open) fails its check. */
export function complaintsOf(
  params: ThresholdParameters,
  commitments: DkgTranscript['commitments'],
  received: ReadonlyMap<number, DealtShare | undefined>,
  j: number,
): number[] {
  return indicesOf(params.n).filter((i) => {
    const c = commitments.get(i);
    if (c === undefined || c.length !== params.t) return false; // disqualified by everyone anyway
    const s = received.get(i);
    return s === undefined || s.dealer !== i || s.recipient !== j || !verifyDealtShare(c, s);
  });
}

/**
 * QUAL from the phase 1 broadcasts: a dealer with commitments of the wrong size, t or more complaints, or an accuser
 * its answers do not satisfy (a missing or Pedersen-invalid pair) is out. Returns the faults too.
 */
export function qualify(
  params: ThresholdParameters,
  t: Pick<DkgTranscript, 'commitments' | 'complaints' | 'answers'>,
): { qualified: number[]; faults: DkgFault[] } {
  const indices = indicesOf(params.n);
  const faults: DkgFault[] = [];
  for (const i of indices) {
    const commitments = t.commitments.get(i);
    if (commitments === undefined || commitments.length !== params.t) {
      faults.push({ dealer: i, fault: 'bad-commitments', accusers: indices.filter((j) => j !== i) });
      continue;
    }
    const accusers = indices.filter((j) => (t.complaints.get(j) ?? []).includes(i));
    if (accusers.length === 0) continue;
    if (accusers.length >= params.t) {
      faults.push({ dealer: i, fault: 'too-many-complaints', accusers });
      continue;
    }
    for (const j of accusers) {
      const answer = (t.answers.get(i) ?? []).find((a) => a.recipient === j);
      if (answer === undefined || answer.dealer !== i || !verifyDealtShare(commitments, answer)) {
        faults.push({ dealer: i, fault: answer === undefined ? 'no-answer' : 'bad-answer', accusers });
        break;
      }
    }
  }
  const out = new Set(faults.map((f) => f.dealer));
  return { qualified: indices.filter((i) => !out.has(i)), faults };
}

/** The pair recipient j holds from dealer i after phase 1: the answer dealer i published for j, if any, else what it received. */
export function adoptedShare(t: Pick<DkgTranscript, 'answers'>, received: DealtShare | undefined, dealer: number, j: number): DealtShare | undefined {
  return (t.answers.get(dealer) ?? []).find((a) => a.recipient === j && a.dealer === dealer) ?? received;
}

/** Phase 2 at participant j: its pairs from the qualified dealers whose Feldman commitments fail its check. */
export function accusationsOf(
  params: ThresholdParameters,
  qualified: readonly number[],
  t: Pick<DkgTranscript, 'feldman'>,
  held: ReadonlyMap<number, DealtShare>,
): DealtShare[] {
  return qualified
    .filter((i) => {
      const feldman = t.feldman.get(i);
      const s = held.get(i)!;
      return feldman === undefined || feldman.length !== params.t || !verifyFeldmanShare(feldman, s);
    })
    .map((i) => held.get(i)!);
}

/**
 * The qualified dealers whose polynomial must be reconstructed: those with missing or malformed Feldman commitments,
 * and those a participant proved inconsistent (a pair valid for the Pedersen commitments, invalid for the Feldman ones).
 */
export function accusedDealers(
  params: ThresholdParameters,
  qualified: readonly number[],
  t: Pick<DkgTranscript, 'commitments' | 'feldman' | 'accusations'>,
): Map<number, number[]> {
  const accused = new Map<number, number[]>();
  for (const i of qualified) {
    const feldman = t.feldman.get(i);
    const malformed = feldman === undefined || feldman.length !== params.t;
    const accusers = indicesOf(params.n).filter((j) =>
      (t.accusations.get(j) ?? []).some(
        (s) => s.dealer === i && s.recipient === j && verifyDealtShare(t.commitments.get(i)!, s) && (malformed || !verifyFeldmanShare(feldman!, s)),
      ),
    );
    if (malformed || accusers.length > 0) accused.set(i, malformed ? indicesOf(params.n) : accusers);
  }
  return accused;
}

/**
 * The joint public key from the whole transcript (every participant and the board compute the same): y and the
 * verification keys from the Feldman commitments, and for each accused dealer from t Pedersen-valid pairs
 * published in the reconstruction (fewer: Error, the run failed). Throws an Error if fewer than t dealers qualify.
 */
export function dkgOutcome(params: ThresholdParameters, t: DkgTranscript): { publicKey: ThresholdPublicKey; qualified: number[]; faults: DkgFault[] } {
  checkParameters(params);
  const { qualified, faults } = qualify(params, t);
  if (qualified.length < params.t) throw new Error(`only ${qualified.length} dealers qualified; at least ${params.t} are needed`);
  const accused = accusedDealers(params, qualified, t);
  const publicShareOf = new Map<number, (j: number) => G1>();
  for (const i of qualified) {
    const accusers = accused.get(i);
    if (accusers === undefined) {
      const feldman = t.feldman.get(i)!;
      publicShareOf.set(i, (j) => evaluateCommitments(feldman, j));
      continue;
    }
    const published = [...t.reconstruction.entries()].flatMap(([j, pairs]) => pairs.filter((s) => s.dealer === i && s.recipient === j));
    const valid = published.filter((s) => verifyDealtShare(t.commitments.get(i)!, s)).slice(0, params.t);
    if (valid.length < params.t) throw new Error(`dealer ${i}'s polynomial cannot be reconstructed: ${valid.length} valid pairs, ${params.t} needed`);
    const fAt = (j: number) =>
      lagrangeCoefficients(
        valid.map((s) => s.recipient),
        j,
      ).reduce((acc, l, k) => frAdd(acc, frMul(l, valid[k]!.share)), frFromBigInt(0n));
    publicShareOf.set(i, (j) => g1Mul(g1Generator(), fAt(j)));
    faults.push({ dealer: i, fault: 'feldman-mismatch', accusers });
  }
  const sum = (points: G1[]) => points.reduce((a, b) => g1Add(a, b));
  const y = sum(qualified.map((i) => publicShareOf.get(i)!(0)));
  const verificationKeys = indicesOf(params.n).map((j) => sum(qualified.map((i) => publicShareOf.get(i)!(j))));
  return { publicKey: { n: params.n, t: params.t, y, verificationKeys }, qualified, faults };
}

/** Participant j's secret share: the sum of the pairs it holds from the qualified dealers; an Error unless it matches Y_j. */
export function shareOf(publicKey: ThresholdPublicKey, qualified: readonly number[], held: ReadonlyMap<number, DealtShare>, j: number): KeyShare {
  const secret = qualified.map((i) => held.get(i)!.share).reduce((a, b) => frAdd(a, b));
  if (!g1Mul(g1Generator(), secret).isEqual(publicKey.verificationKeys[j - 1]!))
    throw new Error(`participant ${j}'s share does not match its verification key`);
  return { index: j, secret, keyId: keyIdOf(publicKey) };
}

/** How messages travel in `runDkg`. Tests interpose adversaries here. */
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
  faults: DkgFault[];
}

/**
 * Runs the protocol among participants 1..n in this process (each one's checks are the functions above) and returns
 * the key. Throws RangeError on bad parameters, and an Error if fewer than t dealers qualify (no key can be made safely).
 */
export function runDkg(params: ThresholdParameters, channel: DkgChannel = {}): DkgResult {
  checkParameters(params);
  const indices = indicesOf(params.n);
  const dealt = indices.map((i) => deal(params, i));
  const commitments = new Map(dealt.map(({ commitments: c }, k) => [k + 1, channel.commitments?.(k + 1, c) ?? c]));
  // received[j]: what recipient j holds, by dealer.
  const received = new Map(indices.map((j) => [j, new Map(dealt.map(({ shares }, k) => [k + 1, channel.share?.(shares[j - 1]!) ?? shares[j - 1]!]))]));
  const complaints = new Map(
    indices.map((j) => [
      j,
      [...new Set([...complaintsOf(params, commitments, received.get(j)!, j), ...(channel.falseComplaints?.(j) ?? [])])].sort((a, b) => a - b),
    ]),
  );
  const answers = new Map(
    indices.map((i) => [
      i,
      indices
        .filter((j) => complaints.get(j)!.includes(i))
        .flatMap((j) => {
          const honest = dealt[i - 1]!.shares[j - 1]!;
          const answer = channel.answer ? channel.answer(honest) : honest;
          return answer === undefined ? [] : [answer];
        }),
    ]),
  );
  const { qualified } = qualify(params, { commitments, complaints, answers });
  if (qualified.length < params.t) throw new Error(`only ${qualified.length} dealers qualified; at least ${params.t} are needed`);
  const held = new Map(indices.map((j) => [j, new Map(qualified.map((i) => [i, adoptedShare({ answers }, received.get(j)!.get(i), i, j)!]))]));
  const feldman = new Map(
    qualified.map((i) => {
      const honest = feldmanCommitments(dealt[i - 1]!.secret);
      return [i, channel.feldman?.(i, honest) ?? honest];
    }),
  );
  const accusations = new Map(indices.map((j) => [j, accusationsOf(params, qualified, { feldman }, held.get(j)!)]));
  const accused = accusedDealers(params, qualified, { commitments, feldman, accusations });
  const reconstruction = new Map(indices.map((j) => [j, [...accused.keys()].map((i) => held.get(j)!.get(i)!)]));
  const { publicKey, faults } = dkgOutcome(params, { commitments, complaints, answers, feldman, accusations, reconstruction });
  return { publicKey, shares: indices.map((j) => shareOf(publicKey, qualified, held.get(j)!, j)), qualified, faults };
}
