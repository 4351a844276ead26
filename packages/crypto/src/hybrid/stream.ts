/**
 * Chunked AES-256-GCM for payloads of any size in bounded memory: the STREAM construction of Hoang,
 * Reyhanitabar, Rogaway & Vizár ("Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance",
 * CRYPTO 2015, §7), as used by age and Tink. Each payload has its own key (derived by HKDF from a fresh
 * KEM secret), so nonces never repeat across payloads; within one, the nonce is a chunk counter and a
 * final-chunk flag, so reordering, dropping, truncating or extending chunks fails authentication.
 *
 *   nonce(i, last) = 0x00 × 7 ‖ u32be(i) ‖ (last ? 0x01 : 0x00)
 *   chunk i        = AES-256-GCM(key, nonce, aad = header digest, plaintext_i) ‖ tag(16)
 *
 * Every chunk but the last carries exactly CHUNK_BYTES of plaintext; the last carries fewer (possibly 0),
 * so a reader knows a chunk is last from its length alone and never needs to look ahead.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync } from 'node:crypto';
import { IntegrityError } from '../errors.ts';

export const CHUNK_BYTES = 64 * 1024;
export const TAG_BYTES = 16;
export const SEALED_CHUNK_BYTES = CHUNK_BYTES + TAG_BYTES;
const MAX_CHUNKS = 2 ** 32;

/** SHA-256 digest of a header, bound to every chunk as associated data. */
export function headerDigest(header: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(header).digest());
}

/** HKDF-SHA256 from a KEM secret to a payload key; `label` separates the schemes that use it. */
export function derivePayloadKey(secret: Uint8Array, digest: Uint8Array, label: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, digest, `MedShare v1 payload key: ${label}`, 32));
}

function nonce(index: number, last: boolean): Buffer {
  if (index >= MAX_CHUNKS) throw new RangeError('payload too large for one STREAM');
  const n = Buffer.alloc(12);
  n.writeUInt32BE(index, 7);
  n[11] = last ? 1 : 0;
  return n;
}

/**
 * Encrypts a payload chunk by chunk. Feed any amount with `push`; call `finish` once at the end. Both return
 * pieces to write in order (a chunk's ciphertext and its tag are separate pieces, to avoid copying).
 */
export class PayloadSealer {
  private index = 0;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly key: Uint8Array,
    private readonly aad: Uint8Array,
  ) {}

  private seal(plaintext: Uint8Array, last: boolean): Uint8Array[] {
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce(this.index++, last));
    cipher.setAAD(this.aad);
    const body = cipher.update(plaintext);
    cipher.final();
    return [body, cipher.getAuthTag()];
  }

  /** Adds plaintext; returns the sealed pieces completed by it (possibly none). */
  push(data: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let offset = 0;
    if (this.pendingBytes > 0) {
      const needed = CHUNK_BYTES - this.pendingBytes;
      if (data.length < needed) {
        this.pending.push(Buffer.from(data));
        this.pendingBytes += data.length;
        return out;
      }
      this.pending.push(data.subarray(0, needed));
      out.push(...this.seal(Buffer.concat(this.pending), false));
      offset = needed;
    }
    // A full chunk is never the last one (the last is always shorter), so it can be sealed at once.
    for (; data.length - offset >= CHUNK_BYTES; offset += CHUNK_BYTES) {
      out.push(...this.seal(data.subarray(offset, offset + CHUNK_BYTES), false));
    }
    this.pending = offset < data.length ? [Buffer.from(data.subarray(offset))] : [];
    this.pendingBytes = data.length - offset;
    return out;
  }

  /** Seals what is left (fewer than CHUNK_BYTES, possibly none) as the final chunk. */
  finish(): Uint8Array[] {
    const rest = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    return this.seal(rest, true);
  }

  /**
   * `push(data)` then `finish()`, for the end of a payload in memory: the chunks are sealed where they lie in `data`,
   * with no copy of its tail (what `push` copies because a streaming caller may reuse its buffer).
   */
  end(data: Uint8Array): Uint8Array[] {
    if (this.pendingBytes > 0) return [...this.push(data), ...this.finish()];
    const out: Uint8Array[] = [];
    let offset = 0;
    // The last chunk is the one shorter than CHUNK_BYTES (empty when the length is a multiple of it).
    for (; data.length - offset >= CHUNK_BYTES; offset += CHUNK_BYTES) out.push(...this.seal(data.subarray(offset, offset + CHUNK_BYTES), false));
    out.push(...this.seal(data.subarray(offset), true));
    return out;
  }
}

/** Decrypts a payload chunk by chunk; any tampering, truncation or extension raises IntegrityError. */
export class PayloadOpener {
  private index = 0;
  /** The current chunk's bytes received so far, in the pieces they came in. */
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private done = false;

  constructor(
    private readonly key: Uint8Array,
    private readonly aad: Uint8Array,
  ) {}

  /**
   * Opens one sealed chunk given in `parts` (a chunk that straddles two received pieces is deciphered piece by piece,
   * not joined first). The plaintext is handed out only once the chunk's tag has verified.
   */
  private open(parts: readonly Uint8Array[], last: boolean): Uint8Array[] {
    const tagAt = parts.reduce((n, part) => n + part.length, 0) - TAG_BYTES;
    const decipher = createDecipheriv('aes-256-gcm', this.key, nonce(this.index++, last));
    decipher.setAAD(this.aad);
    const body: Uint8Array[] = [];
    const tag: Uint8Array[] = [];
    let position = 0;
    for (const part of parts) {
      const bodyEnd = Math.min(part.length, Math.max(0, tagAt - position));
      if (bodyEnd > 0) body.push(part.subarray(0, bodyEnd));
      if (bodyEnd < part.length) tag.push(part.subarray(bodyEnd));
      position += part.length;
    }
    // The tag is set before the first update: node accepts either order, the portal's WebCrypto-backed shim of
    // node:crypto (one-shot AES-GCM) needs the tag first.
    decipher.setAuthTag(tag.length === 1 ? tag[0]! : Buffer.concat(tag));
    const plaintext = body.map((piece) => decipher.update(piece));
    try {
      decipher.final();
    } catch {
      const why = last ? 'truncated, tampered or corrupted' : 'tampered, corrupted or reordered';
      throw new IntegrityError(`payload chunk ${this.index - 1}${last ? ' (final)' : ''} failed authentication: ${why}`);
    }
    return plaintext;
  }

  /** Keeps the start of a chunk until the rest arrives: a copy, unless the caller hands the bytes over (`owned`). */
  private keep(bytes: Uint8Array, owned: boolean): void {
    this.pending.push(owned ? bytes : Buffer.from(bytes));
    this.pendingBytes += bytes.length;
  }

  /**
   * Adds ciphertext bytes; returns the plaintext of every full chunk now available. Full chunks are opened where
   * they lie in `data`; a partial chunk at the end is copied (the caller may reuse its buffer), unless `owned` says
   * the caller will never write into `data` again (bytes received from the network), when a view is kept.
   */
  push(data: Uint8Array, options: { owned?: boolean } = {}): Uint8Array[] {
    if (this.done && data.length > 0) throw new IntegrityError('data after the final payload chunk');
    const owned = options.owned === true;
    const out: Uint8Array[] = [];
    let offset = 0;
    if (this.pendingBytes > 0) {
      const needed = SEALED_CHUNK_BYTES - this.pendingBytes;
      if (data.length < needed) {
        this.keep(data, owned);
        return out;
      }
      out.push(...this.open([...this.pending, data.subarray(0, needed)], false));
      this.pending = [];
      this.pendingBytes = 0;
      offset = needed;
    }
    // A full-size sealed chunk is never the last one (the last carries fewer plaintext bytes).
    for (; data.length - offset >= SEALED_CHUNK_BYTES; offset += SEALED_CHUNK_BYTES) {
      out.push(...this.open([data.subarray(offset, offset + SEALED_CHUNK_BYTES)], false));
    }
    if (offset < data.length) this.keep(data.subarray(offset), owned);
    return out;
  }

  /** Ends the payload: what remains must be exactly one authentic final chunk. */
  finish(): Uint8Array {
    if (this.pendingBytes < TAG_BYTES) throw new IntegrityError('payload truncated (no final chunk)');
    const plaintext = this.open(this.pending, true);
    this.pending = [];
    this.pendingBytes = 0;
    this.done = true;
    return plaintext.length === 1 ? plaintext[0]! : concatBytes(plaintext);
  }

  /**
   * `push(data)` then `finish()`, for the end of a payload in memory: every chunk, the final one too, is opened where
   * it lies in `data` (push copies a partial chunk, because a streaming caller may reuse its buffer).
   */
  end(data: Uint8Array): Uint8Array[] {
    if (this.pendingBytes > 0 || this.done) return [...this.push(data), this.finish()];
    const out: Uint8Array[] = [];
    let offset = 0;
    for (; data.length - offset >= SEALED_CHUNK_BYTES; offset += SEALED_CHUNK_BYTES)
      out.push(...this.open([data.subarray(offset, offset + SEALED_CHUNK_BYTES)], false));
    if (data.length - offset < TAG_BYTES) throw new IntegrityError('payload truncated (no final chunk)');
    out.push(...this.open([data.subarray(offset)], true));
    this.done = true;
    return out;
  }
}

/** One-shot helpers for payloads already in memory. */
export function sealPayload(key: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return concatBytes(new PayloadSealer(key, aad).end(plaintext));
}

export function openPayload(key: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array {
  const pieces = new PayloadOpener(key, aad).end(sealed).filter((piece) => piece.length > 0);
  // A payload of one chunk (every record up to 64 KiB) is returned as the decipher's own output, not copied.
  return pieces.length === 1 ? new Uint8Array(pieces[0]!.buffer, pieces[0]!.byteOffset, pieces[0]!.length) : concatBytes(pieces);
}

/** Concatenation as a plain Uint8Array (the API never hands out Node Buffers). */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const joined = Buffer.concat(parts);
  return new Uint8Array(joined.buffer, joined.byteOffset, joined.length);
}
