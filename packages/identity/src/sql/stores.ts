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
 *
 * Secrets at rest: TOTP secrets and private signing keys are wrapped by the key-encryption key given to the store
 * (never stored in the database), each under a context naming its table, column and row, so a wrapped value copied
 * to another row does not unwrap there.
 */
import { MalformedInputError } from '@medshare/crypto';
import { GroupCommit, type Database, type KeyEncryptionKey, type Queryable } from '@medshare/db';
import type {
  AttemptRecord,
  AttemptStore,
  NonceCache,
  SessionRecord,
  SessionStore,
  SigningKeyStore,
  StoredCredential,
  StoredSigningKey,
  TicketStore,
  UserRecord,
  UserStore,
} from '../stores.ts';

const SWEEP_ROWS = 32;
/** An unlocked attempt record untouched this long is forgotten (the memory store forgets such records under pressure). */
const ATTEMPT_IDLE_MS = 24 * 3600 * 1000;

/**
 * Nonces come with every DPoP-proofed request, so their sweep is batched: at most once a second, or after
 * NONCE_SWEEP_EVERY insertions, deleting up to twice the insertions since the previous sweep began and at least
 * NONCE_SWEEP_ROWS (so the table stays bounded at any rate), at most NONCE_SWEEP_MAX_ROWS a statement (a larger
 * backlog goes over the following sweeps). A DELETE after every insertion was one of a record read's four queries.
 * The sweep is its own statement after the batch's INSERT, never part of it: a sweep the database refuses fails no
 * addition, is reported, and is tried again NONCE_SWEEP_MS later at the earliest.
 */
const NONCE_SWEEP_MS = 1000;
const NONCE_SWEEP_EVERY = 512;
const NONCE_SWEEP_ROWS = 2 * NONCE_SWEEP_EVERY;
const NONCE_SWEEP_MAX_ROWS = 64 * NONCE_SWEEP_ROWS;

/**
 * What a nonce cache does by default with a sweep the database refused: a process warning that names the scope and
 * the database's SQLSTATE (when it has one), never the error's message, which may quote a row (a nonce).
 */
function warnNonceSweepFailed(scope: string, error: unknown): void {
  const code = typeof error === 'object' && error !== null && 'code' in error ? (error as { code: unknown }).code : undefined;
  const state = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? ` (SQLSTATE ${code})` : '';
  process.emitWarning(`the sweep of expired nonces of scope ${JSON.stringify(scope)} failed${state}; it will be retried`, { type: 'NonceSweepWarning' });
}

/** Deletes at most `limit` rows of `table` that match `where`, never waiting for a row another transaction holds. */
async function sweep(db: Queryable, table: string, key: string, where: string, params: readonly unknown[], limit = SWEEP_ROWS): Promise<void> {
  await db.query(`DELETE FROM ${table} WHERE (${key}) IN (SELECT ${key} FROM ${table} WHERE ${where} LIMIT ${limit} FOR UPDATE SKIP LOCKED)`, params);
}

interface UserRow {
  id: string;
  username: string;
  attributes: string[];
  scopes: string[];
  password_hash: string;
  totp_secret_wrapped: Uint8Array | null;
  last_totp_step: number;
  recovery_digests: string[];
  webauthn_user_id: string;
  credentials: StoredCredential[];
  disabled: boolean;
}

const USER_COLUMNS =
  'id, username, attributes, scopes, password_hash, totp_secret_wrapped, last_totp_step, recovery_digests, webauthn_user_id, credentials, disabled';

/** Users of one hospital; TOTP secrets wrapped by `kek`. */
export class SqlUserStore implements UserStore {
  constructor(
    private readonly db: Database,
    private readonly hospital: string,
    private readonly kek: KeyEncryptionKey,
  ) {}

  private totpContext(id: string): string {
    return `identity_users.totp_secret_wrapped|${this.hospital}|${id}`;
  }

  private async wrapTotp(id: string, secret: string | undefined): Promise<Uint8Array | null> {
    return secret === undefined ? null : this.kek.wrap(Buffer.from(secret, 'utf8'), this.totpContext(id));
  }

  private async userOf(row: UserRow): Promise<UserRecord> {
    const totp =
      row.totp_secret_wrapped === null ? undefined : Buffer.from(await this.kek.unwrap(row.totp_secret_wrapped, this.totpContext(row.id))).toString('utf8');
    return {
      id: row.id,
      username: row.username,
      attributes: row.attributes,
      scopes: row.scopes,
      passwordHash: row.password_hash,
      totpSecret: totp,
      lastTotpStep: row.last_totp_step,
      recoveryDigests: row.recovery_digests,
      webauthnUserId: row.webauthn_user_id,
      credentials: row.credentials,
      disabled: row.disabled,
    };
  }

  async create(user: UserRecord): Promise<boolean> {
    const inserted = await this.db.query(
      `INSERT INTO identity_users (hospital, ${USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::jsonb, $12)
       ON CONFLICT (hospital, username) DO NOTHING RETURNING id`,
      [
        this.hospital,
        user.id,
        user.username,
        user.attributes,
        user.scopes,
        user.passwordHash,
        await this.wrapTotp(user.id, user.totpSecret),
        user.lastTotpStep,
        user.recoveryDigests,
        user.webauthnUserId,
        JSON.stringify(user.credentials),
        user.disabled,
      ],
    );
    return inserted.rows.length === 1;
  }

  async findByUsername(username: string): Promise<UserRecord | undefined> {
    const rows = await this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM identity_users WHERE hospital = $1 AND username = $2`, [this.hospital, username]);
    return rows.rows[0] && this.userOf(rows.rows[0]);
  }

  async findById(id: string): Promise<UserRecord | undefined> {
    const rows = await this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM identity_users WHERE hospital = $1 AND id = $2`, [this.hospital, id]);
    return rows.rows[0] && this.userOf(rows.rows[0]);
  }

  async findByWebAuthnUserId(handle: string): Promise<UserRecord | undefined> {
    const rows = await this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM identity_users WHERE hospital = $1 AND webauthn_user_id = $2`, [
      this.hospital,
      handle,
    ]);
    return rows.rows[0] && this.userOf(rows.rows[0]);
  }

  async update<T>(id: string, change: (user: UserRecord) => T): Promise<T | undefined> {
    return this.db.transaction(async (tx) => {
      const row = (await tx.query<UserRow>(`SELECT ${USER_COLUMNS} FROM identity_users WHERE hospital = $1 AND id = $2 FOR UPDATE`, [this.hospital, id]))
        .rows[0];
      if (!row) return undefined;
      const user = await this.userOf(row);
      const before = user.totpSecret;
      const result = change(user);
      // Rewrapped only when changed: an unchanged secret keeps its stored bytes.
      const totp = user.totpSecret === before ? row.totp_secret_wrapped : await this.wrapTotp(id, user.totpSecret);
      await tx.query(
        `UPDATE identity_users SET attributes = $3, password_hash = $4, totp_secret_wrapped = $5, last_totp_step = $6, recovery_digests = $7,
           credentials = $8::text::jsonb, disabled = $9
         WHERE hospital = $1 AND id = $2`,
        [this.hospital, id, user.attributes, user.passwordHash, totp, user.lastTotpStep, user.recoveryDigests, JSON.stringify(user.credentials), user.disabled],
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
  constructor(
    private readonly db: Database,
    private readonly scope: string,
  ) {}

  async put(id: string, value: T, expiresAtMs: number, nowMs: number): Promise<void> {
    await this.db.query(
      `INSERT INTO identity_tickets (scope, id, value, expires_at_ms) VALUES ($1, $2, $3::text::jsonb, $4)
       ON CONFLICT (scope, id) DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms`,
      [this.scope, id, JSON.stringify(value), expiresAtMs],
    );
    await sweep(this.db, 'identity_tickets', 'scope, id', 'scope = $1 AND expires_at_ms <= $2', [this.scope, nowMs]);
  }

  async peek(id: string, nowMs: number): Promise<T | undefined> {
    const rows = await this.db.query<{ value: T }>('SELECT value FROM identity_tickets WHERE scope = $1 AND id = $2 AND expires_at_ms > $3', [
      this.scope,
      id,
      nowMs,
    ]);
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

/**
 * Nonces of one scope (e.g. the trusted authority's used tokens), in `identity_nonces` or in another table of the
 * same shape (scope, nonce, expires_at_ms; primary key scope, nonce) that a service without identity tables keeps.
 * Concurrent additions are group-committed: one multi-row INSERT for those of the current tick and for everything
 * queued while the previous one ran (a DPoP proof per request: one statement for a burst of requests).
 *
 * Expired nonces are swept by `sweepExpired`, started once a batch's INSERT has returned and not waited for by the
 * batch's callers, one sweep at a time. A sweep that fails (the database refuses the DELETE) is handed to
 * `onSweepError` — by default a `NonceSweepWarning` process warning — and retried when due again, a second later at
 * the earliest; the additions it followed are answered by their INSERT alone.
 */
export class SqlNonceCache implements NonceCache {
  private lastSweepMs = Number.NEGATIVE_INFINITY;
  /** Fresh insertions since the last sweep began (those of a failed sweep carried over to its retry). */
  private addedSinceSweep = 0;
  /** After a failed sweep: the earliest clock at which the next one may run. */
  private retryAtMs = Number.NEGATIVE_INFINITY;
  private sweeping: Promise<void> | undefined;
  private readonly pending = new GroupCommit<PendingNonce, boolean>((batch) => this.insert(batch), NONCES_PER_INSERT);

  constructor(
    private readonly db: Database,
    private readonly scope: string,
    private readonly table = 'identity_nonces',
    private readonly onSweepError: (error: unknown) => void = (error) => warnNonceSweepFailed(scope, error),
  ) {
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(table)) throw new MalformedInputError('a nonce table is a lower-case SQL identifier');
  }

  add(nonce: string, expiresAtMs: number, nowMs: number): Promise<boolean> {
    return this.pending.add({ nonce, expiresAtMs, nowMs });
  }

  /** Resolves when no sweep is in flight (a sweep never rejects): for tests, and before closing the database. */
  async idle(): Promise<void> {
    while (this.sweeping !== undefined) await this.sweeping;
  }

  /** Inserts a batch; returns whether each addition was fresh. A nonce twice in one batch is fresh at most the first time. */
  private async insert(batch: readonly PendingNonce[]): Promise<boolean[]> {
    const first = new Map<string, PendingNonce>();
    for (const pending of batch) if (!first.has(pending.nonce)) first.set(pending.nonce, pending);
    const unique = [...first.values()];
    // The earliest clock of the batch decides what has expired: a live entry is never taken for an expired one.
    const nowMs = Math.min(...unique.map((p) => p.nowMs));
    const values = unique.map((_, i) => `($1, $${2 * i + 3}, $${2 * i + 4})`).join(', ');
    // Inserted, or an expired entry replaced: a row comes back. A live entry (a replay) is left alone: none does.
    const rows = await this.db.query<{ nonce: string }>(
      `INSERT INTO ${this.table} (scope, nonce, expires_at_ms) VALUES ${values}
       ON CONFLICT (scope, nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms WHERE ${this.table}.expires_at_ms <= $2
       RETURNING nonce`,
      [this.scope, nowMs, ...unique.flatMap((p) => [p.nonce, p.expiresAtMs])],
    );
    const inserted = new Set(rows.rows.map((r) => r.nonce));
    const fresh = new Set(unique.filter((p) => inserted.has(p.nonce)));
    this.addedSinceSweep += fresh.size;
    if (fresh.size > 0 && this.sweepDue(nowMs)) this.sweeping = this.sweepExpired(nowMs);
    return batch.map((p) => fresh.has(p));
  }

  private sweepDue(nowMs: number): boolean {
    if (this.sweeping !== undefined || nowMs < this.retryAtMs) return false;
    return this.addedSinceSweep >= NONCE_SWEEP_EVERY || nowMs - this.lastSweepMs >= NONCE_SWEEP_MS;
  }

  /** Deletes expired nonces of the scope; never rejects: a failure goes to `onSweepError` and is retried when due. */
  private async sweepExpired(nowMs: number): Promise<void> {
    const covering = this.addedSinceSweep;
    this.addedSinceSweep = 0;
    this.lastSweepMs = nowMs;
    const limit = Math.min(NONCE_SWEEP_MAX_ROWS, Math.max(NONCE_SWEEP_ROWS, 2 * covering));
    try {
      await sweep(this.db, this.table, 'scope, nonce', 'scope = $1 AND expires_at_ms <= $2', [this.scope, nowMs], limit);
      this.retryAtMs = Number.NEGATIVE_INFINITY;
    } catch (error) {
      this.addedSinceSweep += covering;
      this.retryAtMs = nowMs + NONCE_SWEEP_MS;
      try {
        this.onSweepError(error);
      } catch {
        // A handler that throws must not turn a failed sweep into an unhandled rejection.
      }
    } finally {
      this.sweeping = undefined;
    }
  }
}

/** A nonce waiting for its batch's INSERT. */
interface PendingNonce {
  readonly nonce: string;
  readonly expiresAtMs: number;
  readonly nowMs: number;
}

/** Most nonces one INSERT adds (two parameters each, well under PostgreSQL's 65,535). */
const NONCES_PER_INSERT = 1000;

interface SessionRow {
  id: string;
  user_id: string;
  expires_at_ms: number;
  revoked: boolean;
  auth_time: number;
  methods: string[];
  client_id: string;
  audiences: string[];
  proof_key: string | null;
  sealing_key: string | null;
  refresh_digest: string | null;
}

const SESSION_COLUMNS = 'id, user_id, expires_at_ms, revoked, auth_time, methods, client_id, audiences, proof_key, sealing_key, refresh_digest';

/** Login sessions of one hospital; expired sessions are swept as new ones start. */
export class SqlSessionStore implements SessionStore {
  constructor(
    private readonly db: Database,
    private readonly hospital: string,
    private readonly now: () => number = Date.now,
  ) {}

  async create(session: SessionRecord): Promise<void> {
    await this.db.query(`INSERT INTO identity_sessions (hospital, ${SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, [
      this.hospital,
      session.id,
      session.userId,
      session.expiresAtMs,
      session.revoked,
      session.authTime,
      session.methods,
      session.clientId,
      session.audiences,
      session.device?.proofKey ?? null,
      session.device?.sealingKey ?? null,
      session.refreshDigest ?? null,
    ]);
    await sweep(this.db, 'identity_sessions', 'hospital, id', 'hospital = $1 AND expires_at_ms <= $2', [this.hospital, this.now()]);
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const rows = await this.db.query<SessionRow>(
      `SELECT ${SESSION_COLUMNS} FROM identity_sessions WHERE hospital = $1 AND id = $2`,
      [this.hospital, id],
      // Checked on every request to every service (revocation is immediate): planned once per connection.
      { prepared: true },
    );
    const row = rows.rows[0];
    if (!row) return undefined;
    return {
      id: row.id,
      userId: row.user_id,
      expiresAtMs: row.expires_at_ms,
      revoked: row.revoked,
      authTime: row.auth_time,
      methods: row.methods,
      clientId: row.client_id,
      audiences: row.audiences,
      ...(row.proof_key === null ? {} : { device: { proofKey: row.proof_key, ...(row.sealing_key === null ? {} : { sealingKey: row.sealing_key }) } }),
      ...(row.refresh_digest === null ? {} : { refreshDigest: row.refresh_digest }),
    };
  }

  async activeAmong(ids: readonly string[], nowMs: number): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.db.query<{ id: string }>(
      'SELECT id FROM identity_sessions WHERE hospital = $1 AND id = ANY($2::text[]) AND NOT revoked AND expires_at_ms > $3',
      [this.hospital, ids, nowMs],
      { prepared: true },
    );
    return new Set(rows.rows.map((r) => r.id));
  }

  async rotateRefresh(id: string, expected: string, next: string, nowMs: number): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE identity_sessions SET refresh_digest = $4
       WHERE hospital = $1 AND id = $2 AND refresh_digest = $3 AND NOT revoked AND expires_at_ms > $5 RETURNING id`,
      [this.hospital, id, expected, next, nowMs],
    );
    return rows.rows.length === 1;
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
        `INSERT INTO identity_attempts (hospital, key, failures, locked_until_ms, last_failure_ms, updated_at_ms)
         VALUES ($1, $2, 0, 0, 0, $3) ON CONFLICT (hospital, key) DO NOTHING RETURNING key`,
        [this.hospital, key, nowMs],
      );
      const row = (
        await tx.query<{ failures: number; locked_until_ms: number; last_failure_ms: number }>(
          'SELECT failures, locked_until_ms, last_failure_ms FROM identity_attempts WHERE hospital = $1 AND key = $2 FOR UPDATE',
          [this.hospital, key],
        )
      ).rows[0]!;
      const record: AttemptRecord = { failures: row.failures, lockedUntilMs: row.locked_until_ms, lastFailureMs: row.last_failure_ms };
      const result = change(record);
      await tx.query(
        `UPDATE identity_attempts SET failures = $3, locked_until_ms = $4, last_failure_ms = $5, updated_at_ms = $6
         WHERE hospital = $1 AND key = $2`,
        [this.hospital, key, record.failures, record.lockedUntilMs, record.lastFailureMs, nowMs],
      );
      return { result, created: inserted.rows.length === 1 };
    });
    if (created) {
      await sweep(this.db, 'identity_attempts', 'hospital, key', 'hospital = $1 AND locked_until_ms <= $2 AND updated_at_ms <= $3', [
        this.hospital,
        nowMs,
        nowMs - this.idleMs,
      ]);
    }
    return result;
  }

  async remove(key: string): Promise<void> {
    await this.db.query('DELETE FROM identity_attempts WHERE hospital = $1 AND key = $2', [this.hospital, key]);
  }

  async removeAll(prefix: string): Promise<void> {
    await this.db.query('DELETE FROM identity_attempts WHERE hospital = $1 AND starts_with(key, $2)', [this.hospital, prefix]);
  }
}

interface KeyRow {
  kid: string;
  private_key_wrapped: Uint8Array;
  public_jwk: StoredSigningKey['publicJwk'];
  retired_at_ms: number | null;
}

/** The SSO signing keys of one hospital, private keys wrapped by `kek` (the hospital's identity tables, not the cloud's). */
export class SqlSigningKeyStore implements SigningKeyStore {
  constructor(
    private readonly db: Database,
    private readonly hospital: string,
    private readonly kek: KeyEncryptionKey,
  ) {}

  private context(kid: string): string {
    return `identity_signing_keys.private_key_wrapped|${this.hospital}|${kid}`;
  }

  private wrap(key: StoredSigningKey): Promise<Uint8Array> {
    return this.kek.wrap(Buffer.from(JSON.stringify(key.privateJwk), 'utf8'), this.context(key.kid));
  }

  async initialise(fresh: StoredSigningKey): Promise<StoredSigningKey[]> {
    // The partial unique index on current keys makes a second starter's insert a no-op.
    await this.db.query(
      `INSERT INTO identity_signing_keys (hospital, kid, private_key_wrapped, public_jwk) VALUES ($1, $2, $3, $4::text::jsonb)
       ON CONFLICT DO NOTHING`,
      [this.hospital, fresh.kid, await this.wrap(fresh), JSON.stringify(fresh.publicJwk)],
    );
    return this.load(this.db);
  }

  async rotate(fresh: StoredSigningKey, nowMs: number, forgetUpToMs: number): Promise<StoredSigningKey[]> {
    return this.db.transaction(async (tx) => {
      // Concurrent rotations of one hospital queue here rather than both retiring the same key.
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`identity_signing_keys:${this.hospital}`]);
      await tx.query('UPDATE identity_signing_keys SET retired_at_ms = $2 WHERE hospital = $1 AND retired_at_ms IS NULL', [this.hospital, nowMs]);
      await tx.query('DELETE FROM identity_signing_keys WHERE hospital = $1 AND retired_at_ms <= $2', [this.hospital, forgetUpToMs]);
      await tx.query('INSERT INTO identity_signing_keys (hospital, kid, private_key_wrapped, public_jwk) VALUES ($1, $2, $3, $4::text::jsonb)', [
        this.hospital,
        fresh.kid,
        await this.wrap(fresh),
        JSON.stringify(fresh.publicJwk),
      ]);
      return this.load(tx);
    });
  }

  private async load(db: Queryable): Promise<StoredSigningKey[]> {
    // Retired keys by retirement time, then the current key (NULL sorts last).
    const rows = await db.query<KeyRow>(
      'SELECT kid, private_key_wrapped, public_jwk, retired_at_ms FROM identity_signing_keys WHERE hospital = $1 ORDER BY retired_at_ms, kid',
      [this.hospital],
    );
    return Promise.all(
      rows.rows.map(async (row) => ({
        kid: row.kid,
        privateJwk: JSON.parse(
          Buffer.from(await this.kek.unwrap(row.private_key_wrapped, this.context(row.kid))).toString('utf8'),
        ) as StoredSigningKey['privateJwk'],
        publicJwk: row.public_jwk,
        ...(row.retired_at_ms === null ? {} : { retiredAtMs: row.retired_at_ms }),
      })),
    );
  }
}
