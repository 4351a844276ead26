/**
 * Tables of storage auditing, in their own components so each lives in its own domain's database:
 * `storage-cloud` (the cloud: hospitals' public tag keys and each record's tags) and `storage-hospital` (a
 * hospital: its tag secret key, wrapped by the hospital's key-encryption key).
 */
import type { Migration } from '@medshare/db';

export const STORAGE_CLOUD_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "hospitals' proof-of-storage public keys and the tags of each stored record",
    statements: [
      `CREATE TABLE storage_keys (
        key_id text PRIMARY KEY,
        hospital text NOT NULL,
        public_key bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())`,
      `CREATE TABLE storage_tags (
        record_hash text PRIMARY KEY,
        record_id text NOT NULL UNIQUE,
        key_id text NOT NULL REFERENCES storage_keys(key_id),
        blocks integer NOT NULL,
        tags bytea NOT NULL)`,
    ],
  },
];

export const STORAGE_HOSPITAL_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "the hospital's proof-of-storage secret key (KEK-wrapped)",
    statements: [
      `CREATE TABLE storage_hospital_keys (
        hospital text PRIMARY KEY,
        secret_key bytea NOT NULL,
        public_key bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())`,
    ],
  },
];
