/**
 * Issues SSO access tokens for users who completed multi-factor login (claims in claims.ts), and refreshes them.
 *
 * Audiences are bounded: a token names only audiences registered with the hospital (`audiences`, its issuer URL
 * being the audience of its own account endpoints) and a registered client (`client_id`, RFC 9068). Access tokens
 * are short-lived (5 minutes by default); each names its session so that logout or an administrator's revocation
 * stops it everywhere before it expires.
 *
 * Refresh: an access token is never exchanged for another. A login that proved a device key (a DPoP proof over the
 * login challenge, sso/dpop.ts) also gets a refresh credential, `<sid>.<secret>`, of which the session keeps only a
 * digest. A refresh needs that credential *and* a DPoP proof by the session's key, rotates the credential (each
 * works once), keeps the session's device binding, `auth_time` and methods, and may narrow the login's audiences,
 * never widen them. A stolen access token therefore cannot be refreshed, re-bound to another device key or given
 * another audience.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { calculateJwkThumbprint, SignJWT, type JWK } from 'jose';
import { AccessDeniedError, MalformedInputError } from '@medshare/crypto';
import type { AuthenticatedUser } from '../account/accounts.ts';
import { grantScopes } from '../account/vouching.ts';
import type { SessionDevice, SessionRecord, SessionStore } from '../stores.ts';
import { ACR_MULTI_FACTOR, TOKEN_ALGORITHM, TOKEN_TYPE, uidAttribute } from './claims.ts';
import type { SigningKeyRing } from './keyring.ts';
import type { SessionPseudonyms } from './pseudonyms.ts';

export interface IssuerOptions {
  readonly issuer: string; // the hospital's identity URL, e.g. https://idp.hospital-a.example
  readonly hospital: string;
  readonly keys: SigningKeyRing;
  readonly sessions: SessionStore;
  /** The subject of every token: its session's pseudonym, never the user's id (pseudonyms.ts). */
  readonly pseudonyms: SessionPseudonyms;
  /** The services tokens may be for (besides the issuer itself, the audience of the account endpoints). */
  readonly audiences: readonly string[];
  /** The registered clients (RFC 9068 `client_id`); the first is the default. */
  readonly clients: readonly string[];
  readonly tokenSeconds?: number;
  readonly sessionSeconds?: number;
  readonly now?: () => number;
}

/** What a login or a refresh asks the token to carry. */
export interface TokenRequest {
  readonly audience: string[];
  readonly scopes?: string[];
  readonly clientId?: string;
}

/** A signed token and its session; `refreshToken` only for a session with a proven device key. */
export interface IssuedToken {
  readonly token: string;
  readonly sessionId: string;
  readonly expiresAt: number;
  readonly refreshToken?: string;
}

/** The profile a token carries, as the user store holds it now. */
export type TokenProfile = Pick<AuthenticatedUser, 'id' | 'attributes' | 'scopes'>;

function digest(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url');
}

/** One hospital's token issuer. */
export class TokenIssuer {
  readonly tokenSeconds: number;
  private readonly sessionSeconds: number;
  private readonly now: () => number;
  private readonly audiences: ReadonlySet<string>;

  constructor(private readonly options: IssuerOptions) {
    if (options.clients.length === 0) throw new MalformedInputError('an issuer needs at least one registered client');
    this.tokenSeconds = options.tokenSeconds ?? 300;
    this.sessionSeconds = options.sessionSeconds ?? 8 * 3600;
    this.now = options.now ?? Date.now;
    this.audiences = new Set([options.issuer, ...options.audiences]);
  }

  /**
   * Starts a session for `user` and returns its first token (and a refresh credential when `device` is given: the
   * keys whose possession the login proved).
   * @throws AccessDeniedError for an unregistered audience or client.
   */
  async startSession(user: AuthenticatedUser, request: TokenRequest, device?: SessionDevice): Promise<IssuedToken> {
    const audience = this.checkAudience(request.audience, this.audiences);
    const clientId = request.clientId ?? this.options.clients[0]!;
    if (!this.options.clients.includes(clientId)) throw new AccessDeniedError(`client ${clientId.slice(0, 64)} is not registered`);
    const sessionId = randomBytes(16).toString('base64url');
    const secret = device ? randomBytes(32).toString('base64url') : undefined;
    const session: SessionRecord = {
      id: sessionId,
      userId: user.id,
      expiresAtMs: this.now() + this.sessionSeconds * 1000,
      revoked: false,
      authTime: Math.floor(this.now() / 1000),
      methods: user.methods,
      clientId,
      audiences: audience,
      ...(device ? { device, refreshDigest: digest(secret!) } : {}),
    };
    await this.options.sessions.create(session);
    const issued = await this.sign(user, session, { ...request, audience });
    return secret === undefined ? issued : { ...issued, refreshToken: `${sessionId}.${secret}` };
  }

  /**
   * A fresh access token and refresh credential for the session of `refreshToken`, whose DPoP key signed the
   * request (`proofThumbprint`, checked by the caller against the request). `profile` loads the user as stored now.
   * @throws AccessDeniedError for an unknown, used, revoked or expired credential, another device's proof, or an
   *   audience the login did not ask for.
   */
  async refresh(
    refreshToken: string,
    proofThumbprint: string,
    request: Partial<TokenRequest>,
    profile: (userId: string) => Promise<TokenProfile>,
  ): Promise<IssuedToken> {
    const [sessionId, secret, extra] = String(refreshToken).split('.');
    if (!sessionId || !secret || extra !== undefined) throw new AccessDeniedError('refresh credential is not valid');
    const nowMs = this.now();
    const session = await this.options.sessions.get(sessionId);
    const presented = Buffer.from(digest(secret));
    const valid =
      session?.refreshDigest !== undefined &&
      !session.revoked &&
      session.expiresAtMs > nowMs &&
      presented.length === session.refreshDigest.length &&
      timingSafeEqual(presented, Buffer.from(session.refreshDigest));
    if (!valid || !session) throw new AccessDeniedError('refresh credential is not valid');
    if (session.device?.proofKey !== proofThumbprint) throw new AccessDeniedError('refresh must be signed by the device key of the login');
    const audience = this.checkAudience(request.audience ?? session.audiences, new Set(session.audiences));
    const user = await profile(session.userId);
    const next = randomBytes(32).toString('base64url');
    if (!(await this.options.sessions.rotateRefresh(sessionId, session.refreshDigest!, digest(next), nowMs))) {
      throw new AccessDeniedError('refresh credential is not valid');
    }
    const issued = await this.sign({ ...user, methods: session.methods }, session, { audience, scopes: request.scopes });
    return { ...issued, refreshToken: `${sessionId}.${next}` };
  }

  private checkAudience(requested: readonly string[], allowed: ReadonlySet<string>): string[] {
    if (!Array.isArray(requested) || requested.length === 0 || requested.length > 8 || !requested.every((a) => typeof a === 'string')) {
      throw new MalformedInputError('audience must be 1 to 8 identifiers');
    }
    const refused = requested.find((a) => !allowed.has(a));
    if (refused !== undefined)
      throw new AccessDeniedError(`audience ${refused.slice(0, 64)} is not registered for this ${allowed === this.audiences ? 'hospital' : 'session'}`);
    return [...new Set(requested)];
  }

  /** Signs a token of `session` (active: the caller has checked it), for an audience the caller has checked. */
  async sign(user: TokenProfile & { methods: string[] }, session: SessionRecord, request: TokenRequest): Promise<IssuedToken> {
    const scopes = grantScopes(user.scopes, request.scopes);
    const nowSeconds = Math.floor(this.now() / 1000);
    const expiresAt = nowSeconds + this.tokenSeconds;
    // The platform sees the session's pseudonym, as subject and as the `uid:` attribute the hospital vouches for. A
    // patient's is her account's (the same in every session): the cloud binds her record to it, and knows her by her
    // patient pseudonym anyway.
    const subject = this.options.pseudonyms.of(user.attributes.includes('role:patient') ? user.id : session.id);
    const attributes = user.attributes.map((a) => (a.startsWith('uid:') ? uidAttribute(subject) : a));
    const claims: Record<string, unknown> = {
      sid: session.id,
      hospital: this.options.hospital,
      attrs: attributes,
      scope: scopes.join(' '),
      client_id: session.clientId,
      auth_time: session.authTime,
      acr: ACR_MULTI_FACTOR,
      amr: user.methods,
    };
    if (session.device) claims.cnf = { jkt: session.device.proofKey, ...(session.device.sealingKey ? { sealing_jkt: session.device.sealingKey } : {}) };
    const { kid, privateKey } = this.options.keys.current;
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: TOKEN_ALGORITHM, typ: TOKEN_TYPE, kid })
      .setIssuer(this.options.issuer)
      .setSubject(subject)
      .setAudience(request.audience)
      .setIssuedAt(nowSeconds)
      .setNotBefore(nowSeconds)
      .setExpirationTime(expiresAt)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(privateKey);
    return { token, sessionId: session.id, expiresAt };
  }
}

/** RFC 7638 thumbprint of a device's X25519 public key; MalformedInputError for anything else. */
export async function deviceKeyThumbprint(jwk: JWK): Promise<string> {
  if (typeof jwk !== 'object' || jwk === null || jwk.kty !== 'OKP' || jwk.crv !== 'X25519' || typeof jwk.x !== 'string' || 'd' in jwk) {
    throw new MalformedInputError('device key must be a public X25519 JWK');
  }
  if (Buffer.from(jwk.x, 'base64url').length !== 32) throw new MalformedInputError('device key must be a public X25519 JWK');
  return calculateJwkThumbprint({ kty: 'OKP', crv: 'X25519', x: jwk.x });
}
