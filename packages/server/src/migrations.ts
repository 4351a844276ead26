/**
 * Versioned schemas of the platform's own components (applied with `migrate` of @medshare/db). The cloud keeps
 * only ciphertexts and the minimal metadata the issue allows: pseudonymous patient id, category, record id, size,
 * times. Delegations hold re-encryption keys (public-key material, useless without the reader's ABE key).
 * The trusted authority's state lives in its own component and tables, so it can move to its own database.
 */
import type { Migration } from '@medshare/db';

export const CLOUD_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'patients, records, delegations, access log',
    statements: [
      `CREATE TABLE cloud_patients (
        patient text PRIMARY KEY,
        owner text NOT NULL,
        public_keys bytea NOT NULL,
        signing_key bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())`,
      `CREATE TABLE cloud_records (
        seq bigserial UNIQUE,
        record_id text PRIMARY KEY,
        patient text NOT NULL REFERENCES cloud_patients(patient),
        category text NOT NULL,
        source text NOT NULL,
        size integer NOT NULL,
        ciphertext bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())`,
      'CREATE INDEX cloud_records_patient_category ON cloud_records (patient, category)',
      `CREATE TABLE cloud_delegations (
        delegation_id text PRIMARY KEY,
        patient text NOT NULL REFERENCES cloud_patients(patient),
        category text NOT NULL,
        policy text NOT NULL,
        emergency boolean NOT NULL,
        reencryption_key bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())`,
      'CREATE INDEX cloud_delegations_patient ON cloud_delegations (patient, category)',
      `CREATE TABLE cloud_access_log (
        id bigserial PRIMARY KEY,
        patient text NOT NULL,
        actor text NOT NULL,
        hospital text NOT NULL,
        role text NOT NULL,
        action text NOT NULL,
        category text NOT NULL,
        outcome text NOT NULL,
        records integer NOT NULL,
        reason text,
        ledger_index integer,
        at timestamptz NOT NULL DEFAULT now())`,
      'CREATE INDEX cloud_access_log_patient ON cloud_access_log (patient, id)',
      `CREATE TABLE platform_keys (
        name text PRIMARY KEY,
        secret text NOT NULL)`,
    ],
  },
  {
    version: 2,
    description: 'platform emergency capsules and per-record grants; patient opt-out',
    statements: [
      'ALTER TABLE cloud_patients ADD COLUMN platform_emergency boolean NOT NULL DEFAULT true',
      `CREATE TABLE cloud_emergency_capsules (
        capsule_id text PRIMARY KEY,
        patient text NOT NULL REFERENCES cloud_patients(patient),
        category text NOT NULL,
        source text NOT NULL,
        policy text NOT NULL,
        capsule bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())`,
      'CREATE INDEX cloud_emergency_capsules_patient ON cloud_emergency_capsules (patient)',
      `CREATE TABLE cloud_emergency_grants (
        record_id text PRIMARY KEY REFERENCES cloud_records(record_id),
        capsule_id text NOT NULL REFERENCES cloud_emergency_capsules(capsule_id) ON DELETE CASCADE,
        emergency_grant bytea NOT NULL)`,
      'CREATE INDEX cloud_emergency_grants_capsule ON cloud_emergency_grants (capsule_id)',
    ],
  },
  {
    version: 3,
    description: 'searchable index: sub-indexes per writer and epoch (key capsule, sealed state), rows, index epochs',
    statements: [
      `CREATE TABLE cloud_index_epochs (
        patient text NOT NULL REFERENCES cloud_patients(patient),
        category text NOT NULL,
        epoch integer NOT NULL,
        PRIMARY KEY (patient, category))`,
      `CREATE TABLE cloud_index_writers (
        patient text NOT NULL REFERENCES cloud_patients(patient),
        category text NOT NULL,
        source text NOT NULL,
        key_epoch integer NOT NULL,
        index_epoch integer NOT NULL,
        key_capsule bytea NOT NULL,
        state bytea NOT NULL,
        version integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (patient, category, source, key_epoch, index_epoch))`,
      `CREATE TABLE cloud_index_key_grants (
        patient text NOT NULL,
        category text NOT NULL,
        source text NOT NULL,
        key_epoch integer NOT NULL,
        index_epoch integer NOT NULL,
        capsule_id text NOT NULL REFERENCES cloud_emergency_capsules(capsule_id) ON DELETE CASCADE,
        emergency_grant bytea NOT NULL,
        PRIMARY KEY (patient, category, source, key_epoch, index_epoch),
        FOREIGN KEY (patient, category, source, key_epoch, index_epoch) REFERENCES cloud_index_writers ON DELETE CASCADE)`,
      `CREATE TABLE cloud_index_rows (
        label bytea PRIMARY KEY,
        patient text NOT NULL,
        category text NOT NULL,
        value bytea NOT NULL)`,
    ],
  },
  {
    version: 4,
    description: "patients' consent to de-identified research release (opt-in)",
    statements: ['ALTER TABLE cloud_patients ADD COLUMN research_consent boolean NOT NULL DEFAULT false'],
  },
  {
    version: 5,
    description: 'used DPoP proofs (RFC 9449 jti replay cache), until they could no longer pass the freshness check',
    statements: [
      `CREATE TABLE cloud_dpop_nonces (
        scope text NOT NULL,
        nonce text NOT NULL,
        expires_at_ms bigint NOT NULL,
        PRIMARY KEY (scope, nonce))`,
      'CREATE INDEX cloud_dpop_nonces_expiry ON cloud_dpop_nonces (scope, expires_at_ms)',
    ],
  },
  {
    version: 6,
    description: "each record's ciphertext hash, stored at upload: reads name records in the ledger without rehashing them",
    // NULL for records stored before: the read hashes those.
    statements: ['ALTER TABLE cloud_records ADD COLUMN ciphertext_hash text'],
  },
  {
    version: 7,
    description: 'hospitals a patient allows to write into her record (her home hospital at registration; the hospitals that already wrote)',
    statements: [
      `CREATE TABLE cloud_writers (
        patient text NOT NULL REFERENCES cloud_patients(patient),
        hospital text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (patient, hospital))`,
      'INSERT INTO cloud_writers (patient, hospital) SELECT DISTINCT patient, source FROM cloud_records',
    ],
  },
  {
    version: 8,
    description: "keyed hashes of patients' business identifiers (the cloud holds no key to invert them); her consent to be found",
    statements: [
      'ALTER TABLE cloud_patients ADD COLUMN findable boolean NOT NULL DEFAULT false',
      `CREATE TABLE cloud_identifier_index (
        digest text NOT NULL,
        patient text NOT NULL REFERENCES cloud_patients(patient),
        hospital text NOT NULL,
        PRIMARY KEY (digest, patient))`,
    ],
  },
  {
    version: 9,
    description: "each patient's desensitisation rules for the words of her notes in the searchable index (salted digests, JSON)",
    statements: ['ALTER TABLE cloud_patients ADD COLUMN index_rules text'],
  },
  {
    version: 10,
    description: 'large record payloads in chunk rows (the record row keeps the header), read and streamed one chunk at a time',
    // Records stored before keep their whole ciphertext inline (payload_chunks = 0) and read as before.
    statements: [
      'ALTER TABLE cloud_records ADD COLUMN payload_chunks integer NOT NULL DEFAULT 0',
      `CREATE TABLE cloud_record_chunks (
        record_id text NOT NULL REFERENCES cloud_records(record_id),
        seq integer NOT NULL,
        bytes bytea NOT NULL,
        PRIMARY KEY (record_id, seq))`,
    ],
  },
];

export const GATEWAY_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'enrolled patients per hospital',
    statements: [
      `CREATE TABLE gateway_patients (
        hospital text NOT NULL,
        fhir_id text NOT NULL,
        patient text NOT NULL,
        PRIMARY KEY (hospital, fhir_id))`,
    ],
  },
  {
    version: 2,
    description: 'upload receipts: ledger inclusion bundles of the record-create entries',
    statements: [
      `CREATE TABLE gateway_receipts (
        hospital text NOT NULL,
        patient text NOT NULL,
        ledger_index bigint NOT NULL,
        bundle text NOT NULL,
        PRIMARY KEY (hospital, ledger_index))`,
    ],
  },
  {
    version: 3,
    description: "each hospital's searchable-index secret (KEK-wrapped), from which its sub-index keys are derived",
    statements: [
      `CREATE TABLE gateway_index_secrets (
        hospital text PRIMARY KEY,
        secret bytea NOT NULL)`,
    ],
  },
  {
    version: 4,
    description: "each hospital's de-identification key (hash and date-shift keys derive from it), wrapped by the KEK",
    statements: [
      `CREATE TABLE gateway_deid_keys (
        hospital text PRIMARY KEY,
        key_wrapped bytea NOT NULL)`,
    ],
  },
  {
    version: 5,
    description: "FHIR resource versions the gateway wrote into each patient's record: which record holds each version (no clinical content)",
    statements: [
      `CREATE TABLE gateway_versions (
        hospital text NOT NULL,
        resource_type text NOT NULL,
        fhir_id text NOT NULL,
        version integer NOT NULL,
        patient text NOT NULL,
        record_id text NOT NULL,
        category text NOT NULL,
        content_hash text NOT NULL,
        deleted boolean NOT NULL,
        last_updated text NOT NULL,
        PRIMARY KEY (hospital, patient, resource_type, fhir_id, version))`,
      'CREATE INDEX gateway_versions_resource ON gateway_versions (hospital, resource_type, fhir_id)',
    ],
  },
  {
    version: 6,
    description: 'the searchable-index keywords of each version (KEK-wrapped), so a later version deletes them from the index',
    statements: ['ALTER TABLE gateway_versions ADD COLUMN index_keywords bytea'],
  },
  {
    version: 7,
    description: 'identifiers of the current resources the gateway wrote, as SHA-256 digests of system|value, for conditional creates (If-None-Exist)',
    statements: [
      `CREATE TABLE gateway_identifiers (
        hospital text NOT NULL,
        resource_type text NOT NULL,
        token text NOT NULL,
        patient text NOT NULL,
        fhir_id text NOT NULL,
        PRIMARY KEY (hospital, resource_type, token, patient, fhir_id))`,
      'CREATE INDEX gateway_identifiers_resource ON gateway_identifiers (hospital, patient, resource_type, fhir_id)',
    ],
  },
  {
    version: 8,
    description: 'pending upload receipts: kept with the log-signed bundle until a checkpoint the witness quorum cosigned covers the entry',
    statements: [
      'ALTER TABLE gateway_receipts ADD COLUMN witnessed boolean NOT NULL DEFAULT true',
      'ALTER TABLE gateway_receipts ADD COLUMN problem text',
      'CREATE INDEX gateway_receipts_pending ON gateway_receipts (hospital, ledger_index) WHERE NOT witnessed',
    ],
  },
];

export const AUTHORITY_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'CP-ABE setup of the trusted authority',
    statements: [
      `CREATE TABLE ta_setup (
        id integer PRIMARY KEY CHECK (id = 1),
        public_key bytea NOT NULL,
        master_key bytea NOT NULL)`,
    ],
  },
];

/**
 * Public keys of other services a service pinned on first sight (the cloud pins each hospital's witness key, a
 * hospital the log's key): never secrets, so any service's database may hold them.
 */
export const FEDERATION_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'public keys of other services, pinned on first sight',
    statements: [
      `CREATE TABLE federation_pins (
        name text PRIMARY KEY,
        value text NOT NULL)`,
    ],
  },
];
