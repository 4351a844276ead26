/**
 * The cloud's side of the searchable index (docs/crypto.md §12, docs/platform.md § Search): per patient and
 * category, one sub-index per writing hospital, key epoch and index epoch, each with
 *
 *   the index key as a record ciphertext under the patient's category key (readers get it converted, like a
 *   record, so the patient's delegation decides who can search), and its platform emergency grant if any;
 *   the writer's sealed state (keyword counts) and its version, compared on every write;
 *   rows (label → masked value), stored with no record id, keyword, date or type.
 *
 * The index epoch of a (patient, category) moves forward at every revocation of one of its delegations: writers
 * then start new sub-indexes under fresh keys that only the remaining delegations convert.
 */
import { ConflictError, MalformedInputError, pre, sse } from '@medshare/crypto';
import type { Database, Queryable } from '@medshare/db';

/** One sub-index's part of an upload: its new rows and state, and (when it is new) its key capsule. */
export interface IndexWrite {
  category: string;
  keyEpoch: number;
  indexEpoch: number;
  /** The state version the writer built on (0 when it creates the sub-index). */
  expectedVersion: number;
  /** The sealed state after these rows. */
  state: Uint8Array;
  /** The index key under the patient's category key (pre ciphertext); required to create the sub-index. */
  keyCapsule?: Uint8Array;
  /** The key capsule's platform emergency grant, under one of the upload's emergency capsules. */
  keyEmergency?: { capsuleId: string; grant: Uint8Array };
  /**
   * Rows, each naming the record of this upload that carries it: the record it indexes, or (for the entries that
   * delete a superseded version's keywords) the version that supersedes it. Kept if any of them is newly stored.
   */
  rows: ReadonlyArray<{ recordId: string; label: Uint8Array; value: Uint8Array }>;
}

/** A sub-index as readers and its writer see it. */
export interface SubIndex {
  source: string;
  keyEpoch: number;
  indexEpoch: number;
  keyCapsule: Uint8Array;
  state: Uint8Array;
  version: number;
  /** The key capsule's platform emergency grant and its capsule, when there is one. */
  emergency?: { capsuleId: string; capsule: Uint8Array; grant: Uint8Array };
}

/** Index rows per INSERT at upload (two bytea arrays of this many elements). */
const INDEX_ROWS_PER_STATEMENT = 5_000;
/** Most rows one search may ask for (one label each). */
export const MAX_SEARCH_LABELS = 100_000;
/** Largest sealed state a writer may store. */
export const MAX_STATE_BYTES = 16 * 1024 * 1024;

interface SubIndexSqlRow {
  source: string;
  key_epoch: number;
  index_epoch: number;
  key_capsule: Uint8Array;
  state: Uint8Array;
  version: number;
  capsule_id: string | null;
  capsule: Uint8Array | null;
  emergency_grant: Uint8Array | null;
}

const subIndex = (r: SubIndexSqlRow): SubIndex => ({
  source: r.source,
  keyEpoch: Number(r.key_epoch),
  indexEpoch: Number(r.index_epoch),
  keyCapsule: r.key_capsule,
  state: r.state,
  version: Number(r.version),
  ...(r.capsule_id !== null && r.capsule !== null && r.emergency_grant !== null
    ? { emergency: { capsuleId: r.capsule_id, capsule: r.capsule, grant: r.emergency_grant } }
    : {}),
});

const SUB_INDEX_SELECT = `SELECT w.source, w.key_epoch, w.index_epoch, w.key_capsule, w.state, w.version, g.capsule_id, c.capsule, g.emergency_grant
  FROM cloud_index_writers w
  LEFT JOIN cloud_index_key_grants g ON g.patient = w.patient AND g.category = w.category AND g.source = w.source AND g.key_epoch = w.key_epoch AND g.index_epoch = w.index_epoch
  LEFT JOIN cloud_emergency_capsules c ON c.capsule_id = g.capsule_id`;

/** Shape checks of an index write that need no database (the service calls it before the transaction). */
export function checkIndexWrite(patient: string, write: IndexWrite, recordCategories: ReadonlyMap<string, string>): void {
  if (
    !Number.isInteger(write.keyEpoch) ||
    write.keyEpoch < 1 ||
    !Number.isInteger(write.indexEpoch) ||
    write.indexEpoch < 1 ||
    !Number.isInteger(write.expectedVersion) ||
    write.expectedVersion < 0
  ) {
    throw new MalformedInputError('an index write needs positive epochs and a version of 0 or more');
  }
  if (write.state.length > MAX_STATE_BYTES) throw new MalformedInputError('a sealed index state is at most 16 MiB');
  if (write.keyCapsule !== undefined) {
    const { core } = pre.openRecordHeader(write.keyCapsule);
    if (core.category !== write.category || core.epoch !== write.keyEpoch)
      throw new MalformedInputError('the index key capsule is for another category or epoch');
  } else if (write.expectedVersion === 0) {
    throw new MalformedInputError('a new sub-index needs its key capsule');
  }
  if (write.keyEmergency !== undefined && write.keyCapsule !== undefined) {
    const grant = pre.decodeEmergencyGrant(write.keyEmergency.grant);
    const { core } = pre.openRecordHeader(write.keyCapsule);
    if (
      grant.patientId !== patient ||
      grant.recordId !== core.recordId ||
      grant.category !== core.category ||
      grant.epoch !== core.epoch ||
      Buffer.compare(grant.keyId, core.keyId) !== 0 ||
      Buffer.from(grant.delegationId).toString('hex') !== write.keyEmergency.capsuleId
    ) {
      throw new MalformedInputError("the index key's emergency grant does not match its capsule");
    }
  }
  for (const row of write.rows) {
    if (row.label.length !== sse.LABEL_BYTES || row.value.length !== sse.VALUE_BYTES)
      throw new MalformedInputError(`an index row is a ${sse.LABEL_BYTES}-byte label and a ${sse.VALUE_BYTES}-byte value`);
    if (recordCategories.get(row.recordId) !== write.category)
      throw new MalformedInputError(`an index row names record ${row.recordId}, which is not a '${write.category}' record of this upload`);
  }
}

/** SQL access for the searchable index. */
export class SearchStore {
  constructor(private readonly db: Database) {}

  /** The current index epoch of a patient's category (1 until a delegation of it is revoked). */
  async indexEpoch(patient: string, category: string, tx: Queryable = this.db, lock = false): Promise<number> {
    const row = (
      await tx.query<{ epoch: number }>(`SELECT epoch FROM cloud_index_epochs WHERE patient = $1 AND category = $2${lock ? ' FOR SHARE' : ''}`, [
        patient,
        category,
      ])
    ).rows[0];
    return row === undefined ? 1 : Number(row.epoch);
  }

  /** Moves the index epoch of a patient's category forward (at a revocation). */
  async advanceIndexEpoch(patient: string, category: string, tx: Queryable = this.db): Promise<void> {
    await tx.query(
      `INSERT INTO cloud_index_epochs (patient, category, epoch) VALUES ($1, $2, 2)
       ON CONFLICT (patient, category) DO UPDATE SET epoch = cloud_index_epochs.epoch + 1`,
      [patient, category],
    );
  }

  /** The sub-indexes of a patient's category (all writers and epochs), oldest first. */
  async subIndexes(patient: string, category: string): Promise<SubIndex[]> {
    const rows = await this.db.query<SubIndexSqlRow>(
      `${SUB_INDEX_SELECT} WHERE w.patient = $1 AND w.category = $2 ORDER BY w.created_at, w.source, w.key_epoch, w.index_epoch`,
      [patient, category],
    );
    return rows.rows.map(subIndex);
  }

  /** One writer's sub-index at given epochs, if it exists. */
  async subIndex(patient: string, category: string, source: string, keyEpoch: number, indexEpoch: number): Promise<SubIndex | undefined> {
    const rows = await this.db.query<SubIndexSqlRow>(
      `${SUB_INDEX_SELECT} WHERE w.patient = $1 AND w.category = $2 AND w.source = $3 AND w.key_epoch = $4 AND w.index_epoch = $5`,
      [patient, category, source, keyEpoch, indexEpoch],
    );
    return rows.rows[0] && subIndex(rows.rows[0]);
  }

  /**
   * Inside an upload's transaction: each write's rows if one of its records was new, and its state if the version
   * is still the one it built on. @throws ConflictError when another write of the sub-index committed first, or
   * the index epoch moved (the upload rolls back; the writer fetches the state again and retries).
   */
  async write(
    tx: Queryable,
    patient: string,
    source: string,
    writes: readonly IndexWrite[],
    newRecords: ReadonlySet<string>,
    storedCapsules: ReadonlySet<string>,
  ): Promise<void> {
    for (const write of writes) {
      // A write whose records all exist already is a retry of one that committed: nothing to add. Otherwise every
      // row is kept, so the state never counts an entry the cloud does not hold (a reader treats a missing entry
      // as withheld: search/reader.ts).
      const rows = write.rows;
      if (!rows.some((r) => newRecords.has(r.recordId))) continue;
      if ((await this.indexEpoch(patient, write.category, tx, true)) !== write.indexEpoch)
        throw new ConflictError(`the index epoch of '${write.category}' moved; fetch the index state again`);
      const key = [patient, write.category, source, write.keyEpoch, write.indexEpoch];
      const current = (
        await tx.query<{ version: number }>(
          'SELECT version FROM cloud_index_writers WHERE patient = $1 AND category = $2 AND source = $3 AND key_epoch = $4 AND index_epoch = $5 FOR UPDATE',
          key,
        )
      ).rows[0];
      if ((current === undefined ? 0 : Number(current.version)) !== write.expectedVersion)
        throw new ConflictError(`another write of the '${write.category}' index committed first; fetch its state again`);
      if (current === undefined) {
        const created = await tx.query(
          `INSERT INTO cloud_index_writers (patient, category, source, key_epoch, index_epoch, key_capsule, state, version) VALUES ($1, $2, $3, $4, $5, $6, $7, 1)
           ON CONFLICT DO NOTHING RETURNING version`,
          [...key, write.keyCapsule!, write.state],
        );
        if (created.rows.length === 0) throw new ConflictError(`another write created the '${write.category}' index first; fetch its state again`);
        if (write.keyEmergency !== undefined && storedCapsules.has(write.keyEmergency.capsuleId)) {
          await tx.query(
            'INSERT INTO cloud_index_key_grants (patient, category, source, key_epoch, index_epoch, capsule_id, emergency_grant) VALUES ($1, $2, $3, $4, $5, $6, $7)',
            [...key, write.keyEmergency.capsuleId, write.keyEmergency.grant],
          );
        }
      } else {
        await tx.query(
          'UPDATE cloud_index_writers SET state = $6, version = version + 1 WHERE patient = $1 AND category = $2 AND source = $3 AND key_epoch = $4 AND index_epoch = $5',
          [...key, write.state],
        );
      }
      // Columns as arrays (unnest), in chunks: a third to a half of multi-row VALUES' CPU time per row on both engines.
      for (let i = 0; i < rows.length; i += INDEX_ROWS_PER_STATEMENT) {
        const chunk = rows.slice(i, i + INDEX_ROWS_PER_STATEMENT);
        await tx.query('INSERT INTO cloud_index_rows (label, patient, category, value) SELECT l, $2, $3, v FROM unnest($1::bytea[], $4::bytea[]) AS x(l, v)', [
          chunk.map((r) => r.label),
          patient,
          write.category,
          chunk.map((r) => r.value),
        ]);
      }
    }
  }

  /** The values stored under `labels` in a patient's category, in order (undefined where there is none). */
  async lookup(patient: string, category: string, labels: readonly Uint8Array[]): Promise<Array<Uint8Array | undefined>> {
    if (labels.length === 0) return [];
    const found = await this.db.query<{ label: Uint8Array; value: Uint8Array }>(
      'SELECT label, value FROM cloud_index_rows WHERE label = ANY($1::bytea[]) AND patient = $2 AND category = $3',
      [labels, patient, category],
    );
    const byLabel = new Map(found.rows.map((r) => [Buffer.from(r.label).toString('hex'), r.value]));
    return labels.map((l) => byLabel.get(Buffer.from(l).toString('hex')));
  }
}

/** A gateway's own sub-index of one category at the current epochs (state absent: not written yet, version 0). */
export interface WriterIndexState {
  category: string;
  keyEpoch: number;
  indexEpoch: number;
  version: number;
  state?: Uint8Array;
}

/**
 * A sub-index as a reader receives it: the same fields, `keyCapsule` converted for the reader, and no emergency
 * grant (that is the cloud's to use).
 */
export type ReaderSubIndex = Omit<SubIndex, 'emergency'>;
