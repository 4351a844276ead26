/**
 * Storage interfaces of the identity service (in-memory implementations: memory-stores.ts).
 *
 * Every mutation that must be atomic (consuming a TOTP step, a recovery code, a ticket, a nonce)
 * is one method here, so that the SQL-backed implementations (issue #5, shared database package)
 * can make it one statement or one transaction. The in-memory versions are complete and are what
 * a single-process demo or test uses; they bound their size by expiring entries.
 */

/** A WebAuthn credential registered to a user (fields as @simplewebauthn/server returns them). */
export interface StoredCredential {
  readonly id: string; // base64url credential id
  readonly publicKey: string; // base64url COSE public key
  counter: number;
  readonly transports: string[];
}

/** A user account at one hospital. `attributes` are the ones the hospital vouches for. */
export interface UserRecord {
  readonly id: string;
  readonly username: string;
  readonly attributes: string[];
  readonly scopes: string[];
  passwordHash: string;
  totpSecret: string | undefined; // base32
  lastTotpStep: number;
  recoveryDigests: string[];
  readonly webauthnUserId: string; // base64url, random, not the username
  credentials: StoredCredential[];
}

/** Users of one hospital. */
export interface UserStore {
  create(user: UserRecord): Promise<boolean>; // false if the username is taken
  findByUsername(username: string): Promise<UserRecord | undefined>;
  findById(id: string): Promise<UserRecord | undefined>;
  /** Applies `change` atomically; returns its result, or undefined if the user does not exist. */
  update<T>(id: string, change: (user: UserRecord) => T): Promise<T | undefined>;
}

/** Single-use, expiring values keyed by a random id (login tickets, WebAuthn challenges). */
export interface TicketStore<T> {
  put(id: string, value: T, expiresAtMs: number, nowMs: number): Promise<void>;
  /** The value if present and unexpired, without consuming it. */
  peek(id: string, nowMs: number): Promise<T | undefined>;
  /** Removes and returns the value if present and unexpired. */
  take(id: string, nowMs: number): Promise<T | undefined>;
}

/** Records nonces until they expire; `add` is false for a nonce already present (a replay). */
export interface NonceCache {
  add(nonce: string, expiresAtMs: number, nowMs: number): Promise<boolean>;
}

/** A login session: what an SSO token's `sid` refers to. */
export interface SessionRecord {
  readonly id: string;
  readonly userId: string;
  readonly expiresAtMs: number;
  revoked: boolean;
}

/** Sessions of one hospital; revocation is immediate for every verifier that consults it. */
export interface SessionStore {
  create(session: SessionRecord): Promise<void>;
  get(id: string): Promise<SessionRecord | undefined>;
  revoke(id: string): Promise<void>;
  revokeAllForUser(userId: string): Promise<number>;
}

/** Failure counters for lockout and rate limiting. */
export interface AttemptRecord {
  failures: number;
  lockedUntilMs: number;
  windowStartMs: number;
  windowCount: number;
}

export interface AttemptStore {
  update<T>(key: string, change: (record: AttemptRecord) => T): Promise<T>;
}
