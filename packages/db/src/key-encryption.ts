/**
 * Secrets at rest: every secret a service keeps in its database (TOTP seeds, SSO signing keys, the authority's
 * master key, the ledger's signing key, …) is stored wrapped by a key-encryption key (KEK) that never enters the
 * database. A copy of the database alone therefore yields no secret.
 *
 * The KEK sits behind a small interface so that a KMS or an HSM can implement it; the implementations here keep a
 * 256-bit key in a 0600 file or in an environment variable. Wrapping is AES-256-GCM (node:crypto) with a fresh
 * 96-bit nonce; the additional data binds the wrapped value to a caller-chosen context (for example
 * `identity/totp/<user id>`), so a wrapped secret copied into another row or table does not unwrap there.
 *
 * Wrapped layout (version 1): 0x01 ‖ kek id (8) ‖ nonce (12) ‖ ciphertext ‖ tag (16).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { IntegrityError, MalformedInputError, UnsupportedError } from '@medshare/crypto';

/** Wraps and unwraps secrets for storage. Implementations never expose the key itself. */
export interface KeyEncryptionKey {
  /** A public identifier of the key (a hash, not the key), stored in each wrapped value to name a wrong KEK clearly. */
  readonly id: string;
  /** Encrypts `secret` bound to `context`. */
  wrap(secret: Uint8Array, context: string): Promise<Uint8Array>;
  /**
   * Decrypts a value made by `wrap` with the same context.
   * @throws UnsupportedError for an unknown layout version, MalformedInputError for a truncated value,
   *   IntegrityError when it was made by another KEK, under another context, or altered.
   */
  unwrap(wrapped: Uint8Array, context: string): Promise<Uint8Array>;
}

const VERSION = 0x01;
const ID_BYTES = 8;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + ID_BYTES + NONCE_BYTES;
const KEY_BYTES = 32;
/** Environment variable read by `loadKeyEncryptionKey` before any file. */
export const KEK_ENV = 'MEDSHARE_KEK';

function keyId(key: Uint8Array): Uint8Array {
  return createHash('sha256').update('medshare/kek-id/v1').update(key).digest().subarray(0, ID_BYTES);
}

function additionalData(context: string): Buffer {
  return Buffer.concat([Buffer.from('medshare/kek/v1\0'), Buffer.from(context, 'utf8')]);
}

/** A KEK held in this process's memory (the file and environment loaders end here; tests use it directly). */
export function keyEncryptionKeyFromBytes(key: Uint8Array): KeyEncryptionKey {
  if (key.length !== KEY_BYTES) throw new MalformedInputError(`a key-encryption key is ${KEY_BYTES} bytes, not ${key.length}`);
  const material = Buffer.from(key);
  const idBytes = keyId(material);
  return {
    id: Buffer.from(idBytes).toString('hex'),
    async wrap(secret, context) {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', material, nonce);
      cipher.setAAD(additionalData(context));
      const body = Buffer.concat([cipher.update(secret), cipher.final()]);
      return new Uint8Array(Buffer.concat([Buffer.from([VERSION]), idBytes, nonce, body, cipher.getAuthTag()]));
    },
    async unwrap(wrapped, context) {
      if (wrapped.length < 1) throw new MalformedInputError('a wrapped secret is empty');
      if (wrapped[0] !== VERSION) throw new UnsupportedError(`wrapped secret version ${wrapped[0]} is not supported (this build reads version ${VERSION})`);
      if (wrapped.length < HEADER_BYTES + TAG_BYTES) throw new MalformedInputError('a wrapped secret is truncated');
      const bytes = Buffer.from(wrapped);
      if (!bytes.subarray(1, 1 + ID_BYTES).equals(idBytes)) {
        throw new IntegrityError('this secret was wrapped by another key-encryption key (check MEDSHARE_KEK or the --kek file)');
      }
      const decipher = createDecipheriv('aes-256-gcm', material, bytes.subarray(1 + ID_BYTES, HEADER_BYTES));
      decipher.setAAD(additionalData(context));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      try {
        return new Uint8Array(Buffer.concat([decipher.update(bytes.subarray(HEADER_BYTES, bytes.length - TAG_BYTES)), decipher.final()]));
      } catch {
        throw new IntegrityError(`a wrapped secret failed authentication (altered, or stored under another context than ${JSON.stringify(context)})`);
      }
    },
  };
}

/** A fresh random KEK in memory (tests, and `serve all` demos that keep nothing). */
export function randomKeyEncryptionKey(): KeyEncryptionKey {
  return keyEncryptionKeyFromBytes(randomBytes(KEY_BYTES));
}

function decodeKeyText(text: string, where: string): Uint8Array {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64url');
  if (key.length !== KEY_BYTES || key.toString('base64url') !== trimmed.replace(/=+$/, '')) {
    throw new MalformedInputError(`${where} must hold a ${KEY_BYTES}-byte key in base64url (43 characters)`);
  }
  return key;
}

/** Where a service's KEK comes from. */
export interface LoadKeyEncryptionKeyOptions {
  /** A file holding the key in base64url; must not be readable by group or others. */
  file?: string;
  /** Create `file` (mode 0600) with a fresh key when it does not exist. */
  create?: boolean;
  /** The environment to read `MEDSHARE_KEK` from (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Loads the KEK from `MEDSHARE_KEK` if set, else from `file` (created when `create` is set and it is missing).
 * @throws MalformedInputError for a missing or badly encoded key, or a key file readable by group or others.
 */
export function loadKeyEncryptionKey(options: LoadKeyEncryptionKeyOptions): KeyEncryptionKey {
  const fromEnv = (options.env ?? process.env)[KEK_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return keyEncryptionKeyFromBytes(decodeKeyText(fromEnv, KEK_ENV));
  const file = options.file;
  if (file === undefined) throw new MalformedInputError(`no key-encryption key: set ${KEK_ENV} or give a key file`);
  if (!existsSync(file)) {
    if (!options.create) throw new MalformedInputError(`key-encryption key file ${file} does not exist`);
    writeFileSync(file, `${randomBytes(KEY_BYTES).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(file, 0o600);
  }
  if (process.platform !== 'win32' && (statSync(file).mode & 0o077) !== 0) {
    throw new MalformedInputError(`key-encryption key file ${file} is readable by group or others (chmod 600 it)`);
  }
  return keyEncryptionKeyFromBytes(decodeKeyText(readFileSync(file, 'utf8'), `key-encryption key file ${file}`));
}
