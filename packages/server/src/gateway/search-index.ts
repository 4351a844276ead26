/**
 * The gateway's writer of the searchable index (docs/platform.md § Search). For every record it uploads, it adds
 * one entry per keyword (search/keywords.ts) to its own sub-index of the patient's category, at the patient's
 * current key epoch and the cloud's index epoch. It needs no patient secret and no other hospital: each hospital
 * has its own counters (Mitra's state, sealed at the cloud) and its own keys.
 *
 * A sub-index key is HKDF(hospital index secret, sub-index name); the secret is the hospital's, kept in the
 * gateway's database wrapped by the KEK. The key reaches readers as a record ciphertext under the patient's
 * category key (the "key capsule"), so it is converted exactly for the readers the patient's delegations allow.
 */
import { randomBytes } from 'node:crypto';
import { pre, sse } from '@medshare/crypto';
import type { Database, KeyEncryptionKey } from '@medshare/db';
import type { IndexWrite, WriterIndexState } from '../cloud/search-store.ts';
import { keywordsOf } from '../search/keywords.ts';
import type { FhirResource } from './fhir.ts';

/** The name of a sub-index: bound into its key, its sealed state and its key capsule's record id. */
export function subIndexName(patient: string, category: string, keyEpoch: number, indexEpoch: number, source: string): string {
  return `${patient}|${category}|${keyEpoch}|${indexEpoch}|${source}`;
}

/** The record id under which a sub-index's key capsule is encrypted (readers check it). */
export function keyCapsuleId(category: string, keyEpoch: number, indexEpoch: number, source: string): string {
  return `sse-key|${category}|${keyEpoch}|${indexEpoch}|${source}`;
}

const secretContext = (hospital: string) => `gateway/index-secret/${hospital}`;

/** A record of an upload, as the index sees it. */
export interface IndexedRecord {
  readonly recordId: string;
  readonly category: string;
  readonly resource: FhirResource;
}

/** Builds a gateway's index writes; holds each hospital's index secret once unwrapped. */
export class SearchIndexWriter {
  private readonly secrets = new Map<string, Uint8Array>();

  constructor(private readonly db: Database, private readonly kek: KeyEncryptionKey) {}

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

  /**
   * The index writes of an upload: per category, this hospital's sub-index at `states` (from the cloud) plus one
   * entry per keyword of each record; for a new sub-index, its key capsule (granted to the upload's emergency
   * capsule of the category, when there is one). @throws IntegrityError if a stored state does not open.
   */
  async writes(hospital: string, keys: pre.PatientPublicKeys, states: readonly WriterIndexState[], records: readonly IndexedRecord[], emergency: ReadonlyMap<string, pre.EmergencyCapsule>): Promise<IndexWrite[]> {
    const secret = await this.secret(hospital);
    return states.flatMap((s): IndexWrite[] => {
      const mine = records.filter((r) => r.category === s.category);
      if (mine.length === 0) return [];
      const name = subIndexName(keys.patientId, s.category, s.keyEpoch, s.indexEpoch, hospital);
      const key = sse.deriveIndexKey(secret, name);
      const current = s.state === undefined ? sse.EMPTY_STATE : sse.openState(key, name, s.state, s.version);
      const { rows, state } = sse.update(key, current, mine.flatMap((r) => keywordsOf(r.resource).map((keyword) => ({ keyword, recordId: r.recordId }))));
      const write: IndexWrite = { category: s.category, keyEpoch: s.keyEpoch, indexEpoch: s.indexEpoch, expectedVersion: s.version, state: sse.sealState(key, name, state), rows };
      if (s.state !== undefined) return [write];
      const capsuleId = keyCapsuleId(s.category, s.keyEpoch, s.indexEpoch, hospital);
      const capsule = emergency.get(s.category);
      const { ciphertext, emergencyGrant } = pre.encryptWithEmergencyGrant(keys, s.category, capsuleId, key, capsule);
      return [{ ...write, keyCapsule: ciphertext, ...(capsule && emergencyGrant ? { keyEmergency: { capsuleId: Buffer.from(capsule.delegationId).toString('hex'), grant: emergencyGrant } } : {}) }];
    });
  }
}
