/**
 * The persisted audit log: entries, leaf hashes and signed checkpoints in the platform database, with an
 * in-memory RFC 9162 tree (tree.ts) for proofs.
 *
 * Appends are batched: `append` validates at once and queues; one flush at a time writes everything queued so
 * far in a single transaction, signs one checkpoint for the new size and resolves each caller with its index.
 * Order is the order of `append` calls in this process, and nothing is lost or reordered under concurrency:
 * the batch's indices come from `ledger_head`, read under a row lock (SELECT ... FOR UPDATE), so appenders in
 * other processes (services scaled out on PostgreSQL) queue behind it, and a failed transaction fails exactly
 * the entries of that batch, whose callers see the error.
 */
import { IntegrityError, LimitExceededError, MalformedInputError, UnsupportedError } from '@medshare/crypto';
import { migrate, type Database, type Queryable } from '@medshare/db';
import { buildAuditEvent, canonicalBytes, parseEntry, patientOf, type AuditEvent, type AuditEventInput } from './entry.ts';
import { hashLeaf } from './hashing.ts';
import { LEDGER_MIGRATIONS } from './schema.ts';
import { MerkleTree } from './tree.ts';
import { formatCheckpoint, parseNote, signNote, formatNote, type NoteSignature } from './note.ts';
import type { CheckpointSigner } from './keys.ts';

/** Where an appended entry landed. */
export interface AppendResult {
  index: number;
  leafHash: Buffer;
}

/** A stored entry with its position. */
export interface StoredEntry {
  index: number;
  event: AuditEvent;
  bytes: Buffer;
  leafHash: Buffer;
}

interface Pending {
  event: AuditEvent;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
}

/** Tuning of batched appends. */
export interface BatchOptions {
  /** Most entries written in one transaction. */
  maxBatch?: number;
  /** Most entries waiting; beyond it `append` fails fast instead of growing memory without bound. */
  maxQueued?: number;
  /**
   * Group commit under load: when the previous batch held more than one entry (appends are concurrent), the next
   * one waits this long for more to join, so that fewer, larger transactions carry the same entries (as
   * PostgreSQL's commit_delay with commit_siblings). A lone appender never waits, nor does a full batch. Default
   * 0: a batch takes what is queued by the end of the current tick.
   */
  lingerMs?: number;
}

const ROWS_PER_INSERT = 500;
const LOAD_PAGE = 20_000;

/** The audit log of one origin, persisted through @medshare/db. */
export class AuditLog {
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  /** Serialises everything that appends to `tree` (batch writes, catching up on other processes' entries). */
  private treeLock: Promise<unknown> = Promise.resolve();
  private tree = new MerkleTree();
  private readonly maxBatch: number;
  private readonly maxQueued: number;
  private readonly lingerMs: number;
  private lastBatchSize = 0;
  /** Ends a lingering wait early (the batch is full). */
  private wake: (() => void) | undefined;

  private constructor(
    readonly db: Database,
    readonly origin: string,
    private readonly signer: CheckpointSigner | undefined,
    options: BatchOptions,
  ) {
    this.maxBatch = options.maxBatch ?? 2_000;
    this.maxQueued = options.maxQueued ?? 100_000;
    this.lingerMs = options.lingerMs ?? 0;
  }

  /**
   * Opens (creating on first use) the log in `db`. The origin is the signer's key name, as C2SP recommends.
   * A database already holding a log of another origin or key is refused.
   */
  static async open(db: Database, signer: CheckpointSigner, options: BatchOptions = {}): Promise<AuditLog> {
    await migrate(db, 'ledger', LEDGER_MIGRATIONS);
    const origin = signer.verifier.name;
    await db.query(
      'INSERT INTO ledger_head (id, origin, log_vkey, size) VALUES (1, $1, $2, 0) ON CONFLICT (id) DO NOTHING',
      [origin, signer.verifier.vkey],
    );
    const head = (await db.query<{ origin: string; log_vkey: string }>('SELECT origin, log_vkey FROM ledger_head')).rows[0];
    if (head?.origin !== origin || head.log_vkey !== signer.verifier.vkey) {
      throw new IntegrityError(`this database holds the log ${head?.origin}, not ${origin} with this key`);
    }
    const log = new AuditLog(db, origin, signer, options);
    await log.catchUp(db);
    return log;
  }

  /**
   * Opens an existing log for reading only (proofs, entries, checkpoints), as an auditor or the CLI does: no
   * signing key is needed and nothing is written. `logVkey` is the stored log key, for callers that pin none.
   */
  static async openReader(db: Database): Promise<{ log: AuditLog; logVkey: string }> {
    const exists = await db.query<{ t: string | null }>("SELECT to_regclass('ledger_head')::text AS t");
    const row = exists.rows[0]?.t
      ? (await db.query<{ origin: string; log_vkey: string }>('SELECT origin, log_vkey FROM ledger_head WHERE id = 1')).rows[0]
      : undefined;
    if (row === undefined) throw new MalformedInputError('this database holds no audit log');
    const log = new AuditLog(db, row.origin, undefined, {});
    await log.catchUp(db);
    return { log, logVkey: row.log_vkey };
  }

  /** Number of entries this process knows are committed. */
  get size(): number {
    return this.tree.size;
  }

  /** Validates and queues one event; resolves once it is committed under a signed checkpoint. */
  append(input: AuditEventInput): Promise<AppendResult> {
    if (this.queue.length >= this.maxQueued) {
      return Promise.reject(new LimitExceededError(`more than ${this.maxQueued} entries waiting to be appended`));
    }
    if (this.signer === undefined) return Promise.reject(new UnsupportedError('this log was opened for reading only'));
    let event: AuditEvent;
    try {
      event = buildAuditEvent(input, 0);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      this.flushing ??= this.flushAll();
      if (this.queue.length >= this.maxBatch) this.wake?.();
    });
  }

  /** Waits until everything queued so far is committed (or failed). */
  async flush(): Promise<void> {
    while (this.flushing !== undefined) await this.flushing;
  }

  private async flushAll(): Promise<void> {
    try {
      do {
        await this.gather();
        const batch = this.queue.splice(0, this.maxBatch);
        this.lastBatchSize = batch.length;
        try {
          const results = await this.exclusive(() => this.writeBatch(batch.map((p) => p.event)));
          batch.forEach((pending, i) => pending.resolve(results[i]!));
        } catch (error) {
          batch.forEach((pending) => pending.reject(error));
          // The transaction rolled back; the tree may hold leaves that were never committed.
          await this.exclusive(async () => {
            this.tree = new MerkleTree();
            await this.catchUp(this.db);
          }).catch(() => undefined);
        }
      } while (this.queue.length > 0);
    } finally {
      this.flushing = undefined;
    }
  }

  /** Lets the current tick's appends join the next batch, and under concurrent load those of the next few ms. */
  private async gather(): Promise<void> {
    if (this.lingerMs === 0 || this.lastBatchSize <= 1 || this.queue.length >= this.maxBatch) {
      await new Promise((resolve) => setImmediate(resolve));
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.wake!(), this.lingerMs);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private async writeBatch(events: AuditEvent[]): Promise<AppendResult[]> {
    return this.db.transaction(async (tx) => {
      const head = (await tx.query<{ size: number }>('SELECT size FROM ledger_head WHERE id = 1 FOR UPDATE')).rows[0];
      if (head === undefined) throw new IntegrityError('the ledger head row is missing');
      await this.catchUp(tx, head.size);
      const start = head.size;
      const rows = events.map((event, i) => {
        const bytes = canonicalBytes({ ...event, id: String(start + i) });
        const leafHash = hashLeaf(bytes);
        this.tree.append(leafHash);
        return { index: start + i, text: bytes.toString('utf8'), leafHash, patient: patientOf(event) ?? '' };
      });
      for (let offset = 0; offset < rows.length; offset += ROWS_PER_INSERT) {
        const chunk = rows.slice(offset, offset + ROWS_PER_INSERT);
        const params = chunk.flatMap((r) => [r.index, r.text, r.leafHash, r.patient]);
        const values = chunk.map((_, i) => `($${4 * i + 1}, $${4 * i + 2}, $${4 * i + 3}, $${4 * i + 4})`).join(', ');
        await tx.query(`INSERT INTO ledger_entries (idx, entry, leaf_hash, patient) VALUES ${values}`, params);
      }
      const size = start + rows.length;
      await tx.query('UPDATE ledger_head SET size = $1 WHERE id = 1', [size]);
      await tx.query('INSERT INTO ledger_checkpoints (size, note) VALUES ($1, $2)', [size, this.signCheckpoint(size)]);
      return rows.map((r) => ({ index: r.index, leafHash: r.leafHash }));
    });
  }

  private signCheckpoint(size: number): string {
    if (this.signer === undefined) throw new UnsupportedError('this log was opened for reading only');
    const body = formatCheckpoint({ origin: this.origin, size, rootHash: this.tree.rootHash(size) });
    return signNote(body, [this.signer], Math.floor(Date.now() / 1000));
  }

  /** Loads leaf hashes committed by others (or before this process started) into the tree. */
  private async catchUp(q: Queryable, upTo?: number): Promise<void> {
    const target = upTo ?? (await q.query<{ size: number }>('SELECT size FROM ledger_head WHERE id = 1')).rows[0]?.size ?? 0;
    while (this.tree.size < target) {
      const page = await q.query<{ idx: number; leaf_hash: Uint8Array }>(
        'SELECT idx, leaf_hash FROM ledger_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx',
        [this.tree.size, Math.min(target, this.tree.size + LOAD_PAGE)],
      );
      if (page.rows.length === 0) throw new IntegrityError(`entry ${this.tree.size} is missing from the log`);
      for (const row of page.rows) {
        if (row.idx !== this.tree.size) throw new IntegrityError(`entry ${this.tree.size} is missing from the log`);
        this.tree.append(row.leaf_hash);
      }
    }
  }

  /** Picks up entries other processes appended since. */
  async refresh(): Promise<void> {
    await this.flush();
    await this.exclusive(() => this.catchUp(this.db));
  }

  /** Runs `work` after every earlier tree-changing operation has finished. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.treeLock.then(work);
    this.treeLock = run.catch(() => undefined);
    return run;
  }

  /** The signed checkpoint note of `size` (default: the latest), with every cosignature collected so far. */
  async checkpoint(size?: number): Promise<string> {
    const result =
      size === undefined
        ? await this.db.query<{ note: string }>('SELECT note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1')
        : await this.db.query<{ note: string }>('SELECT note FROM ledger_checkpoints WHERE size = $1', [size]);
    const note = result.rows[0]?.note;
    if (note !== undefined) return note;
    if ((size ?? 0) === 0 && this.signer !== undefined) return this.signCheckpoint(0);
    throw new MalformedInputError(`no checkpoint was signed at size ${size ?? 0}`);
  }

  /** Adds witness cosignature lines to the stored checkpoint of `size` (existing lines are kept, duplicates skipped). */
  async addCosignatures(size: number, cosignatures: readonly NoteSignature[]): Promise<string> {
    return this.db.transaction(async (tx) => {
      const row = (await tx.query<{ note: string }>('SELECT note FROM ledger_checkpoints WHERE size = $1 FOR UPDATE', [size])).rows[0];
      if (row === undefined) throw new MalformedInputError(`no checkpoint was signed at size ${size}`);
      const { body, signatures } = parseNote(row.note);
      const fresh = cosignatures.filter((c) => !signatures.some((s) => s.signature.equals(c.signature)));
      const note = formatNote(body, [...signatures, ...fresh]);
      await tx.query('UPDATE ledger_checkpoints SET note = $1 WHERE size = $2', [note, size]);
      return note;
    });
  }

  /** The audit path of entry `index` in the tree of `size` leaves (default: the current size). */
  inclusionProof(index: number, size: number = this.size): Buffer[] {
    return this.tree.inclusionProof(index, size);
  }

  /** The consistency proof from size `first` to `second` (default: the current size). */
  consistencyProof(first: number, second: number = this.size): Buffer[] {
    return this.tree.consistencyProof(first, second);
  }

  /** The root hash at `size` (default: the current size). */
  rootHash(size: number = this.size): Buffer {
    return this.tree.rootHash(size);
  }

  /** One stored entry, parsed. */
  async entry(index: number): Promise<StoredEntry> {
    if (!Number.isSafeInteger(index) || index < 0) throw new MalformedInputError('an entry id is a non-negative integer');
    const row = (await this.db.query<EntryRow>('SELECT idx, entry, leaf_hash FROM ledger_entries WHERE idx = $1', [index])).rows[0];
    if (row === undefined) throw new MalformedInputError(`no entry ${index} in the log`);
    return toStoredEntry(row);
  }

  /** Every entry about one pseudonymous patient, oldest first (at most `limit`). */
  async entriesForPatient(patient: string, limit = 10_000): Promise<StoredEntry[]> {
    const rows = await this.db.query<EntryRow>(
      'SELECT idx, entry, leaf_hash FROM ledger_entries WHERE patient = $1 ORDER BY idx LIMIT $2',
      [patient, limit],
    );
    return rows.rows.map(toStoredEntry);
  }
}

interface EntryRow {
  idx: number;
  entry: string;
  leaf_hash: Uint8Array;
}

function toStoredEntry(row: EntryRow): StoredEntry {
  const bytes = Buffer.from(row.entry, 'utf8');
  return { index: row.idx, event: parseEntry(bytes), bytes, leafHash: Buffer.from(row.leaf_hash) };
}
