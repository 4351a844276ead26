/**
 * Password hashing with scrypt (Percival & Josefsson, RFC 7914) from node:crypto.
 *
 * Defaults follow the OWASP Password Storage Cheat Sheet for scrypt: N = 2^17, r = 8, p = 1
 * (128 MiB, about a quarter of a second on a server core), 16-byte random salt, 32-byte output.
 * Hashes are stored in the PHC string format `$scrypt$ln=17,r=8,p=1$<salt>$<hash>` (base64 without
 * padding) so that parameters can be raised later and old hashes still verify (`needsRehash`).
 * Parameters read from a stored hash are bounded before use: a corrupted or hostile record cannot
 * make verification allocate more than `MAX_MEMORY_BYTES`.
 */
import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';

/** scrypt cost parameters: N = 2^logN, block size r, parallelism p. */
export interface ScryptParams {
  readonly logN: number;
  readonly r: number;
  readonly p: number;
}

/** OWASP's recommended scrypt parameters. */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = { logN: 17, r: 8, p: 1 };

const SALT_BYTES = 16;
const HASH_BYTES = 32;
const MAX_PASSWORD_BYTES = 1024;
const MAX_MEMORY_BYTES = 512 * 1024 * 1024;
const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$/;

function memoryBytes({ logN, r, p }: ScryptParams): number {
  return 128 * r * (2 ** logN + p + 2);
}

function checkParams(params: ScryptParams): void {
  const { logN, r, p } = params;
  if (logN < 10 || logN > 22 || r < 1 || r > 32 || p < 1 || p > 16) {
    throw new MalformedInputError(`scrypt parameters out of range (ln=${logN}, r=${r}, p=${p})`);
  }
  if (memoryBytes(params) > MAX_MEMORY_BYTES) throw new LimitExceededError('scrypt parameters need more memory than allowed');
}

function checkPassword(password: string): Buffer {
  const bytes = Buffer.from(password.normalize('NFKC'), 'utf8');
  if (bytes.length === 0) throw new MalformedInputError('password is empty');
  if (bytes.length > MAX_PASSWORD_BYTES) throw new LimitExceededError(`password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  return bytes;
}

function derive(password: Buffer, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = { N: 2 ** params.logN, r: params.r, p: params.p, maxmem: memoryBytes(params) + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scryptCallback(password, salt, HASH_BYTES, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

const b64 = (bytes: Buffer) => bytes.toString('base64').replace(/=+$/, '');

/** Hashes a password (NFKC-normalised UTF-8) with a fresh salt; returns the PHC string. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<string> {
  checkParams(params);
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(checkPassword(password), salt, params);
  return `$scrypt$ln=${params.logN},r=${params.r},p=${params.p}$${b64(salt)}$${b64(hash)}`;
}

function parseHash(stored: string): { params: ScryptParams; salt: Buffer; hash: Buffer } {
  const m = PHC.exec(stored);
  if (!m) throw new MalformedInputError('stored password hash is not a scrypt PHC string');
  const params = { logN: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  checkParams(params);
  return { params, salt: Buffer.from(m[4]!, 'base64'), hash: Buffer.from(m[5]!, 'base64') };
}

/** Checks a password against a stored PHC string in constant time (for a given length). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const { params, salt, hash } = parseHash(stored);
  const candidate = await derive(checkPassword(password), salt, params);
  return timingSafeEqual(candidate, hash);
}

/** True if the stored hash was made with parameters other than `params` (rehash after a login). */
export function needsRehash(stored: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): boolean {
  const current = parseHash(stored).params;
  return current.logN !== params.logN || current.r !== params.r || current.p !== params.p;
}

/** The shortest password accepted at registration or change (NIST SP 800-63B §5.1.1.2 asks for at least 8). */
export const MIN_PASSWORD_CHARS = 12;

/** Refuses (MalformedInputError) a new password that is too short. */
export function checkNewPassword(password: string): void {
  if (typeof password !== 'string' || [...password].length < MIN_PASSWORD_CHARS)
    throw new MalformedInputError(`password must have at least ${MIN_PASSWORD_CHARS} characters`);
}
