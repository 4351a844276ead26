/** The ledger's tables, as versioned migrations of the `ledger` component (see @medshare/db). */
import type { Migration } from '@medshare/db';

export const LEDGER_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'Merkle log entries, signed checkpoints, append head, witness state',
    statements: [
      `CREATE TABLE ledger_entries (
        idx bigint PRIMARY KEY,
        entry text NOT NULL,
        leaf_hash bytea NOT NULL,
        patient text NOT NULL)`,
      'CREATE INDEX ledger_entries_patient ON ledger_entries (patient, idx)',
      `CREATE TABLE ledger_checkpoints (
        size bigint PRIMARY KEY,
        note text NOT NULL)`,
      // One row whose lock serialises appenders across processes; `size` is the committed tree size.
      `CREATE TABLE ledger_head (
        id integer PRIMARY KEY CHECK (id = 1),
        origin text NOT NULL,
        log_vkey text NOT NULL,
        size bigint NOT NULL)`,
      `CREATE TABLE ledger_witness_state (
        witness text NOT NULL,
        origin text NOT NULL,
        size bigint NOT NULL,
        note text NOT NULL,
        PRIMARY KEY (witness, origin))`,
    ],
  },
  {
    version: 2,
    description: "the log's signing key, wrapped by the service's key-encryption key",
    statements: [
      `CREATE TABLE ledger_keys (
        name text PRIMARY KEY,
        wrapped bytea NOT NULL)`,
    ],
  },
  {
    version: 3,
    description: 'the Merkle tree, level by level in chunks of 1024 hashes, so that opening a log reads no entries',
    statements: [
      `CREATE TABLE ledger_tree (
        level integer NOT NULL,
        chunk bigint NOT NULL,
        hashes bytea NOT NULL,
        PRIMARY KEY (level, chunk))`,
    ],
  },
];
