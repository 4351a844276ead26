/**
 * The trusted authority's key-issuing service: binds CP-ABE attribute keys (FAME, in
 * @medshare/crypto) to authenticated identities.
 *
 * A key is issued only if
 *   1. the SSO token verifies for the TA's audience (issuer on the trust list, signature, expiry,
 *      live session — see sso/federation.ts; a disabled user's sessions are revoked, so she gets no key);
 *   2. the request carries a DPoP proof (sso/dpop.ts) for this request and this token, signed by the key the
 *      token is bound to (`cnf.jkt`): the device that signed the login challenge, not whoever holds the token;
 *   3. the X25519 key the key is to be sealed to is the one that login's proof named (`cnf.sealing_jkt`), so
 *      neither a stolen token nor a refresh can have a key delivered anywhere else;
 *   4. every requested attribute is one the user's hospital vouched for in that token;
 *   5. the token has not already been used for a key (its `jti` goes into a nonce cache until expiry).
 * The key is then sealed to the device key (ta/sealed-box.ts) and exists in clear only in memory
 * here and on the device. Nothing here logs, and errors name attributes, never key material.
 */
import type { KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { abe, AccessDeniedError, MalformedInputError } from '@medshare/crypto';
import { canonicalAttributes } from '../account/vouching.ts';
import type { VerifiedToken } from '../sso/claims.ts';
import type { TokenVerifier } from '../sso/federation.ts';
import type { DpopVerifier, ProofExpectation } from '../sso/dpop.ts';
import { deviceKeyThumbprint } from '../sso/issuer.ts';
import type { NonceCache } from '../stores.ts';
import { importDevicePublicKey, open, seal, type SealedBox } from './sealed-box.ts';

/** What the device asks for. */
export interface KeyRequest {
  readonly attributes: string[];
  readonly deviceKey: JWK;
}

/** What the TA returns: the sealed key and what it was issued for. */
export interface IssuedKey {
  readonly authorityId: string; // hex
  readonly subject: string;
  readonly attributes: string[];
  readonly tokenId: string;
  readonly box: SealedBox;
}

export interface TrustedAuthorityOptions {
  readonly verifier: TokenVerifier;
  readonly publicKey: abe.PublicKey;
  readonly masterKey: abe.MasterKey;
  readonly usedTokens: NonceCache;
  /** Checks the DPoP proofs of key requests (its used-proof cache is the TA's). */
  readonly proofs: DpopVerifier;
  readonly now?: () => number;
}

/** The request a DPoP proof must be for. */
export type ProofContext = Pick<ProofExpectation, 'method' | 'url'> & { readonly proof: string | undefined };

/** The context string both sides bind into the sealed box. */
export function deliveryContext(authorityId: string, subject: string, tokenId: string): string {
  return `${authorityId}|${subject}|${tokenId}`;
}

/** Issues attribute keys to authenticated users. */
export class TrustedAuthority {
  readonly authorityId: string;

  constructor(private readonly options: TrustedAuthorityOptions) {
    this.authorityId = Buffer.from(options.publicKey.authorityId).toString('hex');
  }

  /** The checks of the module comment, then keygen and sealing. */
  async issueKey(token: string, request: KeyRequest, context: ProofContext): Promise<IssuedKey> {
    const verified = await this.options.verifier.verify(token);
    const attributes = this.vouchedAttributes(verified, request);
    const thumbprint = await deviceKeyThumbprint(request.deviceKey);
    if (verified.proofKeyThumbprint === undefined || verified.sealingKeyThumbprint === undefined)
      throw new AccessDeniedError('token is not bound to a device key');
    await this.options.proofs.verify(context.proof, { method: context.method, url: context.url, accessToken: token, thumbprint: verified.proofKeyThumbprint });
    if (verified.sealingKeyThumbprint !== thumbprint) throw new AccessDeniedError('token is bound to a different device key');
    const nowMs = (this.options.now ?? Date.now)();
    const fresh = await this.options.usedTokens.add(`${verified.issuer} ${verified.tokenId}`, verified.expiresAt * 1000 + 60_000, nowMs);
    if (!fresh) throw new AccessDeniedError('token has already been used to obtain a key');
    const userKey = abe.keygen(this.options.masterKey, attributes.join(', '));
    // This key hashed the bits of its integer values only; the other values' bits are hashed in the background,
    // so that the next key with another value of the same attribute is not a cold keygen.
    const integers = attributes.filter((a) => a.includes('='));
    if (integers.length > 0) void this.warm(integers).catch(() => undefined);
    const box = seal(
      importDevicePublicKey(request.deviceKey),
      abe.encodeUserKey(userKey),
      deliveryContext(this.authorityId, verified.subject, verified.tokenId),
    );
    return { authorityId: this.authorityId, subject: verified.subject, attributes, tokenId: verified.tokenId, box };
  }

  /**
   * Hashes the FAME oracle points of `attributes` (every copy a key carries; an integer attribute for every value)
   * into this process's cache, one attribute per turn of the event loop, so that the first key naming them skips
   * RFC 9380 hashing — most of a cold keygen. Resolves with the labels hashed (0 when all were cached);
   * PolicySyntaxError for an attribute that does not parse.
   */
  async warm(attributes: readonly string[]): Promise<number> {
    let hashed = 0;
    for (const attribute of canonicalAttributes(attributes)) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      hashed += abe.warmAttributeHashes(attribute);
    }
    return hashed;
  }

  private vouchedAttributes(token: VerifiedToken, request: KeyRequest): string[] {
    if (!Array.isArray(request.attributes) || request.attributes.length === 0) throw new MalformedInputError('request at least one attribute');
    const requested = canonicalAttributes(request.attributes);
    const vouched = new Set(token.attributes);
    for (const attribute of requested) {
      if (!vouched.has(attribute)) throw new AccessDeniedError(`attribute ${attribute} is not vouched for by ${token.hospital}`);
    }
    return requested;
  }
}

/** Device side: opens an issued key with the device's X25519 private key and decodes it. */
export function openIssuedKey(devicePrivateKey: KeyObject, issued: IssuedKey): abe.UserKey {
  const bytes = open(devicePrivateKey, issued.box, deliveryContext(issued.authorityId, issued.subject, issued.tokenId));
  return abe.decodeUserKey(bytes);
}
