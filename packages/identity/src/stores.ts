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
  attributes: string[];
  readonly scopes: string[];
  passwordHash: string;
  totpSecret: string | undefined; // base32
  lastTotpStep: number;
  recoveryDigests: string[];
  readonly webauthnUserId: string; // base64url, random, not the username
  credentials: StoredCredential[];
  /** Set by the hospital's administrator: no login, no refresh, no key. */
  disabled: boolean;
}

/** Users of one hospital. */
export interface UserStore {
  create(user: UserRecord): Promise<boolean>; // false if the username is taken
  findByUsername(username: string): Promise<UserRecord | undefined>;
  findById(id: string): Promise<UserRecord | undefined>;
  /** The user whose WebAuthn user handle this is (a passkey assertion names it). */
  findByWebAuthnUserId(handle: string): Promise<UserRecord | undefined>;
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

/** The device keys a login proved possession of (RFC 7638 thumbprints). */
export interface SessionDevice {
  /** The Ed25519 DPoP key that signed the login challenge: every token of the session is bound to it (`cnf.jkt`). */
  readonly proofKey: string;
  /** The X25519 key the login's proof named: the only key the trusted authority seals attribute keys to. */
  readonly sealingKey?: string;
}

/** A login session: what an SSO token's `sid` refers to. */
export interface SessionRecord {
  readonly id: string;
  readonly userId: string;
  readonly expiresAtMs: number;
  revoked: boolean;
  /** When the user presented her factors (unix seconds): every token's `auth_time`. */
  readonly authTime: number;
  /** RFC 8176 authentication methods of the login (`pwd`, `otp`, `hwk`, ...). */
  readonly methods: string[];
  /** The registered client the session was started for (RFC 9068 `client_id`). */
  readonly clientId: string;
  /** The audiences the login asked for: a refresh may narrow them, never widen them. */
  readonly audiences: string[];
  /** Absent when the login proved no device key: then the session has no refresh credential. */
  readonly device?: SessionDevice;
  /** SHA-256 (base64url) of the current refresh credential's secret. */
  readonly refreshDigest?: string;
}

/** Sessions of one hospital; revocation is immediate for every verifier that consults it. */
export interface SessionStore {
  create(session: SessionRecord): Promise<void>;
  get(id: string): Promise<SessionRecord | undefined>;
  /** Which of `ids` name sessions that are neither revoked nor expired at `nowMs` (one lookup for many: batched session checks). */
  activeAmong(ids: readonly string[], nowMs: number): Promise<Set<string>>;
  revoke(id: string): Promise<void>;
  revokeAllForUser(userId: string): Promise<number>;
  /**
   * Replaces the refresh digest of an active session if it is still `expected` (compare-and-set, so a refresh
   * credential is used once even under concurrent refreshes); false otherwise.
   */
  rotateRefresh(id: string, expected: string, next: string, nowMs: number): Promise<boolean>;
}

/** A failure counter of the throttle (account/limiter.ts). */
export interface AttemptRecord {
  failures: number;
  /** No attempt under this key before this time. */
  lockedUntilMs: number;
  lastFailureMs: number;
}

/** Failure counters by key. */
export interface AttemptStore {
  /** Applies `change` atomically to the record of `key` (a zero record if there is none). */
  update<T>(key: string, change: (record: AttemptRecord) => T): Promise<T>;
  /** Forgets the record of `key`. */
  remove(key: string): Promise<void>;
  /** Forgets every record whose key starts with `prefix`. */
  removeAll(prefix: string): Promise<void>;
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
