/**
 * Schemas of the statistics components, each its own migration component so that a hospital's state and the
 * cloud's can live in different databases. A hospital keeps its key share, its signing and share-sealing keys and,
 * while the key is generated, its dealer polynomials (all wrapped by its KEK), and its own privacy accounting; the
 * cloud keeps the key generation's bulletin board (public commitments, signed messages, shares sealed to their
 * recipients), queries, encrypted contributions, partial decryptions and releases. No table holds a plaintext
 * histogram of one hospital, and the cloud's none a key share.
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
  {
    version: 2,
    description:
      "the stats agent's own keys (signing, share-sealing) and the consortium it checked, its dealer polynomials during key generation, and its administrator's approvals",
    statements: [
      `CREATE TABLE stats_agent_keys (
        hospital text PRIMARY KEY,
        signing_key bytea NOT NULL,
        box_key bytea NOT NULL,
        consortium text)`,
      `CREATE TABLE stats_agent_dealings (
        hospital text NOT NULL,
        ceremony_id text NOT NULL,
        polynomials bytea NOT NULL,
        PRIMARY KEY (hospital, ceremony_id))`,
      `CREATE TABLE stats_agent_approvals (
        hospital text NOT NULL,
        query_id text NOT NULL,
        approved_at timestamptz NOT NULL DEFAULT now(),
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
  {
    version: 2,
    description: 'the key-generation bulletin board (the ceremony, its signed messages) and the consortium it formed',
    statements: [
      `CREATE TABLE stats_dkg_ceremonies (
        slot text PRIMARY KEY,
        ceremony text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())`,
      `CREATE TABLE stats_dkg_messages (
        ceremony_id text NOT NULL,
        phase text NOT NULL,
        sender text NOT NULL,
        message text NOT NULL,
        seq bigserial,
        PRIMARY KEY (ceremony_id, phase, sender))`,
      `CREATE TABLE stats_consortium (
        slot text PRIMARY KEY,
        consortium text,
        failure text)`,
    ],
  },
];
