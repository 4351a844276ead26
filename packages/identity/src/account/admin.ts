/**
 * A hospital administrator's account operations: disable and enable a user, revoke all her sessions, unlock her
 * throttled logins, change her vouched attributes. Each hospital has its own administrator credential (the HTTP
 * plugin checks it); these operations reach only that hospital's users.
 *
 * Disabling or changing attributes revokes every session of the user at once, so her tokens stop verifying at every
 * member, the trusted authority refuses her new keys and the cloud refuses her reads (the cloud checks the token,
 * with its session, on every request). What it cannot undo is stated in docs/identity.md: a CP-ABE key already
 * delivered to her device still decrypts copies of converted records she already downloaded.
 */
import { NotFoundError } from '@medshare/crypto';
import type { SessionPseudonyms } from '../sso/pseudonyms.ts';
import type { SessionStore, UserStore } from '../stores.ts';
import type { AttemptLimiter } from './limiter.ts';
import { canonicalAttributes } from './vouching.ts';

export interface AdminServiceOptions {
  readonly hospital: string;
  readonly users: UserStore;
  readonly sessions: SessionStore;
  readonly limiter: AttemptLimiter;
  readonly pseudonyms: SessionPseudonyms;
}

/** Whom a session pseudonym names: what the hospital's administrator learns by tracing it. */
export interface TracedPseudonym {
  readonly username: string;
  readonly userId: string;
  /** The session, and when she logged in (ISO 8601); absent for a patient's pseudonym, which names her account. */
  readonly sessionId?: string;
  readonly loggedInAt?: string;
}

/** Administration of one hospital's accounts. */
export class AdminService {
  constructor(private readonly options: AdminServiceOptions) {}

  private async userId(username: string): Promise<string> {
    const user = await this.options.users.findByUsername(String(username));
    if (!user) throw new NotFoundError(`no user ${String(username).slice(0, 64)} at ${this.options.hospital}`);
    return user.id;
  }

  /** Disables (or enables) a user; disabling revokes her sessions. Returns the sessions revoked. */
  async setDisabled(username: string, disabled: boolean): Promise<{ revokedSessions: number }> {
    const id = await this.userId(username);
    await this.options.users.update(id, (u) => {
      u.disabled = disabled;
    });
    return { revokedSessions: disabled ? await this.options.sessions.revokeAllForUser(id) : 0 };
  }

  /** Revokes every session of a user (she must log in again). */
  async revokeSessions(username: string): Promise<{ revokedSessions: number }> {
    return { revokedSessions: await this.options.sessions.revokeAllForUser(await this.userId(username)) };
  }

  /**
   * Traces a session pseudonym (a token subject, a ledger entry's agent, a line of the cloud's log) to the user and
   * session it names. Only this hospital's tracing key opens it.
   * @throws MalformedInputError for a string that is not a pseudonym, IntegrityError for a pseudonym this hospital
   *   did not issue, NotFoundError when its session or user is gone.
   */
  async trace(pseudonym: string): Promise<TracedPseudonym> {
    const named = this.options.pseudonyms.trace(pseudonym);
    const session = await this.options.sessions.get(named);
    // A patient's pseudonym names her account, not a session (sso/issuer.ts).
    const user = await this.options.users.findById(session?.userId ?? named);
    if (user === undefined) throw new NotFoundError('the session or account of this pseudonym is no longer known');
    return {
      username: user.username,
      userId: user.id,
      ...(session === undefined ? {} : { sessionId: named, loggedInAt: new Date(session.authTime * 1000).toISOString() }),
    };
  }

  /** Clears the login throttle of a user from every address. */
  async unlock(username: string): Promise<void> {
    await this.userId(username);
    await this.options.limiter.unlock(String(username));
  }

  /**
   * Replaces the attributes the hospital vouches for (`hospital:` and `uid:` are kept as the hospital sets them) and
   * revokes her sessions, so that no token carries the old ones. Returns the new attributes.
   */
  async setAttributes(username: string, attributes: string[]): Promise<{ attributes: string[]; revokedSessions: number }> {
    const id = await this.userId(username);
    const canonical = canonicalAttributes([...attributes, `hospital:${this.options.hospital}`, `uid:${id}`]);
    await this.options.users.update(id, (u) => {
      u.attributes = canonical;
    });
    return { attributes: canonical, revokedSessions: await this.options.sessions.revokeAllForUser(id) };
  }
}
