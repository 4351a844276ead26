/**
 * The identity stores (stores.ts) on @medshare/db, PGlite or PostgreSQL alike (tables: schema.ts).
 *
 * Atomicity: every method is one statement or one transaction. The read-modify-write methods
 * (`UserStore.update`, `AttemptStore.update`) lock the row with SELECT … FOR UPDATE, so two logins racing to
 * consume the same TOTP step or recovery code are serialised and the second sees the first's write. Tickets
 * and nonces are consumed and claimed by single statements (DELETE … RETURNING, INSERT … ON CONFLICT).
 *
 * Bounded size: each call that adds a row also deletes up to SWEEP_ROWS expired (or idle) rows of the same
 * hospital or scope, skipping rows other transactions hold, so expired rows are removed at least as fast as
 * rows are added and a sweep never waits or deadlocks.
 *
 * Values travel as `$n::text::jsonb` (JSON text) because `pg` would send a JS array as a Postgres array.
 */
import type { Database, Queryable } from '@medshare/db';
import type {
  AttemptRecord, AttemptStore, NonceCache, SessionRecord, SessionStore, SigningKeyStore, StoredCredential, StoredSigningKey,
  TicketStore, UserRecord, UserStore,
} from '../stores.ts';

const SWEEP_ROWS = 32;
/** An unlocked attempt record untouched this long is forgotten (the memory store forgets such records under pressure). */
const ATTEMPT_IDLE_MS = 24 * 3600 * 1000;

/** Deletes at most SWEEP_ROWS rows of `table` that match `where`, never waiting for a row another transaction holds. */
async function sweep(db: Queryable, table: string, key: string, where: string, params: readonly unknown[]): Promise<void> {
  await db.query(`DELETE FROM ${table} WHERE (${key}) IN (SELECT ${key} FROM ${table} WHERE ${where} LIMIT ${SWEEP_ROWS} FOR UPDATE SKIP LOCKED)`, params);
}

interface UserRow {
  id: string;
  username: string;
  attributes: string[];
  scopes: string[];
  password_hash: string;
  totp_secret: string | null;
  last_totp_step: number;
  recovery_digests: string[];
  webauthn_user_id: string;
  credentials: StoredCredential[];
}

const USER_COLUMNS = 'id, username, attributes, scopes, password_hash, totp_secret, last_totp_step, recovery_digests, webauthn_user_id, credentials';

function userOf(row: UserRow): UserRecord {
  return {
    id: row.id,
    username: row.username,
    attributes: row.attributes,
    scopes: row.scopes,
    passwordHash: row.password_hash,
    totpSecret: row.totp_secret ?? undefined,
    lastTotpStep: row.last_totp_step,
    recoveryDigests: row.recovery_digests,
    webauthnUserId: row.webauthn_user_id,
    credentials: row.credentials,
  };
}

/** Users of one hospital. */
export class SqlUserStore implements UserStore {
  constructor(private readonly db: Database, private readonly hospital: string) {}

  async create(user: UserRecord): Promise<boolean> {
    const inserted = await this.db.query(
      `INSERT INTO identity_users (hospital, ${USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::jsonb)
       ON CONFLICT (hospital, username) DO NOTHING RETURNING id`,
      [this.hospital, user.id, user.username, user.attributes, user.scopes, user.passwordHash, user.totpSecret ?? null, user.lastTotpStep,
        user.recoveryDigests, user.webauthnUserId, JSON.stringify(user.credentials)],
    );
    return inserted.rows.length === 1;
  }

  async findByUsername(username: string): Promise<UserRecord | undefined> {
    const rows = await this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM identity_users WHERE hospital = $1 AND username = $2`, [this.hospital, username]);
    return rows.rows[0] && userOf(rows.rows[0]);
  }

  async findById(id: string): Promise<UserRecord | undefined> {
    const rows = await this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM identity_users WHERE hospital = $1 AND id = $2`, [this.hospital, id]);
    return rows.rows[0] && userOf(rows.rows[0]);
  }

  async update<T>(id: string, change: (user: UserRecord) => T): Promise<T | undefined> {
    return this.db.transaction(async (tx) => {
      const row = (await tx.query<UserRow>(`SELECT ${USER_COLUMNS} FROM identity_users WHERE hospital = $1 AND id = $2 FOR UPDATE`, [this.hospital, id])).rows[0];
      if (!row) return undefined;
      const user = userOf(row);
      const result = change(user);
      await tx.query(
        `UPDATE identity_users SET password_hash = $3, totp_secret = $4, last_totp_step = $5, recovery_digests = $6, credentials = $7::text::jsonb
         WHERE hospital = $1 AND id = $2`,
        [this.hospital, id, user.passwordHash, user.totpSecret ?? null, user.lastTotpStep, user.recoveryDigests, JSON.stringify(user.credentials)],
      );
      return result;
    });
  }
}

/**
 * Single-use expiring values of one scope (e.g. `<hospital>/login`); `T` must survive JSON, as login
 * tickets and WebAuthn challenges do.
 */
export class SqlTicketStore<T> implements TicketStore<T> {
  constructor(private readonly db: Database, private readonly scope: string) {}

  async put(id: string, value: T, expiresAtMs: number, nowMs: number): Promise<void> {
    await this.db.query(
      `INSERT INTO identity_tickets (scope, id, value, expires_at_ms) VALUES ($1, $2, $3::text::jsonb, $4)
       ON CONFLICT (scope, id) DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms`,
      [this.scope, id, JSON.stringify(value), expiresAtMs],
    );
    await sweep(this.db, 'identity_tickets', 'scope, id', 'scope = $1 AND expires_at_ms <= $2', [this.scope, nowMs]);
  }

  async peek(id: string, nowMs: number): Promise<T | undefined> {
    const rows = await this.db.query<{ value: T }>('SELECT value FROM identity_tickets WHERE scope = $1 AND id = $2 AND expires_at_ms > $3', [this.scope, id, nowMs]);
    return rows.rows[0]?.value;
  }

  async take(id: string, nowMs: number): Promise<T | undefined> {
    // An expired ticket is deleted too, but not returned.
    const rows = await this.db.query<{ value: T; live: boolean }>(
      'DELETE FROM identity_tickets WHERE scope = $1 AND id = $2 RETURNING value, expires_at_ms > $3 AS live',
      [this.scope, id, nowMs],
    );
    const row = rows.rows[0];
    return row?.live ? row.value : undefined;
  }
}

/** Nonces of one scope (e.g. the trusted authority's used tokens). */
export class SqlNonceCache implements NonceCache {
  constructor(private readonly db: Database, private readonly scope: string) {}

  async add(nonce: string, expiresAtMs: number, nowMs: number): Promise<boolean> {
    // Inserted, or an expired entry replaced: a row comes back. A live entry (a replay) is left alone: none does.
    const rows = await this.db.query(
      `INSERT INTO identity_nonces (scope, nonce, expires_at_ms) VALUES ($1, $2, $3)
       ON CONFLICT (scope, nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms WHERE identity_nonces.expires_at_ms <= $4
       RETURNING nonce`,
      [this.scope, nonce, expiresAtMs, nowMs],
    );
    if (rows.rows.length === 0) return false;
    await sweep(this.db, 'identity_nonces', 'scope, nonce', 'scope = $1 AND expires_at_ms <= $2', [this.scope, nowMs]);
    return true;
  }
}

/** Login sessions of one hospital; expired sessions are swept as new ones start. */
export class SqlSessionStore implements SessionStore {
  constructor(private readonly db: Database, private readonly hospital: string, private readonly now: () => number = Date.now) {}

  async create(session: SessionRecord): Promise<void> {
    await this.db.query('INSERT INTO identity_sessions (hospital, id, user_id, expires_at_ms, revoked) VALUES ($1, $2, $3, $4, $5)', [
      this.hospital, session.id, session.userId, session.expiresAtMs, session.revoked,
    ]);
    await sweep(this.db, 'identity_sessions', 'hospital, id', 'hospital = $1 AND expires_at_ms <= $2', [this.hospital, this.now()]);
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const rows = await this.db.query<{ id: string; user_id: string; expires_at_ms: number; revoked: boolean }>(
      'SELECT id, user_id, expires_at_ms, revoked FROM identity_sessions WHERE hospital = $1 AND id = $2',
      [this.hospital, id],
      // Checked on every request to every service (revocation is immediate): planned once per connection.
      { prepared: true },
    );
    const row = rows.rows[0];
    return row && { id: row.id, userId: row.user_id, expiresAtMs: row.expires_at_ms, revoked: row.revoked };
  }

  async revoke(id: string): Promise<void> {
    await this.db.query('UPDATE identity_sessions SET revoked = true WHERE hospital = $1 AND id = $2', [this.hospital, id]);
  }

  async revokeAllForUser(userId: string): Promise<number> {
    const rows = await this.db.query<{ n: number }>(
      `WITH revoked AS (UPDATE identity_sessions SET revoked = true WHERE hospital = $1 AND user_id = $2 AND NOT revoked RETURNING 1)
       SELECT count(*)::int AS n FROM revoked`,
      [this.hospital, userId],
    );
    return rows.rows[0]!.n;
  }
}

/** Failure counters of one hospital's limiter; unlocked records idle for `idleMs` are swept as new keys arrive. */
export class SqlAttemptStore implements AttemptStore {
  constructor(
    private readonly db: Database,
    private readonly hospital: string,
    private readonly now: () => number = Date.now,
    private readonly idleMs = ATTEMPT_IDLE_MS,
  ) {}

  async update<T>(key: string, change: (record: AttemptRecord) => T): Promise<T> {
    const nowMs = this.now();
    const { result, created } = await this.db.transaction(async (tx) => {
      // Make sure the row exists, so that FOR UPDATE has a row to lock even for a key never seen before.
      const inserted = await tx.query(
        `INSERT INTO identity_attempts (hospital, key, failures, locked_until_ms, window_start_ms, window_count, updated_at_ms)
         VALUES ($1, $2, 0, 0, 0, 0, $3) ON CONFLICT (hospital, key) DO NOTHING RETURNING key`,
        [this.hospital, key, nowMs],
      );
      const row = (await tx.query<{ failures: number; locked_until_ms: number; window_start_ms: number; window_count: number }>(
        'SELECT failures, locked_until_ms, window_start_ms, window_count FROM identity_attempts WHERE hospital = $1 AND key = $2 FOR UPDATE',
        [this.hospital, key],
      )).rows[0]!;
      const record: AttemptRecord = { failures: row.failures, lockedUntilMs: row.locked_until_ms, windowStartMs: row.window_start_ms, windowCount: row.window_count };
      const result = change(record);
      await tx.query(
        `UPDATE identity_attempts SET failures = $3, locked_until_ms = $4, window_start_ms = $5, window_count = $6, updated_at_ms = $7
         WHERE hospital = $1 AND key = $2`,
        [this.hospital, key, record.failures, record.lockedUntilMs, record.windowStartMs, record.windowCount, nowMs],
      );
      return { result, created: inserted.rows.length === 1 };
    });
    if (created) {
      await sweep(this.db, 'identity_attempts', 'hospital, key', 'hospital = $1 AND locked_until_ms <= $2 AND updated_at_ms <= $3', [
        this.hospital, nowMs, nowMs - this.idleMs,
      ]);
    }
    return result;
  }
}

interface KeyRow {
  kid: string;
  private_jwk: StoredSigningKey['privateJwk'];
  public_jwk: StoredSigningKey['publicJwk'];
  retired_at_ms: number | null;
}

/** The SSO signing keys of one hospital, private JWKs included (the hospital's identity tables, not the cloud's). */
export class SqlSigningKeyStore implements SigningKeyStore {
  constructor(private readonly db: Database, private readonly hospital: string) {}

  async initialise(fresh: StoredSigningKey): Promise<StoredSigningKey[]> {
    // The partial unique index on current keys makes a second starter's insert a no-op.
    await this.db.query(
      `INSERT INTO identity_signing_keys (hospital, kid, private_jwk, public_jwk) VALUES ($1, $2, $3::text::jsonb, $4::text::jsonb)
       ON CONFLICT DO NOTHING`,
      [this.hospital, fresh.kid, JSON.stringify(fresh.privateJwk), JSON.stringify(fresh.publicJwk)],
    );
    return this.load(this.db);
  }

  async rotate(fresh: StoredSigningKey, nowMs: number, forgetUpToMs: number): Promise<StoredSigningKey[]> {
    return this.db.transaction(async (tx) => {
      // Concurrent rotations of one hospital queue here rather than both retiring the same key.
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`identity_signing_keys:${this.hospital}`]);
      await tx.query('UPDATE identity_signing_keys SET retired_at_ms = $2 WHERE hospital = $1 AND retired_at_ms IS NULL', [this.hospital, nowMs]);
      await tx.query('DELETE FROM identity_signing_keys WHERE hospital = $1 AND retired_at_ms <= $2', [this.hospital, forgetUpToMs]);
      await tx.query('INSERT INTO identity_signing_keys (hospital, kid, private_jwk, public_jwk) VALUES ($1, $2, $3::text::jsonb, $4::text::jsonb)', [
        this.hospital, fresh.kid, JSON.stringify(fresh.privateJwk), JSON.stringify(fresh.publicJwk),
      ]);
      return this.load(tx);
    });
  }

  private async load(db: Queryable): Promise<StoredSigningKey[]> {
    // Retired keys by retirement time, then the current key (NULL sorts last).
    const rows = await db.query<KeyRow>(
      'SELECT kid, private_jwk, public_jwk, retired_at_ms FROM identity_signing_keys WHERE hospital = $1 ORDER BY retired_at_ms, kid',
      [this.hospital],
    );
    return rows.rows.map((row) => ({
      kid: row.kid,
      privateJwk: row.private_jwk,
      publicJwk: row.public_jwk,
      ...(row.retired_at_ms === null ? {} : { retiredAtMs: row.retired_at_ms }),
    }));
  }
}
