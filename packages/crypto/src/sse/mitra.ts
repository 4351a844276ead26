/**
 * Mitra: dynamic searchable symmetric encryption with forward privacy and type-II backward privacy.
 *
 * Paper: J. Ghareh Chamani, D. Papadopoulos, C. Papamanthou, R. Jalili, "New Constructions for Forward and
 * Backward Private Symmetric Searchable Encryption", ACM CCS 2018, §4 (Mitra). Deviations and leakage:
 * docs/crypto.md §12.
 *
 * For keyword w with per-writer counter c (1, 2, …), an index entry is one PRF output
 *
 *   k_w = HMAC-SHA256(K, "medshare/sse/v1/keyword\0" ‖ w)
 *   (label ‖ mask) = HMAC-SHA512(k_w, u32(c))          label: 16 bytes, mask: 48 bytes
 *   row = (label, mask ⊕ (op ‖ len ‖ record id ‖ 0…))
 *
 * The server stores rows by label. To search w the reader, who knows K and the count of w, sends the labels of
 * c = 1..count and unmasks what comes back; adds and deletes are resolved on the reader's side, so the server
 * learns neither the record ids nor which entries were deletions. A token names only labels that exist when it
 * is made: an entry added later has a fresh label no earlier token names (forward privacy).
 *
 * Pure computation: node:crypto HMAC only; no I/O.
 */
import { isUtf8 } from 'node:buffer';
import { createHmac } from 'node:crypto';
import { IntegrityError, LimitExceededError, MalformedInputError } from '../errors.ts';

/** Bytes of an index key (one per writer and sub-index). */
export const INDEX_KEY_BYTES = 32;
/** Bytes of a row's label, the only thing the server looks rows up by. */
export const LABEL_BYTES = 16;
/** Bytes of a row's masked value. */
export const VALUE_BYTES = 48;
/** The longest record id (UTF-8 bytes) a value holds. */
export const MAX_RECORD_ID_BYTES = VALUE_BYTES - 2;
/** The longest keyword (UTF-8 bytes). */
export const MAX_KEYWORD_BYTES = 512;
/** The most entries one keyword may have in one sub-index (a counter is a u32; this keeps tokens bounded). */
export const MAX_COUNT = 1_000_000;

const KEYWORD_LABEL = 'medshare/sse/v1/keyword\0';
const utf8 = new TextEncoder();

/** What an entry records: the record gained or lost the keyword. */
export type Operation = 'add' | 'delete';
const OP_CODE: Record<Operation, number> = { add: 1, delete: 2 };

/** One stored index row. */
export interface IndexRow {
  readonly label: Uint8Array;
  readonly value: Uint8Array;
}

/** `key` as an index key, or MalformedInputError. */
export function checkIndexKey(key: Uint8Array): Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== INDEX_KEY_BYTES) throw new MalformedInputError(`an index key is ${INDEX_KEY_BYTES} bytes`);
  return key;
}

/** The keyword's UTF-8 bytes; MalformedInputError if it is empty, LimitExceededError if it is too long. */
function keywordBytes(keyword: string): Uint8Array {
  const bytes = utf8.encode(keyword);
  if (bytes.length === 0) throw new MalformedInputError('a keyword must not be empty');
  if (bytes.length > MAX_KEYWORD_BYTES) throw new LimitExceededError(`a keyword is at most ${MAX_KEYWORD_BYTES} bytes`);
  return bytes;
}

/** k_w: the per-keyword PRF key (one HMAC-SHA256). */
export function keywordKey(key: Uint8Array, keyword: string): Buffer {
  return createHmac('sha256', checkIndexKey(key)).update(KEYWORD_LABEL).update(keywordBytes(keyword)).digest();
}

/** (label ‖ mask) of entry `counter` of a keyword (one HMAC-SHA512). */
function entryPad(keywordKeyBytes: Uint8Array, counter: number): Buffer {
  const c = Buffer.alloc(4);
  c.writeUInt32BE(counter);
  return createHmac('sha512', keywordKeyBytes).update(c).digest();
}

function checkCounter(counter: number): void {
  if (!Number.isInteger(counter) || counter < 1 || counter > MAX_COUNT) throw new LimitExceededError(`an entry counter must be 1 to ${MAX_COUNT}`);
}

/**
 * The row of entry `counter` of the keyword whose key is `keywordKeyBytes`: the record `recordId` gained (`add`)
 * or lost (`delete`) it. @throws LimitExceededError for a record id over MAX_RECORD_ID_BYTES or a bad counter.
 */
export function entryRow(keywordKeyBytes: Uint8Array, counter: number, operation: Operation, recordId: string): IndexRow {
  checkCounter(counter);
  const id = utf8.encode(recordId);
  if (id.length === 0) throw new MalformedInputError('a record id must not be empty');
  if (id.length > MAX_RECORD_ID_BYTES) throw new LimitExceededError(`a record id is at most ${MAX_RECORD_ID_BYTES} bytes`);
  const pad = entryPad(keywordKeyBytes, counter);
  const value = new Uint8Array(VALUE_BYTES);
  value[0] = OP_CODE[operation];
  value[1] = id.length;
  value.set(id, 2);
  for (let i = 0; i < VALUE_BYTES; i++) value[i] = value[i]! ^ pad[LABEL_BYTES + i]!;
  return { label: new Uint8Array(pad.subarray(0, LABEL_BYTES)), value };
}

/** An entry as the reader sees it after unmasking. */
export interface Entry {
  readonly counter: number;
  readonly operation: Operation;
  readonly recordId: string;
}

/** What a search found: the record ids (adds not later deleted, in first-add order) and the entries asked for but not returned. */
export interface SearchResult {
  readonly recordIds: string[];
  /** Counters whose rows the server did not return (a withheld row, or an entry of a write that stored nothing). */
  readonly missing: number[];
}

/**
 * The reader's half of one keyword's search in one sub-index: the labels to send and, once the server answers,
 * the unmasking. Built with `count` PRF evaluations (the masks are kept, so resolving costs no more).
 */
export class KeywordQuery {
  /** The labels of entries 1..count, in order: the search token the server sees. */
  readonly labels: Uint8Array[];
  private readonly masks: Uint8Array[];

  /** @throws MalformedInputError / LimitExceededError for a bad key, keyword or count. */
  constructor(key: Uint8Array, keyword: string, count: number) {
    if (!Number.isInteger(count) || count < 0 || count > MAX_COUNT) throw new LimitExceededError(`a keyword count must be 0 to ${MAX_COUNT}`);
    const kw = keywordKey(key, keyword);
    this.labels = new Array<Uint8Array>(count);
    this.masks = new Array<Uint8Array>(count);
    for (let c = 1; c <= count; c++) {
      // Views into the one PRF output: the label goes out, the mask stays for resolving.
      const pad = entryPad(kw, c);
      this.labels[c - 1] = pad.subarray(0, LABEL_BYTES);
      this.masks[c - 1] = pad.subarray(LABEL_BYTES);
    }
  }

  /**
   * Unmasks the server's answer: `values[i]` is the row of `labels[i]`, or undefined when the server has none.
   * @throws MalformedInputError for an answer of the wrong length or a value of the wrong size; IntegrityError
   *   when a value does not unmask to a well-formed entry (it was altered, or belongs to another label).
   */
  entries(values: ReadonlyArray<Uint8Array | undefined>): { entries: Entry[]; missing: number[] } {
    if (values.length !== this.labels.length) throw new MalformedInputError(`the server answered ${values.length} values for ${this.labels.length} labels`);
    const entries: Entry[] = [];
    const missing: number[] = [];
    values.forEach((value, i) => {
      if (value === undefined) return void missing.push(i + 1);
      if (!(value instanceof Uint8Array) || value.length !== VALUE_BYTES) throw new MalformedInputError(`an index value is ${VALUE_BYTES} bytes`);
      entries.push(unmask(this.masks[i]!, value, i + 1));
    });
    return { entries, missing };
  }

  /** `entries`, then adds and deletes applied in counter order. */
  resolve(values: ReadonlyArray<Uint8Array | undefined>): SearchResult {
    const { entries, missing } = this.entries(values);
    const live = new Set<string>();
    for (const e of entries) {
      if (e.operation === 'add') live.add(e.recordId);
      else live.delete(e.recordId);
    }
    return { recordIds: [...live], missing };
  }
}

function unmask(mask: Uint8Array, value: Uint8Array, counter: number): Entry {
  const plain = Buffer.allocUnsafe(VALUE_BYTES);
  for (let i = 0; i < VALUE_BYTES; i++) plain[i] = value[i]! ^ mask[i]!;
  const op = plain[0];
  const length = plain[1]!;
  let padding = 0;
  for (let i = 2 + length; i < VALUE_BYTES; i++) padding |= plain[i]!;
  if ((op !== 1 && op !== 2) || length === 0 || length > MAX_RECORD_ID_BYTES || padding !== 0 || !isUtf8(plain.subarray(2, 2 + length))) {
    throw new IntegrityError(`index entry ${counter} does not unmask to an entry (altered, or another label's row)`);
  }
  return { counter, operation: op === 1 ? 'add' : 'delete', recordId: plain.toString('utf8', 2, 2 + length) };
}
