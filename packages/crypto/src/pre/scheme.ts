/**
 * Public-key → CP-ABE proxy re-encryption: the math.
 *
 * The key-encapsulation technique of identity-based proxy re-encryption (Green & Ateniese, "Identity-Based
 * Proxy Re-encryption", ACNS 2007, §4, scheme IBP1: the re-encryption key is the delegator's secret blinded
 * by H(X), with X encrypted to the delegatee), with FAME CP-ABE in the role of IBE and ElGamal in GT as the
 * first-level public-key scheme. Per category t (and key epoch e):
 *
 *   patient secret   a_t = HKDF(master secret, category, epoch) ∈ Zr,   decryption key  g2^{a_t} (never published)
 *   public key       pk_t = e(g1, g2)^{a_t} ∈ GT
 *   encrypt          R ← GT, r ← Zr:  c1 = g1^r,  c2 = R · pk_t^r
 *   patient decrypt  R = c2 / e(c1, g2^{a_t})
 *   delegate to P    X ← GT, id ← 16 random bytes:  rk2 = FAME.Encapsulate(P) of X,
 *                    rk1 = g2^{a_t} · H(X, id, rk2)     (H: GT × id × SHA-256(rk2) → G2)
 *   convert (proxy)  c2' = c2 / e(c1, rk1) = R / e(c1, H(X, id, rk2))
 *   reader           X = FAME.Decapsulate(rk2) (once per delegation),  R = c2' · e(c1, H(X, id, rk2))
 *   record grant     c2' = R / e(c1, H(X, id, rk2)) by a party that knows R (patient: one shared record;
 *                    encrypting hospital: platform emergency grants — docs/crypto.md §10); the hospital, which
 *                    also knows r, computes it as R / e(g1, H(X, id, rk2))^r with e(g1, H(X, id, rk2)) cached per capsule
 *
 * H hashes the delegation id and a digest of rk2 with X (format 2), so what the reader's key derivation relies on
 * is bound: a converted header whose delegation id or rk2 was swapped for another yields a wrong R, which the
 * payload's AEAD refuses, even when the swapped-in rk2 encapsulates the same X.
 *
 * Deviation from the construction first proposed for MedShare: there pk_t was g2^{a_t}, which *is* the
 * decryption key, so anyone could compute R = c2 / e(c1, pk_t). Publishing pk_t in GT keeps g2^{a_t}
 * secret; see docs/crypto.md §9 and the regression test `public-g2-key-decrypts-anything`.
 */
import { createHash, hkdfSync } from 'node:crypto';
import * as mcl from 'mcl-wasm';
import * as c from '../curve/bls12381.ts';
import type { Fr, G1, G2, GT } from '../curve/bls12381.ts';

const HASH_GT_DST = 'MEDSHARE-V02-CS02-PRE-GT-with-BLS12381G2_XMD:SHA-256_SSWU_RO_';
const DELEGATION_ID_BYTES = 16;
const utf8 = new TextEncoder();

/**
 * The category secret a_{t,e}: HKDF-SHA256 of the patient's master secret with the category and epoch as
 * length-prefixed info, 64 bytes reduced mod r (statistically uniform). Categories are independent: knowing
 * g2^{a} for one gives nothing about another.
 */
export function categorySecret(masterSecret: Uint8Array, category: string, epoch: number): Fr {
  const name = utf8.encode(category);
  const info = new Uint8Array(2 + name.length + 4);
  const view = new DataView(info.buffer);
  view.setUint16(0, name.length);
  info.set(name, 2);
  view.setUint32(2 + name.length, epoch);
  const okm = new Uint8Array(hkdfSync('sha256', masterSecret, 'MedShare v1 PRE category secret', info, 64));
  const a = new mcl.Fr();
  a.setBigEndianMod(okm);
  return a;
}

/** pk_t = e(g1, g2)^{a_t}. */
export function categoryPublicKey(a: Fr): GT {
  return c.gtPow(c.gtBase(), a);
}

/** The patient's decryption key for a category: g2^{a_t}. Secret. */
export function categoryDecryptionKey(a: Fr): G2 {
  return c.g2Mul(c.g2Generator(), a);
}

/**
 * Hospital-side encapsulation: a fresh uniformly random R and (c1, c2). One G1 and two GT exponentiations (R is
 * e(g1, g2)^x with e(g1, g2) cached). r is returned for `recordGrantWithExponent` only; it must not leave the caller.
 */
export function encapsulate(publicKey: GT): { R: GT; r: Fr; c1: G1; c2: GT } {
  const r = c.randomFr();
  const R = c.randomGT();
  return { R, r, c1: c.g1Mul(c.g1Generator(), r), c2: c.gtMul(R, c.gtPow(publicKey, r)) };
}

/** Patient-side decapsulation: R = c2 / e(c1, g2^{a_t}). c1 must already be checked to be in G1. */
export function decapsulate(decryptionKey: G2, c1: G1, c2: GT): GT {
  return c.gtDiv(c2, c.pairing(c1, decryptionKey));
}

/**
 * H(X, id, rk2): RFC 9380 hashing to G2 of X's canonical encoding ‖ the 16-byte delegation id ‖ SHA-256(rk2)
 * (fixed sizes, so the concatenation is unambiguous). RangeError for an id of another size (a programming error).
 */
export function delegationHash(x: GT, delegationId: Uint8Array, rk2: Uint8Array): G2 {
  if (delegationId.length !== DELEGATION_ID_BYTES) throw new RangeError('a delegation id is 16 bytes');
  const digest = createHash('sha256').update(rk2).digest();
  return c.hashToG2(Buffer.concat([c.gtToBytes(x), delegationId, digest]), HASH_GT_DST);
}

/** The first half of a category re-encryption key: rk1 = g2^{a_t} · H(X, id, rk2), given H(X, id, rk2). */
export function reEncryptionKey(decryptionKey: G2, hashOfX: G2): G2 {
  return c.g2Add(decryptionKey, hashOfX);
}

/** The proxy's conversion: c2' = c2 / e(c1, rk1). One pairing (cheaper when rk1's lines are precomputed). */
export function convert(rk1: G2 | c.PrecomputedG2, c1: G1, c2: GT): GT {
  return c.gtDiv(c2, rk1 instanceof c.PrecomputedG2 ? rk1.pairing(c1) : c.pairing(c1, rk1));
}

/** The reader's recovery with H(X) known: R = c2' · e(c1, H(X)). One pairing (cheaper with H(X)'s lines precomputed). */
export function recover(hashOfX: G2 | c.PrecomputedG2, c1: G1, c2Converted: GT): GT {
  return c.gtMul(c2Converted, hashOfX instanceof c.PrecomputedG2 ? hashOfX.pairing(c1) : c.pairing(c1, hashOfX));
}

/**
 * A single-record grant computed by whoever knows R — the patient (any record) or the hospital that encrypted
 * it (platform emergency grants): c2' = R / e(c1, H(X)). One pairing.
 */
export function recordGrant(R: GT, c1: G1, hashOfX: G2): GT {
  return c.gtDiv(R, c.pairing(c1, hashOfX));
}

/** e(g1, H(X)): computed once per emergency capsule, so that each record's grant is a GT exponentiation. */
export function grantBase(hashOfX: G2): GT {
  return c.pairing(c.g1Generator(), hashOfX);
}

/**
 * `recordGrant` by the party that chose c1 = g1^r (the encrypting hospital): e(c1, H(X)) = e(g1, H(X))^r by
 * bilinearity, so c2' = R / grantBase^r, one GT exponentiation instead of a pairing. Same value.
 */
export function recordGrantWithExponent(R: GT, r: Fr, base: GT): GT {
  return c.gtDiv(R, c.gtPow(base, r));
}
