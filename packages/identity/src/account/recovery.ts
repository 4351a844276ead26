/**
 * Recovery codes: single-use second factors for a user who lost the authenticator.
 *
 * Each code carries 80 random bits (16 base32 characters, shown as four groups of four), so a
 * plain SHA-256 digest is enough to store it: unlike a password it cannot be guessed offline.
 * Lookup compares against every stored digest in constant time, and a code is removed on use.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { base32Encode } from './base32.ts';

/** How many codes a user receives at once. */
export const RECOVERY_CODE_COUNT = 10;

function normalise(code: string): string {
  return code.replace(/[\s-]/g, '').toUpperCase();
}

/** The stored form of a code (hex SHA-256 of the normalised code). */
export function digestRecoveryCode(code: string): string {
  return createHash('sha256')
    .update(`medshare-recovery:${normalise(code)}`)
    .digest('hex');
}

/** Generates fresh codes: the clear codes to show once, and the digests to store. */
export function newRecoveryCodes(count = RECOVERY_CODE_COUNT): { codes: string[]; digests: string[] } {
  const codes = Array.from({ length: count }, () => base32Encode(randomBytes(10)).match(/.{4}/g)!.join('-'));
  return { codes, digests: codes.map(digestRecoveryCode) };
}

/** Index of the stored digest that `code` matches, or -1; examines every digest. */
export function findRecoveryCode(digests: readonly string[], code: string): number {
  const candidate = Buffer.from(digestRecoveryCode(code), 'hex');
  let found = -1;
  digests.forEach((digest, index) => {
    if (timingSafeEqual(Buffer.from(digest, 'hex'), candidate) && found < 0) found = index;
  });
  return found;
}
