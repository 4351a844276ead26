/**
 * A hospital's token-signing keys: Ed25519 (RFC 8032) through jose, published as a JWKS
 * (RFC 7517) with RFC 7638 thumbprints as key ids, kept in a SigningKeyStore (in memory, or in the
 * hospital's identity tables so that keys and rotations survive a restart).
 *
 * Rotation: `rotate()` makes a new key current at once; the old public key stays in the JWKS for
 * `retentionMs` (at least the token lifetime plus clock skew) so that tokens it signed keep
 * verifying until they expire, then it is dropped. Verifiers that cache the JWKS refetch it when
 * they meet an unknown `kid` (jose's remote key set does this), so a rotation needs no coordination.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { MemorySigningKeyStore } from '../memory-stores.ts';
import { DpopKey } from './dpop.ts';
import type { SigningKeyStore, StoredSigningKey } from '../stores.ts';

/** Signing keys of one issuer. */
export class SigningKeyRing {
  private constructor(
    private keys: StoredSigningKey[],
    private signer: { kid: string; privateKey: CryptoKey },
    private readonly store: SigningKeyStore,
    private readonly retentionMs: number,
    private readonly now: () => number,
  ) {}

  /** A ring with one fresh key, in memory. `retentionMs` is how long a retired key stays published. */
  static async create(retentionMs: number, now: () => number = Date.now): Promise<SigningKeyRing> {
    return SigningKeyRing.open(new MemorySigningKeyStore(), retentionMs, now);
  }

  /** The ring kept in `store`, with a fresh key if the store has none yet. */
  static async open(store: SigningKeyStore, retentionMs: number, now: () => number = Date.now): Promise<SigningKeyRing> {
    const keys = await store.initialise(await newKey());
    return new SigningKeyRing(keys, await signerOf(keys), store, retentionMs, now);
  }

  /** The key new tokens are signed with. */
  get current(): { kid: string; privateKey: CryptoKey } {
    return this.signer;
  }

  /**
   * The current key as a DPoP proof key: the hospital's own services sign with it the proofs of calls they make for
   * the hospital's users with those users' tokens (the gateway → the cloud; dpop/verify.ts `issuerProofs`).
   */
  proofKey(): Promise<DpopKey> {
    const current = this.keys[this.keys.length - 1]!;
    return DpopKey.fromKeyPair(this.signer.privateKey, current.publicJwk, this.now);
  }

  /** Makes a fresh key current and retires the previous one; returns the new key id. */
  async rotate(): Promise<string> {
    const nowMs = this.now();
    const fresh = await newKey();
    const keys = await this.store.rotate(fresh, nowMs, nowMs - this.retentionMs);
    this.signer = await signerOf(keys);
    this.keys = keys;
    return fresh.kid;
  }

  /** The public JWKS: the current key and retired keys still within their retention. */
  jwks(): { keys: JWK[] } {
    const nowMs = this.now();
    return { keys: this.keys.filter((k) => k.retiredAtMs === undefined || nowMs - k.retiredAtMs < this.retentionMs).map((k) => k.publicJwk) };
  }
}

/** The current (last) key of a store's answer, imported for signing. */
async function signerOf(keys: StoredSigningKey[]): Promise<{ kid: string; privateKey: CryptoKey }> {
  const current = keys[keys.length - 1]!;
  return { kid: current.kid, privateKey: (await importJWK(current.privateJwk, 'EdDSA')) as CryptoKey };
}

/** A fresh Ed25519 key; extractable because a persistent store keeps its private JWK. */
async function newKey(): Promise<StoredSigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { kid, privateJwk: await exportJWK(privateKey), publicJwk: { ...jwk, kid, alg: 'EdDSA', use: 'sig' } };
}
