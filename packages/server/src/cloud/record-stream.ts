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

const utf8 = new TextEncoder();
const MAX_ID_BYTES = 256;
/** Larger than any header the cloud writes (a converted header carries rk2: at most 4 MiB) plus its envelope. */
const MAX_HEADER_BYTES = 5 * 1024 * 1024;

/** The frames of `records`, piece by piece (the payloads are not copied). */
export function* recordFrames(records: Iterable<RecordParts>): Generator<Uint8Array> {
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
    if (record.payload.length > 0) yield record.payload;
  }
}

/**
 * Reads frames from a byte stream (a fetch body, a socket): each record once its bytes have all arrived.
 * MalformedInputError for a truncated or implausible stream.
 */
export async function* parseRecordFrames(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<RecordParts> {
  // Chunks are kept as they arrive and joined once a field is complete: each byte is copied about twice, whatever the
  // size of the record (joining on every chunk would copy a large payload once per chunk).
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let need = 2;
  // States: 0 = id length, 1 = id + header length, 2 = header + payload length, 3 = payload.
  let state = 0;
  let idLength = 0;
  let recordId = '';
  let header: Uint8Array = new Uint8Array(0);
  for await (const chunk of chunks) {
    pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    pendingBytes += chunk.length;
    while (pendingBytes >= need) {
      const joined = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      const piece = joined.subarray(0, need);
      const rest = joined.subarray(need);
      pending = rest.length > 0 ? [rest] : [];
      pendingBytes = rest.length;
      if (state === 0) {
        idLength = piece.readUInt16BE(0);
        if (idLength === 0 || idLength > MAX_ID_BYTES) throw new MalformedInputError('record stream: implausible record id length');
        need = idLength + 4;
        state = 1;
      } else if (state === 1) {
        recordId = piece.subarray(0, idLength).toString('utf8');
        need = piece.readUInt32BE(idLength);
        if (need > MAX_HEADER_BYTES) throw new MalformedInputError('record stream: implausible header length');
        need += 4;
        state = 2;
      } else if (state === 2) {
        header = new Uint8Array(piece.subarray(0, piece.length - 4));
        need = piece.readUInt32BE(piece.length - 4);
        state = 3;
        if (need === 0) {
          yield { recordId, header, payload: new Uint8Array(0) };
          need = 2;
          state = 0;
        }
      } else {
        yield { recordId, header, payload: new Uint8Array(piece) };
        need = 2;
        state = 0;
      }
    }
  }
  if (state !== 0 || pendingBytes > 0) throw new MalformedInputError('record stream: truncated');
}
