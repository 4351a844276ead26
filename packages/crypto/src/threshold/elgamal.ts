/**
 * Threshold exponential ElGamal over BLS12-381 G1, additively homomorphic, on vectors of counters.
 *
 *   Enc(y, m) = (r·G, m·G + r·y)            one fresh r per cell (ElGamal, IEEE Trans. IT 31(4), 1985;
 *                                           "exponential" or "lifted" variant as in Cramer, Gennaro and
 *                                           Schoenmakers, EUROCRYPT '97, so that ciphertexts add)
 *   Enc(m) + Enc(m') = Enc(m + m')          component-wise point addition
 *   D_j = x_j·c1                            participant j's partial decryption of a cell
 *   m·G = c2 − Σ_{j∈S} λ_j·D_j              for any set S of t participants (Lagrange at 0, Shamir's sharing)
 *   m                                       by baby-step giant-step within a stated bound (bsgs.ts)
 *
 * Each partial decryption carries one non-interactive Chaum–Pedersen proof (Chaum and Pedersen, "Wallet
 * Databases with Observers", CRYPTO '92; Fiat–Shamir, CRYPTO '86) that log_G(Y_j) = log_{c1_k}(D_k) for every
 * cell k at once: the cells are folded with coefficients ρ_k derived by hashing the whole statement
 * (C* = Σ ρ_k·c1_k, D* = Σ ρ_k·D_k), and a single DLEQ proof is given for (G, Y_j, C*, D*). This is the
 * small-exponents batch test of Bellare, Garay and Rabin ("Fast Batch Verification for Modular Exponentiation and
 * Digital Signatures", EUROCRYPT '98) made non-interactive: a partial that is wrong in any cell passes only if
 * Σ ρ_k·(D_k − x_j·c1_k) = 0, probability ≤ 1/r over the hash. A failing proof names its participant.
 */
import type { Fr, G1 } from '../curve/bls12381.ts';
import { frAdd, frFromBigInt, frMul, g1Add, g1Generator, g1Mul, g1Sub, g1ToBytes, frToBytes, msmG1, randomFr } from '../curve/bls12381.ts';
import { AccessDeniedError, MalformedInputError } from '../errors.ts';
import { decodeSmall, DEFAULT_DECODE_BOUND } from './bsgs.ts';
import { keyIdOf, type KeyShare, type ThresholdPublicKey } from './keys.ts';
import { digest, hashToFr, lagrangeCoefficients, sameBytes } from './scalars.ts';

/** A vector of ElGamal ciphertexts (one per cell) under the key named by `keyId`. */
export interface Ciphertext {
  keyId: Uint8Array;
  c1: G1[];
  c2: G1[];
}

/** Participant `index`'s share of the decryption of a ciphertext, with its proof of correctness. */
export interface PartialDecryption {
  keyId: Uint8Array;
  index: number;
  d: G1[];
  proof: { challenge: Fr; response: Fr };
}

/** The plaintext vector, and the participants whose partial decryptions were rejected (their proofs failed). */
export interface Decryption {
  values: bigint[];
  used: number[];
  rejected: number[];
}

/** Encrypts each value (an integer, possibly negative) as one cell under the joint key. */
export function encrypt(pk: ThresholdPublicKey, values: readonly (number | bigint)[]): Ciphertext {
  const g = g1Generator();
  const c1: G1[] = [];
  const c2: G1[] = [];
  for (const value of values) {
    const r = randomFr();
    c1.push(g1Mul(g, r));
    c2.push(g1Add(g1Mul(g, frFromBigInt(BigInt(value))), g1Mul(pk.y, r)));
  }
  return { keyId: keyIdOf(pk), c1, c2 };
}

/** The cell-wise sum of ciphertexts under the same key and of the same length (MalformedInputError otherwise). */
export function addCiphertexts(first: Ciphertext, ...rest: Ciphertext[]): Ciphertext {
  const c1 = [...first.c1];
  const c2 = [...first.c2];
  for (const ct of rest) {
    if (!sameBytes(ct.keyId, first.keyId)) throw new MalformedInputError('ciphertexts under different keys cannot be added');
    if (ct.c1.length !== c1.length) throw new MalformedInputError(`ciphertexts of ${c1.length} and ${ct.c1.length} cells cannot be added`);
    for (let k = 0; k < c1.length; k++) {
      c1[k] = g1Add(c1[k]!, ct.c1[k]!);
      c2[k] = g1Add(c2[k]!, ct.c2[k]!);
    }
  }
  return { keyId: first.keyId, c1, c2 };
}

/** The Fiat–Shamir statement digest: key, participant, verification key, every c1 and every D. */
function statementDigest(keyId: Uint8Array, index: number, verificationKey: G1, c1: readonly G1[], d: readonly G1[]): Uint8Array {
  const who = new Uint8Array(2);
  new DataView(who.buffer).setUint16(0, index);
  return digest('MedShare v1 threshold partial decryption', keyId, who, g1ToBytes(verificationKey), ...c1.map(g1ToBytes), ...d.map(g1ToBytes));
}

/** The folding coefficients ρ_k, derived from the statement so that no prover can choose them. */
function foldingCoefficients(statement: Uint8Array, count: number): Fr[] {
  return Array.from({ length: count }, (_, k) => {
    const at = new Uint8Array(4);
    new DataView(at.buffer).setUint32(0, k);
    return hashToFr('MedShare v1 threshold DLEQ fold', statement, at);
  });
}

const challengeOf = (statement: Uint8Array, a: G1, b: G1) => hashToFr('MedShare v1 threshold DLEQ challenge', statement, g1ToBytes(a), g1ToBytes(b));

/** Participant's partial decryption of every cell, with its batched Chaum–Pedersen proof. */
export function partialDecrypt(share: KeyShare, verificationKey: G1, ct: Ciphertext): PartialDecryption {
  if (!sameBytes(share.keyId, ct.keyId)) throw new AccessDeniedError('this key share is for another key than the ciphertext');
  const d = ct.c1.map((c) => g1Mul(c, share.secret));
  const statement = statementDigest(ct.keyId, share.index, verificationKey, ct.c1, d);
  const folded = msmG1(ct.c1, foldingCoefficients(statement, ct.c1.length));
  const w = randomFr();
  const challenge = challengeOf(statement, g1Mul(g1Generator(), w), g1Mul(folded, w));
  return { keyId: ct.keyId, index: share.index, d, proof: { challenge, response: frAdd(w, frMul(challenge, share.secret)) } };
}

/** True iff the partial decryption is participant `partial.index`'s correct one for this ciphertext and key. */
export function verifyPartial(pk: ThresholdPublicKey, ct: Ciphertext, partial: PartialDecryption): boolean {
  const keyId = keyIdOf(pk);
  if (!sameBytes(partial.keyId, keyId) || !sameBytes(ct.keyId, keyId)) return false;
  if (!Number.isInteger(partial.index) || partial.index < 1 || partial.index > pk.n) return false;
  if (partial.d.length !== ct.c1.length || ct.c1.length === 0) return false;
  const verificationKey = pk.verificationKeys[partial.index - 1]!;
  const statement = statementDigest(keyId, partial.index, verificationKey, ct.c1, partial.d);
  const rho = foldingCoefficients(statement, ct.c1.length);
  const foldedC = msmG1(ct.c1, rho);
  const foldedD = msmG1(partial.d, rho);
  const { challenge, response } = partial.proof;
  const a = g1Sub(g1Mul(g1Generator(), response), g1Mul(verificationKey, challenge));
  const b = g1Sub(g1Mul(foldedC, response), g1Mul(foldedD, challenge));
  return sameBytes(frToBytes(challengeOf(statement, a, b)), frToBytes(challenge));
}

/**
 * Verifies every partial, then combines t valid ones (lowest indices first) and decodes each cell with
 * |value| ≤ bound. Participants none of whose partials verifies are listed in `rejected`; invalid partials are never used. Throws
 * AccessDeniedError if fewer than t distinct participants gave valid partials (t − 1 cannot decrypt), and
 * IntegrityError from decoding if a cell is out of bound.
 */
export function combine(pk: ThresholdPublicKey, ct: Ciphertext, partials: readonly PartialDecryption[], bound = DEFAULT_DECODE_BOUND): Decryption {
  if (!sameBytes(ct.keyId, keyIdOf(pk))) throw new AccessDeniedError('the ciphertext is under another key');
  const valid = new Map<number, PartialDecryption>();
  const rejected = new Set<number>();
  // A valid partial counts even if an invalid one claiming the same index came first (anyone can post garbage
  // under an index); an index is rejected only if none of its partials verifies.
  for (const partial of partials) {
    if (valid.has(partial.index)) continue;
    if (verifyPartial(pk, ct, partial)) {
      valid.set(partial.index, partial);
      rejected.delete(partial.index);
    } else rejected.add(partial.index);
  }
  const used = [...valid.keys()].sort((a, b) => a - b).slice(0, pk.t);
  const rejectedList = [...rejected].sort((a, b) => a - b);
  if (used.length < pk.t) {
    const blamed = rejectedList.length ? `; participant(s) ${rejectedList.join(', ')} gave invalid partial decryptions` : '';
    throw new AccessDeniedError(`${used.length} valid partial decryptions, ${pk.t} needed${blamed}`);
  }
  return {
    values: combineUnchecked(
      ct,
      used.map((i) => valid.get(i)!),
      bound,
    ),
    used,
    rejected: rejectedList,
  };
}

/**
 * Lagrange combination of the given partials without any check (as a coalition of their holders would compute
 * it), then decoding. Exposed so that tests can show that t − 1 honest partials yield no plaintext.
 */
export function combineUnchecked(ct: Ciphertext, partials: readonly PartialDecryption[], bound = DEFAULT_DECODE_BOUND): bigint[] {
  const lambdas = lagrangeCoefficients(partials.map((p) => p.index));
  return ct.c2.map((c2, k) =>
    decodeSmall(
      g1Sub(
        c2,
        msmG1(
          partials.map((p) => p.d[k]!),
          lambdas,
        ),
      ),
      bound,
    ),
  );
}
