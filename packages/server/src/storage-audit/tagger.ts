/**
 * The hospital side of storage auditing (docs/crypto.md §13, "Proofs of storage"): the gateway commits to every
 * ciphertext before upload with KZG chunk commitments (A. Kate, G. M. Zaverucha and I. Goldberg, ASIACRYPT 2010)
 * over the Ethereum ceremony's public reference string, and checks on the witnessed receipt that the record-create
 * ledger entry commits to exactly the tag sets it sent. There is no hospital secret: what binds the commitments to
 * the uploading hospital is that witness-cosigned entry, which the hospital itself checked.
 */
import { createHash } from 'node:crypto';
import { curve, IntegrityError, por } from '@medshare/crypto';
import { storageCommitmentOf, type AuditEvent } from '@medshare/ledger';
import { migrate, type Database } from '@medshare/db';
import { STORAGE_HOSPITAL_MIGRATIONS } from './migrations.ts';
import { tagCiphertext } from './tags.ts';

/** What an uploaded record carries for storage auditing: its encoded tag set (the chunk commitments). */
export interface RecordStorageTags {
  readonly tags: Uint8Array;
}

/** Tags ciphertexts with their chunk commitments. */
export class StorageTagger {
  private constructor(readonly chunkSectors: number) {}

  /**
   * Opens the tagger on the hospital's database: its migrations drop the Shacham–Waters key table of earlier
   * versions (the KZG commitments need no hospital key).
   * @throws MalformedInputError for a chunk size outside 1..por.MAX_CHUNK_SECTORS.
   */
  static async open(db: Database, chunkSectors: number = por.DEFAULT_CHUNK_SECTORS): Promise<StorageTagger> {
    await curve.initCurve();
    por.chunkCount(0, chunkSectors);
    await migrate(db, 'storage-hospital', STORAGE_HOSPITAL_MIGRATIONS);
    return new StorageTagger(chunkSectors);
  }

  /** The tag set of one ciphertext, in this thread. */
  tag(ciphertext: Uint8Array): RecordStorageTags {
    return { tags: tagCiphertext(ciphertext, this.chunkSectors) };
  }

  /** The records with their tags attached. */
  attach<R extends { ciphertext: Uint8Array }>(records: readonly R[]): (R & { storage: RecordStorageTags })[] {
    return records.map((record) => ({ ...record, storage: this.tag(record.ciphertext) }));
  }
}

/**
 * Checks that a verified record-create entry commits, for each of the gateway's records it names, to the tag set it
 * sent and its chunk count (and to no hospital key): a cloud that recorded other commitments is caught at upload,
 * while the gateway can still upload again. @throws IntegrityError naming the record.
 */
export function checkReceiptCommitments(event: AuditEvent, sent: readonly { ciphertext: Uint8Array; storage?: RecordStorageTags }[]): void {
  const sha = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const expected = new Map(sent.filter((r) => r.storage !== undefined).map((r) => [sha(r.ciphertext), r.storage!]));
  for (const entity of event.entity) {
    if (entity.type.code !== 'record') continue;
    const storage = expected.get(entity.what.identifier.value);
    if (storage === undefined) continue;
    const committed = storageCommitmentOf(entity);
    if (
      committed === undefined ||
      committed.key !== undefined ||
      committed.tags !== sha(storage.tags) ||
      committed.blocks !== por.tagSetShape(storage.tags).chunks
    ) {
      throw new IntegrityError(`ledger entry ${event.id} does not commit to the storage tags sent for record ${entity.what.identifier.value}`);
    }
  }
}
