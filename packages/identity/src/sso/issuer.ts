/**
 * Issues SSO access tokens for users who completed multi-factor login (claims in claims.ts).
 * Tokens are short-lived (5 minutes by default); each names its session so that logout or an
 * administrator's revocation stops it everywhere before it expires.
 */
import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, SignJWT, type JWK } from 'jose';
import { MalformedInputError } from '@medshare/crypto';
import type { AuthenticatedUser } from '../account/accounts.ts';
import { grantScopes } from '../account/vouching.ts';
import type { SessionStore } from '../stores.ts';
import { TOKEN_ALGORITHM, TOKEN_TYPE } from './claims.ts';
import type { SigningKeyRing } from './keyring.ts';

export interface IssuerOptions {
  readonly issuer: string; // the hospital's identity URL, e.g. https://idp.hospital-a.example
  readonly hospital: string;
  readonly keys: SigningKeyRing;
  readonly sessions: SessionStore;
  readonly tokenSeconds?: number;
  readonly sessionSeconds?: number;
  readonly now?: () => number;
}

/** What a login asks the token to carry. */
export interface TokenRequest {
  readonly audience: string[];
  readonly scopes?: string[];
  /** The device's X25519 public key (JWK); its thumbprint becomes `cnf.jkt`. */
  readonly deviceKey?: JWK;
}

/** A signed token and its session. */
export interface IssuedToken {
  readonly token: string;
  readonly sessionId: string;
  readonly expiresAt: number;
}

const AUDIENCE = /^[\x21-\x7e]{1,256}$/;

/** One hospital's token issuer. */
export class TokenIssuer {
  readonly tokenSeconds: number;
  private readonly sessionSeconds: number;
  private readonly now: () => number;

  constructor(private readonly options: IssuerOptions) {
    this.tokenSeconds = options.tokenSeconds ?? 300;
    this.sessionSeconds = options.sessionSeconds ?? 8 * 3600;
    this.now = options.now ?? Date.now;
  }

  /** Starts a session for `user` and returns its first token. */
  async startSession(user: AuthenticatedUser, request: TokenRequest): Promise<IssuedToken> {
    const sessionId = randomBytes(16).toString('base64url');
    await this.options.sessions.create({ id: sessionId, userId: user.id, expiresAtMs: this.now() + this.sessionSeconds * 1000, revoked: false });
    return this.sign(user, sessionId, request);
  }

  /**
   * Signs a token for an existing session (the caller has checked that it is active). The issuer
   * itself is always an audience, so the token also works for the hospital's own account endpoints.
   */
  async sign(user: Pick<AuthenticatedUser, 'id' | 'attributes' | 'scopes'>, sessionId: string, request: TokenRequest): Promise<IssuedToken> {
    if (!Array.isArray(request.audience) || request.audience.length === 0 || request.audience.length > 8 || !request.audience.every((a) => typeof a === 'string' && AUDIENCE.test(a))) {
      throw new MalformedInputError('audience must be 1 to 8 identifiers');
    }
    const scopes = grantScopes(user.scopes, request.scopes);
    const nowSeconds = Math.floor(this.now() / 1000);
    const expiresAt = nowSeconds + this.tokenSeconds;
    const claims: Record<string, unknown> = { sid: sessionId, hospital: this.options.hospital, attrs: user.attributes, scope: scopes.join(' ') };
    if (request.deviceKey) claims.cnf = { jkt: await deviceKeyThumbprint(request.deviceKey) };
    const audience = [...new Set([this.options.issuer, ...request.audience])];
    const { kid, privateKey } = this.options.keys.current;
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: TOKEN_ALGORITHM, typ: TOKEN_TYPE, kid })
      .setIssuer(this.options.issuer)
      .setSubject(user.id)
      .setAudience(audience)
      .setIssuedAt(nowSeconds)
      .setNotBefore(nowSeconds)
      .setExpirationTime(expiresAt)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(privateKey);
    return { token, sessionId, expiresAt };
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
