/**
 * A writer's state: how many entries each keyword has in its sub-index (Mitra's FileCnt). Mitra keeps it at the
 * client; MedShare has many readers per writer, so the writer keeps it at the server, sealed under its index key
 * (AES-256-GCM, key HKDF(K, "state")), and readers who hold K open it to build tokens (docs/crypto.md §12).
 *
 * The sealed state is replaced on every write (the server compares versions, so concurrent writers of one
 * sub-index cannot both commit) and padded to a power of two (at least 1 KiB), so the server learns the number
 * of distinct keywords only within a factor of two.
 *
 *   envelope(SseWriterState, Mitra) body = nonce (12) ‖ AES-256-GCM(plaintext) ‖ tag (16)
 *   plaintext = u32 version ‖ u32 n ‖ n × (text keyword ‖ u32 count) ‖ zero padding
 *   associated data = "medshare/sse/v1/state\0" ‖ context
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { ByteWriter } from '../encoding/bytes.ts';
import { ObjectType, SchemeId, openEnvelope, sealEnvelope } from '../encoding/envelope.ts';
import { IntegrityError, LimitExceededError } from '../errors.ts';
import { checkIndexKey, MAX_COUNT, MAX_KEYWORD_BYTES } from './mitra.ts';

/** The most distinct keywords one sub-index holds. */
export const MAX_KEYWORDS = 1_000_000;
const MIN_PADDED = 1024;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** Largest sealed state accepted (64 MiB: a million long keywords). */
const MAX_SEALED = 64 * 1024 * 1024;

/** A sub-index's keyword counts at a version (0: nothing written yet). */
export interface WriterState {
  readonly version: number;
  readonly counts: ReadonlyMap<string, number>;
}

/** The state of a sub-index nobody has written to. */
export const EMPTY_STATE: WriterState = { version: 0, counts: new Map() };

function stateKey(key: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', checkIndexKey(key), new Uint8Array(0), 'medshare/sse/v1/state key', 32));
}

const aad = (context: string) => Buffer.concat([Buffer.from('medshare/sse/v1/state\0'), Buffer.from(context, 'utf8')]);

function paddedLength(n: number): number {
  let size = MIN_PADDED;
  while (size < n) size *= 2;
  return size;
}

/** Seals `state` for the server; `context` names the sub-index (the state does not open under another). */
export function sealState(key: Uint8Array, context: string, state: WriterState): Uint8Array {
  if (state.counts.size > MAX_KEYWORDS) throw new LimitExceededError(`a sub-index holds at most ${MAX_KEYWORDS} keywords`);
  const w = new ByteWriter().u32(state.version).u32(state.counts.size);
  for (const [keyword, count] of state.counts) w.text(keyword).u32(count);
  const body = w.finish();
  const plain = new Uint8Array(paddedLength(body.length));
  plain.set(body);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', stateKey(key), nonce);
  cipher.setAAD(aad(context));
  const sealed = Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  return sealEnvelope(ObjectType.SseWriterState, SchemeId.Mitra, sealed);
}

/**
 * Opens a sealed state. @throws MalformedInputError / IntegrityError for a truncated, altered or foreign state
 * (another key or context), or one whose version is not `expectedVersion` when given (a stale state replayed).
 */
export function openState(key: Uint8Array, context: string, sealed: Uint8Array, expectedVersion?: number): WriterState {
  if (sealed.length > MAX_SEALED) throw new LimitExceededError('a sealed writer state is at most 64 MiB');
  const r = openEnvelope(sealed, ObjectType.SseWriterState, SchemeId.Mitra).body;
  const nonce = r.raw(NONCE_BYTES);
  if (r.remaining < TAG_BYTES) throw new IntegrityError('sealed writer state: truncated');
  const body = r.raw(r.remaining - TAG_BYTES);
  const tag = r.raw(TAG_BYTES);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', stateKey(key), nonce);
    decipher.setAAD(aad(context));
    decipher.setAuthTag(tag);
    plain = Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    throw new IntegrityError('sealed writer state does not open under this index key and sub-index (altered, or another one)');
  }
  // Authenticated, so written by a holder of the key; still parsed with every bound checked (Buffer reads throw
  // RangeError past the end, turned into an IntegrityError). Buffer.toString, not TextDecoder: ~10× faster here.
  const counts = new Map<string, number>();
  let version: number;
  try {
    version = plain.readUInt32BE(0);
    const n = plain.readUInt32BE(4);
    if (n > MAX_KEYWORDS) throw new RangeError('count');
    let at = 8;
    for (let i = 0; i < n; i++) {
      const length = plain.readUInt32BE(at);
      if (length === 0 || length > MAX_KEYWORD_BYTES || at + 4 + length + 4 > plain.length) throw new RangeError('keyword');
      const keyword = plain.toString('utf8', at + 4, at + 4 + length);
      const count = plain.readUInt32BE(at + 4 + length);
      at += 8 + length;
      if (count < 1 || count > MAX_COUNT || counts.has(keyword)) throw new RangeError('count');
      counts.set(keyword, count);
    }
  } catch {
    throw new IntegrityError('writer state: a keyword or count is out of range, repeated or truncated');
  }
  if (expectedVersion !== undefined && version !== expectedVersion)
    throw new IntegrityError(`writer state: version ${version} where ${expectedVersion} was stored (a stale state)`);
  return { version, counts };
}
