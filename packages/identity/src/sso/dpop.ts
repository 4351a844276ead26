/**
 * Sender-constrained tokens: DPoP proofs (RFC 9449, "OAuth 2.0 Demonstrating Proof of Possession"), made and
 * checked with jose. A device holds an Ed25519 signing key; every request that must come from that device carries
 * a `DPoP` header, a JWT signed by the key and naming it in its header (`jwk`), with claims
 *   htm, htu   the request's method and URL (no query, no fragment)          RFC 9449 §4.2
 *   iat, jti   freshness (±60 s) and a single-use identifier                  §4.2, §11.1
 *   ath        base64url SHA-256 of the access token it accompanies            §4.2 (resource requests)
 *   nonce      a value the server handed out (here: the login challenge)       §8
 * and, at login only, `sealing_jkt`: the RFC 7638 thumbprint of the device's X25519 key, so that the
 * signature over the login challenge also vouches for the key the trusted authority will seal to.
 * A token's `cnf.jkt` (RFC 9449 §6) is the thumbprint of the signing key; a proof by any other key is refused.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  calculateJwkThumbprint,
  EmbeddedJWK,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  type CryptoKey,
  type FlattenedJWSInput,
  type JWK,
  type JWSHeaderParameters,
  type JWTPayload,
} from 'jose';
import { AccessDeniedError, MalformedInputError } from '@medshare/crypto';
import type { NonceCache } from '../stores.ts';

/** The proof's media type (RFC 9449 §4.2). */
export const DPOP_TYPE = 'dpop+jwt';
const ALGORITHM = 'EdDSA';
/** Accepted proof algorithms: Ed25519 under its polymorphic name and its fully specified one (RFC 9864), which oauth4webapi sends. */
const ACCEPTED_ALGORITHMS = [ALGORITHM, 'Ed25519'];
const MAX_PROOF_CHARS = 4096;
/** How far a proof's `iat` may lie from the server's clock (RFC 9449 §11.1 leaves it to the server). */
const PROOF_WINDOW_SECONDS = 60;

/** The `ath` claim of a proof for `accessToken`. */
export function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken, 'ascii').digest('base64url');
}

/** A request's `htu`: its URL without query and fragment (RFC 9449 §4.3 step 9). */
export function proofTarget(url: string | URL): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

/** A device's proof-of-possession key (Ed25519), on the device. */
export class DpopKey {
  private constructor(
    private readonly privateKey: CryptoKey,
    readonly publicJwk: JWK,
    readonly thumbprint: string,
    private readonly now: () => number,
  ) {}

  /** A proof key over an existing Ed25519 key pair (a hospital's token-signing key, see SigningKeyRing.proofKey). */
  static async fromKeyPair(privateKey: CryptoKey, publicJwk: JWK, now: () => number = Date.now): Promise<DpopKey> {
    const jwk = { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x } as JWK;
    return new DpopKey(privateKey, jwk, await calculateJwkThumbprint(jwk), now);
  }

  /** A fresh key (non-extractable: it never leaves this process); `now` dates its proofs. */
  static async generate(now: () => number = Date.now): Promise<DpopKey> {
    const { privateKey, publicKey } = await generateKeyPair(ALGORITHM, { crv: 'Ed25519' });
    const jwk = await exportJWK(publicKey);
    const publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x } as JWK;
    return new DpopKey(privateKey, publicJwk, await calculateJwkThumbprint(publicJwk), now);
  }

  /** A proof for one request; `accessToken` adds `ath`, `nonce` a server's challenge, `claims` anything else. */
  async proof(method: string, url: string | URL, extra: { accessToken?: string; nonce?: string; claims?: Record<string, string> } = {}): Promise<string> {
    const payload: JWTPayload = { ...extra.claims, htm: method.toUpperCase(), htu: proofTarget(url), jti: randomBytes(16).toString('base64url') };
    if (extra.accessToken !== undefined) payload.ath = accessTokenHash(extra.accessToken);
    if (extra.nonce !== undefined) payload.nonce = extra.nonce;
    return new SignJWT(payload)
      .setProtectedHeader({ alg: ALGORITHM, typ: DPOP_TYPE, jwk: this.publicJwk })
      .setIssuedAt(Math.floor(this.now() / 1000))
      .sign(this.privateKey);
  }
}

/** What a server expects of a proof. */
export interface ProofExpectation {
  readonly method: string;
  readonly url: string;
  /** The access token the proof accompanies (its hash must be `ath`). */
  readonly accessToken?: string;
  /** The nonce the server handed out. */
  readonly nonce?: string;
  /** The thumbprint the proof's key must have (`cnf.jkt` of the token, or a session's key); absent: the caller checks it. */
  readonly thumbprint?: string;
}

/** A verified proof. */
export interface VerifiedProof {
  /** RFC 7638 thumbprint of the key that signed it. */
  readonly thumbprint: string;
  readonly payload: JWTPayload;
}

/** Proof keys a verifier keeps imported (a device signs every request with one key); the oldest is dropped first. */
const MAX_PROOF_KEYS = 10_000;

/** A proof key as jose's EmbeddedJWK imported it, with its RFC 7638 thumbprint. */
interface ProofKey {
  readonly key: CryptoKey;
  readonly thumbprint: string;
}

/** Verifies DPoP proofs; used `jti`s are kept (in `seen`) until they could no longer pass the `iat` check. */
export class DpopVerifier {
  /**
   * Embedded keys by (alg, JWK text): importing a key and hashing its thumbprint (both WebCrypto jobs) were a tenth
   * of a cloud read's event-loop time. Only successful imports are kept; every proof's signature is still checked.
   */
  private readonly keys = new Map<string, ProofKey>();

  constructor(
    private readonly seen: NonceCache,
    private readonly now: () => number = Date.now,
  ) {}

  /** jose's EmbeddedJWK (every check of it), remembered per header `alg` and `jwk`: the same inputs give the same key. */
  private async embeddedKey(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<ProofKey> {
    const id = `${String(header.alg)} ${JSON.stringify(header.jwk)}`;
    const known = this.keys.get(id);
    if (known !== undefined) return known;
    const key = (await EmbeddedJWK(header, token)) as CryptoKey;
    const imported = { key, thumbprint: await calculateJwkThumbprint(header.jwk!) };
    if (this.keys.size >= MAX_PROOF_KEYS) this.keys.delete(this.keys.keys().next().value!);
    this.keys.set(id, imported);
    return imported;
  }

  /**
   * The checks of RFC 9449 §4.3 and those of `expected`.
   * @throws MalformedInputError when there is no proof; AccessDeniedError naming the check that failed.
   */
  async verify(proof: string | undefined, expected: ProofExpectation): Promise<VerifiedProof> {
    if (typeof proof !== 'string' || proof.length === 0) throw new AccessDeniedError('a DPoP proof of the device key is required');
    if (proof.length > MAX_PROOF_CHARS || proof.includes(',')) throw new AccessDeniedError('DPoP proof is malformed');
    const nowMs = this.now();
    let signer: ProofKey | undefined;
    const { payload, protectedHeader } = await jwtVerify(proof, async (header, token) => (signer = await this.embeddedKey(header, token)).key, {
      typ: DPOP_TYPE,
      algorithms: ACCEPTED_ALGORITHMS,
      requiredClaims: ['htm', 'htu', 'iat', 'jti'],
      currentDate: new Date(nowMs),
      clockTolerance: PROOF_WINDOW_SECONDS,
    }).catch(() => {
      throw new AccessDeniedError('DPoP proof is not valid');
    });
    const jwk = protectedHeader.jwk!;
    if ('d' in jwk) throw new AccessDeniedError('DPoP proof names a private key');
    const iat = payload.iat!;
    if (Math.abs(iat - nowMs / 1000) > PROOF_WINDOW_SECONDS) throw new AccessDeniedError('DPoP proof is not fresh');
    if (payload.htm !== expected.method.toUpperCase() || payload.htu !== proofTarget(expected.url))
      throw new AccessDeniedError('DPoP proof is for another request');
    if (expected.accessToken !== undefined && payload.ath !== accessTokenHash(expected.accessToken))
      throw new AccessDeniedError('DPoP proof is for another access token');
    if (expected.nonce !== undefined && payload.nonce !== expected.nonce) throw new AccessDeniedError('DPoP proof does not sign the challenge');
    // The thumbprint of the very key that verified the signature.
    const thumbprint = signer!.thumbprint;
    if (expected.thumbprint !== undefined && thumbprint !== expected.thumbprint)
      throw new AccessDeniedError('DPoP proof is signed by another key than the token is bound to');
    if (typeof payload.jti !== 'string' || payload.jti.length > 128) throw new MalformedInputError('DPoP proof jti is malformed');
    const fresh = await this.seen.add(`${thumbprint} ${payload.jti}`, (iat + 2 * PROOF_WINDOW_SECONDS) * 1000, nowMs);
    if (!fresh) throw new AccessDeniedError('DPoP proof has already been used');
    return { thumbprint, payload };
  }
}
