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
 *
 * Never signing a forged history (docs/ledger.md §Trust model): the database is the party under audit, so on open
 * the log recomputes every leaf hash from the stored entries (log.ts → verify.ts `auditStoredLog`) and checks the
 * tree against the stored signed checkpoints and against the last checkpoint held *outside* the database (a
 * `TrustedCheckpoint`: a file in the service's data directory, written after every commit). Before every
 * signature it re-reads that checkpoint and checks the tree still extends it, and entries other processes
 * appended are recomputed the same way. Any mismatch halts the log: it refuses to sign or append, calls
 * `onAlarm` once (the service logs it), counts it in `health()` and the health route fails.
 */
import { IntegrityError, LimitExceededError, MalformedInputError, UnavailableError, UnsupportedError } from '@medshare/crypto';
import { migrate, type Database, type Queryable } from '@medshare/db';
import { buildAuditEvent, canonicalBytes, parseEntry, patientOf, type AuditEvent, type AuditEventInput } from './entry.ts';
import { hashLeaf } from './hashing.ts';
import { LEDGER_MIGRATIONS } from './schema.ts';
import { MerkleTree, type TreeChunk } from './tree.ts';
import { formatCheckpoint, parseCheckpoint, parseNote, signNote, formatNote, type NoteSignature } from './note.ts';
import { auditStoredLog, checkEntryRow, defaultQuorum, scanEntries, type EntryRow, type Fault } from './verify.ts';
import { verifyCheckpointNote } from './witness.ts';
import { WitnessConflictError } from './errors.ts';
import { parseVerifierKey, type CheckpointSigner, type CheckpointVerifier } from './keys.ts';
import type { TrustedCheckpoint } from './trusted.ts';
import type { Cosigner } from './cosigner.ts';

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

/** How a log is opened for appending. */
export interface LogOptions extends BatchOptions {
  /** The last checkpoint kept outside the database, checked on open and before every signature, and advanced after each commit. */
  trusted?: TrustedCheckpoint;
  /** The witnesses that cosign every checkpoint (in the background, after each commit). */
  cosigners?: readonly Cosigner[];
  /** Cosignatures a checkpoint needs to count as witnessed; default: a majority of `cosigners`. */
  quorum?: number;
  /** Called once when the log finds tampering and halts (the service logs it). */
  onAlarm?: (alarm: Fault) => void;
  /** Called when a witness refuses or cannot be reached (the checkpoint stays below quorum until a retry or the next one). */
  onCosignFailure?: (witness: string, error: unknown) => void;
  /**
   * While the latest checkpoint lacks the quorum's cosignatures (a witness down), the witnesses are asked again after
   * this long, doubling up to 16 times it (at most a minute) between attempts (default 5 s), so a witness that comes
   * back cosigns without waiting for the next append.
   */
  cosignRetryMs?: number;
  /**
   * Under load, at most one cosigning round starts in this many milliseconds (default 0: a round after every commit).
   * A round always asks for the latest checkpoint, so the commits of the interval join the next round; after a
   * quiet spell the first commit's round starts at once.
   */
  cosignIntervalMs?: number;
  /**
   * When the full audit of the stored entries runs on open: 'blocking' (default: `open` resolves after it) or
   * 'background' (`open` resolves once the persisted tree matches the signed and the trusted checkpoint, which is
   * all signing relies on; `audited()` resolves when every entry has been recomputed). See `load`.
   */
  audit?: 'blocking' | 'background';
}

/** What the health check reports: whether the log is consistent, and its counters (the metrics). */
export interface LedgerHealth {
  ok: boolean;
  size: number;
  /** The tampering that halted the log, with the first bad entry index. */
  alarm?: Fault;
  /** Times tampering was detected (0 or 1: the log halts at the first). */
  alarms: number;
  /** Cosignature requests that failed. */
  cosignFailures: number;
  /** Writes of the checkpoint outside the database that failed (it then lags behind, still a prefix). */
  trustedSaveFailures: number;
  /** The largest tree size whose checkpoint carries the quorum's cosignatures (0 before any). */
  witnessedSize: number;
  quorum: number;
}

const ROWS_PER_INSERT = 500;
const CHUNKS_PER_INSERT = 100;

/** `items` in consecutive slices of at most `size`. */
const slices = <T>(items: readonly T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));

/** An INSERT of entry rows, its parameters numbered from `offset` + 1. */
function entriesInsert(
  rows: ReadonlyArray<{ index: number; text: string; leafHash: Buffer; patient: string }>,
  offset: number,
): { sql: string; params: unknown[] } {
  const values = rows.map((_, i) => `($${offset + 4 * i + 1}, $${offset + 4 * i + 2}, $${offset + 4 * i + 3}, $${offset + 4 * i + 4})`).join(', ');
  return {
    sql: `INSERT INTO ledger_entries (idx, entry, leaf_hash, patient) VALUES ${values}`,
    params: rows.flatMap((r) => [r.index, r.text, r.leafHash, r.patient]),
  };
}

/** An upsert of tree chunks, its parameters numbered from `offset` + 1; hashes as hex text, decoded by the database (cheaper than PGlite's bytea parameters). */
function treeInsert(chunks: readonly TreeChunk[], offset: number): { sql: string; params: unknown[] } {
  const values = chunks.map((_, i) => `($${offset + 3 * i + 1}, $${offset + 3 * i + 2}, decode($${offset + 3 * i + 3}, 'hex'))`).join(', ');
  return {
    sql: `INSERT INTO ledger_tree (level, chunk, hashes) VALUES ${values} ON CONFLICT (level, chunk) DO UPDATE SET hashes = EXCLUDED.hashes`,
    params: chunks.flatMap((c) => [c.level, c.chunk, Buffer.from(c.hashes.buffer, c.hashes.byteOffset, c.hashes.length).toString('hex')]),
  };
}

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
  private alarm: Fault | undefined;
  /** The tree size last matched against (or signed into) the checkpoint held outside the database: entries below it are vouched for. */
  private trustedSize = 0;
  private cosignFailures = 0;
  private trustedSaveFailures = 0;
  private witnessedSize = 0;
  /** The size each witness last cosigned, as far as this process knows (corrected by the witness's 409 answers). */
  private readonly witnessSizes = new Map<string, number>();
  private witnessing: Promise<void> = Promise.resolve();
  /** A cosigning round is queued and not started: a later request joins it (it cosigns the latest checkpoint when it starts). */
  private cosignQueued = false;
  /** When the last cosigning round started (cosignIntervalMs). */
  private lastCosignMs = Number.NEGATIVE_INFINITY;
  /** The pending retry of a cosigning round below quorum, and the delay of the next one (doubles while they fail). */
  private cosignRetry: NodeJS.Timeout | undefined;
  private cosignRetryDelay: number;
  private closed = false;
  private readonly waiters: { size: number; resolve: () => void }[] = [];
  /** The latest checkpoint the quorum cosigned, as this process holds it (rows deleted from the database cannot hide it). */
  private witnessedNote: string | undefined;
  /** Entry indices by patient, from the verified entries themselves (never from the stored patient column). */
  private patientIndex = new Map<string, number[]>();
  private readonly indexPatient = (index: number, patient: string): void => {
    const list = this.patientIndex.get(patient);
    if (list === undefined) this.patientIndex.set(patient, [index]);
    else list.push(index);
  };
  /** The full audit of the entries stored before open (see `load`). */
  private fullAudit: Promise<void> | undefined;
  private fullAuditError: unknown;
  readonly quorum: number;

  private constructor(
    readonly db: Database,
    readonly origin: string,
    private readonly signer: CheckpointSigner | undefined,
    private readonly options: LogOptions,
  ) {
    this.maxBatch = options.maxBatch ?? 2_000;
    this.maxQueued = options.maxQueued ?? 100_000;
    this.lingerMs = options.lingerMs ?? 0;
    this.quorum = options.quorum ?? defaultQuorum(options.cosigners?.length ?? 0);
    this.cosignRetryDelay = options.cosignRetryMs ?? 5_000;
  }

  /**
   * Opens (creating on first use) the log in `db`. The origin is the signer's key name, as C2SP recommends.
   * A database already holding a log of another origin or key is refused.
   */
  static async open(db: Database, signer: CheckpointSigner, options: LogOptions = {}): Promise<AuditLog> {
    await migrate(db, 'ledger', LEDGER_MIGRATIONS);
    const origin = signer.verifier.name;
    await db.query('INSERT INTO ledger_head (id, origin, log_vkey, size) VALUES (1, $1, $2, 0) ON CONFLICT (id) DO NOTHING', [origin, signer.verifier.vkey]);
    const head = (await db.query<{ origin: string; log_vkey: string }>('SELECT origin, log_vkey FROM ledger_head')).rows[0];
    if (head?.origin !== origin || head.log_vkey !== signer.verifier.vkey) {
      throw new IntegrityError(`this database holds the log ${head?.origin}, not ${origin} with this key`);
    }
    const log = new AuditLog(db, origin, signer, options);
    await log.load(signer.verifier);
    // Witnesses see the current checkpoint at once (a restarted log learns where each of them is).
    if (log.size > 0) log.cosignLater();
    else log.settleWaiters(0);
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
    const log = new AuditLog(db, row.origin, undefined, { audit: 'background' });
    // The reader writes nothing and starts no background work (the CLI closes the database when done): the full
    // audit runs only if a patient query needs its index (entriesForPatient).
    await log.load(undefined);
    return { log, logVkey: row.log_vkey };
  }

  /**
   * Opens the persisted tree (ledger_tree: every level in chunks, written with each batch) and checks it before
   * anything is signed: its root at the head's size must be that of the latest stored checkpoint signed by the
   * log key, and it must extend the checkpoint held outside the database. That is all a new signature depends on
   * (a new root is made of the tree's right edge and the new leaves), so a forged history is never signed. The
   * full audit — every leaf hash recomputed from its entry, every checkpoint checked, the persisted tree compared
   * node by node with the recomputed one — follows (`audited`): before `open` resolves, or in the background. A
   * database without a persisted tree (created before it existed) is audited in full first and the tree stored.
   * A mismatch halts the log (see `health`).
   */
  private async load(verifier: CheckpointVerifier | undefined): Promise<void> {
    this.patientIndex = new Map();
    this.fullAudit = undefined;
    this.fullAuditError = undefined;
    const head = (await this.db.query<{ size: number; log_vkey: string }>('SELECT size, log_vkey FROM ledger_head WHERE id = 1')).rows[0];
    // As hex text: decoding it natively is ~20× cheaper than PGlite's bytea parsing (64 MiB at 10^6 entries).
    const chunks = (await this.db.query<{ level: number; chunk: number; hex: string }>("SELECT level, chunk, encode(hashes, 'hex') AS hex FROM ledger_tree"))
      .rows;
    const logKey = verifier ?? parseVerifierKey(head?.log_vkey ?? '');
    const trusted = verifier === undefined ? undefined : await this.options.trusted?.load();
    if (chunks.length === 0 && (head?.size ?? 0) > 0) {
      // No persisted tree yet: recompute it from the entries, then store it (a reader stores nothing).
      const { report, tree } = await auditStoredLog(this.db, { log: logKey, quorum: 0, external: trusted === undefined ? [] : [trusted] }, this.indexPatient);
      this.tree = tree;
      this.trustedSize = tree.size;
      if (!report.ok) this.raise({ index: report.firstBadIndex ?? tree.size, problem: report.problem ?? 'the stored log is inconsistent' });
      else if (verifier !== undefined) await this.db.transaction((tx) => this.saveChunks(tx, tree.chunksSince(0)));
      this.fullAudit = Promise.resolve();
      return;
    }
    let tree: MerkleTree;
    try {
      tree = MerkleTree.fromChunks(chunks.map((c) => ({ level: c.level, chunk: Number(c.chunk), hashes: Buffer.from(c.hex, 'hex') })));
    } catch (error) {
      tree = new MerkleTree();
      this.raise({ index: 0, problem: `the stored Merkle tree: ${error instanceof Error ? error.message : 'unreadable'}` });
    }
    this.tree = tree;
    this.trustedSize = tree.size;
    const fault = await this.checkLoadedTree(logKey, head?.size ?? 0, trusted);
    const size = tree.size;
    this.startAudit = () => this.auditEntries(logKey, trusted, size);
    // A reader audits only on demand. A writer audits now: awaited unless in background, and then first, so
    // that the alarm names the first bad entry rather than only the tree that no longer matches.
    if (verifier !== undefined) {
      if (this.options.audit === 'background') this.audited().catch(() => undefined);
      else await this.audited();
    }
    if (fault !== undefined) this.raise(fault);
  }

  /** Starts the full audit (once). */
  private startAudit: (() => Promise<void>) | undefined;

  /** Resolves once every entry stored before open has been recomputed and checked (a fault halts the log). */
  async audited(): Promise<void> {
    if (this.fullAudit === undefined) {
      const start = this.startAudit;
      this.startAudit = undefined;
      this.fullAudit =
        start === undefined
          ? Promise.resolve()
          : start().catch((error) => {
              this.fullAuditError = error;
            });
    }
    await this.fullAudit;
    if (this.fullAuditError !== undefined) throw new UnavailableError('the audit of the stored log could not complete');
  }

  /** The loaded tree against the head, the latest signed checkpoint and the checkpoint held outside the database. */
  private async checkLoadedTree(logKey: CheckpointVerifier, headSize: number, trusted: string | undefined): Promise<Fault | undefined> {
    if (this.tree.size !== headSize) {
      return { index: Math.min(this.tree.size, headSize), problem: `the stored Merkle tree has ${this.tree.size} leaves, the head says ${headSize}` };
    }
    if (headSize > 0) {
      const latest = (await this.db.query<{ size: number; note: string }>('SELECT size, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1')).rows[0];
      let checkpoint;
      try {
        checkpoint = latest === undefined ? undefined : verifyCheckpointNote(latest.note, logKey);
      } catch (error) {
        return { index: 0, problem: `the latest checkpoint: ${error instanceof Error ? error.message : 'unreadable'}` };
      }
      if (checkpoint === undefined || checkpoint.size !== headSize) {
        const covered = checkpoint?.size ?? 0;
        return { index: Math.min(covered, headSize), problem: `entries from ${Math.min(covered, headSize)} are not covered by the latest signed checkpoint` };
      }
      if (!this.tree.rootHash(headSize).equals(checkpoint.rootHash)) {
        return { index: 0, problem: `the stored tree does not match the signed checkpoint ${headSize}` };
      }
    }
    if (trusted === undefined) return undefined;
    return this.compareTrusted(trusted, logKey);
  }

  /** The full audit of the first `size` entries (see `load`); builds the patient index from the entries. */
  private async auditEntries(logKey: CheckpointVerifier, trusted: string | undefined, size: number): Promise<void> {
    const scanned = new Map<string, number[]>();
    const { report, tree } = await auditStoredLog(
      this.db,
      { log: logKey, quorum: 0, external: trusted === undefined ? [] : [trusted] },
      (index, patient) => {
        const list = scanned.get(patient);
        if (list === undefined) scanned.set(patient, [index]);
        else list.push(index);
      },
      size,
    );
    if (!report.ok) this.raise({ index: report.firstBadIndex ?? tree.size, problem: report.problem ?? 'the stored log is inconsistent' });
    const difference = tree.firstDifference(this.tree);
    if (difference !== undefined) {
      this.raise(
        difference.level === 0
          ? { index: difference.index, problem: `entry ${difference.index} does not match the stored Merkle tree` }
          : {
              index: difference.index * 2 ** difference.level,
              problem: `the stored Merkle tree's node ${difference.index} at level ${difference.level} does not match the entries`,
            },
      );
    }
    // Entries appended since open were indexed as they came; the audited ones go first.
    for (const [patient, indices] of scanned) this.patientIndex.set(patient, [...indices, ...(this.patientIndex.get(patient) ?? [])]);
  }

  /** Stores tree chunks (inside the batch's transaction). */
  private async saveChunks(tx: Queryable, chunks: readonly TreeChunk[]): Promise<void> {
    for (const part of slices(chunks, CHUNKS_PER_INSERT)) {
      const { sql, params } = treeInsert(part, 0);
      await tx.query(sql, params);
    }
  }

  /** Halts the log on the first tampering found: nothing is signed or appended from now on. */
  private raise(fault: Fault): void {
    if (this.alarm !== undefined) return;
    this.alarm = fault;
    this.options.onAlarm?.(fault);
  }

  /** Throws when the log is halted. */
  private checkHealthy(): void {
    if (this.alarm !== undefined) {
      throw new IntegrityError(`the audit log refuses to sign: entry ${this.alarm.index}: ${this.alarm.problem}`);
    }
  }

  /** The health check and metrics: not ok once tampering was found. */
  health(): LedgerHealth {
    return {
      ok: this.alarm === undefined,
      size: this.size,
      ...(this.alarm === undefined ? {} : { alarm: this.alarm }),
      alarms: this.alarm === undefined ? 0 : 1,
      cosignFailures: this.cosignFailures,
      trustedSaveFailures: this.trustedSaveFailures,
      witnessedSize: this.witnessedSize,
      quorum: this.quorum,
    };
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
      this.checkHealthy();
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
    await this.witnessing;
  }

  private async flushAll(): Promise<void> {
    try {
      do {
        await this.gather();
        const batch = this.queue.splice(0, this.maxBatch);
        this.lastBatchSize = batch.length;
        try {
          const { results, note } = await this.exclusive(() => this.writeBatch(batch.map((p) => p.event)));
          // Only a committed checkpoint moves the copy outside the database (a rolled-back one must not), and before
          // the callers learn of it, so another process never loads entries the copy does not yet vouch for. A failed
          // write leaves an older copy, which the tree still extends: counted, not fatal to the committed batch.
          await this.options.trusted?.save(note).catch(() => (this.trustedSaveFailures += 1));
          batch.forEach((pending, i) => pending.resolve(results[i]!));
          this.cosignLater();
        } catch (error) {
          batch.forEach((pending) => pending.reject(error));
          // The transaction rolled back; the tree may hold leaves that were never committed.
          if (this.alarm === undefined && this.signer !== undefined) {
            const verifier = this.signer.verifier;
            await this.exclusive(() => this.load(verifier)).catch(() => undefined);
          }
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

  private async writeBatch(events: AuditEvent[]): Promise<{ results: AppendResult[]; note: string }> {
    return this.db.transaction(async (tx) => {
      this.checkHealthy();
      const head = (await tx.query<{ size: number }>('SELECT size FROM ledger_head WHERE id = 1 FOR UPDATE')).rows[0];
      if (head === undefined) throw new IntegrityError('the ledger head row is missing');
      await this.catchUp(tx, head.size);
      await this.checkTrusted();
      const start = head.size;
      const rows = events.map((event, i) => {
        const bytes = canonicalBytes({ ...event, id: String(start + i) });
        const leafHash = hashLeaf(bytes);
        this.tree.append(leafHash);
        return { index: start + i, text: bytes.toString('utf8'), leafHash, patient: patientOf(event) ?? '' };
      });
      // Indexed only once the rows are built; a rolled-back batch reloads everything (flushAll).
      rows.forEach((r) => this.indexPatient(r.index, r.patient));
      const size = start + rows.length;
      const entryParts = slices(rows, ROWS_PER_INSERT);
      const treeParts = slices(this.tree.chunksSince(start), CHUNKS_PER_INSERT);
      for (const part of entryParts.slice(0, -1)) {
        const { sql, params } = entriesInsert(part, 0);
        await tx.query(sql, params);
      }
      await this.saveChunks(tx, treeParts.slice(0, -1).flat());
      const note = this.signCheckpoint(size);
      this.trustedSize = size;
      // One statement (fewer round trips; a small batch has no other): the last entries and tree chunks, the head, the checkpoint.
      const entries = entriesInsert(entryParts.at(-1)!, 2);
      const tree = treeInsert(treeParts.at(-1)!, 2 + entries.params.length);
      await tx.query(
        `WITH entries AS (${entries.sql}), tree AS (${tree.sql}), head AS (UPDATE ledger_head SET size = $1 WHERE id = 1)
         INSERT INTO ledger_checkpoints (size, note) VALUES ($1, $2)`,
        [size, note, ...entries.params, ...tree.params],
      );
      return { results: rows.map((r) => ({ index: r.index, leafHash: r.leafHash })), note };
    });
  }

  /** Before a signature: the tree must extend the checkpoint held outside the database (another process may have moved it). */
  private async checkTrusted(): Promise<void> {
    const note = await this.options.trusted?.load();
    if (note === undefined || this.signer === undefined) return;
    const fault = this.compareTrusted(note, this.signer.verifier);
    if (fault !== undefined) {
      this.raise(fault);
      this.checkHealthy();
    }
  }

  /** Whether the tree extends the checkpoint held outside the database; the fault otherwise. */
  private compareTrusted(note: string, logKey: CheckpointVerifier): Fault | undefined {
    let fault: Fault | undefined;
    try {
      const trusted = verifyCheckpointNote(note, logKey);
      if (trusted.size > this.tree.size) {
        fault = { index: this.tree.size, problem: `the checkpoint held outside the database covers ${trusted.size} entries, the database ${this.tree.size}` };
      } else if (!this.tree.rootHash(trusted.size).equals(trusted.rootHash)) {
        // What this process had vouched for matched before: the fault is in what it loaded since.
        const from = Math.min(this.trustedSize, trusted.size);
        fault = { index: from, problem: `entries ${from}..${trusted.size - 1} do not match the checkpoint held outside the database` };
      }
    } catch (error) {
      fault = { index: 0, problem: `the checkpoint held outside the database: ${error instanceof Error ? error.message : 'unreadable'}` };
    }
    return fault;
  }

  private signCheckpoint(size: number): string {
    if (this.signer === undefined) throw new UnsupportedError('this log was opened for reading only');
    const body = formatCheckpoint({ origin: this.origin, size, rootHash: this.tree.rootHash(size) });
    return signNote(body, [this.signer], Math.floor(Date.now() / 1000));
  }

  /** Loads entries committed by other processes into the tree, recomputing each leaf hash; a bad one halts the log. */
  private async catchUp(q: Queryable, upTo?: number): Promise<void> {
    const target = upTo ?? (await q.query<{ size: number }>('SELECT size FROM ledger_head WHERE id = 1')).rows[0]?.size ?? 0;
    if (this.tree.size >= target) return;
    const { fault } = await scanEntries(q, this.tree, target, this.indexPatient);
    if (fault !== undefined) {
      this.raise(fault);
      this.checkHealthy();
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

  /**
   * Has the configured witnesses cosign the latest checkpoint, after the current round (failures are counted, not
   * thrown); a round that leaves it below quorum schedules a retry. `onlyBelowQuorum`: skip the round if, by its turn,
   * the latest checkpoint already carries the quorum (a retry, a request on demand).
   */
  private cosignLater(onlyBelowQuorum = false): void {
    const cosigners = this.options.cosigners ?? [];
    if (this.alarm !== undefined || this.closed) return; // a halted log asks no one to vouch for it
    if (cosigners.length === 0) {
      this.witnessedNote = undefined;
      this.settleWaiters(this.size);
      return;
    }
    if (this.cosignQueued) return;
    this.cosignQueued = true;
    this.witnessing = this.witnessing.then(async () => {
      const wait = this.lastCosignMs + (this.options.cosignIntervalMs ?? 0) - Date.now();
      if (wait > 0 && !this.closed) await new Promise((resolve) => setTimeout(resolve, wait));
      this.cosignQueued = false;
      this.lastCosignMs = Date.now();
      if (onlyBelowQuorum && this.witnessedSize >= this.size) return;
      await this.cosign(cosigners, { strict: false }).catch(() => undefined);
      this.retryBelowQuorum();
    });
  }

  /** Schedules another cosigning round while the latest checkpoint is below quorum (backing off), or resets the delay. */
  private retryBelowQuorum(): void {
    const base = this.options.cosignRetryMs ?? 5_000;
    if (this.witnessedSize >= this.size) {
      this.cosignRetryDelay = base;
      return;
    }
    if (this.cosignRetry !== undefined || this.closed || this.alarm !== undefined) return;
    this.cosignRetry = setTimeout(() => {
      this.cosignRetry = undefined;
      this.cosignLater(true);
    }, this.cosignRetryDelay);
    this.cosignRetry.unref();
    // Backing off to 16 times the base delay, at most a minute.
    this.cosignRetryDelay = Math.min(this.cosignRetryDelay * 2, Math.max(base, Math.min(60_000, base * 16)));
  }

  /**
   * Asks the witnesses again now if the latest checkpoint lacks the quorum's cosignatures (on demand: a gateway
   * completing a pending receipt); resolves after that round.
   */
  async rewitness(): Promise<void> {
    this.cosignLater(true);
    await this.witnessing;
  }

  /** Stops retrying cosignatures and waits for what is queued (the database is the caller's to close). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.cosignRetry);
    this.cosignRetry = undefined;
    await this.flush();
  }

  /**
   * Asks each of `cosigners` to cosign the latest checkpoint, each with a consistency proof from the size it last
   * cosigned (learnt from its 409 answer when unknown), verifies each cosignature and stores those obtained.
   * Returns the checkpoint note with them. With `strict`, the first refusal is thrown (after storing the others);
   * otherwise refusals are counted in `health().cosignFailures` and reported to `onCosignFailure`.
   */
  async cosign(cosigners: readonly Cosigner[], { strict }: { strict: boolean }): Promise<string> {
    const note = await this.checkpoint();
    const { size } = parseCheckpoint(parseNote(note).body);
    const settled = await Promise.allSettled(cosigners.map((cosigner) => this.requestCosignature(cosigner, note, size)));
    const obtained = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const stored = obtained.length > 0 ? await this.addCosignatures(size, obtained, note) : note;
    if (obtained.length >= this.quorum && cosigners === this.options.cosigners && size >= this.witnessedSize) {
      this.witnessedNote = stored;
      this.settleWaiters(size);
    }
    settled.forEach((result, i) => {
      if (result.status === 'rejected') {
        this.cosignFailures += 1;
        this.options.onCosignFailure?.(cosigners[i]!.verifier.name, result.reason);
      }
    });
    const refusal = settled.find((result) => result.status === 'rejected');
    if (strict && refusal !== undefined) throw (refusal as PromiseRejectedResult).reason;
    return stored;
  }

  private async requestCosignature(cosigner: Cosigner, note: string, size: number): Promise<NoteSignature> {
    const name = cosigner.verifier.name;
    const { body } = parseNote(note);
    for (let attempt = 0; ; attempt++) {
      const oldSize = this.witnessSizes.get(name) ?? 0;
      if (oldSize > size) throw new IntegrityError(`the witness ${name} has cosigned size ${oldSize}, beyond this log's ${size}`);
      try {
        const cosignature = await cosigner.addCheckpoint({ oldSize, consistencyProof: this.consistencyProof(oldSize, size), note });
        if (cosignature.name !== name || cosigner.verifier.verify(body, cosignature.signature) === undefined) {
          throw new IntegrityError(`the witness ${name} returned an invalid cosignature`);
        }
        this.witnessSizes.set(name, size);
        return cosignature;
      } catch (error) {
        // The first request to a witness learns its size from the 409 answer, as c2sp.org/tlog-witness intends.
        if (!(error instanceof WitnessConflictError) || attempt > 0) throw error;
        this.witnessSizes.set(name, error.witnessSize);
      }
    }
  }

  private settleWaiters(size: number): void {
    this.witnessedSize = Math.max(this.witnessedSize, size);
    for (const waiter of this.waiters.filter((w) => w.size <= this.witnessedSize)) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }

  /**
   * Resolves with the latest witnessed checkpoint note once one of at least `size` carries the quorum's
   * cosignatures (at once without witnesses). @throws UnavailableError after `timeoutMs` without one.
   */
  async witnessedCheckpoint(size: number, timeoutMs = 10_000): Promise<string> {
    if (this.witnessedSize < size) {
      await new Promise<void>((resolve, reject) => {
        const waiter = {
          size,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(new UnavailableError(`no checkpoint of size ${size} or more reached the witness quorum (${this.quorum}) in time`));
        }, timeoutMs);
        this.waiters.push(waiter);
      });
    }
    return this.witnessedNote ?? this.checkpoint(this.witnessedSize);
  }

  /**
   * Adds witness cosignature lines to the stored checkpoint of `size` (existing lines are kept, duplicates skipped).
   * `seen`: the note as the caller read it; if it is still the stored one, one compare-and-swap UPDATE writes the
   * lines (no transaction). Otherwise (another round added lines meanwhile) the note is re-read under a row lock.
   */
  async addCosignatures(size: number, cosignatures: readonly NoteSignature[], seen?: string): Promise<string> {
    if (seen !== undefined) {
      const { body, signatures } = parseNote(seen);
      const fresh = cosignatures.filter((c) => !signatures.some((s) => s.signature.equals(c.signature)));
      const note = formatNote(body, [...signatures, ...fresh]);
      const swapped = await this.db.query('UPDATE ledger_checkpoints SET note = $1 WHERE size = $2 AND note = $3 RETURNING size', [note, size, seen], {
        prepared: true,
      });
      if (swapped.rows.length === 1) return note;
    }
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

  /** One stored entry, parsed and checked against the tree (an entry edited since it was loaded halts the log). */
  async entry(index: number): Promise<StoredEntry> {
    if (!Number.isSafeInteger(index) || index < 0) throw new MalformedInputError('an entry id is a non-negative integer');
    if (index >= this.size) throw new MalformedInputError(`no entry ${index} in the log`);
    const row = (await this.db.query<EntryRow>('SELECT idx, entry, leaf_hash, patient FROM ledger_entries WHERE idx = $1', [index])).rows[0];
    return this.checked(row, index);
  }

  /**
   * Entries `start` to `end` - 1 exactly as stored, for clients that check them themselves (the public routes):
   * a row that disagrees with the tree is served as it is, and halts the log.
   */
  async storedEntries(start: number, end: number): Promise<{ index: number; entry: string }[]> {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > this.size) {
      throw new MalformedInputError(`entries ${start}..${end} are not within the log of ${this.size}`);
    }
    const rows = (
      await this.db.query<EntryRow>('SELECT idx, entry, leaf_hash, patient FROM ledger_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx', [start, end])
    ).rows;
    for (const [i, row] of rows.entries()) {
      try {
        this.checked(row, start + i);
      } catch {
        break; // raised: the log is halted, the client finds the fault itself
      }
    }
    return rows.map((row) => ({ index: row.idx, entry: row.entry }));
  }

  /**
   * Every entry about one pseudonymous patient, oldest first (at most `limit`). Found by the index the log built
   * from the verified entries themselves, not by the stored patient column (which an attacker could edit to hide
   * entries); each entry is read back and checked against the tree. Waits for the audit on open (which builds
   * that index). @throws IntegrityError when the log is halted.
   */
  async entriesForPatient(patient: string, limit = 10_000): Promise<StoredEntry[]> {
    await this.audited();
    // A halted log's index stops at the fault: a partial answer would hide entries.
    if (this.alarm !== undefined) throw new IntegrityError(`the audit log is halted at entry ${this.alarm.index}: ${this.alarm.problem}`);
    const indices = (this.patientIndex.get(patient) ?? []).slice(0, limit);
    if (indices.length === 0) return [];
    const rows = await this.db.query<EntryRow>('SELECT idx, entry, leaf_hash, patient FROM ledger_entries WHERE idx = ANY($1::bigint[]) ORDER BY idx', [
      indices,
    ]);
    const byIndex = new Map(rows.rows.map((row) => [Number(row.idx), row]));
    return indices.map((index) => this.checked(byIndex.get(index), index));
  }

  /** `row` as entry `index`, after checking it against the tree; a mismatch halts the log and throws IntegrityError. */
  private checked(row: EntryRow | undefined, index: number): StoredEntry {
    const result = row === undefined ? { index, problem: `entry ${index} is missing (deleted or renumbered)` } : checkEntryRow(row, index);
    const fault =
      'problem' in result
        ? result
        : result.leafHash.equals(this.tree.leafHash(index))
          ? undefined
          : { index, problem: `entry ${index} was changed after it was logged` };
    if (fault !== undefined) {
      this.raise(fault);
      throw new IntegrityError(`entry ${index}: ${fault.problem}`);
    }
    const bytes = Buffer.from(row!.entry, 'utf8');
    return { index, event: parseEntry(bytes), bytes, leafHash: Buffer.from(row!.leaf_hash) };
  }
}
