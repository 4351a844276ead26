/**
 * Bounded binary reader and writer for MedShare's object formats. All integers are big-endian.
 * The reader never allocates more than the input it was given: every length and count is checked
 * against the bytes that remain before anything is read or allocated.
 */
import { MalformedInputError } from '../errors.ts';

/** Accumulates a binary encoding. */
export class ByteWriter {
  private readonly parts: Uint8Array[] = [];
  private length = 0;

  u8(value: number): this {
    return this.raw(Uint8Array.of(value));
  }

  u16(value: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, value);
    return this.raw(b);
  }

  u32(value: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value);
    return this.raw(b);
  }

  /** Fixed-size bytes; the reader must know the size. */
  raw(bytes: Uint8Array): this {
    this.parts.push(bytes);
    this.length += bytes.length;
    return this;
  }

  /** Length-prefixed (u32) bytes. */
  bytes(bytes: Uint8Array): this {
    return this.u32(bytes.length).raw(bytes);
  }

  /** Length-prefixed (u32) UTF-8 text. */
  text(value: string): this {
    return this.bytes(new TextEncoder().encode(value));
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const part of this.parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
}

/** Reads a binary encoding; every failure is a MalformedInputError naming `what` was being read. */
/** One decoder for every read: without `stream`, each decode is independent of the previous ones. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export class ByteReader {
  private offset = 0;
  constructor(
    private readonly input: Uint8Array,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.input.length - this.offset;
  }

  /** Where the next read starts. */
  get position(): number {
    return this.offset;
  }

  /** The bytes read since `position` was `start` (a view, not a copy). */
  since(start: number): Uint8Array {
    return this.input.subarray(start, this.offset);
  }

  private fail(reason: string): never {
    throw new MalformedInputError(`${this.what}: ${reason}`);
  }

  u8(): number {
    return this.raw(1)[0]!;
  }

  u16(): number {
    const b = this.raw(2);
    return (b[0]! << 8) | b[1]!;
  }

  u32(): number {
    const b = this.raw(4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
  }

  raw(size: number): Uint8Array {
    if (size > this.remaining) this.fail(`truncated (needed ${size} more bytes, ${this.remaining} left)`);
    const out = this.input.subarray(this.offset, this.offset + size);
    this.offset += size;
    return out;
  }

  /** Length-prefixed (u32) bytes, at most `max` long. */
  bytes(max: number): Uint8Array {
    const size = this.u32();
    if (size > max) this.fail(`a field of ${size} bytes exceeds the limit of ${max}`);
    return this.raw(size);
  }

  /**
   * Length-prefixed (u32) UTF-8 text, at most `max` bytes; invalid UTF-8 is rejected. A leading U+FEFF is kept
   * (TextDecoder would drop it), so the text read is exactly the text written and re-encodes to the same bytes.
   */
  text(max: number): string {
    const bytes = this.bytes(max);
    try {
      return strictUtf8.decode(bytes);
    } catch {
      return this.fail('text field is not valid UTF-8');
    }
  }

  /**
   * A u32 element count, checked against `max` and against the bytes left (each element needs at least
   * `minElementSize` bytes), so a hostile count cannot make the caller allocate or loop without bound.
   */
  count(max: number, minElementSize: number): number {
    const n = this.u32();
    if (n > max) this.fail(`count ${n} exceeds the limit of ${max}`);
    if (n * minElementSize > this.remaining) this.fail(`truncated (count ${n} needs more bytes than remain)`);
    return n;
  }

  /** Asserts that the whole input was consumed. */
  end(): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} unexpected trailing bytes`);
  }
}
