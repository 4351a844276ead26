/**
 * WebAuthn (W3C Web Authentication Level 2) registration and assertion checks, delegated to
 * @simplewebauthn/server. This module only adapts it to MedShare's stores: it keeps credentials as
 * base64url strings, requires user verification (a platform authenticator's biometric or PIN is
 * the "something you are/know" that makes the device key a full second factor), and enforces the
 * signature counter the library reports.
 */
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransport,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { isoBase64URL } from '@simplewebauthn/server/helpers';
import { AccessDeniedError } from '@medshare/crypto';
import type { StoredCredential, UserRecord } from '../stores.ts';

/** The relying party: the hospital's identity service as browsers see it. */
export interface RelyingParty {
  readonly id: string; // e.g. "hospital-a.example"
  readonly name: string;
  readonly origins: string[]; // e.g. ["https://hospital-a.example"]
}

/** Creation options for a new credential of `user` (existing ones are excluded). */
export function registrationOptions(rp: RelyingParty, user: UserRecord): Promise<PublicKeyCredentialCreationOptionsJSON> {
  return generateRegistrationOptions({
    rpName: rp.name,
    rpID: rp.id,
    userName: user.username,
    userID: isoBase64URL.toBuffer(user.webauthnUserId),
    attestationType: 'none',
    excludeCredentials: user.credentials.map((c) => ({ id: c.id, transports: c.transports as AuthenticatorTransport[] })),
    authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
  });
}

/** Verifies an attestation against the challenge issued; returns the credential to store. */
export async function verifyRegistration(rp: RelyingParty, challenge: string, response: RegistrationResponseJSON): Promise<StoredCredential> {
  const result = await verifyRegistrationResponse({
    response,
    expectedChallenge: challenge,
    expectedOrigin: rp.origins,
    expectedRPID: rp.id,
    requireUserVerification: true,
  }).catch(() => ({ verified: false as const }));
  if (!result.verified) throw new AccessDeniedError('WebAuthn registration could not be verified');
  const { credential } = result.registrationInfo;
  return {
    id: credential.id,
    publicKey: isoBase64URL.fromBuffer(credential.publicKey),
    counter: credential.counter,
    transports: credential.transports ?? [],
  };
}

/** Request options for a passkey login: any discoverable credential of this relying party, user verification required. */
export function passkeyOptions(rp: RelyingParty): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return generateAuthenticationOptions({ rpID: rp.id, allowCredentials: [], userVerification: 'required' });
}

/** Request options for an assertion by one of `user`'s credentials. */
export function authenticationOptions(rp: RelyingParty, user: UserRecord): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return generateAuthenticationOptions({
    rpID: rp.id,
    allowCredentials: user.credentials.map((c) => ({ id: c.id, transports: c.transports as AuthenticatorTransport[] })),
    userVerification: 'required',
  });
}

/**
 * Verifies an assertion; returns the credential id and its new signature counter. A counter that
 * does not increase (for authenticators that keep one) signals a cloned key and is refused.
 */
export async function verifyAssertion(
  rp: RelyingParty,
  challenge: string,
  user: UserRecord,
  response: AuthenticationResponseJSON,
): Promise<{ credentialId: string; newCounter: number }> {
  const stored = user.credentials.find((c) => c.id === response.id);
  if (!stored) throw new AccessDeniedError('WebAuthn assertion could not be verified');
  const result = await verifyAuthenticationResponse({
    response,
    expectedChallenge: challenge,
    expectedOrigin: rp.origins,
    expectedRPID: rp.id,
    credential: {
      id: stored.id,
      publicKey: isoBase64URL.toBuffer(stored.publicKey),
      counter: stored.counter,
      transports: stored.transports as AuthenticatorTransport[],
    },
    requireUserVerification: true,
  }).catch(() => ({ verified: false as const }));
  if (!result.verified) throw new AccessDeniedError('WebAuthn assertion could not be verified');
  return { credentialId: stored.id, newCounter: result.authenticationInfo.newCounter };
}
