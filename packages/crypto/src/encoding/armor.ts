/**
 * The text form of MedShare objects, for files and copy-paste: PEM-like armor around standard base64.
 *
 *   -----BEGIN MEDSHARE ABE USER KEY-----
 *   TVNIUgEDAQEAAAGk...            (64 characters a line)
 *   -----END MEDSHARE ABE USER KEY-----
 */
import { MalformedInputError } from '../errors.ts';
import { MAGIC, ObjectType, typeName, withArticle } from './envelope.ts';

const LINE = 64;

/** Armors binary bytes under the label of `type`. */
export function armor(type: ObjectType, bytes: Uint8Array): string {
  const label = `MEDSHARE ${typeName(type)}`;
  const b64 = Buffer.from(bytes).toString('base64');
  const lines = b64.match(new RegExp(`.{1,${LINE}}`, 'g')) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * Accepts either binary bytes (returned as they are) or armored text of the expected type (decoded).
 * Armor with another label is rejected by name, so a swapped file gives a clear message.
 */
export function dearmor(input: Uint8Array, type: ObjectType): Uint8Array {
  if (MAGIC.every((b, i) => input[i] === b)) return input;
  const text = new TextDecoder().decode(input.subarray(0, Math.min(input.length, 64 * 1024 * 1024)));
  const match = /^\s*-----BEGIN ([A-Z0-9 -]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)\r?\n?-----END \1-----\s*$/.exec(text);
  const expected = `MEDSHARE ${typeName(type)}`;
  if (!match) throw new MalformedInputError(`not a MedShare ${typeName(type).toLowerCase()} (neither binary nor armored text)`);
  if (match[1] !== expected) throw new MalformedInputError(`expected ${withArticle(expected.toLowerCase())}, got ${withArticle(match[1]!.toLowerCase())}`);
  const b64 = match[2]!.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) throw new MalformedInputError(`${expected.toLowerCase()}: invalid base64`);
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

/** The object type of binary or armored input, from its magic and type byte or its armor label. */
export function detectType(input: Uint8Array): ObjectType | undefined {
  if (input.length >= 6 && MAGIC.every((b, i) => input[i] === b)) return input[5] as ObjectType;
  const head = new TextDecoder().decode(input.subarray(0, 100));
  const label = /^\s*-----BEGIN MEDSHARE ([A-Z0-9 -]+)-----/.exec(head)?.[1];
  return ALL_TYPES.find((type) => typeName(type) === label);
}

const ALL_TYPES = Object.values(ObjectType).filter((v): v is ObjectType => typeof v === 'number');
