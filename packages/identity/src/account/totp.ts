/**
 * One-time codes: HOTP (RFC 4226) and TOTP (RFC 6238) over node:crypto HMAC.
 *
 * Verification accepts the current time step and `window` steps either side (clock drift), compares
 * every candidate in constant time, and returns the matched step so that the caller can refuse a
 * code whose step is not newer than the last one accepted (RFC 6238 §5.2: a code is valid once).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { MalformedInputError } from '@medshare/crypto';
import { base32Encode } from './base32.ts';

/** The HMAC hash of a TOTP secret (RFC 6238 allows SHA-1, SHA-256, SHA-512). */
export type TotpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';

/** TOTP parameters; the defaults are those of every authenticator app. */
export interface TotpOptions {
  readonly algorithm: TotpAlgorithm;
  readonly digits: number;
  readonly periodSeconds: number;
  /** Steps accepted either side of the current one. */
  readonly window: number;
}

export const DEFAULT_TOTP: TotpOptions = { algorithm: 'SHA1', digits: 6, periodSeconds: 30, window: 1 };

/** RFC 4226 §5.3: HMAC over the 8-byte big-endian counter, dynamic truncation, modulo 10^digits. */
export function hotp(secret: Uint8Array, counter: number, digits = 6, algorithm: TotpAlgorithm = 'SHA1'): string {
  if (!Number.isSafeInteger(counter) || counter < 0) throw new MalformedInputError('HOTP counter must be a non-negative integer');
  if (!Number.isInteger(digits) || digits < 6 || digits > 10) throw new MalformedInputError('HOTP codes have 6 to 10 digits');
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(algorithm.toLowerCase(), secret).update(message).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return (binary % 10 ** digits).toString().padStart(digits, '0');
}

/** The RFC 6238 time step of `unixSeconds`. */
export function timeStep(unixSeconds: number, periodSeconds = DEFAULT_TOTP.periodSeconds): number {
  return Math.floor(unixSeconds / periodSeconds);
}

/** The TOTP code for `unixSeconds` (RFC 6238 §4.2, T0 = 0). */
export function totp(secret: Uint8Array, unixSeconds: number, options: Partial<TotpOptions> = {}): string {
  const { algorithm, digits, periodSeconds } = { ...DEFAULT_TOTP, ...options };
  return hotp(secret, timeStep(unixSeconds, periodSeconds), digits, algorithm);
}

/**
 * Returns the time step a code matches within the window, or undefined. Every candidate is
 * compared (no early exit) so the time taken does not depend on which step matched.
 */
export function matchTotp(secret: Uint8Array, code: string, unixSeconds: number, options: Partial<TotpOptions> = {}): number | undefined {
  const { algorithm, digits, periodSeconds, window } = { ...DEFAULT_TOTP, ...options };
  if (!/^\d+$/.test(code) || code.length !== digits) return undefined;
  const now = timeStep(unixSeconds, periodSeconds);
  let matched: number | undefined;
  for (let step = now - window; step <= now + window; step++) {
    if (step < 0) continue;
    const expected = Buffer.from(hotp(secret, step, digits, algorithm));
    if (timingSafeEqual(expected, Buffer.from(code)) && matched === undefined) matched = step;
  }
  return matched;
}

/** A fresh 20-byte (160-bit, RFC 4226 §4 recommendation) TOTP secret. */
export function newTotpSecret(): Uint8Array {
  return new Uint8Array(randomBytes(20));
}

/** The `otpauth://` URI authenticator apps import (Google Authenticator key-URI format). */
export function otpauthUri(secret: Uint8Array, issuer: string, account: string, options: Partial<TotpOptions> = {}): string {
  const { algorithm, digits, periodSeconds } = { ...DEFAULT_TOTP, ...options };
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(account)}`;
  const query = new URLSearchParams({ secret: base32Encode(secret), issuer, algorithm, digits: String(digits), period: String(periodSeconds) });
  return `otpauth://totp/${label}?${query.toString()}`;
}
