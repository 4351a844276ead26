/**
 * The gateway's writer of the searchable index (docs/platform.md § Search). For every record it uploads, it adds
 * one entry per keyword (search/keywords.ts, after the patient's rules) to its own sub-index of the patient's category, at the patient's
 * current key epoch and the cloud's index epoch. It needs no patient secret and no other hospital: each hospital
 * has its own counters (Mitra's state, sealed at the cloud) and its own keys.
 *
 * A sub-index key is HKDF(hospital index secret, sub-index name); the secret is the hospital's, kept in the
 * gateway's database wrapped by the KEK. The key reaches readers as a record ciphertext under the patient's
 * category key (the "key capsule"), so it is converted exactly for the readers the patient's delegations allow.
 */
import { randomBytes } from 'node:crypto';
import { IntegrityError, pre, sse } from '@medshare/crypto';
import type { Database, KeyEncryptionKey } from '@medshare/db';
import type { IndexWrite, WriterIndexState } from '../cloud/search-store.ts';

/** The name of a sub-index: bound into its key, its sealed state and its key capsule's record id. */
export function subIndexName(patient: string, category: string, keyEpoch: number, indexEpoch: number, source: string): string {
  return `${patient}|${category}|${keyEpoch}|${indexEpoch}|${source}`;
}

/**
 * The record id under which a sub-index's key capsule is encrypted (readers check it): it names the patient, so the
 * capsule — and through its category key id, every record a search returns — is bound to the patient searched.
 */
export function keyCapsuleId(patient: string, category: string, keyEpoch: number, indexEpoch: number, source: string): string {
  return `sse-key|${patient}|${category}|${keyEpoch}|${indexEpoch}|${source}`;
}

const secretContext = (hospital: string) => `gateway/index-secret/${hospital}`;

/**
 * A record of an upload, as the index sees it: the keywords it gains and, when it is a new version (or a tombstone)
 * of a resource whose previous version was indexed, that version's keywords, which it deletes from the index (so a
 * search finds current versions only). The delete entries are ordinary Mitra entries: the cloud cannot tell them
 * from additions, and they carry the new record's id in the upload (type-II backward privacy, docs/crypto.md §12).
 */
export interface IndexedRecord {
  readonly recordId: string;
  readonly category: string;
  readonly keywords: readonly string[];
  readonly supersedes?: { readonly recordId: string; readonly keywords: readonly string[] };
}

const keywordsContext = (hospital: string, recordId: string) => `gateway/index-keywords/${hospital}/${recordId}`;
const utf8 = new TextEncoder();

/** Builds a gateway's index writes; holds each hospital's index secret once unwrapped. */
export class SearchIndexWriter {
  private readonly secrets = new Map<string, Uint8Array>();

  constructor(
    private readonly db: Database,
    private readonly kek: KeyEncryptionKey,
  ) {}

  /** The hospital's index secret, created (and stored wrapped) at first use; concurrent first uses agree on one. */
  private async secret(hospital: string): Promise<Uint8Array> {
    const known = this.secrets.get(hospital);
    if (known !== undefined) return known;
    const fresh = await this.kek.wrap(new Uint8Array(randomBytes(sse.INDEX_KEY_BYTES)), secretContext(hospital));
    await this.db.query('INSERT INTO gateway_index_secrets (hospital, secret) VALUES ($1, $2) ON CONFLICT (hospital) DO NOTHING', [hospital, fresh]);
    const row = (await this.db.query<{ secret: Uint8Array }>('SELECT secret FROM gateway_index_secrets WHERE hospital = $1', [hospital])).rows[0]!;
    const secret = await this.kek.unwrap(new Uint8Array(row.secret), secretContext(hospital));
    this.secrets.set(hospital, secret);
    return secret;
  }

  /** `keywords` of a version, wrapped by the KEK for the gateway's version table (the database holds no plain keyword). */
  sealKeywords(hospital: string, recordId: string, keywords: readonly string[]): Promise<Uint8Array> {
    return this.kek.wrap(utf8.encode(JSON.stringify(keywords)), keywordsContext(hospital, recordId));
  }

  /** The keywords sealKeywords wrapped. @throws IntegrityError for a value of another record or KEK. */
  async openKeywords(hospital: string, recordId: string, wrapped: Uint8Array): Promise<string[]> {
    const keywords: unknown = JSON.parse(Buffer.from(await this.kek.unwrap(wrapped, keywordsContext(hospital, recordId))).toString('utf8'));
    if (!Array.isArray(keywords) || keywords.some((k) => typeof k !== 'string'))
      throw new IntegrityError(`the stored index keywords of ${recordId} are not a list of keywords`);
    return keywords as string[];
  }

  /**
   * The index writes of an upload: per category, this hospital's sub-index at `states` (from the cloud) plus one
   * entry per keyword of each record; for a new sub-index, its key capsule (granted to the upload's emergency
   * capsule of the category, when there is one). @throws IntegrityError if a stored state does not open.
   */
  async writes(
    hospital: string,
    keys: pre.PatientPublicKeys,
    states: readonly WriterIndexState[],
    records: readonly IndexedRecord[],
    emergency: ReadonlyMap<string, pre.EmergencyCapsule>,
  ): Promise<IndexWrite[]> {
    const secret = await this.secret(hospital);
    return states.flatMap((s): IndexWrite[] => {
      const mine = records.filter((r) => r.category === s.category);
      if (mine.length === 0) return [];
      const name = subIndexName(keys.patientId, s.category, s.keyEpoch, s.indexEpoch, hospital);
      const key = sse.deriveIndexKey(secret, name);
      const current = s.state === undefined ? sse.EMPTY_STATE : sse.openState(key, name, s.state, s.version);
      // Each entry with the record of this upload that carries it (the cloud checks rows name records of the upload).
      const entries = mine.flatMap((r) => [
        ...r.keywords.map((keyword) => ({ update: { keyword, recordId: r.recordId }, carrier: r.recordId })),
        ...(r.supersedes?.keywords ?? []).map((keyword) => ({
          update: { keyword, recordId: r.supersedes!.recordId, operation: 'delete' as const },
          carrier: r.recordId,
        })),
      ]);
      if (entries.length === 0) return [];
      const { rows, state } = sse.update(
        key,
        current,
        entries.map((e) => e.update),
      );
      const carried = rows.map((row, i) => ({ ...row, recordId: entries[i]!.carrier }));
      const write: IndexWrite = {
        category: s.category,
        keyEpoch: s.keyEpoch,
        indexEpoch: s.indexEpoch,
        expectedVersion: s.version,
        state: sse.sealState(key, name, state),
        rows: carried,
      };
      if (s.state !== undefined) return [write];
      const capsuleId = keyCapsuleId(keys.patientId, s.category, s.keyEpoch, s.indexEpoch, hospital);
      const capsule = emergency.get(s.category);
      const { ciphertext, emergencyGrant } = pre.encryptWithEmergencyGrant(keys, s.category, capsuleId, key, capsule);
      return [
        {
          ...write,
          keyCapsule: ciphertext,
          ...(capsule && emergencyGrant ? { keyEmergency: { capsuleId: Buffer.from(capsule.delegationId).toString('hex'), grant: emergencyGrant } } : {}),
        },
      ];
    });
  }
}
