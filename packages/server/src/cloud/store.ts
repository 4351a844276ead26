/**
 * The cloud's SQL store (through @medshare/db, PGlite or PostgreSQL): patients' signed public-key bundles,
 * record ciphertexts with minimal metadata, delegations (re-encryption keys) and the access log the patient sees.
 * Uploads of many records are one transaction and `ON CONFLICT DO NOTHING` on the record id, so a retried upload
 * neither duplicates nor half-applies.
 */
import { createHash } from 'node:crypto';
import { GroupCommit, insertMany, type Database, type Queryable } from '@medshare/db';
import type { RecordStorageTags } from '../storage-audit/tagger.ts';
import { ChunkedPayload, insertPayloadChunks, storageLayout } from './record-payloads.ts';
import { SearchStore, type IndexWrite } from './search-store.ts';

/** Metadata of a stored record (what the cloud knows besides the ciphertext). */
export interface RecordMeta {
  recordId: string;
  patient: string;
  category: string;
  source: string;
  size: number;
  createdAt: string;
}

/** A record to store, with its platform emergency grant when the hospital made one. */
export interface NewRecord {
  recordId: string;
  category: string;
  ciphertext: Uint8Array;
  emergency?: { capsuleId: string; grant: Uint8Array };
  /** The record's proof-of-storage tags and its hospital's public key (storage-audit/), when the gateway tags. */
  storage?: RecordStorageTags;
}

/** A platform emergency capsule as uploaded by a hospital (its public part). */
export interface NewCapsule {
  capsuleId: string;
  category: string;
  policy: string;
  capsule: Uint8Array;
}

/**
 * A stored record ciphertext and its hash (`sha256:<hex>` of the whole ciphertext, stored at upload; computed for
 * records stored before). A large record's `ciphertext` is its header only and its payload is `chunked`
 * (record-payloads.ts); otherwise `ciphertext` is the whole record.
 */
export interface StoredCiphertext {
  recordId: string;
  ciphertext: Uint8Array;
  hash: string;
  chunked?: ChunkedPayload;
}

interface CiphertextSqlRow {
  record_id: string;
  ciphertext: Uint8Array;
  ciphertext_hash: string | null;
  size: number;
  payload_chunks: number;
}

/** `sha256:<hex>` of some bytes: how the ledger names records and keys. */
export function sha256Name(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A record readable under a platform emergency capsule: what `pre.emergencyGrantKey` and `pre.convert` need. */
export interface EmergencyRecord extends StoredCiphertext {
  capsuleId: string;
  capsule: Uint8Array;
  grant: Uint8Array;
}

/** A stored delegation. */
export interface DelegationRow {
  delegationId: string;
  patient: string;
  category: string;
  policy: string;
  emergency: boolean;
  reencryptionKey: Uint8Array;
  createdAt: string;
}

/** A stored delegation's or emergency capsule's policy (see `CloudStore.storedPolicies`). */
export interface StoredPolicy {
  kind: 'delegation' | 'capsule';
  id: string;
  patient: string;
  category: string;
  /** The hospital that uploaded a capsule; null for a patient's delegation. */
  source: string | null;
  policy: string;
  /** Envelope format version of the stored re-encryption key or capsule. */
  format: number;
  createdAt: string;
}

/** One line of a patient's access log. */
export interface AccessEntry {
  actor: string;
  hospital: string;
  role: string;
  action: string;
  category: string;
  outcome: string;
  records: number;
  reason: string | null;
  ledgerIndex: number | null;
  at: string;
}

const ACCESS_COLUMNS = 10;
/** Rows per INSERT: 10 parameters each, well under PostgreSQL's 65,535. */
const ACCESS_ROWS_PER_INSERT = 1000;

const iso = (value: unknown) => (value instanceof Date ? value.toISOString() : String(value));

interface DelegationSqlRow {
  delegation_id: string;
  patient: string;
  category: string;
  policy: string;
  emergency: boolean;
  reencryption_key: Uint8Array;
  created_at: unknown;
}

const delegationRow = (r: DelegationSqlRow): DelegationRow => ({
  delegationId: r.delegation_id,
  patient: r.patient,
  category: r.category,
  policy: r.policy,
  emergency: r.emergency,
  reencryptionKey: r.reencryption_key,
  createdAt: iso(r.created_at),
});

/** A registered patient's platform emergency consent and her active delegations of one category. */
export interface ReadableDelegations {
  platformEmergency: boolean;
  delegations: DelegationRow[];
}

/**
 * `WITH named AS (…)`: a read's candidate records, a category's ($1 patient, $2 category) or those named by id ($3).
 * Named records are looked up by primary key, fenced off from the planner: without table statistics (a fresh bulk
 * upload before autovacuum, or PGlite, which has none) it used the (patient, category) index and read the whole
 * category to find them.
 */
const recordsSource = (recordIds: readonly string[] | undefined): string =>
  recordIds === undefined
    ? 'WITH named AS (SELECT seq, record_id, patient, category, ciphertext, ciphertext_hash, size, payload_chunks FROM cloud_records WHERE patient = $1 AND category = $2)'
    : 'WITH named AS MATERIALIZED (SELECT seq, record_id, patient, category, ciphertext, ciphertext_hash, size, payload_chunks FROM cloud_records WHERE record_id = ANY($3::text[]))';

/** SQL access for the cloud service. */
export class CloudStore {
  /** Access-log rows of concurrent callers, group-committed: one multi-row INSERT for everything queued while the previous one ran. */
  private readonly accessRows = new GroupCommit<unknown[], void>((batch) => this.insertAccessRows(batch), ACCESS_ROWS_PER_INSERT);

  /** The searchable index's tables (search-store.ts). */
  readonly search: SearchStore;

  constructor(readonly db: Database) {
    this.search = new SearchStore(db);
  }

  /**
   * Registers a patient's key bundle and allows her home hospital (where she registered) to write into her record,
   * in one transaction; false when the pseudonym is already taken.
   */
  async addPatient(patient: string, owner: string, publicKeys: Uint8Array, signingKey: Uint8Array, homeHospital: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const result = await tx.query(
        'INSERT INTO cloud_patients (patient, owner, public_keys, signing_key) VALUES ($1, $2, $3, $4) ON CONFLICT (patient) DO NOTHING RETURNING patient',
        [patient, owner, publicKeys, signingKey],
      );
      if (result.rows.length === 0) return false;
      await tx.query('INSERT INTO cloud_writers (patient, hospital) VALUES ($1, $2)', [patient, homeHospital]);
      return true;
    });
  }

  /** Allows a hospital to write into a patient's record; false when it already may. */
  async addWriter(patient: string, hospital: string): Promise<boolean> {
    const result = await this.db.query('INSERT INTO cloud_writers (patient, hospital) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING hospital', [
      patient,
      hospital,
    ]);
    return result.rows.length === 1;
  }

  /** Withdraws a hospital's permission to write; false when it had none. Its stored records stay. */
  async removeWriter(patient: string, hospital: string): Promise<boolean> {
    const result = await this.db.query('DELETE FROM cloud_writers WHERE patient = $1 AND hospital = $2 RETURNING hospital', [patient, hospital]);
    return result.rows.length === 1;
  }

  /** Adds keyed hashes of a patient's business identifiers (a hospital's gateway computed them); repeats are kept once. */
  async addIdentifierDigests(patient: string, hospital: string, digests: readonly string[]): Promise<void> {
    if (digests.length === 0) return;
    await this.db.query('INSERT INTO cloud_identifier_index (digest, patient, hospital) SELECT d, $2, $3 FROM unnest($1::text[]) AS d ON CONFLICT DO NOTHING', [
      digests,
      patient,
      hospital,
    ]);
  }

  /** The patients who allowed being found and whose identifiers include `digest`. */
  async findByDigest(digest: string): Promise<string[]> {
    const rows = await this.db.query<{ patient: string }>(
      'SELECT i.patient FROM cloud_identifier_index i JOIN cloud_patients p ON p.patient = i.patient WHERE i.digest = $1 AND p.findable ORDER BY i.patient',
      [digest],
    );
    return rows.rows.map((r) => r.patient);
  }

  /** Records whether a patient may be found by her identifiers; returns whether it changed. */
  async setFindable(patient: string, allowed: boolean): Promise<boolean> {
    const result = await this.db.query('UPDATE cloud_patients SET findable = $2 WHERE patient = $1 AND findable <> $2 RETURNING patient', [patient, allowed]);
    return result.rows.length === 1;
  }

  /** The patient's index rules as she stored them (JSON), if any. */
  async indexRules(patient: string): Promise<string | undefined> {
    const row = (await this.db.query<{ index_rules: string | null }>('SELECT index_rules FROM cloud_patients WHERE patient = $1', [patient])).rows[0];
    return row?.index_rules ?? undefined;
  }

  /** Replaces the patient's index rules. */
  async setIndexRules(patient: string, rules: string): Promise<void> {
    await this.db.query('UPDATE cloud_patients SET index_rules = $2 WHERE patient = $1', [patient, rules]);
  }

  /** The hospitals that may write into a patient's record, in name order. */
  async writers(patient: string): Promise<string[]> {
    const rows = await this.db.query<{ hospital: string }>('SELECT hospital FROM cloud_writers WHERE patient = $1 ORDER BY hospital', [patient]);
    return rows.rows.map((r) => r.hospital);
  }

  /**
   * Replaces a patient's key bundle (a rotation) if it is still `expected`: false when another replacement
   * committed first, so two concurrent re-publishes cannot both win on a stale comparison.
   */
  async replacePatientKeys(patient: string, expected: Uint8Array, publicKeys: Uint8Array): Promise<boolean> {
    const result = await this.db.query('UPDATE cloud_patients SET public_keys = $3 WHERE patient = $1 AND public_keys = $2 RETURNING patient', [
      patient,
      expected,
      publicKeys,
    ]);
    return result.rows.length === 1;
  }

  /**
   * The policies of stored delegations and emergency capsules (of one patient, or all), with the format version of
   * the stored object (byte 4 of its envelope): what a review of policies to re-issue needs, without the keys.
   */
  async storedPolicies(patient?: string): Promise<StoredPolicy[]> {
    // The selected columns are the policy's fields, but for the timestamp's name and type.
    const rows = await this.db.query<Omit<StoredPolicy, 'createdAt'> & { created_at: unknown }>(
      `SELECT 'delegation' AS kind, delegation_id AS id, patient, category, NULL AS source, policy, get_byte(reencryption_key, 4) AS format, created_at
         FROM cloud_delegations WHERE $1::text IS NULL OR patient = $1
       UNION ALL
       SELECT 'capsule' AS kind, capsule_id AS id, patient, category, source, policy, get_byte(capsule, 4) AS format, created_at
         FROM cloud_emergency_capsules WHERE $1::text IS NULL OR patient = $1
       ORDER BY created_at, id`,
      [patient ?? null],
    );
    return rows.rows.map((r) => ({
      kind: r.kind,
      id: r.id,
      patient: r.patient,
      category: r.category,
      source: r.source,
      policy: r.policy,
      format: Number(r.format),
      createdAt: iso(r.created_at),
    }));
  }

  /** A patient's owner, key bundle and platform emergency consent, if registered. */
  async patient(patient: string): Promise<{ owner: string; publicKeys: Uint8Array; signingKey: Uint8Array; platformEmergency: boolean } | undefined> {
    const row = (
      await this.db.query<{ owner: string; public_keys: Uint8Array; signing_key: Uint8Array; platform_emergency: boolean }>(
        'SELECT owner, public_keys, signing_key, platform_emergency FROM cloud_patients WHERE patient = $1',
        [patient],
      )
    ).rows[0];
    return row && { owner: row.owner, publicKeys: row.public_keys, signingKey: row.signing_key, platformEmergency: row.platform_emergency };
  }

  /**
   * Stores records in one transaction; returns those that were new (retries insert nothing). Grants are stored
   * for new records only, and a capsule only when one of its grants is, so a retry leaves no orphan capsule.
   * Grants are dropped if the patient has withdrawn consent (read under a row lock, so an opt-out that commits
   * first is seen, and one that commits later deletes what this stored). Searchable-index writes of the same
   * upload commit with it or not at all (SearchStore.write: ConflictError on a concurrent write of a sub-index).
   * `onAdded` runs inside the transaction with the new records (the storage audit stores their tags there). Each
   * table's rows go in multi-row INSERTs.
   */
  async addRecords(
    patient: string,
    source: string,
    records: readonly NewRecord[],
    capsules: readonly NewCapsule[] = [],
    index: readonly IndexWrite[] = [],
    onAdded?: (tx: Queryable, added: readonly NewRecord[]) => Promise<void>,
  ): Promise<NewRecord[]> {
    return this.db.transaction(async (tx) => {
      const consent =
        capsules.length > 0 &&
        (await tx.query<{ platform_emergency: boolean }>('SELECT platform_emergency FROM cloud_patients WHERE patient = $1 FOR SHARE', [patient])).rows[0]
          ?.platform_emergency === true;
      const storedCapsules = new Set<string>();
      // A large payload's row keeps its header; the rest goes to 1 MiB chunk rows (record-payloads.ts).
      const layouts = records.map((r) => storageLayout(r.recordId, r.ciphertext));
      const inserted = new Set(
        (
          await insertMany<{ record_id: string }>(
            tx,
            'cloud_records (record_id, patient, category, source, size, ciphertext, ciphertext_hash, payload_chunks)',
            records.map((r, i) => [
              r.recordId,
              patient,
              r.category,
              source,
              r.ciphertext.length,
              layouts[i]!.inline,
              sha256Name(r.ciphertext),
              layouts[i]!.chunks.length,
            ]),
            'ON CONFLICT (record_id) DO NOTHING RETURNING record_id',
          )
        ).map((row) => row.record_id),
      );
      // A record id twice in one upload is stored once, as the first of them.
      const added: NewRecord[] = [];
      for (const [i, r] of records.entries()) {
        if (!inserted.delete(r.recordId)) continue;
        await insertPayloadChunks(tx, r.recordId, layouts[i]!.chunks);
        added.push(r);
      }
      if (added.length > 0) await onAdded?.(tx, added);
      const granted = consent ? added.filter((r) => r.emergency !== undefined) : [];
      const newCapsules = capsules.filter(
        (c, i) => capsules.findIndex((d) => d.capsuleId === c.capsuleId) === i && granted.some((r) => r.emergency!.capsuleId === c.capsuleId),
      );
      if (newCapsules.length > 0) {
        await insertMany(
          tx,
          'cloud_emergency_capsules (capsule_id, patient, category, source, policy, capsule)',
          newCapsules.map((c) => [c.capsuleId, patient, c.category, source, c.policy, c.capsule]),
        );
        for (const c of newCapsules) storedCapsules.add(c.capsuleId);
      }
      if (granted.length > 0)
        await insertMany(
          tx,
          'cloud_emergency_grants (record_id, capsule_id, emergency_grant)',
          granted.map((r) => [r.recordId, r.emergency!.capsuleId, r.emergency!.grant]),
        );
      if (index.length > 0) await this.search.write(tx, patient, source, index, new Set(added.map((r) => r.recordId)), storedCapsules);
      return added;
    });
  }

  /** Records of one category (or only `recordIds`) that carry a platform emergency grant, with grant and capsule. */
  async emergencyRecords(patient: string, category: string, recordIds?: readonly string[]): Promise<EmergencyRecord[]> {
    const rows = await this.db.query<CiphertextSqlRow & { capsule_id: string; capsule: Uint8Array; emergency_grant: Uint8Array }>(
      `SELECT r.record_id, r.ciphertext, r.ciphertext_hash, r.size, r.payload_chunks, c.capsule_id, c.capsule, g.emergency_grant
       FROM cloud_records r JOIN cloud_emergency_grants g ON g.record_id = r.record_id JOIN cloud_emergency_capsules c ON c.capsule_id = g.capsule_id
       WHERE r.patient = $1 AND r.category = $2 AND ($3::text[] IS NULL OR r.record_id = ANY($3::text[])) ORDER BY r.seq`,
      [patient, category, recordIds ?? null],
    );
    return rows.rows.map((r) => ({ ...this.storedCiphertext(r), capsuleId: r.capsule_id, capsule: r.capsule, grant: r.emergency_grant }));
  }

  /** How many of a patient's records carry a platform emergency grant. */
  async emergencyGrantCount(patient: string): Promise<number> {
    const row = (
      await this.db.query<{ n: number }>(
        'SELECT count(*) AS n FROM cloud_emergency_grants g JOIN cloud_emergency_capsules c ON c.capsule_id = g.capsule_id WHERE c.patient = $1',
        [patient],
      )
    ).rows[0];
    return row?.n ?? 0;
  }

  /**
   * Records the patient's consent to platform emergency access. Withdrawing it deletes every grant and capsule
   * of hers in the same transaction. Returns whether the setting changed.
   */
  async setPlatformEmergency(patient: string, allowed: boolean): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const changed = await tx.query('UPDATE cloud_patients SET platform_emergency = $2 WHERE patient = $1 AND platform_emergency <> $2 RETURNING patient', [
        patient,
        allowed,
      ]);
      if (!allowed) await tx.query('DELETE FROM cloud_emergency_capsules WHERE patient = $1', [patient]);
      return changed.rows.length === 1;
    });
  }

  /** Whether the patient consents to de-identified research release (undefined: not registered). */
  async researchConsent(patient: string): Promise<boolean | undefined> {
    const row = (await this.db.query<{ research_consent: boolean }>('SELECT research_consent FROM cloud_patients WHERE patient = $1', [patient])).rows[0];
    return row?.research_consent;
  }

  /** Sets the patient's research consent; true when it changed. */
  async setResearchConsent(patient: string, allowed: boolean): Promise<boolean> {
    const changed = await this.db.query('UPDATE cloud_patients SET research_consent = $2 WHERE patient = $1 AND research_consent <> $2 RETURNING patient', [
      patient,
      allowed,
    ]);
    return changed.rows.length === 1;
  }

  /** Metadata of a patient's records, optionally of one category. */
  async listRecords(patient: string, category?: string): Promise<RecordMeta[]> {
    const rows = await this.db.query<{ record_id: string; patient: string; category: string; source: string; size: number; created_at: unknown }>(
      `SELECT record_id, patient, category, source, size, created_at FROM cloud_records
       WHERE patient = $1 AND ($2::text IS NULL OR category = $2) ORDER BY seq`,
      [patient, category ?? null],
    );
    return rows.rows.map((r) => ({
      recordId: r.record_id,
      patient: r.patient,
      category: r.category,
      source: r.source,
      size: r.size,
      createdAt: iso(r.created_at),
    }));
  }

  /** Ciphertexts of a patient's records of one category (or only `recordIds` among them), with their hashes. */
  async ciphertexts(patient: string, category: string, recordIds?: readonly string[]): Promise<StoredCiphertext[]> {
    const rows = await this.db.query<CiphertextSqlRow>(
      `${recordsSource(recordIds)} SELECT record_id, ciphertext, ciphertext_hash, size, payload_chunks FROM named WHERE patient = $1 AND category = $2 ORDER BY seq`,
      recordIds === undefined ? [patient, category] : [patient, category, recordIds],
      { prepared: true },
    );
    return rows.rows.map((r) => this.storedCiphertext(r));
  }

  /**
   * What a delegated read needs, in one round trip: `readableDelegations` and the records `ciphertexts` returns.
   * The records are for the caller to use only once the delegations authorise the read (a refused read fetched them
   * for nothing and returns none). Undefined when the patient is not registered.
   */
  async readableRecords(
    patient: string,
    category: string,
    recordIds?: readonly string[],
  ): Promise<(ReadableDelegations & { records: StoredCiphertext[] }) | undefined> {
    // One result of two parts: part 0, the patient and her delegations (a row with null delegation columns when she
    // has none); part 1, the records, in upload order.
    const rows = await this.db.query<{ part: number; platform_emergency: boolean | null } & Partial<DelegationSqlRow> & Partial<CiphertextSqlRow>>(
      `${recordsSource(recordIds)}
       SELECT 0 AS part, p.platform_emergency, d.delegation_id, d.patient, d.category, d.policy, d.emergency, d.reencryption_key, d.created_at,
              NULL::text AS record_id, NULL::bytea AS ciphertext, NULL::text AS ciphertext_hash, NULL::integer AS size, NULL::integer AS payload_chunks, NULL::bigint AS seq
         FROM cloud_patients p LEFT JOIN cloud_delegations d ON d.patient = p.patient AND d.category = $2 WHERE p.patient = $1
       UNION ALL
       SELECT 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, record_id, ciphertext, ciphertext_hash, size, payload_chunks, seq FROM named WHERE patient = $1 AND category = $2
       ORDER BY part, created_at, delegation_id, seq`,
      recordIds === undefined ? [patient, category] : [patient, category, recordIds],
      { prepared: true },
    );
    const head = rows.rows.filter((r) => r.part === 0);
    if (head.length === 0) return undefined;
    return {
      platformEmergency: head[0]!.platform_emergency === true,
      delegations: head.filter((r): r is typeof r & DelegationSqlRow => r.delegation_id != null).map(delegationRow),
      records: rows.rows.filter((r): r is typeof r & CiphertextSqlRow => r.part === 1).map((r) => this.storedCiphertext(r)),
    };
  }

  /** A record row as StoredCiphertext: a chunked payload is read later, chunk by chunk, as the reader consumes it. */
  private storedCiphertext(r: CiphertextSqlRow): StoredCiphertext {
    const stored: StoredCiphertext = { recordId: r.record_id, ciphertext: r.ciphertext, hash: r.ciphertext_hash ?? sha256Name(r.ciphertext) };
    if (r.payload_chunks > 0) stored.chunked = new ChunkedPayload(this.db, r.record_id, r.size - r.ciphertext.length, r.payload_chunks);
    return stored;
  }

  /** A stored record's whole ciphertext in one buffer (a chunked payload read and joined to its header). */
  static whole(stored: StoredCiphertext): Promise<Uint8Array> {
    return stored.chunked === undefined ? Promise.resolve(stored.ciphertext) : stored.chunked.joinAfter(stored.ciphertext);
  }

  /** Stores a delegation. */
  async addDelegation(row: Omit<DelegationRow, 'createdAt'>): Promise<void> {
    await this.db.query(
      `INSERT INTO cloud_delegations (delegation_id, patient, category, policy, emergency, reencryption_key)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delegation_id) DO NOTHING`,
      [row.delegationId, row.patient, row.category, row.policy, row.emergency, row.reencryptionKey],
    );
  }

  /** A patient's active delegations, optionally of one category. */
  async delegations(patient: string, category?: string): Promise<DelegationRow[]> {
    const rows = await this.db.query<DelegationSqlRow>(
      `SELECT * FROM cloud_delegations WHERE patient = $1 AND ($2::text IS NULL OR category = $2) ORDER BY created_at, delegation_id`,
      [patient, category ?? null],
    );
    return rows.rows.map(delegationRow);
  }

  /**
   * What a read needs first, in one round trip: the patient's platform emergency consent and her active
   * delegations of `category`; undefined when she is not registered.
   */
  async readableDelegations(patient: string, category: string): Promise<ReadableDelegations | undefined> {
    const rows = await this.db.query<{ registered: string; platform_emergency: boolean } & Partial<DelegationSqlRow>>(
      `SELECT p.patient AS registered, p.platform_emergency, d.* FROM cloud_patients p
       LEFT JOIN cloud_delegations d ON d.patient = p.patient AND d.category = $2
       WHERE p.patient = $1 ORDER BY d.created_at, d.delegation_id`,
      [patient, category],
      { prepared: true },
    );
    if (rows.rows.length === 0) return undefined;
    const delegations = rows.rows
      .filter((r): r is { registered: string; platform_emergency: boolean } & DelegationSqlRow => r.delegation_id != null)
      .map(delegationRow);
    return { platformEmergency: rows.rows[0]!.platform_emergency, delegations };
  }

  /** Deletes a delegation (revocation): the re-encryption key is gone. Returns the deleted row. */
  async deleteDelegation(patient: string, delegationId: string): Promise<DelegationRow | undefined> {
    const found = (await this.delegations(patient)).find((d) => d.delegationId === delegationId);
    if (found === undefined) return undefined;
    await this.db.query('DELETE FROM cloud_delegations WHERE patient = $1 AND delegation_id = $2', [patient, delegationId]);
    return found;
  }

  /**
   * Appends to the patient-visible access log; resolves once the row is committed. Rows of concurrent callers
   * are group-committed: one multi-row INSERT for everything queued while the previous one ran.
   */
  logAccess(patient: string, entry: Omit<AccessEntry, 'at'>): Promise<void> {
    return this.accessRows.add([
      patient,
      entry.actor,
      entry.hospital,
      entry.role,
      entry.action,
      entry.category,
      entry.outcome,
      entry.records,
      entry.reason,
      entry.ledgerIndex,
    ]);
  }

  private async insertAccessRows(batch: unknown[][]): Promise<void[]> {
    const rows = batch.map((_, i) => `(${Array.from({ length: ACCESS_COLUMNS }, (_, j) => `$${i * ACCESS_COLUMNS + j + 1}`).join(', ')})`);
    await this.db.query(
      `INSERT INTO cloud_access_log (patient, actor, hospital, role, action, category, outcome, records, reason, ledger_index) VALUES ${rows.join(', ')}`,
      batch.flat(),
    );
    return batch.map(() => undefined);
  }

  /** A patient's access log, oldest first. */
  async accessLog(patient: string, limit = 10_000): Promise<AccessEntry[]> {
    // The table's columns are the entry's fields (logAccess writes them), but for ledger_index's name and the timestamp's type.
    const rows = await this.db.query<Omit<AccessEntry, 'ledgerIndex' | 'at'> & { ledger_index: number | null; at: unknown }>(
      'SELECT * FROM cloud_access_log WHERE patient = $1 ORDER BY id LIMIT $2',
      [patient, limit],
    );
    return rows.rows.map((r) => ({
      actor: r.actor,
      hospital: r.hospital,
      role: r.role,
      action: r.action,
      category: r.category,
      outcome: r.outcome,
      records: r.records,
      reason: r.reason,
      ledgerIndex: r.ledger_index,
      at: iso(r.at),
    }));
  }
}
