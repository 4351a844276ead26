/**
 * Proofs that a hospital's encrypted histogram is well formed: every cell holds an integer m with
 * −2^(k−1) ≤ m < 2^(k−1), for the k the cell was proven with, so that one hospital cannot add an arbitrary amount
 * to a total, nor push a total outside the decoding bound (bsgs.ts).
 *
 * Bit decomposition with one disjunctive Chaum–Pedersen proof per bit (Cramer, Damgård and Schoenmakers, "Proofs
 * of Partial Knowledge and Simplified Design of Witness Hiding Protocols", CRYPTO '94, applied to the ElGamal
 * 0/1 proof of Cramer, Gennaro and Schoenmakers, EUROCRYPT '97, § 2.3; Fiat–Shamir, CRYPTO '86):
 *
 *   m + 2^(k−1) = Σ_i 2^i·b_i,  b_i ∈ {0, 1}
 *   B_i = (a_i, β_i) = (r_i·G, b_i·G + r_i·y)        one exponential ElGamal encryption per bit
 *   the cell's ciphertext is derived: (Σ 2^i·a_i, Σ 2^i·β_i − 2^(k−1)·G), an encryption of m
 *   per bit, an OR proof: log_G a_i = log_y β_i  or  log_G a_i = log_y (β_i − G)
 *
 * The verifier recomputes the cell from the bits (doublings and additions only) and checks it equals the
 * ciphertext's cell, then checks every OR proof. Each challenge hashes the key id, a caller's `context` (the
 * service binds the query and the hospital, so that a hospital cannot pass off another's contribution, proofs
 * and all, as its own), the cell and bit position, the bit's ciphertext and the four commitments.
 *
 * Cost per bit: 4 G1 multiplications and two 2-term multi-scalar multiplications to prove (encrypt the bit, the
 * real branch, simulate the other), four 2-term MSMs to verify, 224 bytes (measured: docs/benchmarks.md).
 */
import type { Fr, G1 } from '../curve/bls12381.ts';
import { frAdd, frFromBigInt, frMul, frSub, g1Add, g1Generator, g1Mul, g1Sub, g1ToBytes, msmG1, randomFr, frNeg } from '../curve/bls12381.ts';
import { LimitExceededError } from '../errors.ts';
import type { Ciphertext } from './elgamal.ts';
import { keyIdOf, type ThresholdPublicKey } from './keys.ts';
import { digest, hashToFr, sameBytes } from './scalars.ts';

/** The widest range a cell may be proven in: |m| < 2^31. */
export const MAX_RANGE_BITS = 32;

/** One bit's ciphertext and its OR proof (challenges and responses of the 0 and 1 branches). */
export interface BitProof {
  a: G1;
  b: G1;
  c0: Fr;
  c1: Fr;
  z0: Fr;
  z1: Fr;
}

/** The proof that every cell of a ciphertext is in its range: `bits[k]` is cell k's k, `cells[k]` its bit proofs (low bit first). */
export interface RangeProof {
  keyId: Uint8Array;
  bits: number[];
  cells: BitProof[][];
}

const offsets = new Map<number, G1>();
/** 2^(k−1)·G, the offset that makes a signed cell a sum of k bits. */
function offsetOf(bits: number): G1 {
  let p = offsets.get(bits);
  if (p === undefined) offsets.set(bits, (p = g1Mul(g1Generator(), frFromBigInt(1n << BigInt(bits - 1)))));
  return p;
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits < 1 || bits > MAX_RANGE_BITS) throw new RangeError(`a range is 1..${MAX_RANGE_BITS} bits`);
}

function bitChallenge(statement: Uint8Array, cell: number, bit: number, a: G1, b: G1, commitments: G1[]): Fr {
  const at = new Uint8Array(6);
  new DataView(at.buffer).setUint32(0, cell);
  new DataView(at.buffer).setUint16(4, bit);
  return hashToFr('MedShare v1 threshold range bit', statement, at, g1ToBytes(a), g1ToBytes(b), ...commitments.map(g1ToBytes));
}

const statementOf = (keyId: Uint8Array, context: Uint8Array) => digest('MedShare v1 threshold range proof', keyId, context);

/** Σ 2^i·P_i by Horner's rule (doublings and additions: the scalars are small). */
function weighted(points: readonly G1[]): G1 {
  let acc = points[points.length - 1]!;
  for (let i = points.length - 2; i >= 0; i--) acc = g1Add(g1Add(acc, acc), points[i]!);
  return acc;
}

/**
 * Encrypts each value as one cell under the joint key, with the proof that cell k lies in ±2^(bits[k]−1).
 * Throws RangeError for bad bit widths or lengths, LimitExceededError for a value outside its range (it cannot
 * be proven).
 */
export function encryptInRange(
  pk: ThresholdPublicKey,
  values: readonly (number | bigint)[],
  bits: readonly number[],
  context: Uint8Array,
): { ciphertext: Ciphertext; proof: RangeProof } {
  if (bits.length !== values.length) throw new RangeError('one bit width per value');
  const g = g1Generator();
  const keyId = keyIdOf(pk);
  const statement = statementOf(keyId, context);
  const c1: G1[] = [];
  const c2: G1[] = [];
  const cells = values.map((value, cell) => {
    const k = bits[cell]!;
    checkBits(k);
    const shifted = BigInt(value) + (1n << BigInt(k - 1));
    if (shifted < 0n || shifted >= 1n << BigInt(k)) throw new LimitExceededError(`cell ${cell}: ${value} is outside ±2^${k - 1}`);
    const proofs = Array.from({ length: k }, (_, i): BitProof => {
      const bit = Number((shifted >> BigInt(i)) & 1n);
      const r = randomFr();
      const a = g1Mul(g, r);
      const ry = g1Mul(pk.y, r);
      const b = bit === 1 ? g1Add(ry, g) : ry;
      // The branch that is false is simulated: pick its challenge and response, solve for its commitments.
      const cFake = randomFr();
      const zFake = randomFr();
      const xFake = bit === 1 ? b : g1Sub(b, g); // β − v·G for the other value v = 1 − bit
      const fake = [msmG1([g, a], [zFake, frNeg(cFake)]), msmG1([pk.y, xFake], [zFake, frNeg(cFake)])];
      const w = randomFr();
      const real = [g1Mul(g, w), g1Mul(pk.y, w)];
      const commitments = bit === 0 ? [...real, ...fake] : [...fake, ...real];
      const c = bitChallenge(statement, cell, i, a, b, commitments);
      const cReal = frSub(c, cFake);
      const zReal = frAdd(w, frMul(cReal, r));
      return bit === 0 ? { a, b, c0: cReal, z0: zReal, c1: cFake, z1: zFake } : { a, b, c0: cFake, z0: zFake, c1: cReal, z1: zReal };
    });
    c1.push(weighted(proofs.map((p) => p.a)));
    c2.push(g1Sub(weighted(proofs.map((p) => p.b)), offsetOf(k)));
    return proofs;
  });
  return { ciphertext: { keyId, c1, c2 }, proof: { keyId, bits: [...bits], cells } };
}

/**
 * The cells of `ct` whose range proof fails (empty: every cell is proven in its range). A proof for another key,
 * another context or another number of cells fails in every cell.
 */
export function rangeFailures(pk: ThresholdPublicKey, ct: Ciphertext, proof: RangeProof, context: Uint8Array): number[] {
  const all = ct.c1.map((_, k) => k);
  const keyId = keyIdOf(pk);
  if (!sameBytes(ct.keyId, keyId) || !sameBytes(proof.keyId, keyId) || proof.cells.length !== ct.c1.length || proof.bits.length !== ct.c1.length) return all;
  const g = g1Generator();
  const statement = statementOf(keyId, context);
  return all.filter((cell) => {
    const k = proof.bits[cell]!;
    const bitsOf = proof.cells[cell]!;
    if (!Number.isInteger(k) || k < 1 || k > MAX_RANGE_BITS || bitsOf.length !== k) return true;
    if (!weighted(bitsOf.map((p) => p.a)).isEqual(ct.c1[cell]!)) return true;
    if (!g1Sub(weighted(bitsOf.map((p) => p.b)), offsetOf(k)).isEqual(ct.c2[cell]!)) return true;
    return bitsOf.some((p, i) => {
      const x1 = g1Sub(p.b, g);
      const commitments = [
        msmG1([g, p.a], [p.z0, frNeg(p.c0)]),
        msmG1([pk.y, p.b], [p.z0, frNeg(p.c0)]),
        msmG1([g, p.a], [p.z1, frNeg(p.c1)]),
        msmG1([pk.y, x1], [p.z1, frNeg(p.c1)]),
      ];
      return !frAdd(p.c0, p.c1).isEqual(bitChallenge(statement, cell, i, p.a, p.b, commitments));
    });
  });
}
