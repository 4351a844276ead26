/**
 * Factors of a user who is already logged in: WebAuthn enrolment (attestation checked by
 * @simplewebauthn/server, challenge single-use and expiring after five minutes), new recovery codes, a new TOTP
 * secret, a new password, and the profile a refreshed token carries.
 *
 * Step-up: every factor change needs a token whose login (password and second factor) is at most
 * STEP_UP_SECONDS old (`auth_time`, `acr`: requireRecentLogin), presented with a DPoP proof of the login's device
 * key (checked by the HTTP plugin). A token alone, or a session left open, cannot change a factor.
 */
import { AccessDeniedError } from '@medshare/crypto';
import type { PublicKeyCredentialCreationOptionsJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { ConflictError } from '../errors.ts';
import { ACR_MULTI_FACTOR, type VerifiedToken } from '../sso/claims.ts';
import type { TicketStore, UserStore } from '../stores.ts';
import type { AuthenticatedUser } from './accounts.ts';
import { base32Encode } from './base32.ts';
import { checkNewPassword, DEFAULT_SCRYPT_PARAMS, hashPassword, type ScryptParams } from './password.ts';
import { newRecoveryCodes } from './recovery.ts';
import { DEFAULT_TOTP, newTotpSecret, otpauthUri } from './totp.ts';
import { registrationOptions, verifyRegistration, type RelyingParty } from './webauthn.ts';

const CHALLENGE_SECONDS = 300;
/** How old a login may be for a factor change. */
export const STEP_UP_SECONDS = 300;

/**
 * Refuses (AccessDeniedError) a token whose login is older than STEP_UP_SECONDS or was not multi-factor.
 */
export function requireRecentLogin(token: VerifiedToken, nowMs: number): void {
  if (token.acr !== ACR_MULTI_FACTOR) throw new AccessDeniedError('changing a factor needs a multi-factor login');
  if (nowMs / 1000 - token.authTime > STEP_UP_SECONDS) {
    throw new AccessDeniedError(`changing a factor needs a login (password and second factor) within the last ${STEP_UP_SECONDS / 60} minutes`);
  }
}

export interface CredentialServiceOptions {
  readonly hospital: string;
  readonly users: UserStore;
  readonly challenges: TicketStore<string>;
  readonly relyingParty: RelyingParty;
  readonly scrypt?: ScryptParams;
  readonly now?: () => number;
}

/** Manages the factors of logged-in users. */
export class CredentialService {
  private readonly now: () => number;

  constructor(private readonly options: CredentialServiceOptions) {
    this.now = options.now ?? Date.now;
  }

  /** WebAuthn enrolment, part 1 (for a user who is already logged in). */
  async webauthnRegistrationOptions(userId: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const user = await this.options.users.findById(userId);
    if (!user) throw new AccessDeniedError('unknown user');
    const options = await registrationOptions(this.options.relyingParty, user);
    const nowMs = this.now();
    await this.options.challenges.put(`register:${userId}`, options.challenge, nowMs + CHALLENGE_SECONDS * 1000, nowMs);
    return options;
  }

  /** WebAuthn enrolment, part 2: verifies the attestation and stores the credential. */
  async finishWebAuthnRegistration(userId: string, response: RegistrationResponseJSON): Promise<{ credentialId: string }> {
    const challenge = await this.options.challenges.take(`register:${userId}`, this.now());
    if (!challenge) throw new AccessDeniedError('no pending WebAuthn registration');
    const credential = await verifyRegistration(this.options.relyingParty, challenge, response);
    const added = await this.options.users.update(userId, (u) => {
      if (u.credentials.some((c) => c.id === credential.id)) return false;
      u.credentials.push(credential);
      return true;
    });
    if (!added) throw new ConflictError('credential is already registered');
    return { credentialId: credential.id };
  }

  /** What a token of an existing session may carry for `userId` (attributes and scopes as stored now); refused for a disabled user. */
  async profile(userId: string): Promise<Pick<AuthenticatedUser, 'id' | 'attributes' | 'scopes'>> {
    const user = await this.options.users.findById(userId);
    if (!user) throw new AccessDeniedError('unknown user');
    if (user.disabled) throw new AccessDeniedError('this account is disabled; ask your hospital administrator');
    return { id: user.id, attributes: user.attributes, scopes: user.scopes };
  }

  /** Replaces a user's TOTP secret; returns the new one (shown once). The old one stops working at once. */
  async resetTotp(userId: string): Promise<{ totpSecret: string; totpUri: string }> {
    const secret = newTotpSecret();
    const username = await this.options.users.update(userId, (u) => {
      u.totpSecret = base32Encode(secret);
      u.lastTotpStep = -1;
      return u.username;
    });
    if (username === undefined) throw new AccessDeniedError('unknown user');
    return { totpSecret: base32Encode(secret), totpUri: otpauthUri(secret, this.options.hospital, username, DEFAULT_TOTP) };
  }

  /** Replaces a user's password. */
  async changePassword(userId: string, password: string): Promise<void> {
    checkNewPassword(password);
    const hash = await hashPassword(password, this.options.scrypt ?? DEFAULT_SCRYPT_PARAMS);
    const done = await this.options.users.update(userId, (u) => {
      u.passwordHash = hash;
      return true;
    });
    if (!done) throw new AccessDeniedError('unknown user');
  }

  /** Replaces a user's recovery codes (after a login); returns the new clear codes. */
  async regenerateRecoveryCodes(userId: string): Promise<string[]> {
    const { codes, digests } = newRecoveryCodes();
    const done = await this.options.users.update(userId, (u) => {
      u.recoveryDigests = digests;
      return true;
    });
    if (!done) throw new AccessDeniedError('unknown user');
    return codes;
  }
}
