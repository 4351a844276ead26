/**
 * Searchable encryption of a patient's records (docs/crypto.md §12): Mitra (Chamani et al., CCS 2018) with one
 * sub-index per writer, so hospitals add entries with their own counters, no coordination and no patient secret.
 *
 *   Writer   update(K, state, updates) → rows for the server and the next state (sealState for the server)
 *   Server   stores rows by label; answers a search with the rows of the labels it is sent (nothing else)
 *   Reader   openState(K, …) → counts; query(K, state, keyword).labels → server; .resolve(values) → record ids
 *
 * K is a random 32-byte key per (writer, sub-index); MedShare delivers it to readers as a record encrypted under
 * the patient's category key, so exactly the readers the patient's delegation converts for can search.
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import { LimitExceededError } from '../errors.ts';
import { checkIndexKey, entryRow, INDEX_KEY_BYTES, KeywordQuery, keywordKey, MAX_COUNT, type IndexRow, type Operation } from './mitra.ts';
import type { WriterState } from './state.ts';

export * from './mitra.ts';
export * from './state.ts';

/** A fresh random index key. */
export function generateIndexKey(): Uint8Array {
  return new Uint8Array(randomBytes(INDEX_KEY_BYTES));
}

/** A writer's index key for the sub-index `context`, derived from its long-term index secret (HKDF-SHA256). */
export function deriveIndexKey(secret: Uint8Array, context: string): Uint8Array {
  checkIndexKey(secret);
  return new Uint8Array(hkdfSync('sha256', secret, new Uint8Array(0), `medshare/sse/v1/index key\0${context}`, INDEX_KEY_BYTES));
}

/** One change to the index: `recordId` gains (add, the default) or loses (delete) `keyword`. */
export interface IndexUpdate {
  readonly keyword: string;
  readonly recordId: string;
  readonly operation?: Operation;
}

/** A row with the record it indexes (the writer uploads rows grouped by record; the record id is not in the row). */
export interface RecordRow extends IndexRow {
  readonly recordId: string;
}

/**
 * Writer: the rows of `updates` and the state after them (version + 1). Cost: one HMAC-SHA256 per distinct
 * keyword and one HMAC-SHA512 per update. @throws LimitExceededError when a keyword's counter would pass MAX_COUNT.
 */
export function update(key: Uint8Array, state: WriterState, updates: readonly IndexUpdate[]): { rows: RecordRow[]; state: WriterState } {
  const counts = new Map(state.counts);
  const keys = new Map<string, Buffer>();
  const rows = updates.map((u): RecordRow => {
    const counter = (counts.get(u.keyword) ?? 0) + 1;
    if (counter > MAX_COUNT) throw new LimitExceededError(`a keyword has at most ${MAX_COUNT} entries in one sub-index; start a new epoch`);
    counts.set(u.keyword, counter);
    let kw = keys.get(u.keyword);
    if (kw === undefined) keys.set(u.keyword, (kw = keywordKey(key, u.keyword)));
    return { recordId: u.recordId, ...entryRow(kw, counter, u.operation ?? 'add', u.recordId) };
  });
  return { rows, state: { version: state.version + 1, counts } };
}

/** Reader: the search of `keyword` in a sub-index whose opened state is `state` (one PRF call per entry). */
export function query(key: Uint8Array, state: WriterState, keyword: string): KeywordQuery {
  return new KeywordQuery(key, keyword, state.counts.get(keyword) ?? 0);
}
