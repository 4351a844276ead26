/**
 * The versioned binary envelope around every MedShare key and ciphertext header:
 *
 *   offset  size  field
 *   0       4     magic "MSHR"
 *   4       1     format version (formatVersion(type): 1 or 2, see FORMAT_VERSIONS)
 *   5       1     object type (ObjectType)
 *   6       1     scheme id (SchemeId)
 *   7       1     curve id (CurveId)
 *   8       4     body length n (u32, big-endian)
 *   12      n     body (layout depends on the object type, see docs/crypto.md)
 *   12+n    32    SHA-256 of bytes [0, 12+n)
 *
 * The checksum detects corruption (any flipped byte after the magic is an IntegrityError before anything is
 * interpreted); it is not authentication — ciphertexts are authenticated by their AEAD, keys by their
 * distribution channel. Version, scheme and curve are checked only after the checksum, so a corrupted byte
 * is reported as corruption, and a genuine object from another version as unsupported.
 */
import { createHash } from 'node:crypto';
import { IntegrityError, MalformedInputError, UnsupportedError } from '../errors.ts';
import { ByteReader } from './bytes.ts';

export const MAGIC = Uint8Array.from([0x4d, 0x53, 0x48, 0x52]); // "MSHR"
export const PREFIX_BYTES = 12;
export const CHECKSUM_BYTES = 32;
/** No MedShare key or header is anywhere near this; larger declared lengths are corruption or hostility. */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;

export enum ObjectType {
  AbePublicKey = 1,
  AbeMasterKey = 2,
  AbeUserKey = 3,
  AbeCiphertext = 4,
  PatientSecretKey = 5,
  PatientPublicKeys = 6,
  PreCiphertext = 7,
  ReEncryptionKey = 8,
  ConvertedCiphertext = 9,
  EmergencyCapsule = 10,
  EmergencyGrant = 11,
  /** A searchable-index writer's keyword counters, sealed under its index key (sse/state.ts). */
  SseWriterState = 12,
}

export enum SchemeId {
  /** Agrawal–Chase FAME CP-ABE (CCS 2017), k = 2 (DLIN). */
  Fame = 1,
  /** MedShare's public-key → CP-ABE proxy re-encryption over FAME. */
  PreToFame = 2,
  /** Chamani et al.'s Mitra dynamic SSE (CCS 2018), with per-writer sub-indexes (sse/). */
  Mitra = 3,
}

export enum CurveId {
  Bls12_381 = 1,
}

/**
 * The format version written for each object type. Version 2 (this build) changed every object that holds or
 * depends on FAME rows or key components: the one-use labels (attribute, occurrence) of `policy/occurrence.ts`,
 * and H(X) of a delegation bound to its id and rk2. Version-1 objects of those types are refused with
 * UnsupportedError and MIGRATIONS says what to do; the other types did not change and stay at version 1.
 */
export const FORMAT_VERSIONS: Record<ObjectType, number> = {
  [ObjectType.AbePublicKey]: 1,
  [ObjectType.AbeMasterKey]: 1,
  [ObjectType.AbeUserKey]: 2,
  [ObjectType.AbeCiphertext]: 2,
  [ObjectType.PatientSecretKey]: 1,
  [ObjectType.PatientPublicKeys]: 1,
  [ObjectType.PreCiphertext]: 1,
  [ObjectType.ReEncryptionKey]: 2,
  [ObjectType.ConvertedCiphertext]: 2,
  [ObjectType.EmergencyCapsule]: 2,
  [ObjectType.EmergencyGrant]: 2,
  [ObjectType.SseWriterState]: 1,
};

/** How to replace a version-1 object of a type whose format changed (shown in the UnsupportedError). */
const MIGRATIONS: Partial<Record<ObjectType, string>> = {
  [ObjectType.AbeUserKey]: 'ask the attribute authority to issue the key again (medshare abe keygen; the master key is unchanged)',
  [ObjectType.AbeCiphertext]: 'encrypt the plaintext again with this build (medshare abe encrypt)',
  [ObjectType.ReEncryptionKey]: 'the patient delegates again (medshare pre delegate) and the old key is deleted',
  [ObjectType.ConvertedCiphertext]: 'convert the stored record ciphertext again with a current re-encryption key',
  [ObjectType.EmergencyCapsule]: 'the hospital makes a new emergency capsule and uploads its records with it',
  [ObjectType.EmergencyGrant]: 'the hospital uploads the record again with a new emergency capsule',
};

/** The format version this build writes and reads for `type`. */
export function formatVersion(type: ObjectType): number {
  return FORMAT_VERSIONS[type] ?? 1;
}

const TYPE_NAMES: Record<ObjectType, string> = {
  [ObjectType.AbePublicKey]: 'ABE PUBLIC KEY',
  [ObjectType.AbeMasterKey]: 'ABE MASTER KEY',
  [ObjectType.AbeUserKey]: 'ABE USER KEY',
  [ObjectType.AbeCiphertext]: 'ABE CIPHERTEXT',
  [ObjectType.PatientSecretKey]: 'PATIENT SECRET KEY',
  [ObjectType.PatientPublicKeys]: 'PATIENT PUBLIC KEYS',
  [ObjectType.PreCiphertext]: 'PRE CIPHERTEXT',
  [ObjectType.ReEncryptionKey]: 'RE-ENCRYPTION KEY',
  [ObjectType.ConvertedCiphertext]: 'CONVERTED CIPHERTEXT',
  [ObjectType.EmergencyCapsule]: 'EMERGENCY CAPSULE',
  [ObjectType.EmergencyGrant]: 'EMERGENCY GRANT',
  [ObjectType.SseWriterState]: 'SSE WRITER STATE',
};

/** `a name` or `an name`, for messages. */
export const withArticle = (name: string): string => `${/^[aeiou]/i.test(name) ? 'an' : 'a'} ${name}`;

/** Human-readable name of an object type, also used as the text-armor label. */
export function typeName(type: ObjectType): string {
  return TYPE_NAMES[type] ?? `object type ${type}`;
}

function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** Wraps a body in the envelope. */
export function sealEnvelope(type: ObjectType, scheme: SchemeId, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(PREFIX_BYTES + body.length + CHECKSUM_BYTES);
  out.set(MAGIC, 0);
  out[4] = formatVersion(type);
  out[5] = type;
  out[6] = scheme;
  out[7] = CurveId.Bls12_381;
  new DataView(out.buffer).setUint32(8, body.length);
  out.set(body, PREFIX_BYTES);
  out.set(sha256(out.subarray(0, PREFIX_BYTES + body.length)), PREFIX_BYTES + body.length);
  return out;
}

/** An opened envelope: the body and the exact bytes it was read from (for binding as associated data). */
export interface Envelope {
  type: ObjectType;
  scheme: SchemeId;
  body: ByteReader;
  /** The envelope's bytes, checksum included. */
  bytes: Uint8Array;
}

/**
 * Reads the length of the envelope at the start of `input` without validating it (for streaming readers).
 * Returns undefined if fewer than PREFIX_BYTES are available.
 */
export function envelopeLength(input: Uint8Array, expected: ObjectType): number | undefined {
  if (input.length < PREFIX_BYTES) return undefined;
  checkMagic(input, expected);
  const bodyLength = new DataView(input.buffer, input.byteOffset, PREFIX_BYTES).getUint32(8);
  if (bodyLength > MAX_BODY_BYTES) throw new IntegrityError(`corrupted ${typeName(expected).toLowerCase()}: implausible length`);
  return PREFIX_BYTES + bodyLength + CHECKSUM_BYTES;
}

function checkMagic(input: Uint8Array, expected: ObjectType): void {
  if (input.length < MAGIC.length || !MAGIC.every((b, i) => input[i] === b)) {
    throw new MalformedInputError(`not a MedShare ${typeName(expected).toLowerCase()} (bad magic)`);
  }
}

/**
 * Opens an envelope of the expected type at the start of `input`. With `exact`, trailing bytes are
 * rejected; otherwise the caller reads what follows (a ciphertext's payload).
 */
export function openEnvelope(input: Uint8Array, expected: ObjectType, scheme: SchemeId, exact = true): Envelope {
  const name = typeName(expected).toLowerCase();
  checkMagic(input, expected);
  const total = envelopeLength(input, expected);
  if (total === undefined || input.length < total) throw new IntegrityError(`corrupted ${name}: truncated`);
  if (exact && input.length !== total) throw new MalformedInputError(`${name}: ${input.length - total} unexpected trailing bytes`);
  const bodyEnd = total - CHECKSUM_BYTES;
  const digest = sha256(input.subarray(0, bodyEnd));
  const stored = input.subarray(bodyEnd, total);
  if (!digest.every((b, i) => b === stored[i])) throw new IntegrityError(`corrupted ${name}: checksum mismatch`);
  const version = input[4]!;
  if (version < 1 || version > 2) throw new UnsupportedError(`${name}: format version ${version} is not supported (this build reads versions 1 and 2)`);
  if (input[5] !== expected) throw new MalformedInputError(`expected ${withArticle(name)}, got ${withArticle(typeName(input[5] as ObjectType).toLowerCase())}`);
  if (version !== formatVersion(expected)) {
    const migration = version < formatVersion(expected) ? MIGRATIONS[expected] : undefined;
    throw new UnsupportedError(
      `${name}: format version ${version} is not supported (this build reads version ${formatVersion(expected)})` +
        (migration ? `: version 1 is unsafe for policies that name an attribute twice; to migrate, ${migration}` : ''),
    );
  }
  if (input[6] !== scheme) throw new UnsupportedError(`${name}: scheme id ${input[6]} is not supported here`);
  if (input[7] !== CurveId.Bls12_381) throw new UnsupportedError(`${name}: curve id ${input[7]} is not supported (only BLS12-381)`);
  return {
    type: expected,
    scheme,
    body: new ByteReader(input.subarray(PREFIX_BYTES, bodyEnd), name),
    bytes: input.subarray(0, total),
  };
}
