/**
 * A hospital as an OpenID Connect provider (OpenID Connect Core 1.0, authorization code flow) for public clients,
 * with PKCE S256 (RFC 7636) required, RFC 9207's `iss` in every authorization response, and SMART App Launch's
 * standalone launch (`aud` names the FHIR server the token is for; scopes `patient/…`, `user/…`).
 *
 * What it adds to the hospital's login (accounts.ts) is only the redirect dance: the user authenticates with the
 * same password + TOTP or passkey, and the token endpoint answers with the same SSO access token the direct login
 * issues (tokens.ts claims, `client_id` the OIDC client, bound to a DPoP key when the token request carries a DPoP
 * proof, RFC 9449 §5), plus an `id_token` for the client, signed with the hospital's current signing key.
 *
 * Codes live one minute and work once. A second redemption of a code is treated as a theft (RFC 6749 §4.1.2): it
 * is refused and the session the first redemption started is revoked, so tokens obtained with the code stop
 * working everywhere. A code is consumed by any redemption attempt, even one with the wrong verifier.
 */
import { randomBytes } from 'node:crypto';
import { SignJWT, type JWK } from 'jose';
import { AccessDeniedError, MalformedInputError, MedShareError } from '@medshare/crypto';
import type { AuthenticatedUser } from '../account/accounts.ts';
import type { CredentialService } from '../account/credentials.ts';
import { checkScopes } from '../account/vouching.ts';
import { parseSmartScope } from '../account/smart-scopes.ts';
import { ACR_MULTI_FACTOR } from '../sso/claims.ts';
import type { VerifiedProof } from '../sso/dpop.ts';
import { deviceKeyThumbprint, type TokenIssuer } from '../sso/issuer.ts';
import type { SigningKeyRing } from '../sso/keyring.ts';
import type { SessionDevice, SessionStore, TicketStore } from '../stores.ts';
import { ClientRegistry, type OidcClient } from './clients.ts';
import { isS256Challenge, verifierMatches } from './pkce.ts';

/** An OAuth 2.0 error (RFC 6749 §4.1.2.1, §5.2): `error` is the registered code sent to the client. */
export class OAuthError extends MedShareError {
  constructor(
    readonly error: string,
    description: string,
    readonly status = 400,
  ) {
    super(status === 401 || error === 'access_denied' ? 'ACCESS_DENIED' : 'MALFORMED', description);
  }
}

/** An authorization request waiting for its user to log in. */
export interface PendingAuthorization {
  readonly clientId: string;
  readonly redirectUri: string;
  readonly codeChallenge: string;
  readonly scopes: string[];
  readonly state?: string;
  readonly nonce?: string;
  readonly issuer: string;
}

/** What an authorization code stands for. */
export interface IssuedCode extends PendingAuthorization {
  readonly user: AuthenticatedUser;
}

/** The token endpoint's answer (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3). */
export interface TokenResponse {
  access_token: string;
  token_type: 'DPoP' | 'Bearer';
  expires_in: number;
  scope: string;
  id_token: string;
  refresh_token?: string;
}

export interface OidcProviderOptions {
  readonly hospital: string;
  readonly clients: ClientRegistry;
  readonly credentials: CredentialService;
  readonly issuer: TokenIssuer;
  readonly keys: SigningKeyRing;
  readonly sessions: SessionStore;
  readonly requests: TicketStore<PendingAuthorization>;
  readonly codes: TicketStore<IssuedCode>;
  /** Redeemed codes → the session their redemption started (for revoking it on a replay). */
  readonly redeemed: TicketStore<string>;
  /** FHIR servers a SMART `aud` may name (a path is the service's own origin). */
  readonly fhirServers: readonly string[];
  /** The audience of the hospital's own account endpoints (its SSO issuer). */
  readonly accountAudience: string;
  readonly now?: () => number;
}

const REQUEST_SECONDS = 600;
const CODE_SECONDS = 60;
const REDEEMED_SECONDS = 3600;
const ID_TOKEN_SECONDS = 300;
/** OpenID scopes this provider understands besides SMART clinical scopes. */
const OPENID_SCOPES = new Set(['openid', 'profile', 'offline_access']);
const MAX_PARAM = 512;

/** One hospital's OpenID Connect provider. */
export class OidcProvider {
  private readonly now: () => number;

  constructor(private readonly options: OidcProviderOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The registered client, if any. */
  client(clientId: string): OidcClient | undefined {
    return this.options.clients.get(clientId);
  }

  /**
   * Checks an authorization request (query parameters of the authorization endpoint) and keeps it until its user
   * logs in. `origin` is the identity service's origin, `issuer` its issuer URL.
   * @throws OAuthError with `redirect` undefined when the client or redirect URI is wrong (the user is told, not sent
   *   anywhere: RFC 6749 §4.1.2.1), else with the redirect carrying the error.
   */
  async authorize(
    params: Record<string, unknown>,
    origin: string,
    issuer: string,
  ): Promise<{ requestId: string; client: OidcClient; pending: PendingAuthorization }> {
    const get = (name: string) => {
      const value = params[name];
      if (value === undefined) return undefined;
      if (typeof value !== 'string' || value.length > MAX_PARAM) throw new OAuthError('invalid_request', `parameter ${name} is malformed`);
      return value;
    };
    const clientId = get('client_id');
    const redirectUri = get('redirect_uri');
    const client = clientId === undefined ? undefined : this.options.clients.get(clientId);
    if (!client) throw new OAuthError('invalid_client', 'unknown client_id');
    if (redirectUri === undefined || !ClientRegistry.allows(client, redirectUri, origin))
      throw new OAuthError('invalid_request', 'redirect_uri is not registered for this client');
    const state = get('state');
    const fail = (error: string, description: string): never => {
      throw new RedirectableOAuthError(error, description, errorRedirect(redirectUri, { error, error_description: description, state, iss: issuer }));
    };
    if (get('response_type') !== 'code') fail('unsupported_response_type', 'only response_type=code is supported');
    if (get('request') !== undefined || get('request_uri') !== undefined) fail('request_not_supported', 'request objects are not supported');
    if (get('launch') !== undefined) fail('invalid_request', 'EHR launch is not supported: use a standalone launch');
    const method = get('code_challenge_method');
    const codeChallenge = get('code_challenge');
    if (codeChallenge === undefined) fail('invalid_request', 'PKCE is required: code_challenge with code_challenge_method=S256');
    if (method !== 'S256') fail('invalid_request', 'only code_challenge_method=S256 is supported');
    if (!isS256Challenge(codeChallenge!)) fail('invalid_request', 'code_challenge is not an S256 challenge');
    const scopes = (get('scope') ?? '').split(' ').filter((s) => s !== '');
    if (!scopes.includes('openid')) fail('invalid_scope', 'the openid scope is required');
    const unknown = scopes.find((s) => !OPENID_SCOPES.has(s) && !parseSmartScope(s));
    if (unknown !== undefined) fail('invalid_scope', `scope ${unknown.slice(0, 64)} is not supported`);
    try {
      checkScopes(scopes.filter((s) => parseSmartScope(s)));
    } catch (error) {
      fail('invalid_scope', (error as Error).message);
    }
    const aud = get('aud');
    if (aud !== undefined && !this.options.fhirServers.some((server) => (server.startsWith('/') ? `${origin}${server}` : server) === aud)) {
      fail('invalid_request', 'aud is not a FHIR server of this platform');
    }
    const nonce = get('nonce');
    const pending: PendingAuthorization = {
      clientId: client.clientId,
      redirectUri,
      codeChallenge: codeChallenge!,
      scopes,
      issuer,
      ...(state === undefined ? {} : { state }),
      ...(nonce === undefined ? {} : { nonce }),
    };
    const requestId = randomBytes(24).toString('base64url');
    const nowMs = this.now();
    await this.options.requests.put(requestId, pending, nowMs + REQUEST_SECONDS * 1000, nowMs);
    return { requestId, client, pending };
  }

  /** The pending request, if it exists and has not expired. */
  pending(requestId: string): Promise<PendingAuthorization | undefined> {
    return this.options.requests.peek(String(requestId), this.now());
  }

  /**
   * Ends the pending request `requestId` for a user who has just logged in: a one-time code, and the redirect URI
   * that carries it (with `state` and `iss`). @throws AccessDeniedError for an unknown or expired request.
   */
  async complete(requestId: string, user: AuthenticatedUser): Promise<string> {
    const nowMs = this.now();
    const pending = await this.options.requests.take(String(requestId), nowMs);
    if (!pending) throw new AccessDeniedError('the sign-in request has expired; start again from the application');
    const code = randomBytes(32).toString('base64url');
    await this.options.codes.put(code, { ...pending, user }, nowMs + CODE_SECONDS * 1000, nowMs);
    return errorRedirect(pending.redirectUri, { code, state: pending.state, iss: pending.issuer });
  }

  /**
   * The token endpoint (grant_type=authorization_code). `proof` is the request's verified DPoP proof, if it had one;
   * a `device_key` parameter (an X25519 JWK named by the proof's `sealing_jkt`) binds the session to it too.
   * @throws OAuthError (invalid_request, invalid_grant, unsupported_grant_type, invalid_client).
   */
  async exchange(form: Record<string, unknown>, proof: VerifiedProof | undefined): Promise<TokenResponse> {
    const field = (name: string) => (typeof form[name] === 'string' ? (form[name] as string) : undefined);
    if (field('grant_type') !== 'authorization_code') throw new OAuthError('unsupported_grant_type', 'only grant_type=authorization_code is supported here');
    const code = field('code');
    const clientId = field('client_id');
    if (code === undefined || clientId === undefined) throw new OAuthError('invalid_request', 'code and client_id are required');
    if (!this.options.clients.get(clientId)) throw new OAuthError('invalid_client', 'unknown client_id', 401);
    const nowMs = this.now();
    const issued = await this.options.codes.take(code, nowMs);
    if (!issued) {
      const session = await this.options.redeemed.take(code, nowMs);
      if (session !== undefined) {
        await this.options.sessions.revoke(session);
        throw new OAuthError('invalid_grant', 'this code was already used: the tokens issued for it are revoked');
      }
      throw new OAuthError('invalid_grant', 'unknown or expired code');
    }
    if (issued.clientId !== clientId) throw new OAuthError('invalid_grant', 'the code was issued to another client');
    if (field('redirect_uri') !== issued.redirectUri) throw new OAuthError('invalid_grant', 'redirect_uri differs from the authorization request');
    if (!verifierMatches(field('code_verifier'), issued.codeChallenge))
      throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge');
    const device = await this.device(proof, field('device_key'));
    const client = this.options.clients.get(clientId)!;
    let profile;
    try {
      profile = await this.options.credentials.profile(issued.user.id);
    } catch (error) {
      throw new OAuthError('invalid_grant', (error as Error).message);
    }
    const user: AuthenticatedUser = { ...issued.user, ...profile };
    const smartScopes = issued.scopes.filter((s) => parseSmartScope(s));
    let token;
    try {
      const audience = [...client.audiences, ...(client.accountAccess ? [this.options.accountAudience] : [])];
      token = await this.options.issuer.startSession(user, { audience, clientId, ...(smartScopes.length > 0 ? { scopes: smartScopes } : {}) }, device);
    } catch (error) {
      if (error instanceof MedShareError) throw new OAuthError('invalid_grant', error.message);
      throw error;
    }
    await this.options.redeemed.put(code, token.sessionId, nowMs + REDEEMED_SECONDS * 1000, nowMs);
    const granted = [...issued.scopes.filter((s) => OPENID_SCOPES.has(s) && (s !== 'offline_access' || token.refreshToken)), ...tokenScopes(token.token)];
    return {
      access_token: token.token,
      token_type: token.refreshToken ? 'DPoP' : 'Bearer',
      expires_in: Math.max(0, token.expiresAt - Math.floor(nowMs / 1000)),
      scope: granted.join(' '),
      id_token: await this.idToken(issued, user, token.sessionId),
      ...(token.refreshToken && issued.scopes.includes('offline_access') ? { refresh_token: token.refreshToken } : {}),
    };
  }

  /** The device keys the token request proved (none without a DPoP proof). */
  private async device(proof: VerifiedProof | undefined, deviceKey: string | undefined): Promise<SessionDevice | undefined> {
    if (proof === undefined) {
      if (deviceKey !== undefined) throw new OAuthError('invalid_request', 'a device_key must come with a DPoP proof naming it');
      return undefined;
    }
    if (deviceKey === undefined) return { proofKey: proof.thumbprint };
    let jwk: JWK;
    try {
      jwk = JSON.parse(deviceKey) as JWK;
    } catch {
      throw new OAuthError('invalid_request', 'device_key is not a JWK');
    }
    let sealingKey: string;
    try {
      sealingKey = await deviceKeyThumbprint(jwk);
    } catch (error) {
      throw new OAuthError('invalid_request', (error as MalformedInputError).message);
    }
    if (proof.payload.sealing_jkt !== sealingKey) throw new OAuthError('invalid_dpop_proof', 'the DPoP proof does not name this device_key');
    return { proofKey: proof.thumbprint, sealingKey };
  }

  private async idToken(issued: IssuedCode, user: AuthenticatedUser, sessionId: string): Promise<string> {
    const nowSeconds = Math.floor(this.now() / 1000);
    const { kid, privateKey } = this.options.keys.current;
    const claims: Record<string, unknown> = {
      auth_time: nowSeconds,
      acr: ACR_MULTI_FACTOR,
      amr: user.methods,
      sid: sessionId,
      azp: issued.clientId,
      hospital: this.options.hospital,
      ...(issued.nonce === undefined ? {} : { nonce: issued.nonce }),
      ...(issued.scopes.includes('profile') ? { preferred_username: user.username, attributes: user.attributes } : {}),
    };
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid })
      .setIssuer(issued.issuer)
      .setSubject(user.id)
      .setAudience(issued.clientId)
      .setIssuedAt(nowSeconds)
      .setExpirationTime(nowSeconds + ID_TOKEN_SECONDS)
      .sign(privateKey);
  }
}

/** An OAuthError whose answer is a redirect to the client (its client and redirect URI were valid). */
export class RedirectableOAuthError extends OAuthError {
  constructor(
    error: string,
    description: string,
    readonly redirect: string,
  ) {
    super(error, description);
  }
}

/** `uri` with the given query parameters added (undefined ones left out). */
function errorRedirect(uri: string, params: Record<string, string | undefined>): string {
  const url = new URL(uri);
  for (const [name, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(name, value);
  return url.href;
}

/** The `scope` claim of a token this hospital just signed. */
function tokenScopes(token: string): string[] {
  const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { scope?: string };
  return (payload.scope ?? '').split(' ').filter((s) => s !== '');
}
