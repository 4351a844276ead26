/**
 * The identity component's tables (applied with `migrate(db, 'identity', IDENTITY_MIGRATIONS)` of @medshare/db).
 * One database can hold several hospitals' identity services: every table is keyed by the hospital, or for
 * tickets and nonces by a scope naming the hospital (or the trusted authority) and the purpose. Times are
 * milliseconds since the epoch from the service's clock, the same clock the in-memory stores compare against.
 * These are a hospital's identity tables, never the cloud's: password hashes, TOTP secrets and signing keys
 * stay out of every `cloud_*` table, and
 * TOTP secrets and private signing keys are stored wrapped by the service's key-encryption key (@medshare/db).
 */
import type { Migration } from '@medshare/db';

export const IDENTITY_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'users, sessions, tickets, nonces, login attempts, SSO signing keys',
    statements: [
      `CREATE TABLE identity_users (
        hospital text NOT NULL,
        id text NOT NULL,
        username text NOT NULL,
        attributes text[] NOT NULL,
        scopes text[] NOT NULL,
        password_hash text NOT NULL,
        totp_secret text,
        last_totp_step bigint NOT NULL,
        recovery_digests text[] NOT NULL,
        webauthn_user_id text NOT NULL,
        credentials jsonb NOT NULL,
        PRIMARY KEY (hospital, id),
        UNIQUE (hospital, username))`,
      `CREATE TABLE identity_sessions (
        hospital text NOT NULL,
        id text NOT NULL,
        user_id text NOT NULL,
        expires_at_ms bigint NOT NULL,
        revoked boolean NOT NULL,
        PRIMARY KEY (hospital, id))`,
      'CREATE INDEX identity_sessions_user ON identity_sessions (hospital, user_id)',
      'CREATE INDEX identity_sessions_expiry ON identity_sessions (hospital, expires_at_ms)',
      `CREATE TABLE identity_tickets (
        scope text NOT NULL,
        id text NOT NULL,
        value jsonb NOT NULL,
        expires_at_ms bigint NOT NULL,
        PRIMARY KEY (scope, id))`,
      'CREATE INDEX identity_tickets_expiry ON identity_tickets (scope, expires_at_ms)',
      `CREATE TABLE identity_nonces (
        scope text NOT NULL,
        nonce text NOT NULL,
        expires_at_ms bigint NOT NULL,
        PRIMARY KEY (scope, nonce))`,
      'CREATE INDEX identity_nonces_expiry ON identity_nonces (scope, expires_at_ms)',
      `CREATE TABLE identity_attempts (
        hospital text NOT NULL,
        key text NOT NULL,
        failures integer NOT NULL,
        locked_until_ms bigint NOT NULL,
        window_start_ms bigint NOT NULL,
        window_count integer NOT NULL,
        updated_at_ms bigint NOT NULL,
        PRIMARY KEY (hospital, key))`,
      'CREATE INDEX identity_attempts_idle ON identity_attempts (hospital, updated_at_ms)',
      `CREATE TABLE identity_signing_keys (
        hospital text NOT NULL,
        kid text NOT NULL,
        private_jwk jsonb NOT NULL,
        public_jwk jsonb NOT NULL,
        retired_at_ms bigint,
        PRIMARY KEY (hospital, kid))`,
      // At most one current key per hospital: concurrent first starts cannot both install one.
      'CREATE UNIQUE INDEX identity_signing_keys_current ON identity_signing_keys (hospital) WHERE retired_at_ms IS NULL',
    ],
  },
  {
    version: 2,
    description: 'secrets wrapped by the key-encryption key, sessions bound to device keys with refresh credentials, disabled users, throttle per address',
    statements: [
      // Secrets are stored wrapped from now on. SQL cannot wrap the clear ones of version 1 (the KEK never enters the
      // database), so they are dropped: such users re-enrol TOTP through their administrator, and signing keys are new.
      'ALTER TABLE identity_users DROP COLUMN totp_secret',
      'ALTER TABLE identity_users ADD COLUMN totp_secret_wrapped bytea',
      'ALTER TABLE identity_users ADD COLUMN disabled boolean NOT NULL DEFAULT false',
      // Passkey logins find the user by the handle her authenticator returns.
      'CREATE INDEX identity_users_webauthn ON identity_users (hospital, webauthn_user_id)',
      'DELETE FROM identity_signing_keys',
      'ALTER TABLE identity_signing_keys DROP COLUMN private_jwk',
      'ALTER TABLE identity_signing_keys ADD COLUMN private_key_wrapped bytea NOT NULL',
      // Sessions of version 1 carry no device binding: they end here.
      'UPDATE identity_sessions SET revoked = true',
      `ALTER TABLE identity_sessions
        ADD COLUMN auth_time bigint NOT NULL DEFAULT 0,
        ADD COLUMN methods text[] NOT NULL DEFAULT '{}',
        ADD COLUMN client_id text NOT NULL DEFAULT '',
        ADD COLUMN audiences text[] NOT NULL DEFAULT '{}',
        ADD COLUMN proof_key text,
        ADD COLUMN sealing_key text,
        ADD COLUMN refresh_digest text`,
      'DELETE FROM identity_attempts',
      'ALTER TABLE identity_attempts RENAME COLUMN window_start_ms TO last_failure_ms',
      'ALTER TABLE identity_attempts DROP COLUMN window_count',
    ],
  },
  {
    version: 3,
    description: "each hospital's tracing key of session pseudonyms (KEK-wrapped)",
    statements: [
      `CREATE TABLE identity_tracing_keys (
        hospital text PRIMARY KEY,
        key_wrapped bytea NOT NULL)`,
    ],
  },
];
