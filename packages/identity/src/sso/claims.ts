/**
 * The MedShare SSO access token: a JWT (RFC 7519) in the JWT access-token profile (RFC 9068,
 * `typ: at+jwt`) signed with EdDSA (RFC 8037). Claims:
 *   iss, aud, sub (the user's uid), iat, nbf, exp, jti   — RFC 7519 / RFC 9068
 *   sid        the hospital session; revoking it stops the token at every verifier at once
 *   hospital   the issuing hospital
 *   attrs      the attributes the hospital vouches for, in CP-ABE syntax (`role:doctor`, `level=3`)
 *   scope      SMART App Launch v2 scopes, space-separated (`user/Observation.rs patient/*.rs`)
 *   cnf.jkt    optional RFC 7800 / RFC 9449 confirmation: thumbprint of the device's X25519 key,
 *              which the trusted authority requires before it delivers an attribute key
 */

/** A token after every check has passed. */
export interface VerifiedToken {
  readonly issuer: string;
  readonly hospital: string;
  readonly subject: string;
  readonly sessionId: string;
  readonly tokenId: string;
  readonly audience: string[];
  readonly attributes: string[];
  readonly scopes: string[];
  readonly deviceKeyThumbprint: string | undefined;
  readonly expiresAt: number; // unix seconds
}

/** Token type header value (RFC 9068 §2.1). */
export const TOKEN_TYPE = 'at+jwt';

/** The only signature algorithm accepted. */
export const TOKEN_ALGORITHM = 'EdDSA';

/** Largest token a verifier will look at. */
export const MAX_TOKEN_CHARS = 8192;
