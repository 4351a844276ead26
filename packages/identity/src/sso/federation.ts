/**
 * The federation trust list and token verification, used by every relying party (the cloud, the
 * trusted authority, other hospitals).
 *
 * Each member hospital is listed with its issuer URL, its hospital name and its JWKS (inline, or a
 * URL fetched and cached by jose, refetched when a token names an unknown `kid` — that is how key
 * rotation propagates). A token is accepted only if:
 *   - it is at most MAX_TOKEN_CHARS, its header says `alg: EdDSA` and `typ: at+jwt` (so `alg: none`
 *     and algorithm-confusion tokens are refused before any key is looked up);
 *   - its `iss` is on the trust list and a key of *that* issuer verifies the signature;
 *   - `aud` contains this verifier's audience, `exp`/`nbf` hold (30 s skew) and its lifetime is bounded;
 *   - `hospital` is the listed hospital, `attrs` contains exactly `hospital:<that hospital>` and
 *     `uid:<sub>` (`uidAttribute`: a hospital can vouch only for its own staff);
 *   - its session is still active at the issuer (checked on every verification: revocation is immediate).
 *
 * A verifier remembers the tokens whose signatures it has verified (the signature check was a fifth of a cloud
 * read's event-loop time). A remembered token skips only the signature, and only while its issuer still resolves
 * its header to the very key object that verified it (a rotated, retired or refetched key means a full check);
 * every claim and the session are checked on every verification, and a token near its expiry is checked in full.
 */
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  exportJWK,
  type CryptoKey,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  type ProtectedHeaderParameters,
  type CompactJWSHeaderParameters,
} from 'jose';
import { AccessDeniedError, MalformedInputError } from '@medshare/crypto';
import type { SessionStore } from '../stores.ts';
import { MAX_TOKEN_CHARS, TOKEN_ALGORITHM, TOKEN_TYPE, uidAttribute, type VerifiedToken } from './claims.ts';

/** Answers whether a session of the member hospital is still active. */
export type SessionStatus = (sessionId: string) => Promise<boolean>;

/** One member hospital as the trust list describes it. */
export interface FederationMember {
  readonly issuer: string;
  readonly hospital: string;
  /** Inline keys, a URL to fetch them from, or (for a hospital's own tokens) its live key ring. */
  readonly jwks: JSONWebKeySet | URL | (() => JSONWebKeySet);
  readonly sessionStatus: SessionStatus;
}

type KeyResolver = JWTVerifyGetKey;

/**
 * A key resolver over a live key ring, rebuilt only when the ring's keys change (jose copies a JWKS and imports
 * its keys afresh, which on every token was a measurable share of a request): a retired key stops verifying at once.
 */
function liveKeySet(jwks: () => JSONWebKeySet): KeyResolver {
  let keys: readonly object[] = [];
  let resolver: KeyResolver | undefined;
  return (header, token) => {
    const current = jwks();
    if (resolver === undefined || current.keys.length !== keys.length || current.keys.some((key, i) => key !== keys[i])) {
      keys = current.keys;
      resolver = createLocalJWKSet(current);
    }
    return resolver(header, token);
  };
}

/** A trusted member with its key resolver; replaced as a whole when the member is. */
export interface TrustedIssuer {
  readonly member: FederationMember;
  readonly keys: KeyResolver;
}

/** The members a relying party trusts, keyed by issuer. */
export class TrustList {
  private readonly members = new Map<string, TrustedIssuer>();

  /** Adds (or replaces) a member. */
  add(member: FederationMember): void {
    const { jwks } = member;
    const keys: KeyResolver =
      jwks instanceof URL
        ? createRemoteJWKSet(jwks, { cooldownDuration: 5_000, cacheMaxAge: 600_000 })
        : typeof jwks === 'function'
          ? liveKeySet(jwks)
          : createLocalJWKSet(jwks);
    this.members.set(member.issuer, { member, keys });
  }

  /** Removes a member: its tokens stop verifying at once. */
  remove(issuer: string): void {
    this.members.delete(issuer);
  }

  /** The member and key resolver for an issuer, if trusted. */
  lookup(issuer: string): TrustedIssuer | undefined {
    return this.members.get(issuer);
  }
}

/**
 * A session-status check against a member's identity service over HTTP
 * (`GET <base>/sso/sessions/<sid>` → `{ "active": boolean }`). Fails closed: an unreachable or
 * misbehaving service counts as "revoked".
 */
export function remoteSessionStatus(base: URL, timeoutMs = 2_000): SessionStatus {
  return async (sessionId) => {
    try {
      const response = await fetch(new URL(`sso/sessions/${encodeURIComponent(sessionId)}`, base), { signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok) return false;
      const body = (await response.json()) as { active?: unknown };
      return body.active === true;
    } catch {
      return false;
    }
  };
}

const REASONS: Record<string, string> = {
  ERR_JWT_EXPIRED: 'token has expired',
  ERR_JWT_CLAIM_VALIDATION_FAILED: 'token claims are not valid here',
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'token signature is not valid',
  ERR_JWKS_NO_MATCHING_KEY: 'token is signed with an unknown key',
  ERR_JOSE_ALG_NOT_ALLOWED: 'token algorithm is not allowed',
  ERR_JWS_INVALID: 'token is malformed',
  ERR_JWT_INVALID: 'token is malformed',
};

function reason(error: unknown, audience: string): string {
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return `token is not for audience ${audience}`;
    if (error.claim === 'iss') return 'token issuer is not trusted';
    return `token claim ${error.claim} is not valid`;
  }
  const code = (error as { code?: unknown }).code;
  return (typeof code === 'string' && REASONS[code]) || 'token could not be verified';
}

function stringArray(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || value.length > 64 || !value.every((v) => typeof v === 'string')) throw new AccessDeniedError(`token ${what} claim is malformed`);
  return [...(value as string[])];
}

/** Tokens whose signature a verifier remembers; the oldest is forgotten first. */
const MAX_REMEMBERED_TOKENS = 10_000;

interface RememberedToken {
  readonly trusted: TrustedIssuer;
  readonly header: CompactJWSHeaderParameters;
  /** The key object that verified the signature. */
  readonly key: unknown;
  readonly payload: JWTPayload;
}

/** Verifies SSO tokens for one audience (or any of several) against a trust list. */
export class TokenVerifier {
  private readonly remembered = new Map<string, RememberedToken>();
  private readonly audienceList: string[];

  constructor(
    private readonly audience: string | readonly string[],
    private readonly trust: TrustList,
    private readonly options: { clockToleranceSeconds?: number; maxLifetimeSeconds?: number; now?: () => number } = {},
  ) {
    this.audienceList = typeof audience === 'string' ? [audience] : [...audience];
  }

  /**
   * Whether `issuer` is a trusted member whose published keys include the key with RFC 7638 thumbprint `thumbprint`
   * (key ids are thumbprints, keyring.ts). Never throws.
   */
  async issuerHoldsKey(issuer: string, thumbprint: string): Promise<boolean> {
    const trusted = this.trust.lookup(issuer);
    if (!trusted) return false;
    try {
      const key = await trusted.keys({ alg: TOKEN_ALGORITHM, kid: thumbprint }, { protected: '', payload: '', signature: '' });
      const jwk = await exportJWK(key as CryptoKey);
      return (await calculateJwkThumbprint(jwk)) === thumbprint;
    } catch {
      return false;
    }
  }

  /** Verifies a token (see the module comment); AccessDeniedError names the failed check. */
  async verify(token: string): Promise<VerifiedToken> {
    if (typeof token !== 'string' || token.length === 0) throw new MalformedInputError('token is missing');
    if (token.length > MAX_TOKEN_CHARS) throw new AccessDeniedError('token is too long');
    const hit = this.remembered.get(token);
    const { trusted, payload } = hit !== undefined && (await this.stillVerified(token, hit)) ? hit : await this.verifySignature(token);
    return this.checkClaims(payload, trusted.member);
  }

  /**
   * Whether a remembered token's signature check still stands: same trust-list entry, the header still resolves
   * to the same key, and (stricter than jose, without skew) not yet near `exp` or the maximum lifetime — the only
   * time checks that can turn from pass to fail. Forgets the token when not.
   */
  private async stillVerified(token: string, hit: RememberedToken): Promise<boolean> {
    const nowSeconds = (this.options.now ?? Date.now)() / 1000 + 1;
    const { iss, exp, iat } = hit.payload as { iss: string; exp: number; iat: number };
    const fresh = this.trust.lookup(iss) === hit.trusted && nowSeconds < exp && nowSeconds - iat < (this.options.maxLifetimeSeconds ?? 900);
    const [encodedHeader, payload, signature] = token.split('.') as [string, string, string];
    const sameKey =
      fresh &&
      (await Promise.resolve()
        .then(() => hit.trusted.keys(hit.header, { protected: encodedHeader, payload, signature }))
        .then(
          (key) => key === hit.key,
          () => false,
        ));
    if (!sameKey) this.remembered.delete(token);
    return sameKey;
  }

  /** The full check: header, issuer, signature and times (jose); the result is remembered. */
  private async verifySignature(token: string): Promise<RememberedToken> {
    let unverified: JWTPayload;
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
      if (header.alg !== TOKEN_ALGORITHM) throw new AccessDeniedError(`token algorithm ${String(header.alg)} is not allowed`);
      unverified = decodeJwt(token);
    } catch (error) {
      if (error instanceof AccessDeniedError) throw error;
      throw new AccessDeniedError('token is malformed');
    }
    const trusted = typeof unverified.iss === 'string' ? this.trust.lookup(unverified.iss) : undefined;
    if (!trusted) throw new AccessDeniedError('token issuer is not trusted');
    const now = this.options.now ?? Date.now;
    const { payload, key } = await jwtVerify(token, trusted.keys, {
      issuer: trusted.member.issuer,
      audience: this.audienceList,
      algorithms: [TOKEN_ALGORITHM],
      typ: TOKEN_TYPE,
      requiredClaims: ['sub', 'sid', 'jti', 'iat', 'exp', 'hospital', 'attrs', 'client_id', 'auth_time'],
      clockTolerance: this.options.clockToleranceSeconds ?? 30,
      maxTokenAge: this.options.maxLifetimeSeconds ?? 900,
      currentDate: new Date(now()),
    }).catch((error: unknown) => {
      throw new AccessDeniedError(reason(error, this.audienceList.join(' or ')));
    });
    const verified: RememberedToken = { trusted, header: { ...header, alg: TOKEN_ALGORITHM }, key, payload };
    if (this.remembered.size >= MAX_REMEMBERED_TOKENS) this.remembered.delete(this.remembered.keys().next().value!);
    this.remembered.set(token, verified);
    return verified;
  }

  private async checkClaims(payload: JWTPayload, member: FederationMember): Promise<VerifiedToken> {
    const {
      sub,
      sid,
      jti,
      exp,
      client_id: clientId,
      auth_time: authTime,
      acr,
    } = payload as JWTPayload & { client_id?: unknown; auth_time?: unknown; acr?: unknown };
    if (
      typeof sub !== 'string' ||
      typeof sid !== 'string' ||
      typeof jti !== 'string' ||
      typeof exp !== 'number' ||
      typeof clientId !== 'string' ||
      typeof authTime !== 'number' ||
      (acr !== undefined && typeof acr !== 'string')
    ) {
      throw new AccessDeniedError('token claims are malformed');
    }
    if (payload.hospital !== member.hospital) throw new AccessDeniedError('token hospital does not match its issuer');
    const attributes = stringArray(payload.attrs, 'attrs');
    const hospitals = attributes.filter((a) => a.startsWith('hospital:'));
    const uids = attributes.filter((a) => a.startsWith('uid:'));
    if (hospitals.length !== 1 || hospitals[0] !== `hospital:${member.hospital}` || uids.length !== 1 || uids[0] !== uidAttribute(sub)) {
      throw new AccessDeniedError('token vouches for attributes its issuer cannot vouch for');
    }
    const scope = payload.scope;
    if (scope !== undefined && typeof scope !== 'string') throw new AccessDeniedError('token scope claim is malformed');
    const cnf = payload.cnf as { jkt?: unknown; sealing_jkt?: unknown } | undefined;
    const methods = payload.amr === undefined ? [] : stringArray(payload.amr, 'amr');
    if (!(await member.sessionStatus(sid))) throw new AccessDeniedError('token session has been revoked');
    return {
      issuer: member.issuer,
      hospital: member.hospital,
      subject: sub,
      sessionId: sid,
      tokenId: jti,
      clientId,
      // Copies: a remembered payload serves later requests, so nothing handed out may alias it.
      audience: typeof payload.aud === 'string' ? [payload.aud] : [...(payload.aud ?? [])],
      attributes,
      scopes: scope ? scope.split(' ') : [],
      authTime,
      acr,
      methods,
      proofKeyThumbprint: typeof cnf?.jkt === 'string' ? cnf.jkt : undefined,
      sealingKeyThumbprint: typeof cnf?.sealing_jkt === 'string' ? cnf.sealing_jkt : undefined,
      expiresAt: exp,
    };
  }
}

/** The session-status check a hospital uses for its own tokens: straight from its session store. */
export function localSessionStatus(sessions: SessionStore, now: () => number = Date.now): SessionStatus {
  return async (sessionId) => {
    const session = await sessions.get(sessionId);
    return session !== undefined && !session.revoked && session.expiresAtMs > now();
  };
}
