/**
 * The cloud's record conversions (pre.convertHeader: one pairing each, the bulk of a read's CPU time), either in the
 * calling thread or in a pool of worker threads, so that a multi-core server converts in parallel while its
 * event loop serves HTTP and SQL. Only record headers (about 0.8 KiB each) travel to and from the workers: the
 * payload, which conversion leaves unchanged, stays where the database put it.
 *
 * Both keep decoded re-encryption keys with rk1's Miller-loop lines precomputed (pre.precompute), by delegation
 * id, checked against the key's bytes on every use. That is only a cache of decoding: the service finds the
 * delegation in the database on every read and sends its key along, so a revoked delegation never reaches a
 * converter, whatever a worker still holds.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import { AccessDeniedError, curve, IntegrityError, LimitExceededError, MalformedInputError, pre, UnsupportedError, type ErrorCode } from '@medshare/crypto';
import { tagCiphertext, type TagChecker, type UploadedTags } from '../storage-audit/tags.ts';

/** The delegation whose key converts, as the database holds it. */
export interface DelegationKey {
  readonly delegationId: string;
  readonly reencryptionKey: Uint8Array;
}

/** Converts stored record headers for a reader. */
export interface Converter {
  /**
   * The converted header of each record header (pre.splitRecord's `header`) under the delegation's key, in order;
   * MedShareErrors as pre.openRecordHeader and pre.convertHeader throw them.
   */
  convert(key: DelegationKey, headers: readonly Uint8Array[]): Promise<Uint8Array[]>;
  /** Drops a revoked delegation's cached key. */
  forget(delegationId: string): void;
  close(): Promise<void>;
}

/** 20 KiB of precomputed lines (wasm memory) and ~2 KiB of decoded key each: ~22 MiB per converter when full. */
const MAX_CACHED_KEYS = 1024;
/** Converts one stored record header (pre.convertHeader after decoding and validating it). */
export const convertStoredHeader = (rk: pre.ReEncryptionKey, header: Uint8Array): Uint8Array => pre.convertHeader(rk, pre.openRecordHeader(header));

/** Records per message to a worker: a large read spreads over the pool, and no message holds a worker for long. */
const RECORDS_PER_JOB = 32;
/** Fewest tag sets a part of an upload check holds: below that, a worker's message costs more than the check saves. */
const MIN_FILES_PER_TAG_CHECK = 16;

/** Decoded, precomputed keys by delegation id; the least recently used is evicted and its wasm memory freed. */
export class KeyCache {
  private readonly keys = new Map<string, { bytes: Uint8Array; rk: pre.ReEncryptionKey }>();

  /** The decoded key; decodes (with subgroup checks) and precomputes on a miss or when the bytes differ. */
  get(key: DelegationKey): pre.ReEncryptionKey {
    const hit = this.keys.get(key.delegationId);
    if (hit !== undefined && Buffer.compare(hit.bytes, key.reencryptionKey) === 0) {
      // Re-inserted: Map order is the eviction order.
      this.keys.delete(key.delegationId);
      this.keys.set(key.delegationId, hit);
      return hit.rk;
    }
    this.forget(key.delegationId);
    const rk = pre.precompute(pre.decodeReEncryptionKey(key.reencryptionKey));
    if (this.keys.size >= MAX_CACHED_KEYS) this.forget(this.keys.keys().next().value!);
    this.keys.set(key.delegationId, { bytes: new Uint8Array(key.reencryptionKey), rk });
    return rk;
  }

  forget(delegationId: string): void {
    const entry = this.keys.get(delegationId);
    if (entry === undefined) return;
    this.keys.delete(delegationId);
    pre.release(entry.rk);
  }

  clear(): void {
    for (const id of [...this.keys.keys()]) this.forget(id);
  }
}

/** Conversions in the calling thread (tests, small deployments). */
export class InThreadConverter implements Converter {
  private readonly keys = new KeyCache();

  async convert(key: DelegationKey, headers: readonly Uint8Array[]): Promise<Uint8Array[]> {
    const rk = this.keys.get(key);
    return headers.map((header) => convertStoredHeader(rk, header));
  }

  forget(delegationId: string): void {
    this.keys.forget(delegationId);
  }

  async close(): Promise<void> {
    this.keys.clear();
  }
}

/**
 * What a hospital gateway encrypts for one patient in one upload, in a form that crosses to a worker thread (the
 * same process and trust domain: H(X) and the plaintexts never leave the hospital's service).
 */
export interface EncryptionBatch {
  /** The patient's signed key bundle as served (each worker decodes and verifies it once, then caches it). */
  readonly bundle: Uint8Array;
  /** The upload's emergency capsules: the encoded public part and H(X) (G2, compressed), by category. */
  readonly capsules: ReadonlyArray<{ readonly category: string; readonly capsule: Uint8Array; readonly hashOfX: Uint8Array }>;
  readonly records: ReadonlyArray<{ readonly recordId: string; readonly category: string; readonly plaintext: Uint8Array }>;
  /** When the hospital's gateway tags: the chunk size of its KZG commitments; each ciphertext is tagged where it was encrypted. */
  readonly tagging?: { readonly chunkSectors: number };
}

/**
 * One encrypted record: its ciphertext, when its category has a capsule its encoded emergency grant, and when the
 * batch asked for tagging its encoded proof-of-storage tag set.
 */
export interface EncryptedRecord {
  readonly ciphertext: Uint8Array;
  readonly grant?: Uint8Array;
  readonly tags?: Uint8Array;
}

/** Encrypts a gateway's records (pre.encrypt, or pre.encryptWithEmergencyGrant where a capsule is given). */
export interface RecordEncryptor {
  /** The records of `batch`, in order; MedShareErrors as pre.decodePublicKeys and pre.encrypt throw them. */
  encrypt(batch: EncryptionBatch): Promise<EncryptedRecord[]>;
  close(): Promise<void>;
}

/** Bounded caches of decoded bundles and capsules, by their bytes: one upload reuses them for every record. */
export class EncryptionInputs {
  private readonly bundles = new Map<string, pre.PatientPublicKeys>();
  private readonly capsules = new Map<string, pre.EmergencyCapsule>();
  private static readonly MAX = 256;
  /**
   * Records after which this thread builds curve.precomputeGtBase's table (≈ 140 ms once, 4.7 MB), which makes each
   * record's random key ≈ 1.1 ms cheaper: worth it from about 128 records on, so short-lived callers never pay it.
   */
  static readonly GT_TABLE_AFTER = 128;
  private recordsSeen = 0;

  private static remember<T>(map: Map<string, T>, key: string, make: () => T): T {
    let value = map.get(key);
    if (value === undefined) {
      value = make();
      if (map.size >= EncryptionInputs.MAX) map.delete(map.keys().next().value!);
      map.set(key, value);
    }
    return value;
  }

  /**
   * Encrypts (and, when the batch asks, tags) every record of the batch here; the decoded bundle and capsules are
   * cached for the next batch.
   */
  encrypt(batch: EncryptionBatch): EncryptedRecord[] {
    this.recordsSeen += batch.records.length;
    if (this.recordsSeen >= EncryptionInputs.GT_TABLE_AFTER) curve.precomputeGtBase();
    const digest = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
    const keys = EncryptionInputs.remember(this.bundles, digest(batch.bundle), () => pre.decodePublicKeys(batch.bundle));
    // A capsule object per (capsule, H(X)): pre caches e(g1, H(X)) per object, so every grant after the first is one GT exponentiation.
    const capsules = new Map(
      batch.capsules.map((c) => [
        c.category,
        EncryptionInputs.remember(this.capsules, digest(Buffer.concat([c.capsule, c.hashOfX])), () => ({
          ...pre.decodeEmergencyCapsule(c.capsule),
          hashOfX: curve.g2FromBytes(c.hashOfX, 'H(X)'),
        })),
      ]),
    );
    const tagging = batch.tagging;
    return batch.records.map((r) => {
      const capsule = capsules.get(r.category);
      const sealed =
        capsule === undefined
          ? { ciphertext: pre.encrypt(keys, r.category, r.recordId, r.plaintext) }
          : (() => {
              const { ciphertext, emergencyGrant } = pre.encryptWithEmergencyGrant(keys, r.category, r.recordId, r.plaintext, capsule);
              return { ciphertext, grant: emergencyGrant! };
            })();
      return tagging === undefined ? sealed : { ...sealed, tags: tagCiphertext(sealed.ciphertext, tagging.chunkSectors) };
    });
  }
}

/** Encryption in the calling thread (tests, 0 workers). */
export class InThreadEncryptor implements RecordEncryptor {
  private readonly inputs = new EncryptionInputs();

  async encrypt(batch: EncryptionBatch): Promise<EncryptedRecord[]> {
    return this.inputs.encrypt(batch);
  }

  async close(): Promise<void> {}
}

/** Main thread → worker. */
export type WorkerRequest =
  | { id: number; key: DelegationKey; headers: readonly Uint8Array[] }
  | { id: number; encrypt: EncryptionBatch }
  | { id: number; verifyTags: { files: UploadedTags[] } }
  | { forget: string };
/** Worker → main thread. */
export type WorkerReply =
  | { ready: true }
  | { id: number; headers: Uint8Array[] }
  | { id: number; encrypted: EncryptedRecord[] }
  | { id: number; verified: boolean }
  | { id: number; error: { code?: ErrorCode; message: string } };

const TYPED_ERRORS: Partial<Record<ErrorCode, new (message: string) => Error>> = {
  MALFORMED: MalformedInputError,
  UNSUPPORTED: UnsupportedError,
  LIMIT: LimitExceededError,
  ACCESS_DENIED: AccessDeniedError,
  INTEGRITY: IntegrityError,
};

/** A worker's error as the caller would have seen it in-thread: typed errors keep their class (and HTTP status). */
function revive(error: { code?: ErrorCode; message: string }): Error {
  const Typed = error.code === undefined ? undefined : TYPED_ERRORS[error.code];
  return Typed === undefined ? new Error(`conversion failed in a worker: ${error.message}`) : new Typed(error.message);
}

interface Job {
  records: number;
  resolve: (results: never[]) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, Job>;
  /** Records sent and not yet answered: the next job goes to the least loaded worker. */
  load: number;
  /** The worker has exited and is not yet replaced. */
  dead: boolean;
}

// Workers do not inherit the tsx loader on Node 20; the .mjs entry registers it before loading the TypeScript.
const WORKER_ENTRY = new URL('./conversion-worker.mjs', import.meta.url);
/** A worker that dies before it is ready is replaced only after this pause, so a broken set-up cannot spin. */
const RESTART_DELAY_MS = 1000;

/**
 * Worker threads converting in parallel. A worker that dies (crash, out of memory, terminated) fails the jobs it
 * held with a plain Error (a 500 problem at the HTTP layer, never a hang) and is replaced.
 */
export class ConversionPool implements Converter, RecordEncryptor, TagChecker {
  private readonly slots: Slot[] = [];
  private nextJob = 0;
  private closed = false;

  private constructor() {}

  /** Starts `size` workers and waits until each has initialised the curve (a worker that cannot start fails this). */
  static async start(size: number): Promise<ConversionPool> {
    if (!Number.isInteger(size) || size < 1) throw new RangeError('a conversion pool needs at least one worker');
    const pool = new ConversionPool();
    try {
      await Promise.all(Array.from({ length: size }, (_, i) => pool.spawn(i)));
    } catch (error) {
      await pool.close();
      throw error;
    }
    return pool;
  }

  /** Workers in the pool. */
  get size(): number {
    return this.slots.length;
  }

  private spawn(index: number): Promise<void> {
    const slot: Slot = { worker: new Worker(WORKER_ENTRY), jobs: new Map(), load: 0, dead: false };
    this.slots[index] = slot;
    // An idle pool must not keep the process alive; pending requests do.
    slot.worker.unref();
    let ready = false;
    let failure: Error | undefined;
    return new Promise((resolve, reject) => {
      slot.worker.on('message', (reply: WorkerReply) => {
        if ('ready' in reply) {
          ready = true;
          return resolve();
        }
        const job = slot.jobs.get(reply.id);
        if (job === undefined) return;
        slot.jobs.delete(reply.id);
        slot.load -= job.records;
        if ('error' in reply) job.reject(revive(reply.error));
        else job.resolve(('headers' in reply ? reply.headers : 'encrypted' in reply ? reply.encrypted : [reply.verified]) as never[]);
      });
      slot.worker.on('error', (error) => (failure = error));
      slot.worker.on('exit', (code) => {
        slot.dead = true;
        const error = new Error(`a conversion worker stopped (exit code ${code}${failure ? `: ${failure.message}` : ''})`);
        for (const job of slot.jobs.values()) job.reject(error);
        slot.jobs.clear();
        reject(error);
        if (this.closed) return;
        const restart = () => void (this.closed ? undefined : this.spawn(index).catch(() => undefined));
        if (ready) restart();
        else setTimeout(restart, RESTART_DELAY_MS).unref();
      });
    });
  }

  async convert(key: DelegationKey, headers: readonly Uint8Array[]): Promise<Uint8Array[]> {
    if (this.closed) throw new Error('the conversion pool is closed');
    const jobs: Array<Promise<Uint8Array[]>> = [];
    for (let from = 0; from < headers.length; from += RECORDS_PER_JOB) {
      const live = this.slots.filter((s) => !s.dead);
      if (live.length === 0) throw new Error('no conversion worker is running');
      const slot = live.reduce((best, s) => (s.load < best.load ? s : best));
      // Exact copies of the headers, moved to the worker: cloning a view would copy its whole backing store (the
      // stored ciphertext, payload included).
      const batch = headers.slice(from, from + RECORDS_PER_JOB).map((header) => new Uint8Array(header));
      const request = { id: this.nextJob++, key: { delegationId: key.delegationId, reencryptionKey: new Uint8Array(key.reencryptionKey) }, headers: batch };
      jobs.push(
        new Promise<Uint8Array[]>((resolve, reject) => {
          slot.jobs.set(request.id, { records: batch.length, resolve, reject });
          slot.load += batch.length;
          slot.worker.postMessage(request satisfies WorkerRequest, [request.key.reencryptionKey.buffer, ...batch.map((header) => header.buffer)]);
        }),
      );
    }
    return (await Promise.all(jobs)).flat();
  }

  /**
   * Encrypts a gateway's batch across the workers, RECORDS_PER_JOB records per job, in order. The plaintexts are
   * copied to the workers (a view would carry its whole backing store); ciphertexts come back moved.
   */
  async encrypt(batch: EncryptionBatch): Promise<EncryptedRecord[]> {
    if (this.closed) throw new Error('the worker pool is closed');
    const jobs: Array<Promise<EncryptedRecord[]>> = [];
    for (let from = 0; from < batch.records.length; from += RECORDS_PER_JOB) {
      const live = this.slots.filter((s) => !s.dead);
      if (live.length === 0) throw new Error('no worker is running');
      const slot = live.reduce((best, s) => (s.load < best.load ? s : best));
      const records = batch.records
        .slice(from, from + RECORDS_PER_JOB)
        .map((r) => ({ recordId: r.recordId, category: r.category, plaintext: new Uint8Array(r.plaintext) }));
      const request = { id: this.nextJob++, encrypt: { ...batch, records } };
      jobs.push(
        new Promise<EncryptedRecord[]>((resolve, reject) => {
          slot.jobs.set(request.id, { records: records.length, resolve: resolve as (results: never[]) => void, reject });
          slot.load += records.length;
          slot.worker.postMessage(
            request satisfies WorkerRequest,
            records.map((r) => r.plaintext.buffer),
          );
        }),
      );
    }
    return (await Promise.all(jobs)).flat();
  }

  /**
   * The cloud's upload check of an upload's tag sets (storage-audit/tags.ts), split into one part per worker: each
   * part is its own randomised check, and the upload passes only if every part does.
   */
  async verify(files: readonly UploadedTags[]): Promise<boolean> {
    const live = this.slots.filter((s) => !s.dead);
    if (this.closed) throw new Error('the worker pool is closed');
    if (live.length === 0) throw new Error('no worker is running');
    const part = Math.max(MIN_FILES_PER_TAG_CHECK, Math.ceil(files.length / live.length));
    const jobs: Array<Promise<boolean[]>> = [];
    for (let from = 0; from < files.length; from += part) {
      const slot = live.reduce((best, s) => (s.load < best.load ? s : best));
      // Exact copies, moved to the worker (a ciphertext may be a view of the whole request body).
      const copies = files.slice(from, from + part).map((f) => ({ data: new Uint8Array(f.data), tags: new Uint8Array(f.tags) }));
      const request = { id: this.nextJob++, verifyTags: { files: copies } };
      jobs.push(
        new Promise<boolean[]>((resolve, reject) => {
          slot.jobs.set(request.id, { records: copies.length, resolve: resolve as (results: never[]) => void, reject });
          slot.load += copies.length;
          slot.worker.postMessage(
            request satisfies WorkerRequest,
            copies.flatMap((f) => [f.data.buffer, f.tags.buffer]),
          );
        }),
      );
    }
    return (await Promise.all(jobs)).every(([verified]) => verified === true);
  }

  forget(delegationId: string): void {
    for (const slot of this.slots) if (!slot.dead) slot.worker.postMessage({ forget: delegationId } satisfies WorkerRequest);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }
}

/**
 * The worker count `medshare serve` uses by default (docs/benchmarks.md § Platform): one per core on PostgreSQL,
 * where the event loop mostly waits for the database and the workers should have every core; on PGlite, whose
 * engine runs in the event loop's own thread, every core but that one. At least one.
 */
export const defaultConversionWorkers = (engine: 'pglite' | 'postgres'): number => Math.max(1, availableParallelism() - (engine === 'pglite' ? 1 : 0));

/**
 * The encryption worker count `medshare serve hospital` uses by default (docs/benchmarks.md § Platform): one per
 * core, since while its gateway encrypts and tags an upload, its event loop only waits for the workers.
 */
export const defaultEncryptionWorkers = (): number => Math.max(1, availableParallelism());

/** In-thread conversion for 0 workers, else a started pool. */
export async function createConverter(workers: number): Promise<Converter> {
  return workers === 0 ? new InThreadConverter() : ConversionPool.start(workers);
}
