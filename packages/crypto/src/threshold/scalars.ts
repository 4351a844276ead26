/**
 * Scalar helpers shared by the threshold scheme: Shamir polynomials over Fr, Lagrange coefficients at 0 (or at
 * any point), and hashing to Fr for Fiat–Shamir challenges. Arithmetic is mcl's; nothing here is a primitive.
 */
import { createHash } from 'node:crypto';
import * as mcl from 'mcl-wasm';
import type { Fr } from '../curve/bls12381.ts';
import { frAdd, frFromBigInt, frInv, frMul, frSub, randomFr } from '../curve/bls12381.ts';

/** A polynomial a_0 + a_1 z + … + a_{d} z^{d} over Fr (coefficients low to high). */
export type Polynomial = readonly Fr[];

/** A uniformly random polynomial of the given degree (all coefficients random, a_0 included). */
export function randomPolynomial(degree: number): Polynomial {
  return Array.from({ length: degree + 1 }, () => randomFr());
}

/** f(x) by Horner's rule. */
export function evaluatePolynomial(f: Polynomial, x: number): Fr {
  const at = frFromBigInt(BigInt(x));
  let acc = f[f.length - 1]!;
  for (let k = f.length - 2; k >= 0; k--) acc = frAdd(frMul(acc, at), f[k]!);
  return acc;
}

/**
 * Lagrange coefficients λ_i(at) for the distinct non-zero indices `indices`: f(at) = Σ λ_i f(i) for every f of
 * degree < indices.length. Throws RangeError on repeated or non-positive indices (a caller bug, not input).
 */
export function lagrangeCoefficients(indices: readonly number[], at = 0): Fr[] {
  if (new Set(indices).size !== indices.length || indices.some((i) => !Number.isInteger(i) || i <= 0)) {
    throw new RangeError('Lagrange interpolation needs distinct positive indices');
  }
  const x = frFromBigInt(BigInt(at));
  return indices.map((i) => {
    const xi = frFromBigInt(BigInt(i));
    let num = frFromBigInt(1n);
    let den = frFromBigInt(1n);
    for (const j of indices) {
      if (j === i) continue;
      const xj = frFromBigInt(BigInt(j));
      num = frMul(num, frSub(x, xj));
      den = frMul(den, frSub(xi, xj));
    }
    return frMul(num, frInv(den));
  });
}

/**
 * Hash to Fr: SHA-512 over a domain tag and length-prefixed parts, reduced mod r. 512 bits reduced modulo a
 * 255-bit prime is statistically uniform (bias < 2^-256), as in RFC 9380's hash_to_field with L = 64.
 */
export function hashToFr(domain: string, ...parts: Uint8Array[]): Fr {
  const h = createHash('sha512');
  const tag = new TextEncoder().encode(domain);
  h.update(lengthPrefix(tag.length)).update(tag);
  for (const part of parts) h.update(lengthPrefix(part.length)).update(part);
  const out = new mcl.Fr();
  out.setBigEndianMod(new Uint8Array(h.digest()));
  return out;
}

/** SHA-256 over length-prefixed parts (transcript digests and key fingerprints). */
export function digest(domain: string, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  const tag = new TextEncoder().encode(domain);
  h.update(lengthPrefix(tag.length)).update(tag);
  for (const part of parts) h.update(lengthPrefix(part.length)).update(part);
  return new Uint8Array(h.digest());
}

/** Byte-wise equality of two public values (key ids, digests; not constant-time: nothing secret is compared). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function lengthPrefix(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}
