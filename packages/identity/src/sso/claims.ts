/**
 * The MedShare SSO access token: a JWT (RFC 7519) in the JWT access-token profile (RFC 9068,
 * `typ: at+jwt`) signed with EdDSA (RFC 8037). Claims:
 *   iss, aud, sub (the session's pseudonym, sso/pseudonyms.ts: never the uid), iat, nbf, exp, jti, client_id   — RFC 7519 / RFC 9068
 *   auth_time, acr, amr   when and how the user authenticated (OpenID Connect Core §2; RFC 8176 methods):
 *                         factor changes need an `auth_time` at most five minutes old (step-up)
 *   sid        the hospital session; revoking it stops the token at every verifier at once
 *   hospital   the issuing hospital
 *   attrs      the attributes the hospital vouches for, in CP-ABE syntax (`role:doctor`, `level=3`)
 *   scope      SMART App Launch v1/v2 scopes, space-separated (`user/Observation.rs patient/*.rs`)
 *   cnf.jkt    RFC 9449 confirmation: thumbprint of the Ed25519 DPoP key that signed the login challenge;
 *              the account endpoints, the refresh endpoint and the trusted authority want a proof by it
 *   cnf.sealing_jkt  thumbprint of the X25519 device key that the login's proof named: the only key
 *              the trusted authority seals an attribute key to
 * `aud` holds only audiences registered with the hospital and asked for at login; the hospital itself (its issuer
 * URL) is an audience only when asked for, and only its account endpoints accept it.
 */

/** A token after every check has passed. */
export interface VerifiedToken {
  readonly issuer: string;
  readonly hospital: string;
  readonly subject: string;
  readonly sessionId: string;
  readonly tokenId: string;
  readonly clientId: string;
  readonly audience: string[];
  readonly attributes: string[];
  readonly scopes: string[];
  /** Unix seconds of the login. */
  readonly authTime: number;
  readonly acr: string | undefined;
  readonly methods: string[];
  /** `cnf.jkt`: the DPoP key the token is bound to. */
  readonly proofKeyThumbprint: string | undefined;
  /** `cnf.sealing_jkt`: the X25519 key attribute keys may be sealed to. */
  readonly sealingKeyThumbprint: string | undefined;
  readonly expiresAt: number; // unix seconds
}

/** Token type header value (RFC 9068 §2.1). */
export const TOKEN_TYPE = 'at+jwt';

/** The only signature algorithm accepted. */
export const TOKEN_ALGORITHM = 'EdDSA';

/** Largest token a verifier will look at. */
export const MAX_TOKEN_CHARS = 8192;

/** `acr` of a login with a password (or passkey) and a second factor. */
export const ACR_MULTI_FACTOR = 'urn:medshare:acr:mfa';

/**
 * The `uid:` attribute a token must carry for its subject: the subject itself, or for a session pseudonym
 * (`psn:<base64url>`) its base64url part, since an attribute value is a bare word without `:`.
 */
export function uidAttribute(subject: string): string {
  return `uid:${subject.startsWith('psn:') ? subject.slice('psn:'.length) : subject}`;
}
