/**
 * A hospital's token-signing keys: Ed25519 (RFC 8032) through jose, published as a JWKS
 * (RFC 7517) with RFC 7638 thumbprints as key ids.
 *
 * Rotation: `rotate()` makes a new key current at once; the old public key stays in the JWKS for
 * `retentionMs` (at least the token lifetime plus clock skew) so that tokens it signed keep
 * verifying until they expire, then it is dropped. Verifiers that cache the JWKS refetch it when
 * they meet an unknown `kid` (jose's remote key set does this), so a rotation needs no coordination.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';

interface RingKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  retiredAtMs: number | undefined;
}

/** Signing keys of one issuer. */
export class SigningKeyRing {
  private constructor(
    private keys: RingKey[],
    private readonly retentionMs: number,
    private readonly now: () => number,
  ) {}

  /** A ring with one fresh key. `retentionMs` is how long a retired key stays published. */
  static async create(retentionMs: number, now: () => number = Date.now): Promise<SigningKeyRing> {
    return new SigningKeyRing([await newKey()], retentionMs, now);
  }

  /** The key new tokens are signed with. */
  get current(): { kid: string; privateKey: CryptoKey } {
    return this.keys[this.keys.length - 1]!;
  }

  /** Makes a fresh key current and retires the previous one; returns the new key id. */
  async rotate(): Promise<string> {
    const nowMs = this.now();
    for (const key of this.keys) key.retiredAtMs ??= nowMs;
    const fresh = await newKey();
    this.keys = [...this.keys.filter((k) => nowMs - k.retiredAtMs! < this.retentionMs), fresh];
    return fresh.kid;
  }

  /** The public JWKS: the current key and retired keys still within their retention. */
  jwks(): { keys: JWK[] } {
    const nowMs = this.now();
    return { keys: this.keys.filter((k) => k.retiredAtMs === undefined || nowMs - k.retiredAtMs < this.retentionMs).map((k) => k.publicJwk) };
  }
}

async function newKey(): Promise<RingKey> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { kid, privateKey, publicJwk: { ...jwk, kid, alg: 'EdDSA', use: 'sig' }, retiredAtMs: undefined };
}
