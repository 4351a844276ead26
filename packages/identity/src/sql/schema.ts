/**
 * The identity component's tables (applied with `migrate(db, 'identity', IDENTITY_MIGRATIONS)` of @medshare/db).
 * One database can hold several hospitals' identity services: every table is keyed by the hospital, or for
 * tickets and nonces by a scope naming the hospital (or the trusted authority) and the purpose. Times are
 * milliseconds since the epoch from the service's clock, the same clock the in-memory stores compare against.
 * These are a hospital's identity tables, never the cloud's: password hashes, TOTP secrets and signing keys
 * stay out of every `cloud_*` table.
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
];
