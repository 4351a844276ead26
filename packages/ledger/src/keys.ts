/**
 * Ed25519 keys for checkpoints, in the C2SP signed-note key formats, producing C2SP tlog-cosignature/v1
 * timestamped signatures (algorithm byte 0x04).
 *
 * - Key ID: SHA-256(name || "\n" || 0x04 || 32-byte public key)[:4]   (c2sp.org/tlog-cosignature)
 * - Verifier key: `<name>+<hex key ID>+<base64(0x04 || public key)>`  (c2sp.org/signed-note "vkey")
 * - Signer key:   `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || 32-byte seed)>` (the Go note package's form)
 * - Signature: base64(key ID || u64 big-endian timestamp || Ed25519 signature) over
 *   "cosignature/v1\ntime <timestamp>\n" || checkpoint body.
 * Both the log and the witnesses sign this way, so every checkpoint signature carries its time (RFC 8032 Ed25519
 * via node:crypto).
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { MalformedInputError } from '@medshare/crypto';

const COSIGNATURE_ALGORITHM = 0x04;
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const KEY_NAME = /^[\x21-\x2a\x2c-\x7e]{1,255}$/; // printable ASCII without space or '+'

/** The public half of a checkpoint key: verifies signatures made by one named signer. */
export interface CheckpointVerifier {
  readonly name: string;
  readonly keyId: Buffer;
  /** The `vkey` string to publish. */
  readonly vkey: string;
  /** The timestamp of a valid signature over `body`, or undefined when `signature` is not valid. */
  verify(body: string, signature: Uint8Array): number | undefined;
}

/** A named Ed25519 key that signs checkpoint bodies with a timestamp. */
export interface CheckpointSigner {
  readonly verifier: CheckpointVerifier;
  /** The signature bytes (key ID || timestamp || Ed25519 signature) over `body` at `timestamp` (seconds). */
  sign(body: string, timestamp: number): Buffer;
}

function keyId(name: string, publicKey: Uint8Array): Buffer {
  return createHash('sha256')
    .update(name)
    .update(Buffer.from([0x0a, COSIGNATURE_ALGORITHM]))
    .update(publicKey)
    .digest()
    .subarray(0, 4);
}

function signedMessage(body: string, timestamp: number): Buffer {
  return Buffer.from(`cosignature/v1\ntime ${timestamp}\n${body}`, 'utf8');
}

function checkName(name: string): void {
  if (!KEY_NAME.test(name)) throw new MalformedInputError('a key name is 1-255 printable ASCII characters without spaces or "+"');
}

function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).x ?? '', 'base64url');
}

function makeVerifier(name: string, publicKeyBytes: Buffer): CheckpointVerifier {
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: publicKeyBytes.toString('base64url') }, format: 'jwk' });
  const id = keyId(name, publicKeyBytes);
  return {
    name,
    keyId: id,
    vkey: `${name}+${id.toString('hex')}+${Buffer.concat([Buffer.from([COSIGNATURE_ALGORITHM]), publicKeyBytes]).toString('base64')}`,
    verify(body, signature) {
      if (signature.length !== 4 + 8 + 64 || !id.equals(signature.subarray(0, 4))) return undefined;
      const timestamp = Buffer.from(signature.subarray(4, 12)).readBigUInt64BE();
      if (timestamp > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
      const ok = verify(null, signedMessage(body, Number(timestamp)), publicKey, signature.subarray(12));
      return ok ? Number(timestamp) : undefined;
    },
  };
}

function makeSigner(name: string, seed: Buffer): CheckpointSigner {
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const verifier = makeVerifier(name, rawPublicKey(createPublicKey(privateKey)));
  return {
    verifier,
    sign(body, timestamp) {
      if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new MalformedInputError('a timestamp is a non-negative integer');
      const time = Buffer.alloc(8);
      time.writeBigUInt64BE(BigInt(timestamp));
      return Buffer.concat([verifier.keyId, time, sign(null, signedMessage(body, timestamp), privateKey)]);
    },
  };
}

/** A fresh key for `name`; `skey` is the secret to store (never logged), the signer's `verifier.vkey` is public. */
export function generateCheckpointKey(name: string): { signer: CheckpointSigner; skey: string } {
  checkName(name);
  const { privateKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d ?? '', 'base64url');
  const signer = makeSigner(name, seed);
  const skey = `PRIVATE+KEY+${name}+${signer.verifier.keyId.toString('hex')}+${Buffer.concat([Buffer.from([COSIGNATURE_ALGORITHM]), seed]).toString('base64')}`;
  return { signer, skey };
}

function decodeKey(text: string, expectedLength: number, what: string): { name: string; material: Buffer } {
  // Names and hex key IDs contain no '+', base64 may: split on the first two only.
  const [, name, idHex, encoded] = /^([^+]+)\+([0-9a-f]{8})\+(.+)$/s.exec(text.trim()) ?? [];
  if (name === undefined || idHex === undefined || encoded === undefined) {
    throw new MalformedInputError(`a ${what} has the form name+keyid+base64`);
  }
  checkName(name);
  const bytes = Buffer.from(encoded, 'base64');
  if (bytes.length !== 1 + expectedLength || bytes.toString('base64') !== encoded || bytes[0] !== COSIGNATURE_ALGORITHM) {
    throw new MalformedInputError(`a ${what} carries algorithm 0x04 and ${expectedLength} bytes of key`);
  }
  return { name, material: bytes.subarray(1) };
}

/** Parses a published `vkey` and checks its key ID. */
export function parseVerifierKey(vkey: string): CheckpointVerifier {
  const { name, material } = decodeKey(vkey, 32, 'verifier key');
  const verifier = makeVerifier(name, material);
  if (verifier.vkey !== vkey.trim()) throw new MalformedInputError('the verifier key ID does not match its key');
  return verifier;
}

/** Parses a stored signer key (`PRIVATE+KEY+...`). The secret never appears in an error message. */
export function parseSignerKey(skey: string): CheckpointSigner {
  const prefix = 'PRIVATE+KEY+';
  if (!skey.startsWith(prefix)) throw new MalformedInputError('a signer key starts with PRIVATE+KEY+');
  const { name, material } = decodeKey(skey.slice(prefix.length), 32, 'signer key');
  const signer = makeSigner(name, material);
  if (!skey.trim().includes(`+${signer.verifier.keyId.toString('hex')}+`)) {
    throw new MalformedInputError('the signer key ID does not match its key');
  }
  return signer;
}
