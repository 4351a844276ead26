/**
 * Large record payloads in the cloud's database: a record whose payload is longer than PAYLOAD_CHUNK_BYTES keeps
 * only its header in its `cloud_records` row, and its payload goes into `cloud_record_chunks` rows of
 * PAYLOAD_CHUNK_BYTES each (the last shorter), inserted in the upload's transaction. A read converts the header and
 * streams the payload chunk by chunk to the response (record-stream.ts), so no read holds a large payload (nor its
 * hex text) in memory at once, and the client decrypts the first chunks while the cloud reads the next ones.
 * Smaller records, and every record stored before chunking existed, stay whole in their record row.
 */
import { IntegrityError, MalformedInputError, MedShareError, pre } from '@medshare/crypto';
import type { Queryable } from '@medshare/db';

/** Payload bytes per chunk row; a payload no longer than this stays inline. */
export const PAYLOAD_CHUNK_BYTES = 1024 * 1024;

/** How a record's ciphertext is stored: `inline` in its row (whole, or its header only), the rest in `chunks`. */
export interface StorageLayout {
  readonly inline: Uint8Array;
  readonly chunks: readonly Uint8Array[];
}

/** Splits a large record ciphertext into its header and payload chunks (views, no copy); small ones stay whole. */
export function storageLayout(recordId: string, ciphertext: Uint8Array): StorageLayout {
  if (ciphertext.length <= PAYLOAD_CHUNK_BYTES) return { inline: ciphertext, chunks: [] };
  let parts: { header: Uint8Array; payload: Uint8Array };
  try {
    parts = pre.splitRecord(ciphertext);
  } catch (error) {
    // A large upload must be a record ciphertext: its header is what the row keeps.
    throw new MalformedInputError(`record ${recordId} is not a record ciphertext (${error instanceof MedShareError ? error.message : 'unreadable'})`);
  }
  if (parts.payload.length <= PAYLOAD_CHUNK_BYTES) return { inline: ciphertext, chunks: [] };
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < parts.payload.length; offset += PAYLOAD_CHUNK_BYTES) {
    chunks.push(parts.payload.subarray(offset, offset + PAYLOAD_CHUNK_BYTES));
  }
  return { inline: parts.header, chunks };
}

/** Inserts a record's payload chunks (inside the transaction that inserts its row). */
export async function insertPayloadChunks(tx: Queryable, recordId: string, chunks: readonly Uint8Array[]): Promise<void> {
  for (const [seq, bytes] of chunks.entries()) {
    await tx.query('INSERT INTO cloud_record_chunks (record_id, seq, bytes) VALUES ($1, $2, $3)', [recordId, seq, bytes], { prepared: true });
  }
}

/**
 * SQL for a record row's whole ciphertext (alias `r` for cloud_records), for the few readers that need it in one
 * piece (the storage audit's proofs): the inline bytes followed by the chunks in order.
 */
export const WHOLE_CIPHERTEXT_SQL =
  "r.ciphertext || COALESCE((SELECT string_agg(k.bytes, ''::bytea ORDER BY k.seq) FROM cloud_record_chunks k WHERE k.record_id = r.record_id), ''::bytea)";

/**
 * A stored payload in chunk rows, read one chunk at a time. Each chunk is checked against the length the record
 * row announces, so a missing or altered chunk row fails the read (IntegrityError) instead of shifting the
 * stream's framing.
 */
export class ChunkedPayload {
  /** How many chunk rows hold the payload. */
  readonly count: number;

  constructor(
    private readonly db: Queryable,
    readonly recordId: string,
    /** Bytes of the payload. */
    readonly length: number,
    count: number,
  ) {
    if (count !== Math.ceil(length / PAYLOAD_CHUNK_BYTES) || count < 1) {
      throw new IntegrityError(`record ${recordId}: its row announces ${count} payload chunks for ${length} bytes`);
    }
    this.count = count;
  }

  /** The chunks in order; the next chunk is read from the database while the caller handles this one. */
  async *chunks(): AsyncGenerator<Uint8Array> {
    let next = this.read(0);
    for (let seq = 0; seq < this.count; seq++) {
      const chunk = await next;
      if (seq + 1 < this.count) {
        next = this.read(seq + 1);
        // The caller may stop early (a client that went away): the read ahead must not become an unhandled rejection.
        next.catch(() => undefined);
      }
      yield chunk;
    }
  }

  /** `prefix` ‖ the payload in one buffer (a header before it: JSON answers, the patient's own records). */
  async joinAfter(prefix: Uint8Array): Promise<Uint8Array> {
    const joined = new Uint8Array(prefix.length + this.length);
    joined.set(prefix);
    let offset = prefix.length;
    for await (const chunk of this.chunks()) {
      joined.set(chunk, offset);
      offset += chunk.length;
    }
    return joined;
  }

  private async read(seq: number): Promise<Uint8Array> {
    const rows = await this.db.query<{ bytes: Uint8Array }>('SELECT bytes FROM cloud_record_chunks WHERE record_id = $1 AND seq = $2', [this.recordId, seq], {
      prepared: true,
    });
    const bytes = rows.rows[0]?.bytes;
    const expected = seq < this.count - 1 ? PAYLOAD_CHUNK_BYTES : this.length - PAYLOAD_CHUNK_BYTES * (this.count - 1);
    if (bytes === undefined || bytes.length !== expected) {
      throw new IntegrityError(
        `record ${this.recordId}: payload chunk ${seq} is ${bytes === undefined ? 'missing' : `${bytes.length} bytes, not ${expected}`}`,
      );
    }
    return bytes;
  }
}
