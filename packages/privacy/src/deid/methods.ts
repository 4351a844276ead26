/**
 * The value-level de-identification methods of Microsoft's FHIR anonymizer, applied to one
 * primitive value: cryptoHash (HMAC-SHA256, RFC 2104, hex), encrypt, perturb, generalize and
 * substitute. Dates and free text live in dates.ts and free-text.ts.
 *
 * Deviation: the reference tool encrypts with AES-CBC under the raw key bytes. We use AES-256-GCM
 * (NIST SP 800-38D) under a key derived by HKDF-SHA256 (RFC 5869) from `encryptKey`, so ciphertexts
 * are authenticated and any key length is accepted. Output: base64(iv(12) || ciphertext || tag(16)).
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, randomInt, type KeyObject } from 'node:crypto';
import { IntegrityError, MalformedInputError } from '@medshare/crypto';
import { RESOURCE_TYPES } from './native-paths.ts';

/**
 * HMAC-SHA256 of a string, lower-case hex: the reference tool's cryptoHash. (The engine keeps the
 * results it reuses, per instance, and passes its key as a KeyObject made once: a string key is
 * converted to bytes on every call.)
 */
export function cryptoHash(value: string, key: string | KeyObject): string {
  return createHmac('sha256', key).update(value, 'utf8').digest('hex');
}

const ID = '[A-Za-z0-9\\-\\.]{1,64}';
/** Literal references as the reference tool recognises them (its ReferenceUtility): absolute or relative `Type/id[/_history/v]`, urn:oid, urn:uuid. */
const LITERAL_REFERENCES = [
  new RegExp(`^((?:https?://[A-Za-z0-9\\\\/.:%$]*)?(?:${[...RESOURCE_TYPES].join('|')})/)(${ID})(/_history/${ID})?$`),
  /^(urn:oid:)([0-2](?:\.(?:0|[1-9][0-9]*))+)()$/,
  /^(urn:uuid:)([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})()$/,
];

/**
 * cryptoHash of a reference, as the reference tool does it: only the id part of `Type/id`,
 * `urn:oid:` and `urn:uuid:` references (and of `#id` references to contained resources, whose ids
 * the same rule hashes) is hashed, so references stay resolvable; anything else is hashed whole.
 * `hash` is the id transformation (cryptoHash by default).
 */
export function cryptoHashReference(reference: string, key: string | KeyObject, hash: (id: string) => string = (id) => cryptoHash(id, key)): string {
  if (reference.startsWith('#')) return `#${hash(reference.slice(1))}`;
  // The common case, `urn:uuid:` and a UUID (the third pattern), read without a match array.
  if (reference.startsWith('urn:uuid:') && isUuidAt(reference, 9)) return `urn:uuid:${hash(reference.slice(9))}`;
  // Only the pattern its scheme can match is tried (the first one is an alternation of every resource type).
  const pattern = reference.startsWith('urn:uuid:')
    ? LITERAL_REFERENCES[2]!
    : reference.startsWith('urn:oid:')
      ? LITERAL_REFERENCES[1]!
      : LITERAL_REFERENCES[0]!;
  const match = pattern.exec(reference);
  if (match) return `${match[1]}${hash(match[2] ?? '')}${match[3] ?? ''}`;
  return hash(reference);
}

/** `value` from `from` to its end is a UUID, as /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/ reads it. */
function isUuidAt(value: string, from: number): boolean {
  if (value.length !== from + 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = value.charCodeAt(from + i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45 /* - */) return false;
    } else if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/**
 * MedShare's form-keeping hash (parameter `cryptoHashKeepsForm`): a UUID hashes to a UUID (the
 * first 128 bits of the HMAC with the RFC 9562 version-8 and variant bits set), so `urn:uuid:`
 * fullUrls stay valid and match the hashed ids and references of the same Bundle; any other
 * value hashes to the hex HMAC.
 */
export function formKeepingHash(value: string, key: string | KeyObject): string {
  const hex = cryptoHash(value, key);
  if (!isUuidAt(value, 0)) return hex;
  // The UUID's 36 characters written into one buffer and read as one string (a template of five slices made
  // eight strings per id; a record set hashes one id per resource): 8-4-4-4-12 hex digits of the HMAC's first
  // 128 bits, the version digit (the 13th) set to 8 and the variant digit's (the 17th) two high bits to 10.
  let at = 0;
  for (let i = 0; i < 32; i++) {
    if (i === 8 || i === 12 || i === 16 || i === 20) UUID_CHARS[at++] = 45; // -
    const digit = hex.charCodeAt(i);
    UUID_CHARS[at++] = i === 12 ? 56 /* 8 */ : i === 16 ? HEX_DIGITS[(hexValue(digit) & 0x3) | 0x8]! : digit;
  }
  return UUID_CHARS.toString('latin1');
}

/** The characters of one form-kept UUID, rewritten by each call (the string read from it is a copy). */
const UUID_CHARS = Buffer.alloc(36);
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');

/** The value of a lower-case hex digit's character code (digest('hex') writes lower case). */
function hexValue(code: number): number {
  return code <= 57 ? code - 48 : code - 87;
}

function encryptionKey(encryptKey: string): Buffer {
  if (encryptKey === '') throw new MalformedInputError('the encrypt method needs the encryptKey parameter');
  return Buffer.from(hkdfSync('sha256', Buffer.from(encryptKey, 'utf8'), Buffer.alloc(0), 'medshare/deid/encrypt/v1', 32));
}

/** Encrypts a value with AES-256-GCM under a key derived from `encryptKey`. */
export function encryptValue(value: string, encryptKey: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', encryptionKey(encryptKey), iv);
  const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64');
}

/** Decrypts an `encryptValue` output; an authorised holder of `encryptKey` uses it to recover values. */
export function decryptValue(encoded: string, encryptKey: string): string {
  const bytes = Buffer.from(encoded, 'base64');
  if (bytes.length < 28) throw new MalformedInputError('encrypted value is too short');
  const decipher = createDecipheriv('aes-256-gcm', encryptionKey(encryptKey), bytes.subarray(0, 12));
  decipher.setAuthTag(bytes.subarray(bytes.length - 16));
  try {
    return Buffer.concat([decipher.update(bytes.subarray(12, bytes.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    throw new IntegrityError('encrypted value failed authentication (wrong key or tampered)');
  }
}

/**
 * Adds uniform noise in [-span/2, +span/2] (span scaled by |value| when proportional), then rounds
 * to `roundTo` decimals (integers stay integers). Noise comes from node:crypto's CSPRNG.
 */
export function perturbNumber(value: number, span: number, rangeType: 'fixed' | 'proportional', roundTo: number, integer: boolean): number {
  const width = rangeType === 'proportional' ? span * Math.abs(value) : span;
  const unit = randomInt(0, 2 ** 48 - 1) / (2 ** 48 - 2);
  const noisy = value + (unit - 0.5) * width;
  const digits = integer ? 0 : roundTo;
  const rounded = Number(noisy.toFixed(digits));
  return Object.is(rounded, -0) ? 0 : rounded;
}
