/**
 * Factors of a user who is already logged in: WebAuthn enrolment (attestation checked by
 * @simplewebauthn/server, challenge single-use and expiring after five minutes), new recovery codes,
 * and the profile a refreshed token carries.
 */
import { AccessDeniedError } from '@medshare/crypto';
import type { PublicKeyCredentialCreationOptionsJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { ConflictError } from '../errors.ts';
import type { TicketStore, UserStore } from '../stores.ts';
import type { AuthenticatedUser } from './accounts.ts';
import { newRecoveryCodes } from './recovery.ts';
import { registrationOptions, verifyRegistration, type RelyingParty } from './webauthn.ts';

const CHALLENGE_SECONDS = 300;

export interface CredentialServiceOptions {
  readonly users: UserStore;
  readonly challenges: TicketStore<string>;
  readonly relyingParty: RelyingParty;
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

  /** What a token of an existing session may carry for `userId` (attributes and scopes as stored now). */
  async profile(userId: string): Promise<Pick<AuthenticatedUser, 'id' | 'attributes' | 'scopes'>> {
    const user = await this.options.users.findById(userId);
    if (!user) throw new AccessDeniedError('unknown user');
    return { id: user.id, attributes: user.attributes, scopes: user.scopes };
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
