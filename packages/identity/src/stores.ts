/**
 * Storage interfaces of the identity service: in memory (memory-stores.ts) and on @medshare/db (sql/stores.ts).
 *
 * Every mutation that must be atomic (consuming a TOTP step, a recovery code, a ticket, a nonce)
 * is one method here, so that the SQL implementations make it one statement or one transaction.
 * The in-memory versions serve single-process demos and tests; they bound their size by expiring entries.
 */
import type { JWK } from 'jose';

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

/** One token-signing key as a store keeps it; `retiredAtMs` is absent on the current key. */
export interface StoredSigningKey {
  readonly kid: string;
  readonly privateJwk: JWK;
  readonly publicJwk: JWK;
  readonly retiredAtMs?: number;
}

/** A hospital's token-signing keys. Each method is atomic and returns every kept key, oldest first, the current one last. */
export interface SigningKeyStore {
  /** Makes `fresh` the current key unless there is one already (the first of concurrent starters wins). */
  initialise(fresh: StoredSigningKey): Promise<StoredSigningKey[]>;
  /** Retires the current key at `nowMs`, makes `fresh` current and forgets keys retired at or before `forgetUpToMs`. */
  rotate(fresh: StoredSigningKey, nowMs: number, forgetUpToMs: number): Promise<StoredSigningKey[]>;
}
