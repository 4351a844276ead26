/**
 * Ed25519 keys for checkpoints, in the C2SP signed-note key formats (RFC 8032 Ed25519 via node:crypto), of two
 * types:
 *
 * - 0x01, plain Ed25519 (c2sp.org/signed-note): the signature is key ID || Ed25519(note body). Every stock note
 *   verifier (Go's golang.org/x/mod/sumdb/note, sigsum, ...) reads it; the log's key is of this type.
 * - 0x04, timestamped cosignature (c2sp.org/tlog-cosignature, cosignature/v1): key ID || u64 big-endian timestamp
 *   || Ed25519("cosignature/v1\ntime <timestamp>\n" || body). Witnesses sign this way, so each cosignature says
 *   when the witness saw the checkpoint.
 *
 * - Key ID: SHA-256(name || "\n" || type || 32-byte public key)[:4]
 * - Verifier key: `<name>+<hex key ID>+<base64(type || public key)>`  (c2sp.org/signed-note "vkey")
 * - Signer key:   `PRIVATE+KEY+<name>+<hex key ID>+<base64(type || 32-byte seed)>` (the Go note package's form)
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { MalformedInputError } from '@medshare/crypto';

/** The signed-note key types this module reads and writes. */
export type CheckpointKeyType = 'ed25519' | 'cosignature';
const TYPE_BYTE: Record<CheckpointKeyType, number> = { ed25519: 0x01, cosignature: 0x04 };
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const KEY_NAME = /^[\x21-\x2a\x2c-\x7e]{1,255}$/; // printable ASCII without space or '+'

/** The public half of a checkpoint key: verifies signatures made by one named signer. */
export interface CheckpointVerifier {
  readonly name: string;
  readonly keyId: Buffer;
  /** The `vkey` string to publish. */
  readonly vkey: string;
  readonly type: CheckpointKeyType;
  /**
   * The timestamp of a valid signature over `body` (0 for a plain Ed25519 signature, which carries no time), or
   * undefined when `signature` is not valid.
   */
  verify(body: string, signature: Uint8Array): number | undefined;
}

/** A named Ed25519 key that signs checkpoint bodies with a timestamp. */
export interface CheckpointSigner {
  readonly verifier: CheckpointVerifier;
  /** The signature bytes (key ID || timestamp || Ed25519 signature) over `body` at `timestamp` (seconds). */
  sign(body: string, timestamp: number): Buffer;
}

function keyId(name: string, type: CheckpointKeyType, publicKey: Uint8Array): Buffer {
  return createHash('sha256')
    .update(name)
    .update(Buffer.from([0x0a, TYPE_BYTE[type]]))
    .update(publicKey)
    .digest()
    .subarray(0, 4);
}

/** What a key of `type` signs: the body itself (0x01), or the body under a cosignature/v1 time header (0x04). */
function signedMessage(type: CheckpointKeyType, body: string, timestamp: number): Buffer {
  return Buffer.from(type === 'ed25519' ? body : `cosignature/v1\ntime ${timestamp}\n${body}`, 'utf8');
}

/** Bytes between the key ID and the Ed25519 signature: the timestamp of a cosignature. */
const timeBytes = (type: CheckpointKeyType): number => (type === 'ed25519' ? 0 : 8);

function checkName(name: string): void {
  if (!KEY_NAME.test(name)) throw new MalformedInputError('a key name is 1-255 printable ASCII characters without spaces or "+"');
}

function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).x ?? '', 'base64url');
}

function makeVerifier(name: string, type: CheckpointKeyType, publicKeyBytes: Buffer): CheckpointVerifier {
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: publicKeyBytes.toString('base64url') }, format: 'jwk' });
  const id = keyId(name, type, publicKeyBytes);
  const stamp = timeBytes(type);
  return {
    name,
    type,
    keyId: id,
    vkey: `${name}+${id.toString('hex')}+${Buffer.concat([Buffer.from([TYPE_BYTE[type]]), publicKeyBytes]).toString('base64')}`,
    verify(body, signature) {
      if (signature.length !== 4 + stamp + 64 || !id.equals(signature.subarray(0, 4))) return undefined;
      const timestamp = stamp === 0 ? 0n : Buffer.from(signature.subarray(4, 12)).readBigUInt64BE();
      if (timestamp > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
      const ok = verify(null, signedMessage(type, body, Number(timestamp)), publicKey, signature.subarray(4 + stamp));
      return ok ? Number(timestamp) : undefined;
    },
  };
}

function makeSigner(name: string, type: CheckpointKeyType, seed: Buffer): CheckpointSigner {
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const verifier = makeVerifier(name, type, rawPublicKey(createPublicKey(privateKey)));
  return {
    verifier,
    sign(body, timestamp) {
      if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new MalformedInputError('a timestamp is a non-negative integer');
      const time = Buffer.alloc(timeBytes(type));
      if (time.length > 0) time.writeBigUInt64BE(BigInt(timestamp));
      return Buffer.concat([verifier.keyId, time, sign(null, signedMessage(type, body, timestamp), privateKey)]);
    },
  };
}

/**
 * A fresh key for `name` of `type` (default: a timestamped cosignature key, as witnesses use; logs use
 * 'ed25519'); `skey` is the secret to store (never logged), the signer's `verifier.vkey` is public.
 */
export function generateCheckpointKey(name: string, type: CheckpointKeyType = 'cosignature'): { signer: CheckpointSigner; skey: string } {
  checkName(name);
  const { privateKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d ?? '', 'base64url');
  const signer = makeSigner(name, type, seed);
  const skey = `PRIVATE+KEY+${name}+${signer.verifier.keyId.toString('hex')}+${Buffer.concat([Buffer.from([TYPE_BYTE[type]]), seed]).toString('base64')}`;
  return { signer, skey };
}

function decodeKey(text: string, expectedLength: number, what: string): { name: string; type: CheckpointKeyType; material: Buffer } {
  // Names and hex key IDs contain no '+', base64 may: split on the first two only.
  const [, name, idHex, encoded] = /^([^+]+)\+([0-9a-f]{8})\+(.+)$/s.exec(text.trim()) ?? [];
  if (name === undefined || idHex === undefined || encoded === undefined) {
    throw new MalformedInputError(`a ${what} has the form name+keyid+base64`);
  }
  checkName(name);
  const bytes = Buffer.from(encoded, 'base64');
  const type = bytes[0] === TYPE_BYTE.ed25519 ? 'ed25519' : bytes[0] === TYPE_BYTE.cosignature ? 'cosignature' : undefined;
  if (bytes.length !== 1 + expectedLength || bytes.toString('base64') !== encoded || type === undefined) {
    throw new MalformedInputError(`a ${what} carries key type 0x01 or 0x04 and ${expectedLength} bytes of key`);
  }
  return { name, type, material: bytes.subarray(1) };
}

/** Parses a published `vkey` and checks its key ID. */
export function parseVerifierKey(vkey: string): CheckpointVerifier {
  const { name, type, material } = decodeKey(vkey, 32, 'verifier key');
  const verifier = makeVerifier(name, type, material);
  if (verifier.vkey !== vkey.trim()) throw new MalformedInputError('the verifier key ID does not match its key');
  return verifier;
}

/** Parses a stored signer key (`PRIVATE+KEY+...`). The secret never appears in an error message. */
export function parseSignerKey(skey: string): CheckpointSigner {
  const prefix = 'PRIVATE+KEY+';
  if (!skey.startsWith(prefix)) throw new MalformedInputError('a signer key starts with PRIVATE+KEY+');
  const { name, type, material } = decodeKey(skey.slice(prefix.length), 32, 'signer key');
  const signer = makeSigner(name, type, material);
  if (!skey.trim().includes(`+${signer.verifier.keyId.toString('hex')}+`)) {
    throw new MalformedInputError('the signer key ID does not match its key');
  }
  return signer;
}
