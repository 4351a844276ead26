/**
 * A hospital's accounts: registration with vouched attributes, and the two-step multi-factor login
 * (password, then a TOTP code, a WebAuthn assertion or a recovery code).
 *
 * No user enumeration: an unknown username costs the same scrypt work (a dummy hash made with the
 * same parameters), counts against the same lockout key, and fails with the same message as a wrong
 * password. The second step needs the single-use ticket the first step returned, which expires in
 * five minutes and allows three wrong codes.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { AccessDeniedError, MalformedInputError, LimitExceededError } from '@medshare/crypto';
import type { AuthenticationResponseJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { ConflictError } from '../errors.ts';
import type { TicketStore, UserRecord, UserStore } from '../stores.ts';
import { base32Decode, base32Encode } from './base32.ts';
import { AttemptLimiter } from './limiter.ts';
import { checkNewPassword, DEFAULT_SCRYPT_PARAMS, hashPassword, verifyPassword, type ScryptParams } from './password.ts';
import { findRecoveryCode, newRecoveryCodes } from './recovery.ts';
import { DEFAULT_TOTP, matchTotp, newTotpSecret, otpauthUri, type TotpOptions } from './totp.ts';
import { canonicalAttributes, checkScopes } from './vouching.ts';
import { authenticationOptions, passkeyOptions, verifyAssertion, type RelyingParty } from './webauthn.ts';

const TICKET_SECONDS = 300;
const TICKET_ATTEMPTS = 3;
const USERNAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** A ticket for the second login step. */
interface LoginTicket {
  readonly userId: string;
  readonly username: string;
  readonly attemptsLeft: number;
  readonly expiresAtMs: number;
  readonly webauthnChallenge?: string;
}

/** The identity of a user who completed both factors. */
export interface AuthenticatedUser {
  readonly id: string;
  readonly username: string;
  readonly attributes: string[];
  readonly scopes: string[];
  readonly factor: 'totp' | 'webauthn' | 'recovery' | 'passkey';
  /** RFC 8176 methods: `pwd` and `otp` (TOTP or recovery code) or `hwk` (WebAuthn); a passkey login: `hwk` and `user`. */
  readonly methods: string[];
}

const METHODS: Record<AuthenticatedUser['factor'], string[]> = {
  totp: ['pwd', 'otp'],
  recovery: ['pwd', 'otp'],
  webauthn: ['pwd', 'hwk'],
  // A passkey with user verification: the device (something you have) unlocked by a biometric or PIN.
  passkey: ['hwk', 'user'],
};
/** Throttle account key of passkey attempts whose user handle names nobody. */
const UNKNOWN_PASSKEY = 'passkey:unknown';

/**
 * The challenge a device signs (as the DPoP `nonce`) to prove its keys at the second login step: derived from the
 * ticket, so it names exactly one login and needs no storage.
 */
export function loginChallenge(ticket: string): string {
  return createHash('sha256').update(`medshare/login-challenge/v1|${ticket}`).digest('base64url');
}

/** What registration returns, to show the user exactly once. */
export interface Enrolment {
  readonly userId: string;
  readonly totpUri: string;
  readonly totpSecret: string;
  readonly recoveryCodes: string[];
}

export interface AccountServiceOptions {
  readonly hospital: string;
  readonly users: UserStore;
  readonly tickets: TicketStore<LoginTicket>;
  /** Passkey login challenges, by ticket. */
  readonly passkeyChallenges: TicketStore<string>;
  readonly limiter: AttemptLimiter;
  readonly relyingParty: RelyingParty;
  readonly scrypt?: ScryptParams;
  readonly totp?: Partial<TotpOptions>;
  readonly now?: () => number;
}

/** Registration and multi-factor login for one hospital (enrolment of further factors: credentials.ts). */
export class AccountService {
  private readonly scrypt: ScryptParams;
  private readonly totpOptions: TotpOptions;
  private readonly now: () => number;
  /** Hash of a random password, verified against for unknown usernames (started at once, so even the first costs the same). */
  private readonly dummyHash: Promise<string>;

  constructor(private readonly options: AccountServiceOptions) {
    this.scrypt = options.scrypt ?? DEFAULT_SCRYPT_PARAMS;
    this.totpOptions = { ...DEFAULT_TOTP, ...options.totp };
    this.now = options.now ?? Date.now;
    this.dummyHash = hashPassword(randomBytes(16).toString('hex'), this.scrypt);
  }

  /**
   * Registers a user with the attributes the hospital vouches for (`role:doctor`, `level=3`, ...;
   * `hospital:` and `uid:` are added here) and the SMART scopes they may request. Enrols TOTP and
   * recovery codes at once so that no account exists without a second factor.
   */
  async register(input: { username: string; password: string; attributes: string[]; scopes: string[] }): Promise<Enrolment> {
    if (!USERNAME.test(input.username)) throw new MalformedInputError('username must be 1-64 of a-z 0-9 . _ - starting with a letter or digit');
    checkNewPassword(input.password);
    checkScopes(input.scopes);
    const id = randomUUID();
    const attributes = canonicalAttributes([...input.attributes, `hospital:${this.options.hospital}`, `uid:${id}`]);
    const secret = newTotpSecret();
    const recovery = newRecoveryCodes();
    const user: UserRecord = {
      id,
      username: input.username,
      attributes,
      scopes: [...input.scopes],
      passwordHash: await hashPassword(input.password, this.scrypt),
      totpSecret: base32Encode(secret),
      lastTotpStep: -1,
      recoveryDigests: recovery.digests,
      webauthnUserId: randomBytes(16).toString('base64url'),
      credentials: [],
      disabled: false,
    };
    if (!(await this.options.users.create(user))) throw new ConflictError(`username ${input.username} is already registered`);
    return {
      userId: id,
      totpSecret: base32Encode(secret),
      totpUri: otpauthUri(secret, this.options.hospital, input.username, this.totpOptions),
      recoveryCodes: recovery.codes,
    };
  }

  /**
   * Step 1: checks the password; returns a ticket for step 2, the factors the user has and the challenge a device
   * signs at step 2 to prove its keys. Throttled per (username, client address) and per address (limiter.ts).
   */
  async startLogin(username: string, password: string, client: string): Promise<{ ticket: string; factors: string[]; challenge: string }> {
    if (typeof username !== 'string' || typeof password !== 'string' || username.length > 256)
      throw new MalformedInputError('username and password are required');
    const limiter = this.options.limiter;
    await limiter.check(username, client);
    const user = await this.options.users.findByUsername(username);
    const ok = await verifyPassword(password, user?.passwordHash ?? (await this.dummyHash)).catch((error: unknown) => {
      if (error instanceof LimitExceededError) throw error;
      return false;
    });
    if (!user || !ok) {
      await limiter.fail(username, client);
      throw new AccessDeniedError('invalid username or password');
    }
    if (user.disabled) throw new AccessDeniedError('this account is disabled; ask your hospital administrator');
    const ticket = randomBytes(32).toString('base64url');
    const nowMs = this.now();
    const expiresAtMs = nowMs + TICKET_SECONDS * 1000;
    await this.options.tickets.put(ticket, { userId: user.id, username, attemptsLeft: TICKET_ATTEMPTS, expiresAtMs }, expiresAtMs, nowMs);
    const factors = ['totp', 'recovery', ...(user.credentials.length > 0 ? ['webauthn'] : [])];
    return { ticket, factors, challenge: loginChallenge(ticket) };
  }

  /** Step 2 with a TOTP code; each time step is accepted once. */
  async finishWithTotp(ticket: string, code: string, client: string): Promise<AuthenticatedUser> {
    return this.secondFactor(ticket, client, 'totp', async (user) => {
      if (!user.totpSecret) return false;
      const step = matchTotp(base32Decode(user.totpSecret), String(code), this.now() / 1000, this.totpOptions);
      if (step === undefined) return false;
      const fresh = await this.options.users.update(user.id, (u) => {
        if (step <= u.lastTotpStep) return false;
        u.lastTotpStep = step;
        return true;
      });
      return fresh === true;
    });
  }

  /** Step 2 with a recovery code, which is used up. */
  async finishWithRecoveryCode(ticket: string, code: string, client: string): Promise<AuthenticatedUser> {
    return this.secondFactor(ticket, client, 'recovery', async (user) => {
      const consumed = await this.options.users.update(user.id, (u) => {
        const index = findRecoveryCode(u.recoveryDigests, String(code));
        if (index < 0) return false;
        u.recoveryDigests.splice(index, 1);
        return true;
      });
      return consumed === true;
    });
  }

  /** Step 2 with WebAuthn, part 1: the assertion challenge (bound to the ticket). */
  async webauthnLoginOptions(ticket: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const nowMs = this.now();
    const pending = await this.options.tickets.take(String(ticket), nowMs);
    if (!pending) throw new AccessDeniedError('invalid or expired login ticket');
    const user = await this.options.users.findById(pending.userId);
    if (!user || user.credentials.length === 0) throw new AccessDeniedError('no WebAuthn credential is registered');
    const options = await authenticationOptions(this.options.relyingParty, user);
    await this.options.tickets.put(String(ticket), { ...pending, webauthnChallenge: options.challenge }, pending.expiresAtMs, nowMs);
    return options;
  }

  /** Step 2 with WebAuthn, part 2: verifies the assertion and stores the new signature counter. */
  async finishWithWebAuthn(ticket: string, response: AuthenticationResponseJSON, client: string): Promise<AuthenticatedUser> {
    return this.secondFactor(ticket, client, 'webauthn', async (user, pending) => {
      if (!pending.webauthnChallenge) return false;
      const challenge = pending.webauthnChallenge;
      const result = await verifyAssertion(this.options.relyingParty, challenge, user, response).catch(() => undefined);
      if (!result) return false;
      const updated = await this.options.users.update(user.id, (u) => {
        const credential = u.credentials.find((c) => c.id === result.credentialId);
        if (!credential) return false;
        credential.counter = result.newCounter;
        return true;
      });
      return updated === true;
    });
  }

  /**
   * Passkey login (WebAuthn as the first and second factor), part 1: a ticket and request options for any
   * discoverable credential of this relying party, with user verification required.
   */
  async passkeyLoginOptions(): Promise<{ ticket: string; options: PublicKeyCredentialRequestOptionsJSON; challenge: string }> {
    const options = await passkeyOptions(this.options.relyingParty);
    const ticket = randomBytes(32).toString('base64url');
    const nowMs = this.now();
    await this.options.passkeyChallenges.put(ticket, options.challenge, nowMs + TICKET_SECONDS * 1000, nowMs);
    return { ticket, options, challenge: loginChallenge(ticket) };
  }

  /**
   * Passkey login, part 2: the assertion must answer the ticket's challenge (used once) from a registered origin,
   * with user verification, by a credential of the user its handle names; throttled like a password.
   */
  async finishWithPasskey(ticket: string, response: AuthenticationResponseJSON, client: string): Promise<AuthenticatedUser> {
    const challenge = await this.options.passkeyChallenges.take(String(ticket), this.now());
    if (!challenge) throw new AccessDeniedError('invalid or expired login ticket');
    const handle = typeof response?.response?.userHandle === 'string' ? response.response.userHandle : '';
    const user = handle === '' ? undefined : await this.options.users.findByWebAuthnUserId(handle);
    const account = user?.username ?? UNKNOWN_PASSKEY;
    await this.options.limiter.check(account, client);
    const result = user && (await verifyAssertion(this.options.relyingParty, challenge, user, response).catch(() => undefined));
    if (!user || !result) {
      await this.options.limiter.fail(account, client);
      throw new AccessDeniedError('invalid WebAuthn assertion');
    }
    if (user.disabled) throw new AccessDeniedError('this account is disabled; ask your hospital administrator');
    await this.options.users.update(user.id, (u) => {
      const credential = u.credentials.find((c) => c.id === result.credentialId);
      if (credential) credential.counter = result.newCounter;
    });
    await this.options.limiter.succeed(account, client);
    return { id: user.id, username: user.username, attributes: user.attributes, scopes: user.scopes, factor: 'passkey', methods: METHODS.passkey };
  }

  private async secondFactor(
    ticket: string,
    client: string,
    factor: AuthenticatedUser['factor'],
    check: (user: UserRecord, pending: LoginTicket) => Promise<boolean>,
  ): Promise<AuthenticatedUser> {
    const nowMs = this.now();
    const pending = await this.options.tickets.take(String(ticket), nowMs);
    if (!pending) throw new AccessDeniedError('invalid or expired login ticket');
    await this.options.limiter.check(pending.username, client);
    const user = await this.options.users.findById(pending.userId);
    if (user?.disabled) throw new AccessDeniedError('this account is disabled; ask your hospital administrator');
    if (user && (await check(user, pending))) {
      await this.options.limiter.succeed(pending.username, client);
      return { id: user.id, username: user.username, attributes: user.attributes, scopes: user.scopes, factor, methods: METHODS[factor] };
    }
    await this.options.limiter.fail(pending.username, client);
    if (pending.attemptsLeft > 1) {
      await this.options.tickets.put(String(ticket), { ...pending, attemptsLeft: pending.attemptsLeft - 1 }, pending.expiresAtMs, nowMs);
    }
    throw new AccessDeniedError(`invalid ${factor === 'webauthn' ? 'WebAuthn assertion' : 'code'}`);
  }
}

export type { LoginTicket };
