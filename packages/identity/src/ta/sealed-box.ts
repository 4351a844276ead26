/**
 * Encryption of a secret to a device's X25519 key, for delivering CP-ABE attribute keys.
 *
 * Construction (ECIES in the shape of HPKE's DHKEM base mode, RFC 9180 §4.1, over node:crypto —
 * Node 20 has no HPKE API): a fresh ephemeral X25519 key pair (RFC 7748); the shared secret is
 * expanded with HKDF-SHA256 (RFC 5869), salt = ephemeral public ‖ recipient public, info = label ‖
 * context; the secret is sealed with AES-256-GCM (NIST SP 800-38D) under a random 96-bit nonce with
 * the context as associated data. The context names the authority, the user and the request, so
 * a box cannot be replayed to another device or passed off as another user's key.
 */
import { createCipheriv, createDecipheriv, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { IntegrityError, MalformedInputError } from '@medshare/crypto';

/** The JSON form of a sealed secret. */
export interface SealedBox {
  readonly v: 1;
  readonly epk: string; // base64url raw X25519 public key
  readonly iv: string;
  readonly ct: string;
  readonly tag: string;
}

const LABEL = 'medshare/ta-key-delivery/v1';
const MAX_CIPHERTEXT_BYTES = 1 << 20;

function rawPublic(key: KeyObject): Buffer {
  const x = key.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new MalformedInputError('not an X25519 key');
  return Buffer.from(x, 'base64url');
}

/** An X25519 public KeyObject from a JWK; MalformedInputError for anything else. */
export function importDevicePublicKey(jwk: JWK): KeyObject {
  if (typeof jwk !== 'object' || jwk === null || jwk.kty !== 'OKP' || jwk.crv !== 'X25519' || typeof jwk.x !== 'string') {
    throw new MalformedInputError('device key must be an X25519 JWK');
  }
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: jwk.x }, format: 'jwk' });
  } catch {
    throw new MalformedInputError('device key must be an X25519 JWK');
  }
}

function deriveKey(shared: Buffer, ephemeral: Buffer, recipient: Buffer, context: string): Buffer {
  const info = Buffer.concat([Buffer.from(LABEL), Buffer.from([0]), Buffer.from(context, 'utf8')]);
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeral, recipient]), info, 32));
}

function agree(privateKey: KeyObject, publicKey: KeyObject): Buffer {
  try {
    return diffieHellman({ privateKey, publicKey });
  } catch {
    throw new MalformedInputError('key agreement failed (low-order or invalid X25519 key)');
  }
}

/** Seals `secret` so that only the holder of the private half of `recipient` can open it. */
export function seal(recipient: KeyObject, secret: Uint8Array, context: string): SealedBox {
  const ephemeral = generateKeyPairSync('x25519');
  const epk = rawPublic(ephemeral.publicKey);
  const key = deriveKey(agree(ephemeral.privateKey, recipient), epk, rawPublic(recipient), context);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(context, 'utf8'));
  const ct = Buffer.concat([cipher.update(secret), cipher.final()]);
  return { v: 1, epk: epk.toString('base64url'), iv: iv.toString('base64url'), ct: ct.toString('base64url'), tag: cipher.getAuthTag().toString('base64url') };
}

/** Opens a box with the device's private key; IntegrityError if it was altered or is for someone else. */
export function open(privateKey: KeyObject, box: SealedBox, context: string): Uint8Array {
  if (typeof box !== 'object' || box === null || box.v !== 1 || ![box.epk, box.iv, box.ct, box.tag].every((f) => typeof f === 'string')) {
    throw new MalformedInputError('sealed box is malformed');
  }
  const epk = Buffer.from(box.epk, 'base64url');
  const iv = Buffer.from(box.iv, 'base64url');
  const tag = Buffer.from(box.tag, 'base64url');
  const ct = Buffer.from(box.ct, 'base64url');
  if (epk.length !== 32 || iv.length !== 12 || tag.length !== 16 || ct.length > MAX_CIPHERTEXT_BYTES) throw new MalformedInputError('sealed box is malformed');
  const ephemeral = importDevicePublicKey({ kty: 'OKP', crv: 'X25519', x: box.epk });
  const key = deriveKey(agree(privateKey, ephemeral), epk, rawPublic(createPublicKey(privateKey)), context);
  const decipher = createDecipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(context, 'utf8')).setAuthTag(tag);
  try {
    return new Uint8Array(Buffer.concat([decipher.update(ct), decipher.final()]));
  } catch {
    throw new IntegrityError('sealed box failed authentication');
  }
}
