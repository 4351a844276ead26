/**
 * The keys of the threshold scheme: one public key shared by the n participants and one secret share each.
 *
 *   y    = x·G           the joint public key; x = Σ_{i ∈ QUAL} f_i(0) is never held by anyone
 *   Y_j  = x_j·G         participant j's verification key, public, checks j's partial decryptions
 *   x_j  = Σ_i f_i(j)    participant j's secret share (a Shamir share of x of threshold t)
 */
import type { Fr, G1 } from '../curve/bls12381.ts';
import { g1ToBytes } from '../curve/bls12381.ts';
import { digest } from './scalars.ts';

/** The most participants a key can have (indices are u16 on the wire; 255 keeps Lagrange work trivial). */
export const MAX_PARTICIPANTS = 255;

/** t-of-n: any t of the n participants decrypt; t − 1 learn nothing. */
export interface ThresholdParameters {
  n: number;
  t: number;
}

/** The joint public key and every participant's verification key (index j is at verificationKeys[j - 1]). */
export interface ThresholdPublicKey extends ThresholdParameters {
  y: G1;
  verificationKeys: G1[];
}

/** Participant `index`'s secret share of the joint key; `keyId` names the public key it belongs to. */
export interface KeyShare {
  index: number;
  secret: Fr;
  keyId: Uint8Array;
}

/** Throws RangeError unless 1 ≤ t ≤ n ≤ MAX_PARTICIPANTS (parameters are configuration, not wire input). */
export function checkParameters({ n, t }: ThresholdParameters): void {
  if (!Number.isInteger(n) || !Number.isInteger(t) || t < 1 || t > n || n > MAX_PARTICIPANTS) {
    throw new RangeError(`threshold parameters need 1 ≤ t ≤ n ≤ ${MAX_PARTICIPANTS} (got t = ${t}, n = ${n})`);
  }
}

/** SHA-256 fingerprint of a public key (n, t, y and every verification key): binds ciphertexts and partials to it. */
export function keyIdOf(pk: ThresholdPublicKey): Uint8Array {
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint16(0, pk.n);
  new DataView(header.buffer).setUint16(2, pk.t);
  return digest('MedShare v1 threshold key id', header, g1ToBytes(pk.y), ...pk.verificationKeys.map(g1ToBytes));
}
