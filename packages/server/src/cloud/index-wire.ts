/**
 * The searchable-index parts of the gateway ↔ cloud routes as JSON (what `HttpCloudApi` sends and the cloud's
 * plugin reads): index writes inside an upload, and the writer's view of its sub-indexes. Rows travel grouped by
 * record, each record's entries as one base64 string of label ‖ value pairs (64 bytes each).
 */
import { MalformedInputError, sse } from '@medshare/crypto';
import type { IndexWrite, WriterIndexState } from './search-store.ts';

const BASE64 = '^[A-Za-z0-9+/]*={0,2}$';
const ROW_BYTES = sse.LABEL_BYTES + sse.VALUE_BYTES;
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const unb64 = (text: string) => new Uint8Array(Buffer.from(text, 'base64'));

/** An index write as JSON. */
export interface IndexWireWrite {
  category: string;
  keyEpoch: number;
  indexEpoch: number;
  expectedVersion: number;
  state: string;
  keyCapsule?: string;
  keyEmergency?: { capsuleId: string; grant: string };
  rows: Array<{ recordId: string; entries: string }>;
}

/** JSON schema of `index` in an upload body (bounds: 20,000 records, 4,096 entries a record). */
export const INDEX_WRITES_SCHEMA = {
  type: 'array',
  maxItems: 256,
  items: {
    type: 'object',
    required: ['category', 'keyEpoch', 'indexEpoch', 'expectedVersion', 'state', 'rows'],
    additionalProperties: false,
    properties: {
      category: { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,63}$' },
      keyEpoch: { type: 'integer', minimum: 1, maximum: 2 ** 31 },
      indexEpoch: { type: 'integer', minimum: 1, maximum: 2 ** 31 },
      expectedVersion: { type: 'integer', minimum: 0, maximum: 2 ** 31 },
      state: { type: 'string', maxLength: 24 * 1024 * 1024, pattern: BASE64 },
      keyCapsule: { type: 'string', maxLength: 64 * 1024, pattern: BASE64 },
      keyEmergency: {
        type: 'object',
        required: ['capsuleId', 'grant'],
        additionalProperties: false,
        properties: { capsuleId: { type: 'string', pattern: '^[0-9a-f]{32}$' }, grant: { type: 'string', maxLength: 64 * 1024, pattern: BASE64 } },
      },
      rows: {
        type: 'array',
        maxItems: 20_000,
        items: {
          type: 'object',
          required: ['recordId', 'entries'],
          additionalProperties: false,
          properties: {
            recordId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
            entries: { type: 'string', minLength: 4, maxLength: Math.ceil((4096 * ROW_BYTES) / 3) * 4, pattern: BASE64 },
          },
        },
      },
    },
  },
} as const;

/** Index writes as JSON (gateway side). */
export function encodeIndexWrites(writes: readonly IndexWrite[]): IndexWireWrite[] {
  return writes.map((w) => {
    const byRecord = new Map<string, Uint8Array[]>();
    for (const row of w.rows) {
      const list = byRecord.get(row.recordId) ?? [];
      list.push(row.label, row.value);
      byRecord.set(row.recordId, list);
    }
    return {
      category: w.category,
      keyEpoch: w.keyEpoch,
      indexEpoch: w.indexEpoch,
      expectedVersion: w.expectedVersion,
      state: b64(w.state),
      ...(w.keyCapsule ? { keyCapsule: b64(w.keyCapsule) } : {}),
      ...(w.keyEmergency ? { keyEmergency: { capsuleId: w.keyEmergency.capsuleId, grant: b64(w.keyEmergency.grant) } } : {}),
      rows: [...byRecord].map(([recordId, parts]) => ({ recordId, entries: b64(Buffer.concat(parts)) })),
    };
  });
}

/** Index writes from JSON (cloud side). @throws MalformedInputError when a record's entries are not whole rows. */
export function decodeIndexWrites(wire: readonly IndexWireWrite[]): IndexWrite[] {
  return wire.map((w) => ({
    category: w.category,
    keyEpoch: w.keyEpoch,
    indexEpoch: w.indexEpoch,
    expectedVersion: w.expectedVersion,
    state: unb64(w.state),
    ...(w.keyCapsule ? { keyCapsule: unb64(w.keyCapsule) } : {}),
    ...(w.keyEmergency ? { keyEmergency: { capsuleId: w.keyEmergency.capsuleId, grant: unb64(w.keyEmergency.grant) } } : {}),
    rows: w.rows.flatMap((r) => {
      const bytes = unb64(r.entries);
      if (bytes.length === 0 || bytes.length % ROW_BYTES !== 0)
        throw new MalformedInputError(`the index entries of record ${r.recordId} are not whole ${ROW_BYTES}-byte rows`);
      return Array.from({ length: bytes.length / ROW_BYTES }, (_, i) => ({
        recordId: r.recordId,
        label: bytes.subarray(i * ROW_BYTES, i * ROW_BYTES + sse.LABEL_BYTES),
        value: bytes.subarray(i * ROW_BYTES + sse.LABEL_BYTES, (i + 1) * ROW_BYTES),
      }));
    }),
  }));
}

/** A writer's sub-index states as JSON. */
export const encodeWriterStates = (states: readonly WriterIndexState[]) => states.map((s) => ({ ...s, ...(s.state ? { state: b64(s.state) } : {}) }));

/** A writer's sub-index states from JSON (gateway side). */
export function decodeWriterStates(wire: ReadonlyArray<Omit<WriterIndexState, 'state'> & { state?: string }>): WriterIndexState[] {
  return wire.map((s) => ({
    category: s.category,
    keyEpoch: s.keyEpoch,
    indexEpoch: s.indexEpoch,
    version: s.version,
    ...(s.state ? { state: unb64(s.state) } : {}),
  }));
}
