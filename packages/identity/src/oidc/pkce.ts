/**
 * Proof Key for Code Exchange (RFC 7636), S256 only: the client sends `BASE64URL(SHA-256(verifier))` with the
 * authorization request and the verifier with the token request. `plain` is refused (§4.2 allows it only where
 * a client cannot hash; every client here can), so a code intercepted with its challenge cannot be redeemed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** §4.1: 43 to 128 unreserved characters. */
const VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;
/** A SHA-256 digest in base64url without padding is 43 characters. */
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

/** True when `challenge` has the shape of an S256 challenge. */
export function isS256Challenge(challenge: string): boolean {
  return CHALLENGE.test(challenge);
}

/** The S256 challenge of a verifier. */
export function s256Challenge(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** True when `verifier` is well formed and hashes to `challenge` (compared in constant time). */
export function verifierMatches(verifier: unknown, challenge: string): boolean {
  if (typeof verifier !== 'string' || !VERIFIER.test(verifier)) return false;
  const expected = Buffer.from(challenge, 'ascii');
  const actual = Buffer.from(s256Challenge(verifier), 'ascii');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
