/**
 * Tables of storage auditing (KZG chunk commitments, Kate–Zaverucha–Goldberg, ASIACRYPT 2010; docs/crypto.md §13),
 * in their own components so each lives in its own domain's database:
 * `storage-cloud` (the cloud: each record's tag set) and `storage-hospital` (a hospital: nothing since version 2;
 * version 1 held its Shacham–Waters secret key, which the KZG commitments do not need).
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
  {
    version: 2,
    description: 'KZG chunk commitments: no hospital keys; blocks count chunks (version-1 tag sets stay, unaudited)',
    statements: ['ALTER TABLE storage_tags DROP COLUMN key_id', 'DROP TABLE storage_keys', 'ALTER TABLE storage_tags RENAME COLUMN blocks TO chunks'],
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
  {
    version: 2,
    description: 'KZG chunk commitments need no hospital key: the Shacham–Waters secret keys are dropped',
    statements: ['DROP TABLE storage_hospital_keys'],
  },
];
