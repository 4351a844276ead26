/**
 * Schemas of the statistics components, each its own migration component so that a hospital's state and the
 * cloud's can live in different databases. A hospital keeps its key share (wrapped by its KEK), its signing key
 * (wrapped) and its own privacy accounting; the cloud keeps queries, encrypted contributions, partial
 * decryptions and releases. No table holds a plaintext histogram of one hospital.
 */
import type { Migration } from '@medshare/db';

export const STATS_HOSPITAL_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'key shares, per-query-set budgets, the queries contributed to and the one aggregate each may decrypt',
    statements: [
      `CREATE TABLE stats_hospital_keys (
        hospital text PRIMARY KEY,
        key_id text NOT NULL,
        public_key bytea NOT NULL,
        share bytea NOT NULL,
        signing_key bytea NOT NULL)`,
      `CREATE TABLE stats_hospital_budgets (
        hospital text NOT NULL,
        query_set text NOT NULL,
        budget_micros bigint NOT NULL,
        spent_micros bigint NOT NULL DEFAULT 0 CHECK (spent_micros <= budget_micros),
        PRIMARY KEY (hospital, query_set))`,
      `CREATE TABLE stats_hospital_queries (
        hospital text NOT NULL,
        query_id text NOT NULL,
        query_hash text NOT NULL,
        contribution_digest text NOT NULL,
        aggregate_digest text,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (hospital, query_id))`,
    ],
  },
];

export const STATS_CLOUD_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'statistics queries, budgets, contributions, partial decryptions, releases',
    statements: [
      `CREATE TABLE stats_budgets (
        query_set text PRIMARY KEY,
        budget_micros bigint NOT NULL,
        spent_micros bigint NOT NULL DEFAULT 0 CHECK (spent_micros <= budget_micros))`,
      `CREATE TABLE stats_queries (
        query_id text PRIMARY KEY,
        query_set text NOT NULL REFERENCES stats_budgets(query_set),
        query_hash text NOT NULL,
        query text NOT NULL,
        epsilon_micros bigint NOT NULL,
        requester text NOT NULL,
        release text,
        created_at timestamptz NOT NULL DEFAULT now())`,
      `CREATE TABLE stats_contributions (
        query_id text NOT NULL REFERENCES stats_queries(query_id),
        hospital text NOT NULL,
        ciphertext bytea NOT NULL,
        signature bytea NOT NULL,
        PRIMARY KEY (query_id, hospital))`,
      `CREATE TABLE stats_partials (
        query_id text NOT NULL REFERENCES stats_queries(query_id),
        hospital text NOT NULL,
        partial bytea NOT NULL,
        PRIMARY KEY (query_id, hospital))`,
    ],
  },
];
