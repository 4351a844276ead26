/**
 * The cloud side of storage auditing (docs/crypto.md, "Proofs of storage"): at upload it checks each record's
 * tags against its ciphertext and its hospital's public key — so no hospital can make later audits fail with bad
 * tags — and stores them beside the record, in the upload's transaction; the record-create ledger entry commits to
 * them. On a challenge it answers with a proof from the bytes it actually holds. It appends auditors' results
 * to the ledger. It learns nothing new: tags and proofs are functions of the ciphertexts it already stores.
 */
import { createHash } from 'node:crypto';
import { AccessDeniedError, curve, IntegrityError, MalformedInputError, por } from '@medshare/crypto';
import { insertMany, migrate, type Database, type Queryable } from '@medshare/db';
import type { AuditLog, StorageCommitment } from '@medshare/ledger';
import type { Caller } from '../http.ts';
import { WHOLE_CIPHERTEXT_SQL } from '../cloud/record-payloads.ts';
import { STORAGE_CLOUD_MIGRATIONS } from './migrations.ts';
import type { RecordStorageTags } from './tagger.ts';
import { InThreadTagChecker, PublicKeyCache, storageName, verifyUploadedTags, type TagChecker, type UploadedTags } from './tags.ts';
import { challengeDigest, type WireChallenge, fromWire } from './wire.ts';

/** A record's tags after the cloud checked them: what it stores and what the ledger entry commits to. */
export interface CheckedTags {
  readonly recordHash: string;
  readonly keyId: string;
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
const MAX_CACHED_KEYS = 1_000;
/** Records a refused upload's error names (the rest are counted). */
const MAX_NAMED_RECORDS = 20;
const ROLE_CODE = /^[a-z][a-z0-9-]{0,62}$/;
const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Storage auditing at the cloud. */
export class StorageAuditCloud {
  /** Public keys decoded (proof of possession checked) by their encoding. */
  private readonly keys = new PublicKeyCache(MAX_CACHED_KEYS);

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

  /** Registers a hospital's key on first sight. @throws AccessDeniedError when another hospital registered it. */
  private async registerKey(hospital: string, keyId: string, publicKey: Uint8Array): Promise<void> {
    await this.db.query('INSERT INTO storage_keys (key_id, hospital, public_key) VALUES ($1, $2, $3) ON CONFLICT (key_id) DO NOTHING', [
      keyId,
      hospital,
      publicKey,
    ]);
    const owner = (await this.db.query<{ hospital: string }>('SELECT hospital FROM storage_keys WHERE key_id = $1', [keyId])).rows[0]?.hospital;
    if (owner !== hospital) throw new AccessDeniedError('this proof-of-storage key belongs to another hospital');
  }

  /**
   * Checks the tags of an upload's records (those that carry tags) and registers the hospital's key: one randomised
   * check per hospital key over every block of the upload (or one per part the checker splits it into), and only
   * when that fails, a check per record to name every record whose tags do not match.
   * @throws MalformedInputError for a key or tag set that does not decode (a bad proof of possession included) or
   *         tag sets of one key with different sector counts, IntegrityError naming the records whose tags do not
   *         match their ciphertext and key, AccessDeniedError for another hospital's key.
   */
  async checkUpload(
    hospital: string,
    records: readonly { recordId: string; ciphertext: Uint8Array; storage?: RecordStorageTags }[],
  ): Promise<Map<string, CheckedTags>> {
    const checked = new Map<string, CheckedTags>();
    const byKey = new Map<string, { publicKey: Uint8Array; sectors: number; files: (UploadedTags & { recordId: string })[] }>();
    for (const record of records) {
      if (record.storage === undefined) continue;
      const keyId = sha256Hex(record.storage.publicKey);
      const { sectors, blocks } = por.tagSetShape(record.storage.tags);
      let group = byKey.get(keyId);
      if (group === undefined) {
        this.keys.get(record.storage.publicKey); // decoded, its proof of possession checked, before it is registered
        await this.registerKey(hospital, keyId, record.storage.publicKey);
        group = { publicKey: record.storage.publicKey, sectors, files: [] };
        byKey.set(keyId, group);
      }
      if (sectors !== group.sectors)
        throw new MalformedInputError(
          `the proof-of-storage tags of record ${record.recordId} have ${sectors} sectors per block, those of ${group.files[0]!.recordId} ${group.sectors}`,
        );
      group.files.push({ recordId: record.recordId, name: storageName(record.ciphertext), data: record.ciphertext, tags: record.storage.tags });
      checked.set(record.recordId, {
        recordHash: `sha256:${sha256Hex(record.ciphertext)}`,
        keyId,
        tags: record.storage.tags,
        commitment: { tags: `sha256:${sha256Hex(record.storage.tags)}`, blocks, key: `sha256:${keyId}` },
      });
    }
    for (const { publicKey, files } of byKey.values()) {
      if (await this.checker.verify(publicKey, files)) continue;
      const key = this.keys.get(publicKey);
      const bad = files.filter((f) => !verifyUploadedTags(key, [f]));
      const named = (bad.length === 0 ? files : bad).map((f) => f.recordId);
      const list =
        named.length <= MAX_NAMED_RECORDS ? named.join(', ') : `${named.slice(0, MAX_NAMED_RECORDS).join(', ')} and ${named.length - MAX_NAMED_RECORDS} more`;
      throw new IntegrityError(
        `the proof-of-storage tags of ${named.length === 1 ? 'record' : `${named.length} records:`} ${list} do not match ${named.length === 1 ? 'its ciphertext' : 'their ciphertexts'} and key`,
      );
    }
    return checked;
  }

  /** Stores new records' checked tags (those that carry tags), inside the upload's transaction. */
  async storeTags(tx: Queryable, added: readonly { recordId: string }[], tags: ReadonlyMap<string, CheckedTags>): Promise<void> {
    const rows = added.flatMap(({ recordId }) => {
      const t = tags.get(recordId);
      return t === undefined ? [] : [[t.recordHash, recordId, t.keyId, t.commitment.blocks, t.tags]];
    });
    if (rows.length > 0) await insertMany(tx, 'storage_tags (record_hash, record_id, key_id, blocks, tags)', rows, 'ON CONFLICT DO NOTHING');
  }

  /** Every registered key: what an auditor checks proofs with (it checks each id against the key itself). */
  async publicKeys(): Promise<{ keyId: string; hospital: string; publicKey: Uint8Array }[]> {
    const rows = await this.db.query<{ key_id: string; hospital: string; public_key: Uint8Array }>(
      'SELECT key_id, hospital, public_key FROM storage_keys ORDER BY key_id',
    );
    return rows.rows.map((r) => ({ keyId: r.key_id, hospital: r.hospital, publicKey: r.public_key }));
  }

  /**
   * The answer to a challenge from what the cloud holds: only the sampled records are read, by ciphertext hash,
   * and only their sampled tags decoded. A record that is gone answers as empty (the proof then fails for it).
   * @throws MalformedInputError, LimitExceededError for a challenge that does not validate.
   */
  async prove(wire: WireChallenge, kind: por.Proof['kind']): Promise<Uint8Array> {
    const challenge = fromWire(wire);
    const samples = por.expandChallenge(challenge);
    const blocksOf = new Map<number, number[]>();
    for (const s of samples) blocksOf.set(s.file, [...(blocksOf.get(s.file) ?? []), s.block]);
    const hashes = [...blocksOf.keys()].map((i) => wire.files[i]!.hash);
    const rows = await this.db.query<{ record_hash: string; tags: Uint8Array; ciphertext: Uint8Array }>(
      `SELECT t.record_hash, t.tags, ${WHOLE_CIPHERTEXT_SQL} AS ciphertext FROM storage_tags t JOIN cloud_records r ON r.record_id = t.record_id
       WHERE t.record_hash = ANY($1::text[])`,
      [hashes],
    );
    const held = new Map(rows.rows.map((r) => [r.record_hash, r]));
    const stored: (por.StoredFile | undefined)[] = new Array(challenge.files.length);
    for (const [file, blocks] of blocksOf) {
      const row = held.get(wire.files[file]!.hash);
      if (row === undefined) continue;
      stored[file] = { data: row.ciphertext, tags: por.decodeTagsAt(row.tags, blocks) };
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
      samples: sampledBlocks(challenge),
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

/** How many blocks the challenge samples: every block when the sample would be half of them or more (expandChallenge). */
function sampledBlocks(challenge: por.Challenge): number {
  const total = challenge.files.reduce((n, f) => n + f.blocks, 0);
  return 2 * challenge.samples >= total ? total : challenge.samples;
}
