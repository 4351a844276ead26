/**
 * The subset of `node:crypto` that @medshare/crypto and the ledger's proof checks call, for the browser bundle
 * (vite.config.ts aliases `node:crypto` here). Nothing is implemented by hand: SHA-2 and HKDF come from
 * @noble/hashes, AES-256-GCM from @noble/ciphers, Ed25519 from @noble/curves (all audited), randomness from the
 * browser's CSPRNG (crypto.getRandomValues). The packages call these synchronously, as node:crypto offers them,
 * which WebCrypto cannot; the audited noble libraries can.
 *
 * Keys are Ed25519 only (the patient's signing key, the ledger's note keys), carried in DER exactly as node:crypto
 * takes them (PKCS#8 and SPKI with the fixed RFC 8410 prefixes). Anything else throws, so a missing piece shows up
 * as an error, never as a silently different result (test/node-crypto-shim.test.ts compares with node:crypto).
 */
import { gcm } from '@noble/ciphers/aes.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { Buffer } from 'buffer';

type Data = string | Uint8Array;
type Encoding = 'hex' | 'base64' | 'base64url' | 'latin1' | 'utf8' | undefined;

const bytes = (data: Data, encoding?: Encoding): Uint8Array => (typeof data === 'string' ? Buffer.from(data, encoding ?? 'utf8') : data);
const out = (value: Uint8Array, encoding?: Encoding): Buffer | string => (encoding ? Buffer.from(value).toString(encoding) : Buffer.from(value));

const HASHES = { sha256, sha512 } as const;
type HashName = keyof typeof HASHES;
function hashOf(name: string) {
  const hash = HASHES[name.toLowerCase().replace('-', '') as HashName];
  if (!hash) throw new Error(`node:crypto shim: hash ${name} is not available in the browser`);
  return hash;
}

/** node:crypto's createHash for sha256 and sha512. */
export function createHash(name: string) {
  const state = hashOf(name).create();
  const hash = {
    update(data: Data, encoding?: Encoding) {
      state.update(bytes(data, encoding));
      return hash;
    },
    digest(encoding?: Encoding): any {
      return out(state.digest(), encoding);
    },
  };
  return hash;
}

/** node:crypto's createHmac for sha256 and sha512. */
export function createHmac(name: string, key: Data) {
  const state = hmac.create(hashOf(name), bytes(key));
  const mac = {
    update(data: Data, encoding?: Encoding) {
      state.update(bytes(data, encoding));
      return mac;
    },
    digest(encoding?: Encoding): any {
      return out(state.digest(), encoding);
    },
  };
  return mac;
}

/** node:crypto's hkdfSync (returns an ArrayBuffer, as node does). */
export function hkdfSync(digest: string, ikm: Data, salt: Data, info: Data, length: number): ArrayBuffer {
  const okm = hkdf(hashOf(digest), bytes(ikm), bytes(salt), bytes(info), length);
  return okm.buffer.slice(okm.byteOffset, okm.byteOffset + okm.byteLength) as ArrayBuffer;
}

/** node:crypto's randomBytes, from the browser's CSPRNG. */
export function randomBytes(size: number): Buffer {
  const buffer = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) crypto.getRandomValues(buffer.subarray(offset, Math.min(size, offset + 65536)));
  return Buffer.from(buffer);
}

/** node:crypto's timingSafeEqual. */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) throw new RangeError('Input buffers must have the same byte length');
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * AES-256-GCM as node:crypto's Cipher/Decipher, for messages given in one update() (how the packages call it):
 * update() encrypts, or authenticates and decrypts (the tag is set first, as the packages do), and final() reports
 * a failed authentication. Unlike node:crypto, a forged message yields no plaintext at all, not even before final().
 */
function gcmCipher(algorithm: string, key: Uint8Array, iv: Uint8Array, decrypt: boolean) {
  if (algorithm !== 'aes-256-gcm' || key.length !== 32) throw new Error(`node:crypto shim: only aes-256-gcm with a 32-byte key, not ${algorithm}`);
  let aad: Uint8Array | undefined;
  let tag: Uint8Array | undefined;
  let used = false;
  let failed = false;
  const cipher = {
    setAAD(data: Uint8Array) {
      aad = data;
      return cipher;
    },
    setAuthTag(data: Uint8Array) {
      tag = data;
      return cipher;
    },
    update(data: Uint8Array): Buffer {
      if (used) throw new Error('node:crypto shim: one update() per message');
      used = true;
      const aead = gcm(key, iv, aad);
      if (!decrypt) {
        const sealed = aead.encrypt(data);
        tag = sealed.subarray(sealed.length - 16);
        return Buffer.from(sealed.subarray(0, sealed.length - 16));
      }
      if (!tag) throw new Error('node:crypto shim: setAuthTag() before update()');
      try {
        return Buffer.from(aead.decrypt(Buffer.concat([data, tag])));
      } catch {
        failed = true;
        return Buffer.alloc(0);
      }
    },
    final(): Buffer {
      if (!used) cipher.update(new Uint8Array(0));
      if (failed) throw new Error('Unsupported state or unable to authenticate data');
      return Buffer.alloc(0);
    },
    getAuthTag(): Buffer {
      if (decrypt || !used || !tag) throw new Error('node:crypto shim: getAuthTag() after final() of an encryption');
      return Buffer.from(tag);
    },
  };
  return cipher;
}

/** node:crypto's createCipheriv (aes-256-gcm only). */
export function createCipheriv(algorithm: string, key: Uint8Array, iv: Uint8Array) {
  return gcmCipher(algorithm, key, iv, false);
}

/** node:crypto's createDecipheriv (aes-256-gcm only). */
export function createDecipheriv(algorithm: string, key: Uint8Array, iv: Uint8Array) {
  return gcmCipher(algorithm, key, iv, true);
}

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

/** An Ed25519 key as node:crypto's KeyObject presents it to these packages. */
export class KeyObject {
  readonly asymmetricKeyType = 'ed25519';
  constructor(
    readonly type: 'private' | 'public',
    readonly raw: Uint8Array,
  ) {}

  export(options: { format: 'der' | 'jwk'; type?: string }): any {
    const publicRaw = this.type === 'private' ? ed25519.getPublicKey(this.raw) : this.raw;
    if (options.format === 'jwk') {
      const x = Buffer.from(publicRaw).toString('base64url');
      return this.type === 'private' ? { kty: 'OKP', crv: 'Ed25519', x, d: Buffer.from(this.raw).toString('base64url') } : { kty: 'OKP', crv: 'Ed25519', x };
    }
    if (this.type === 'public' && options.type === 'spki') return Buffer.concat([SPKI_ED25519, publicRaw]);
    if (this.type === 'private' && options.type === 'pkcs8') return Buffer.concat([PKCS8_ED25519, this.raw]);
    throw new Error('node:crypto shim: unsupported key export');
  }
}

function withPrefix(der: Uint8Array, prefix: Uint8Array): Uint8Array {
  if (der.length !== prefix.length + 32 || !timingSafeEqual(der.subarray(0, prefix.length), prefix))
    throw new Error('node:crypto shim: not an Ed25519 DER key');
  return der.slice(prefix.length);
}

type KeyInput = KeyObject | { key: Uint8Array | { kty: string; crv: string; x: string; d?: string }; format: 'der' | 'jwk'; type?: string };

/** node:crypto's createPrivateKey (Ed25519 PKCS#8 DER or JWK). */
export function createPrivateKey(input: KeyInput): KeyObject {
  if (input instanceof KeyObject) return input;
  if (input.format === 'jwk' && !(input.key instanceof Uint8Array) && input.key.crv === 'Ed25519' && input.key.d)
    return new KeyObject('private', Buffer.from(input.key.d, 'base64url'));
  if (input.format === 'der' && input.key instanceof Uint8Array && input.type === 'pkcs8')
    return new KeyObject('private', withPrefix(input.key, PKCS8_ED25519));
  throw new Error('node:crypto shim: unsupported private key');
}

/** node:crypto's createPublicKey (from a private KeyObject, Ed25519 SPKI DER or JWK). */
export function createPublicKey(input: KeyInput): KeyObject {
  if (input instanceof KeyObject) return input.type === 'public' ? input : new KeyObject('public', ed25519.getPublicKey(input.raw));
  if (input.format === 'jwk' && !(input.key instanceof Uint8Array) && input.key.kty === 'OKP' && input.key.crv === 'Ed25519') {
    const x = Buffer.from(input.key.x, 'base64url');
    if (x.length !== 32) throw new Error('node:crypto shim: not an Ed25519 key');
    return new KeyObject('public', x);
  }
  if (input.format === 'der' && input.key instanceof Uint8Array && input.type === 'spki') return new KeyObject('public', withPrefix(input.key, SPKI_ED25519));
  throw new Error('node:crypto shim: unsupported public key');
}

/** node:crypto's one-shot sign (Ed25519: algorithm null). */
export function sign(algorithm: null | undefined, data: Uint8Array, key: KeyObject): Buffer {
  if (algorithm != null || key.type !== 'private') throw new Error('node:crypto shim: Ed25519 signing only');
  return Buffer.from(ed25519.sign(data, key.raw));
}

/** node:crypto's one-shot verify (Ed25519: algorithm null); false for a bad signature. */
export function verify(algorithm: null | undefined, data: Uint8Array, key: KeyObject, signature: Uint8Array): boolean {
  if (algorithm != null) throw new Error('node:crypto shim: Ed25519 verification only');
  const publicKey = key.type === 'public' ? key.raw : ed25519.getPublicKey(key.raw);
  try {
    return ed25519.verify(signature, data, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/** Not available in the browser (the packages use it only on servers). */
export function generateKeyPairSync(): never {
  throw new Error('node:crypto shim: generateKeyPairSync is not available in the browser');
}

export default {
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  sign,
  verify,
  generateKeyPairSync,
  KeyObject,
};
