/**
 * The reader's side of an encrypted FHIR search (docs/platform.md § Search), over any transport to the cloud:
 *
 *   1. the cloud converts each sub-index's key capsule for the reader (only if a delegation allows it);
 *      the reader decrypts it (pre.Reader: FAME once per delegation, then one pairing) and opens the state;
 *   2. of the query's keyword groups (search parameters, ANDed), the one with the fewest entries — known from the
 *      states' counts — is searched: its labels go to the cloud, whose values the reader resolves to record ids;
 *   3. additions minus deletions over all sub-indexes are the live record ids (current versions only);
 *   4. those records are read (converted), each checked to be the named record of this patient, category and
 *      writer that carries the searched keyword (else IntegrityError: the cloud altered the index or the answer),
 *      decrypted and checked against the whole query.
 */
import { createHash } from 'node:crypto';
import { IntegrityError, MalformedInputError, pre, sse } from '@medshare/crypto';
import type { ReaderSubIndex } from '../cloud/search-store.ts';
import type { FhirResource } from '../gateway/fhir.ts';
import { sourceHospital } from '../record-signature.ts';
import { keyCapsuleId, subIndexName } from '../gateway/search-index.ts';
import { isRecordOf } from '../record-id.ts';
import { keywordsOf, type IndexQuery } from './keywords.ts';

/** What a search needs from the cloud (HTTP in the SDK, the service itself in tests and benchmarks). */
export interface SearchTransport {
  /** The sub-indexes of the category the reader may search, key capsules converted for it. */
  subIndexes(patient: string, category: string): Promise<ReaderSubIndex[]>;
  /** The values stored under `labels`, in order (undefined: none). */
  rows(patient: string, category: string, labels: readonly Uint8Array[]): Promise<Array<Uint8Array | undefined>>;
  /** Converted ciphertexts of the named records. */
  records(patient: string, category: string, recordIds: readonly string[]): Promise<Uint8Array[]>;
}

/** A POST of a JSON body to a path of the cloud, answered with its JSON (the caller's token and DPoP proof added). */
export type CloudPost = <T>(path: string, body: unknown) => Promise<T>;

/**
 * The cloud's search routes through `post` (the SDK's session call, or the portal's fetch in the reader's browser);
 * with `reason`, the emergency variants (audited as emergency searches and reads).
 */
export function cloudSearchTransport(post: CloudPost, reason?: string): SearchTransport {
  const path = (patient: string, suffix: string) => `/cloud/patients/${encodeURIComponent(patient)}${suffix}`;
  const extra = reason === undefined ? {} : { reason };
  const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'base64'));
  return {
    async subIndexes(patient, category) {
      const { subIndexes } = await post<{ subIndexes: Array<Omit<ReaderSubIndex, 'keyCapsule' | 'state'> & { keyCapsule: string; state: string }> }>(
        path(patient, '/search/indexes'),
        { category, ...extra },
      );
      return subIndexes.map((s) => ({ ...s, keyCapsule: bytes(s.keyCapsule), state: bytes(s.state) }));
    },
    async rows(patient, category, labels) {
      const { values } = await post<{ values: Array<string | null> }>(path(patient, '/search'), {
        category,
        labels: labels.map((l) => Buffer.from(l).toString('base64')),
        ...extra,
      });
      return values.map((v) => (v === null ? undefined : bytes(v)));
    },
    async records(patient, category, recordIds) {
      const out: Uint8Array[] = [];
      for (let i = 0; i < recordIds.length; i += 1000) {
        const { records } = await post<{ records: Array<{ ciphertext: string }> }>(path(patient, reason === undefined ? '/read' : '/emergency-read'), {
          category,
          recordIds: recordIds.slice(i, i + 1000),
          ...extra,
        });
        out.push(...records.map((r) => bytes(r.ciphertext)));
      }
      return out;
    },
  };
}

/** What a search cost and found, for the caller's diagnostics (never the keywords). */
export interface SearchStats {
  subIndexes: number;
  labels: number;
  candidates: number;
  matches: number;
}

/** A search result: the decrypted resource and the record (cloud name, carrying its writer's tag) it came from. */
export interface FoundRecord {
  recordId: string;
  resource: FhirResource;
}

const utf8 = new TextDecoder();

/** An opened sub-index: its key and state, and the patient's category key id its capsule was encrypted under. */
export interface OpenedSubIndex {
  key: Uint8Array;
  state: sse.WriterState;
  keyId: Uint8Array;
}

/**
 * Opened sub-indexes of earlier searches, by sub-index, state version and the digest of the key capsule and sealed
 * state as the cloud sent them: a repeated search skips the key's decryption (a pairing) and the state's opening
 * (hashing costs a fifth of opening); anything the cloud changes misses and is opened, and checked, again.
 * Bounded; the oldest entry goes first.
 */
export class SubIndexCache {
  private readonly entries = new Map<string, OpenedSubIndex>();
  constructor(private readonly capacity = 256) {}

  /** The opened sub-index for `id`, computed by `open` on a miss. */
  get(id: string, open: () => OpenedSubIndex): OpenedSubIndex {
    let found = this.entries.get(id);
    if (found === undefined) {
      found = open();
      if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(id, found);
    }
    return found;
  }
}

/** Decrypts a sub-index's converted key capsule and opens its state. @throws IntegrityError for a capsule of another sub-index. */
function openSubIndex(reader: pre.Reader, patient: string, category: string, sub: ReaderSubIndex, cache?: SubIndexCache): OpenedSubIndex {
  if (cache !== undefined) {
    const id = `${subIndexName(patient, category, sub.keyEpoch, sub.indexEpoch, sub.source)}|${sub.version}|${createHash('sha256').update(sub.keyCapsule).update(sub.state).digest('hex')}`;
    return cache.get(id, () => openSubIndex(reader, patient, category, sub));
  }
  const header = pre.openConvertedHeader(sub.keyCapsule);
  if (
    header.core.recordId !== keyCapsuleId(patient, category, sub.keyEpoch, sub.indexEpoch, sub.source) ||
    header.core.category !== category ||
    header.core.epoch !== sub.keyEpoch
  ) {
    throw new IntegrityError(`the cloud answered with the index key of another sub-index for ${sub.source}`);
  }
  const key = reader.decrypt(sub.keyCapsule);
  if (key.length !== sse.INDEX_KEY_BYTES) throw new IntegrityError('an index key capsule does not hold an index key');
  return {
    key,
    keyId: header.core.keyId,
    state: sse.openState(key, subIndexName(patient, category, sub.keyEpoch, sub.indexEpoch, sub.source), sub.state, sub.version),
  };
}

/** An opened sub-index with the writer and key epoch it is of. */
type WriterSubIndex = OpenedSubIndex & Pick<ReaderSubIndex, 'source' | 'keyEpoch'>;
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

/**
 * The live record ids of a search, with the sub-index that added each: additions minus deletions over all
 * sub-indexes (a writer deletes a superseded version's entries in its current sub-index, which may be of a later
 * epoch than the one that added them). Every entry must name a record of its sub-index's writer, so no hospital
 * adds or deletes another's records, and every entry the state counts must come back.
 * @throws IntegrityError for a withheld entry or a foreign record id.
 */
function liveRecords(
  queries: ReadonlyArray<{ sub: WriterSubIndex; query: sse.KeywordQuery }>,
  values: ReadonlyArray<Uint8Array | undefined>,
): Map<string, WriterSubIndex> {
  const added = new Map<string, WriterSubIndex>();
  const deleted = new Set<string>();
  let offset = 0;
  for (const { sub, query } of queries) {
    const { entries, missing } = query.entries(values.slice(offset, offset + query.labels.length));
    offset += query.labels.length;
    // The cloud stores a sub-index's state only with all its rows (search-store.ts): a missing entry was withheld,
    // and a withheld deletion would bring back a superseded version.
    if (missing.length > 0) throw new IntegrityError(`the cloud withheld ${missing.length} entries of ${sub.source}'s sub-index`);
    for (const e of entries) {
      if (!isRecordOf(e.recordId, sub.source)) throw new IntegrityError(`an index entry of ${sub.source}'s sub-index names a record of another writer`);
      if (e.operation === 'delete') deleted.add(e.recordId);
      else if (!added.has(e.recordId)) added.set(e.recordId, sub);
    }
  }
  for (const id of deleted) added.delete(id);
  return added;
}

/**
 * Runs `query` on a patient's `category`. Returns the decrypted resources that match it exactly (current versions
 * only: a superseded version's entries are deleted from the index), each with its record id, in the order the
 * index found them, and what it cost. Each record the cloud returns must be one the index named, of this
 * category, encrypted under the same patient category key as the index key that named it (so of this patient),
 * written by the sub-index's hospital (meta.source and record id tag), and carry the searched keyword.
 * @throws AccessDeniedError (from the cloud or the reader's key) when the reader may not search; IntegrityError
 *   when the cloud's answer does not fit the index.
 */
export async function searchRecords(
  reader: pre.Reader,
  transport: SearchTransport,
  patient: string,
  category: string,
  query: IndexQuery,
  cache?: SubIndexCache,
): Promise<{ resources: FhirResource[]; records: FoundRecord[]; stats: SearchStats }> {
  const subs = (await transport.subIndexes(patient, category)).map((s): WriterSubIndex => ({
    source: s.source,
    keyEpoch: s.keyEpoch,
    ...openSubIndex(reader, patient, category, s, cache),
  }));
  const total = (keywords: readonly string[]) => subs.reduce((n, s) => n + keywords.reduce((m, k) => m + (s.state.counts.get(k) ?? 0), 0), 0);
  const group = [...query.groups].sort((a, b) => total(a.anyOf) - total(b.anyOf))[0];
  if (group === undefined) throw new MalformedInputError('a search needs at least one parameter');
  const queries = subs.flatMap((sub) => group.anyOf.filter((k) => sub.state.counts.has(k)).map((k) => ({ sub, query: sse.query(sub.key, sub.state, k) })));
  const labels = queries.flatMap((q) => q.query.labels);
  const values = await transport.rows(patient, category, labels);
  if (values.length !== labels.length) throw new MalformedInputError(`the cloud answered ${values.length} values for ${labels.length} labels`);
  const live = liveRecords(queries, values);
  const ciphertexts = live.size === 0 ? [] : await transport.records(patient, category, [...live.keys()]);
  if (ciphertexts.length !== live.size) throw new IntegrityError(`the index names ${live.size} records, the cloud returned ${ciphertexts.length}`);
  const found = new Map<string, FoundRecord>();
  for (const ciphertext of ciphertexts) {
    const { core } = pre.openConvertedHeader(ciphertext);
    const sub = live.get(core.recordId);
    if (sub === undefined || found.has(core.recordId)) throw new IntegrityError(`the cloud returned record ${core.recordId}, which the index did not name`);
    if (core.category !== category || core.epoch !== sub.keyEpoch || !sameBytes(core.keyId, sub.keyId)) {
      throw new IntegrityError(`record ${core.recordId} is not under the patient's '${category}' key that its index entry was written with`);
    }
    const resource = JSON.parse(utf8.decode(reader.decrypt(ciphertext))) as FhirResource;
    if (sourceHospital(resource) !== sub.source) throw new IntegrityError(`record ${core.recordId} was not written by ${sub.source}, whose index named it`);
    const has = new Set(keywordsOf(resource));
    if (!group.anyOf.some((k) => has.has(k)))
      throw new IntegrityError(`the index pointed to record ${core.recordId}, which does not carry the searched keyword`);
    found.set(core.recordId, { recordId: core.recordId, resource });
  }
  const records = [...live.keys()].map((id) => found.get(id)!).filter((r) => query.matches(r.resource));
  return {
    resources: records.map((r) => r.resource),
    records,
    stats: { subIndexes: subs.length, labels: labels.length, candidates: live.size, matches: records.length },
  };
}

/** A FHIR R4 searchset Bundle of decrypted resources. */
export function searchset(resources: readonly FhirResource[]): Record<string, unknown> {
  return { resourceType: 'Bundle', type: 'searchset', total: resources.length, entry: resources.map((resource) => ({ resource, search: { mode: 'match' } })) };
}
