/**
 * Globals the bundled packages expect from Node: `Buffer` (the `buffer` package), taught Node's `base64url`
 * encoding (RFC 4648 §5), which the packages use and the `buffer` package lacks. Imported first by main.ts, so it
 * is evaluated before any package module runs.
 */
import { Buffer } from 'buffer';

const from = Buffer.from.bind(Buffer) as (value: unknown, encoding?: unknown, length?: unknown) => Buffer;
const toText = Buffer.prototype.toString;

Buffer.from = function fromWithBase64url(value: unknown, encoding?: unknown, length?: unknown): Buffer {
  if (typeof value === 'string' && encoding === 'base64url') return from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  return from(value, encoding, length);
} as typeof Buffer.from;

Buffer.prototype.toString = function toStringWithBase64url(this: Buffer, encoding?: string, start?: number, end?: number): string {
  if (encoding === 'base64url') return toText.call(this, 'base64', start, end).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return toText.call(this, encoding as BufferEncoding, start, end);
};

(globalThis as { Buffer?: typeof Buffer }).Buffer ??= Buffer;
