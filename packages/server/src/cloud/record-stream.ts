/**
 * The binary form of a read's answer, `application/octet-stream`, for large records: no base64 (a third larger,
 * encoded and decoded in one piece on both sides) and no JSON around it, and each payload written to the socket as
 * the database returned it. For each record, in order:
 *
 *   u16 record id length ‖ record id (UTF-8) ‖ u32 converted header length ‖ converted header ‖
 *   u32 payload length ‖ payload
 *
 * The converted ciphertext `pre.createReader(key).decrypt` takes is header ‖ payload.
 */
import { MalformedInputError } from '@medshare/crypto';

export const RECORD_STREAM_TYPE = 'application/octet-stream';

/** The parts of one converted record as a read answers them. */
export interface RecordParts {
  readonly recordId: string;
  readonly header: Uint8Array;
  readonly payload: Uint8Array;
}

/** A record to frame: its payload in memory, or read piece by piece (a large record's chunk rows). */
export interface FramedRecord {
  readonly recordId: string;
  readonly header: Uint8Array;
  readonly payload: Uint8Array | { readonly length: number; chunks(): AsyncIterable<Uint8Array> };
}

const utf8 = new TextEncoder();
const MAX_ID_BYTES = 256;
/** Larger than any header the cloud writes (a converted header carries rk2: at most 4 MiB) plus its envelope. */
const MAX_HEADER_BYTES = 5 * 1024 * 1024;

/** The frames of `records`, piece by piece (the payloads are not copied; a chunked one is read as it is written). */
export async function* recordFrames(records: Iterable<FramedRecord>): AsyncGenerator<Uint8Array> {
  for (const record of records) {
    const id = utf8.encode(record.recordId);
    const prefix = Buffer.alloc(2 + id.length + 4);
    prefix.writeUInt16BE(id.length, 0);
    prefix.set(id, 2);
    prefix.writeUInt32BE(record.header.length, 2 + id.length);
    const payloadLength = Buffer.alloc(4);
    payloadLength.writeUInt32BE(record.payload.length, 0);
    yield prefix;
    yield record.header;
    yield payloadLength;
    if (record.payload instanceof Uint8Array) {
      if (record.payload.length > 0) yield record.payload;
    } else {
      yield* record.payload.chunks();
    }
  }
}

/**
 * What an incremental read of a record stream yields, in order for each record: `start` (its id, header and payload
 * length), then its payload in `payload` pieces as they arrive (views of the received bytes, none when it is empty),
 * then `end`.
 */
export type RecordStreamEvent =
  | { readonly kind: 'start'; readonly recordId: string; readonly header: Uint8Array; readonly payloadLength: number }
  | { readonly kind: 'payload'; readonly bytes: Uint8Array }
  | { readonly kind: 'end'; readonly recordId: string };

/**
 * Reads a record stream (a fetch body, a socket) as it arrives: a record's payload is handed out piece by piece,
 * never gathered. MalformedInputError for a truncated or implausible stream (after the events it did carry).
 */
export async function* recordStreamEvents(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<RecordStreamEvent> {
  // Fields before a payload are gathered (they are small); payload bytes pass through as the views they arrived in.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let need = 2;
  // States: 0 = id length, 1 = id + header length, 2 = header + payload length, 3 = payload.
  let state = 0;
  let idLength = 0;
  let recordId = '';
  for await (const chunk of chunks) {
    let data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    while (data.length > 0) {
      if (state === 3) {
        const piece = data.subarray(0, need);
        data = data.subarray(piece.length);
        need -= piece.length;
        yield { kind: 'payload', bytes: piece };
        if (need === 0) {
          yield { kind: 'end', recordId };
          need = 2;
          state = 0;
        }
        continue;
      }
      const take = Math.min(need - pendingBytes, data.length);
      pending.push(data.subarray(0, take));
      pendingBytes += take;
      data = data.subarray(take);
      if (pendingBytes < need) continue;
      const field = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      if (state === 0) {
        idLength = field.readUInt16BE(0);
        if (idLength === 0 || idLength > MAX_ID_BYTES) throw new MalformedInputError('record stream: implausible record id length');
        need = idLength + 4;
        state = 1;
      } else if (state === 1) {
        recordId = field.subarray(0, idLength).toString('utf8');
        need = field.readUInt32BE(idLength);
        if (need > MAX_HEADER_BYTES) throw new MalformedInputError('record stream: implausible header length');
        need += 4;
        state = 2;
      } else {
        need = field.readUInt32BE(field.length - 4);
        // The header is copied out of the received bytes: it outlives them (the reader keeps it while decrypting).
        yield { kind: 'start', recordId, header: new Uint8Array(field.subarray(0, field.length - 4)), payloadLength: need };
        if (need === 0) {
          yield { kind: 'end', recordId };
          need = 2;
          state = 0;
        } else {
          state = 3;
        }
      }
    }
  }
  if (state !== 0 || pendingBytes > 0) throw new MalformedInputError('record stream: truncated');
}

/** Whole records from a record stream's events, each once its bytes have all arrived (its payload joined once). */
export async function* wholeRecords(events: AsyncIterable<RecordStreamEvent>): AsyncGenerator<RecordParts> {
  let start: Extract<RecordStreamEvent, { kind: 'start' }> | undefined;
  let payload: Uint8Array[] = [];
  for await (const event of events) {
    if (event.kind === 'start') {
      start = event;
      payload = [];
    } else if (event.kind === 'payload') {
      payload.push(event.bytes);
    } else {
      const joined = Buffer.concat(payload, start!.payloadLength);
      yield { recordId: start!.recordId, header: start!.header, payload: new Uint8Array(joined.buffer, joined.byteOffset, joined.length) };
    }
  }
}

/** Reads whole records from a byte stream of frames. */
export function parseRecordFrames(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<RecordParts> {
  return wholeRecords(recordStreamEvents(chunks));
}
