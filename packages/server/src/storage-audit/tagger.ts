/**
 * The hospital side of storage auditing: each hospital's proof-of-storage key (created on first use, its secret
 * stored wrapped by the hospital's key-encryption key, never leaving the hospital's domain) and the tagging of
 * every ciphertext before upload (docs/crypto.md, "Proofs of storage"). The file name a tag binds is the
 * record's ledger name: the SHA-256 of its ciphertext.
 */
import { createHash } from 'node:crypto';
import { curve, IntegrityError, por } from '@medshare/crypto';
import { storageCommitmentOf, type AuditEvent } from '@medshare/ledger';
import { migrate, type Database, type KeyEncryptionKey } from '@medshare/db';
import { STORAGE_HOSPITAL_MIGRATIONS } from './migrations.ts';
import { tagCiphertext } from './tags.ts';

export { storageName } from './tags.ts';

/** What an uploaded record carries for storage auditing: the hospital's public key and the record's tags. */
export interface RecordStorageTags {
  readonly publicKey: Uint8Array;
  readonly tags: Uint8Array;
}

const context = (hospital: string) => `storage-audit/por-key/${hospital}`;

/**
 * A hospital's tagging key in a form that crosses to the gateway's encryption workers (threads of the hospital's own
 * service, the same trust domain as the key-encryption key that unwraps it): the 32-byte secret, the sector count
 * and the encoded public key the records carry.
 */
export interface TaggingKey {
  readonly secretKey: Uint8Array;
  readonly sectors: number;
  readonly publicKey: Uint8Array;
}

/** Tags ciphertexts under each hospital's own key. */
export class StorageTagger {
  private readonly keys = new Map<string, Promise<por.PorSecretKey>>();

  private constructor(
    private readonly db: Database,
    private readonly kek: KeyEncryptionKey,
    readonly sectors: number,
  ) {}

  /** Opens the tagger on the hospital's database (migrating its table). */
  static async open(db: Database, kek: KeyEncryptionKey, sectors = por.DEFAULT_SECTORS): Promise<StorageTagger> {
    await curve.initCurve();
    await migrate(db, 'storage-hospital', STORAGE_HOSPITAL_MIGRATIONS);
    return new StorageTagger(db, kek, sectors);
  }

  /**
   * The hospital's key, created on first use. Two processes racing to create it keep the first committed one.
   * @throws IntegrityError when the stored key does not unwrap under this KEK (another KEK, or altered).
   */
  keyOf(hospital: string): Promise<por.PorSecretKey> {
    let key = this.keys.get(hospital);
    if (key === undefined) {
      key = this.loadOrCreate(hospital);
      key.catch(() => this.keys.delete(hospital));
      this.keys.set(hospital, key);
    }
    return key;
  }

  private async loadOrCreate(hospital: string): Promise<por.PorSecretKey> {
    const select = () => this.db.query<{ secret_key: Uint8Array }>('SELECT secret_key FROM storage_hospital_keys WHERE hospital = $1', [hospital]);
    let row = (await select()).rows[0];
    if (row === undefined) {
      const fresh = por.generateKey(this.sectors);
      const wrapped = await this.kek.wrap(por.encodeSecretKey(fresh), context(hospital));
      await this.db.query('INSERT INTO storage_hospital_keys (hospital, secret_key, public_key) VALUES ($1, $2, $3) ON CONFLICT (hospital) DO NOTHING', [
        hospital,
        wrapped,
        por.encodePublicKey(fresh.publicKey),
      ]);
      row = (await select()).rows[0]!;
    }
    return por.decodeSecretKey(await this.kek.unwrap(row.secret_key, context(hospital)), this.sectors);
  }

  /** The tags of one ciphertext under the hospital's key, in this thread. */
  async tag(hospital: string, ciphertext: Uint8Array): Promise<RecordStorageTags> {
    const key = await this.keyOf(hospital);
    return { publicKey: por.encodePublicKey(key.publicKey), tags: tagCiphertext(key, ciphertext, this.sectors) };
  }

  /** The hospital's key for tagging elsewhere in its service (its gateway's encryption workers tag what they encrypt). */
  async taggingKey(hospital: string): Promise<TaggingKey> {
    const key = await this.keyOf(hospital);
    return { secretKey: por.encodeSecretKey(key), sectors: this.sectors, publicKey: por.encodePublicKey(key.publicKey) };
  }

  /** The records with their tags attached. */
  async attach<R extends { ciphertext: Uint8Array }>(hospital: string, records: readonly R[]): Promise<(R & { storage: RecordStorageTags })[]> {
    const out: (R & { storage: RecordStorageTags })[] = [];
    for (const record of records) out.push({ ...record, storage: await this.tag(hospital, record.ciphertext) });
    return out;
  }
}

/**
 * Checks that a verified record-create entry commits, for each of the gateway's records it names, to the tags and
 * key the gateway sent: a cloud that recorded other tags (or its own key) is caught at upload, while the gateway
 * can still upload again. @throws IntegrityError naming the record.
 */
export function checkReceiptCommitments(event: AuditEvent, sent: readonly { ciphertext: Uint8Array; storage?: RecordStorageTags }[]): void {
  const sha = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const expected = new Map(sent.filter((r) => r.storage !== undefined).map((r) => [sha(r.ciphertext), r.storage!]));
  for (const entity of event.entity) {
    if (entity.type.code !== 'record') continue;
    const storage = expected.get(entity.what.identifier.value);
    if (storage === undefined) continue;
    const committed = storageCommitmentOf(entity);
    if (committed === undefined || committed.tags !== sha(storage.tags) || committed.key !== sha(storage.publicKey)) {
      throw new IntegrityError(`ledger entry ${event.id} does not commit to the storage tags sent for record ${entity.what.identifier.value}`);
    }
  }
}
