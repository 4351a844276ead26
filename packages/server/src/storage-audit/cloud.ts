/**
 * The cloud side of storage auditing (docs/crypto.md §13, "Proofs of storage"; KZG commitments, A. Kate,
 * G. M. Zaverucha and I. Goldberg, ASIACRYPT 2010): at upload it checks each record's chunk commitments against its
 * ciphertext — so no hospital can make later audits fail with bad tags — and stores them beside the record, in the
 * upload's transaction; the record-create ledger entry commits to their hash and count. It serves tag sets to
 * auditors (who check them against the ledger), answers a challenge with an opening computed from the bytes it
 * actually holds, and appends auditors' results to the ledger. It learns nothing new: tags and proofs are functions
 * of the ciphertexts it already stores.
 */
import { createHash } from 'node:crypto';
import { curve, IntegrityError, LimitExceededError, MalformedInputError, por } from '@medshare/crypto';
import { insertMany, migrate, type Database, type Queryable } from '@medshare/db';
import type { AuditLog, StorageCommitment } from '@medshare/ledger';
import type { Caller } from '../http.ts';
import { WHOLE_CIPHERTEXT_SQL } from '../cloud/record-payloads.ts';
import { STORAGE_CLOUD_MIGRATIONS } from './migrations.ts';
import type { RecordStorageTags } from './tagger.ts';
import { InThreadTagChecker, verifyUploadedTags, type TagChecker, type UploadedTags } from './tags.ts';
import { challengeDigest, type WireChallenge, fromWire } from './wire.ts';

/** A record's tags after the cloud checked them: what it stores and what the ledger entry commits to. */
export interface CheckedTags {
  readonly recordHash: string;
  readonly tags: Uint8Array;
  readonly commitment: StorageCommitment;
}

/** A failing record as an auditor reports it. */
export interface FailingRecord {
  hash: string;
  category: string;
}

/** An auditor's result, as it asks the cloud to record it. */
export interface StorageAuditReport {
  challenge: WireChallenge;
  failing: FailingRecord[];
}

const LEDGER_SOURCE = 'cloud';
const MAX_RECORDS_PER_EVENT = 64;
/** Records a refused upload's error names (the rest are counted). */
const MAX_NAMED_RECORDS = 20;
/** Most tag sets one request may ask for (a challenge samples at most por.MAX_SAMPLES chunks, so as many records). */
export const MAX_TAG_SETS_PER_REQUEST = por.MAX_SAMPLES;
const ROLE_CODE = /^[a-z][a-z0-9-]{0,62}$/;
const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Storage auditing at the cloud. */
export class StorageAuditCloud {
  private constructor(
    private readonly db: Database,
    private readonly ledger: AuditLog,
    private readonly checker: TagChecker,
  ) {}

  /**
   * Opens it on the cloud's database (migrating its tables); `checker` runs the upload checks (default: in this
   * thread; the cloud's worker pool splits them across its workers).
   */
  static async open(db: Database, ledger: AuditLog, checker: TagChecker = new InThreadTagChecker()): Promise<StorageAuditCloud> {
    await curve.initCurve();
    await migrate(db, 'storage-cloud', STORAGE_CLOUD_MIGRATIONS);
    return new StorageAuditCloud(db, ledger, checker);
  }

  /**
   * Checks the tag sets of an upload's records (those that carry them): one randomised check over every chunk of the
   * upload (or one per part the checker splits it into), each commitment's subgroup check included, and only when
   * that fails, a check per record to name every record whose commitments do not match its ciphertext.
   * @throws UnsupportedError (a tag set of another version), MalformedInputError, LimitExceededError for a tag set
   *         that does not decode (a commitment off the curve or outside G1 included), IntegrityError naming the
   *         records whose commitments do not match their ciphertexts.
   */
  async checkUpload(records: readonly { recordId: string; ciphertext: Uint8Array; storage?: RecordStorageTags }[]): Promise<Map<string, CheckedTags>> {
    const checked = new Map<string, CheckedTags>();
    const files: (UploadedTags & { recordId: string })[] = [];
    for (const record of records) {
      if (record.storage === undefined) continue;
      const { chunks } = por.tagSetShape(record.storage.tags);
      files.push({ recordId: record.recordId, data: record.ciphertext, tags: record.storage.tags });
      checked.set(record.recordId, {
        recordHash: `sha256:${sha256Hex(record.ciphertext)}`,
        tags: record.storage.tags,
        commitment: { tags: `sha256:${sha256Hex(record.storage.tags)}`, blocks: chunks },
      });
    }
    if (files.length === 0 || (await this.checker.verify(files))) return checked;
    const bad = files.filter((f) => !verifyUploadedTags([f]));
    const named = (bad.length === 0 ? files : bad).map((f) => f.recordId);
    const list =
      named.length <= MAX_NAMED_RECORDS ? named.join(', ') : `${named.slice(0, MAX_NAMED_RECORDS).join(', ')} and ${named.length - MAX_NAMED_RECORDS} more`;
    throw new IntegrityError(
      `the proof-of-storage tags of ${named.length === 1 ? 'record' : `${named.length} records:`} ${list} do not match ${named.length === 1 ? 'its ciphertext' : 'their ciphertexts'}`,
    );
  }

  /** Stores new records' checked tags (those that carry tags), inside the upload's transaction. */
  async storeTags(tx: Queryable, added: readonly { recordId: string }[], tags: ReadonlyMap<string, CheckedTags>): Promise<void> {
    const rows = added.flatMap(({ recordId }) => {
      const t = tags.get(recordId);
      return t === undefined ? [] : [[t.recordHash, recordId, t.commitment.blocks, t.tags]];
    });
    if (rows.length > 0) await insertMany(tx, 'storage_tags (record_hash, record_id, chunks, tags)', rows, 'ON CONFLICT DO NOTHING');
  }

  /**
   * The stored tag sets of these records (by ledger name), for an auditor to check against the ledger's hashes;
   * records the cloud holds no tags for are left out. @throws LimitExceededError above MAX_TAG_SETS_PER_REQUEST.
   */
  async tagSets(hashes: readonly string[]): Promise<{ hash: string; tags: Uint8Array }[]> {
    if (hashes.length > MAX_TAG_SETS_PER_REQUEST) throw new LimitExceededError(`at most ${MAX_TAG_SETS_PER_REQUEST} tag sets per request`);
    const rows = await this.db.query<{ record_hash: string; tags: Uint8Array }>(
      'SELECT record_hash, tags FROM storage_tags WHERE record_hash = ANY($1::text[]) ORDER BY record_hash',
      [[...new Set(hashes)]],
    );
    return rows.rows.map((r) => ({ hash: r.record_hash, tags: r.tags }));
  }

  /**
   * The answer to a challenge from what the cloud holds: only the sampled records are read, by ciphertext hash. A
   * record that is gone, or whose stored tag set no longer decodes, answers as empty (its opening then fails).
   * @throws MalformedInputError, LimitExceededError for a challenge that does not validate.
   */
  async prove(wire: WireChallenge, kind: por.Proof['kind']): Promise<Uint8Array> {
    const challenge = fromWire(wire);
    const sampled = [...new Set(por.expandChallenge(challenge).samples.map((s) => s.file))];
    const hashes = sampled.map((i) => wire.files[i]!.hash);
    const rows = await this.db.query<{ record_hash: string; tags: Uint8Array; ciphertext: Uint8Array }>(
      `SELECT t.record_hash, t.tags, ${WHOLE_CIPHERTEXT_SQL} AS ciphertext FROM storage_tags t JOIN cloud_records r ON r.record_id = t.record_id
       WHERE t.record_hash = ANY($1::text[])`,
      [hashes],
    );
    const held = new Map(rows.rows.map((r) => [r.record_hash, r]));
    const stored: (por.StoredFile | undefined)[] = new Array(challenge.files.length);
    for (const file of sampled) {
      const row = held.get(wire.files[file]!.hash);
      if (row === undefined) continue;
      try {
        stored[file] = { data: row.ciphertext, chunkSectors: por.tagSetShape(row.tags).chunkSectors };
      } catch {
        // A tag set edited into something that does not decode: the record cannot be proven.
      }
    }
    return por.encodeProof(por.prove(challenge, stored, kind));
  }

  /**
   * Appends an auditor's result to the ledger: one `storage-audit` entry per 64 failing records (at least one),
   * naming the challenge by hash and the failing records. Returns the entries' indices.
   */
  async report(caller: Caller, report: StorageAuditReport): Promise<number[]> {
    const challenge = fromWire(report.challenge);
    if (report.failing.length > challenge.files.length) throw new MalformedInputError('more failing records than the challenge covered');
    const covered = new Set(report.challenge.files.map((f) => f.hash));
    if (report.failing.some((f) => !covered.has(f.hash))) throw new MalformedInputError('a failing record is not in the challenge');
    const role = ROLE_CODE.test(caller.role) ? caller.role : 'other';
    const storageAudit = {
      challenge: `sha256:${challengeDigest(report.challenge)}`,
      records: challenge.files.length,
      samples: sampledChunks(challenge),
      failed: report.failing.length,
    };
    const indices: number[] = [];
    for (let i = 0; i === 0 || i < report.failing.length; i += MAX_RECORDS_PER_EVENT) {
      const entry = await this.ledger.append({
        type: 'storage-audit',
        outcome: report.failing.length === 0 ? 'success' : 'serious-failure',
        source: LEDGER_SOURCE,
        agents: [{ who: caller.pseudonym, role }],
        storageAudit,
        records: report.failing.slice(i, i + MAX_RECORDS_PER_EVENT),
      });
      indices.push(entry.index);
    }
    return indices;
  }
}

/** How many chunks the challenge samples: every chunk when the sample would be half of them or more (expandChallenge). */
function sampledChunks(challenge: por.Challenge): number {
  const total = challenge.files.reduce((n, f) => n + f.chunks, 0);
  return 2 * challenge.samples >= total ? total : challenge.samples;
}
