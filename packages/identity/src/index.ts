/**
 * @medshare/identity — who is asking, in MedShare.
 *
 *   account   passwords (scrypt), TOTP (RFC 6238), WebAuthn, recovery codes, throttling, the MFA login, step-up, administration
 *   sso       EdDSA JWT access tokens, DPoP (RFC 9449) device binding and refresh, key rotation, the federation trust list, revocation
 *   dpop      DPoP-bound tokens at resource servers (the cloud, the gateway): token and proof checked together
 *   ta        the trusted authority's binding of CP-ABE attribute keys to authenticated users
 *   device    HMAC multi-server device authentication (registration centre, mutual auth, RFC 9421-shaped signatures)
 *   http      Fastify plugins for all of the above, errors as RFC 9457 problem+json
 *   stores    storage interfaces, in memory and on @medshare/db (PGlite or PostgreSQL)
 */
export * from './errors.ts';
export * from './stores.ts';
export * from './memory-stores.ts';
export { SqlAttemptStore, SqlNonceCache, SqlSessionStore, SqlSigningKeyStore, SqlTicketStore, SqlUserStore } from './sql/stores.ts';
export { hashPassword, verifyPassword, needsRehash, DEFAULT_SCRYPT_PARAMS, type ScryptParams } from './account/password.ts';
export { base32Encode, base32Decode } from './account/base32.ts';
export { hotp, totp, matchTotp, timeStep, newTotpSecret, otpauthUri, DEFAULT_TOTP, type TotpAlgorithm, type TotpOptions } from './account/totp.ts';
export { newRecoveryCodes, findRecoveryCode, digestRecoveryCode, RECOVERY_CODE_COUNT } from './account/recovery.ts';
export { AttemptLimiter, DEFAULT_LIMITS, type LimiterOptions } from './account/limiter.ts';
export { AdminService, type AdminServiceOptions, type TracedPseudonym } from './account/admin.ts';
export { SessionPseudonyms, TRACING_KEY_BYTES } from './sso/pseudonyms.ts';
export { canonicalAttributes, checkScopes, grantScopes } from './account/vouching.ts';
export { parseSmartScope, grantsCategory, grantsResource, FHIR_CATEGORY_CODES, type SmartScope, type CategoryTypes } from './account/smart-scopes.ts';
export type { RelyingParty } from './account/webauthn.ts';
export { AccountService, loginChallenge, type AccountServiceOptions, type AuthenticatedUser, type Enrolment, type LoginTicket } from './account/accounts.ts';
export { CredentialService, requireRecentLogin, STEP_UP_SECONDS, type CredentialServiceOptions } from './account/credentials.ts';
export { SigningKeyRing } from './sso/keyring.ts';
export { TokenIssuer, deviceKeyThumbprint, type IssuedToken, type IssuerOptions, type TokenProfile, type TokenRequest } from './sso/issuer.ts';
export { DpopKey, DpopVerifier, accessTokenHash, proofTarget, DPOP_TYPE, type ProofExpectation, type VerifiedProof } from './sso/dpop.ts';
export { DeviceKeys } from './sso/device-keys.ts';
export { SenderConstrainedVerifier, senderConstrained, PUBLIC_ROUTE, DPOP_CHALLENGE } from './dpop/verify.ts';
export { TrustList, TokenVerifier, remoteSessionStatus, localSessionStatus, type FederationMember, type SessionStatus } from './sso/federation.ts';
export { TOKEN_ALGORITHM, TOKEN_TYPE, MAX_TOKEN_CHARS, ACR_MULTI_FACTOR, type VerifiedToken } from './sso/claims.ts';
export { seal, open, importDevicePublicKey, type SealedBox } from './ta/sealed-box.ts';
export {
  TrustedAuthority,
  openIssuedKey,
  deliveryContext,
  type IssuedKey,
  type KeyRequest,
  type ProofContext,
  type TrustedAuthorityOptions,
} from './ta/authority.ts';
export {
  RegistrationCentre,
  deriveServerSecret,
  derivePairwiseKey,
  checkIdentifier,
  type DeviceCredential,
  type RegistrationCentreState,
  type DeviceRevocationCheck,
} from './device/registration-centre.ts';
export { createLoginRequest, acceptLoginResponse, deriveSessionKey, protocolMac, type LoginRequest, type LoginResponse } from './device/protocol.ts';
export {
  contentDigest,
  signatureBase,
  signatureInput,
  signRequest,
  parseSignatureHeaders,
  splitTarget,
  type SignatureParams,
  type SignedRequestParts,
} from './device/signature.ts';
export { DeviceAuthServer, type DeviceAuthServerOptions, type DeviceSession } from './device/server.ts';
export { DeviceSessionClient } from './device/client.ts';
export { useProblemDetails, bearerToken, problemFor, problemType, HTTP_STATUS_BY_CODE, type Problem } from './http/problem.ts';
export { presentedToken, dpopHeader, requestUrl } from './http/proof.ts';
export { adminCredentialCheck, hospitalIdentityPlugin, MAX_SESSION_STATUS_BATCH, type HospitalPluginOptions } from './http/hospital-plugin.ts';
export { trustedAuthorityPlugin, type TaPluginOptions } from './http/ta-plugin.ts';
export { deviceAuthenticationPlugin, type DevicePluginOptions } from './http/device-plugin.ts';
export { ClientRegistry, type OidcClient } from './oidc/clients.ts';
export { OidcProvider, OAuthError, type TokenResponse, type PendingAuthorization, type IssuedCode } from './oidc/provider.ts';
export { oidcPlugin, requestOrigin, smartConfiguration, type OidcPluginOptions } from './oidc/plugin.ts';
export { s256Challenge } from './oidc/pkce.ts';
export { createMemoryHospital, createSqlHospital, migrateIdentity, DEFAULT_CLIENT, type HospitalConfig, type HospitalService } from './hospital.ts';
