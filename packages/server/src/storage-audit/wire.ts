/**
 * The JSON form of a storage-audit challenge, as the auditor sends it and the ledger names it (by the SHA-256 of
 * its RFC 8785 canonical JSON). Records are named by their ledger name, `sha256:<hex of the ciphertext hash>`, which
 * is also the file name the tags bind; keys by the SHA-256 of their encoding.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { MalformedInputError, por } from '@medshare/crypto';
import type { RecordStorageTags } from './tagger.ts';

/** A challenge on the wire. */
export interface WireChallenge {
  /** 32 bytes, base64. */
  nonce: string;
  sectors: number;
  samples: number;
  /** Key ids (hex SHA-256 of the encoded public key); files name them by index. */
  keys: string[];
  files: { hash: string; blocks: number; key: number }[];
}

const RECORD_HASH = /^sha256:[0-9a-f]{64}$/;
const KEY_ID = /^[0-9a-f]{64}$/;

/** JSON schema of a wire challenge (Fastify validation; the limits are the scheme's). */
export const WIRE_CHALLENGE_SCHEMA = {
  type: 'object',
  required: ['nonce', 'sectors', 'samples', 'keys', 'files'],
  additionalProperties: false,
  properties: {
    nonce: { type: 'string', minLength: 44, maxLength: 44, pattern: '^[A-Za-z0-9+/]{43}=$' },
    sectors: { type: 'integer', minimum: 1, maximum: por.MAX_SECTORS },
    samples: { type: 'integer', minimum: 1, maximum: por.MAX_SAMPLES },
    keys: { type: 'array', minItems: 1, maxItems: por.MAX_CHALLENGE_KEYS, items: { type: 'string', pattern: KEY_ID.source } },
    files: {
      type: 'array',
      minItems: 1,
      maxItems: por.MAX_CHALLENGE_FILES,
      items: {
        type: 'object',
        required: ['hash', 'blocks', 'key'],
        additionalProperties: false,
        properties: {
          hash: { type: 'string', pattern: RECORD_HASH.source },
          blocks: { type: 'integer', minimum: 1, maximum: por.MAX_BLOCKS },
          key: { type: 'integer', minimum: 0 },
        },
      },
    },
  },
} as const;

/** The record's file name: the 32 bytes of its ciphertext hash. */
export function fileName(hash: string): Uint8Array {
  if (!RECORD_HASH.test(hash)) throw new MalformedInputError('a record is named by sha256:<64 hex>');
  return new Uint8Array(Buffer.from(hash.slice('sha256:'.length), 'hex'));
}

/** The scheme's challenge. @throws MalformedInputError, LimitExceededError (por.checkChallenge). */
export function fromWire(wire: WireChallenge): por.Challenge {
  if (typeof wire !== 'object' || wire === null || !Array.isArray(wire.files) || !Array.isArray(wire.keys))
    throw new MalformedInputError('a storage challenge is an object with files and keys');
  if (wire.keys.some((k) => typeof k !== 'string' || !KEY_ID.test(k))) throw new MalformedInputError('a key is named by 64 hex digits');
  const challenge: por.Challenge = {
    nonce: new Uint8Array(Buffer.from(String(wire.nonce), 'base64')),
    sectors: wire.sectors,
    samples: wire.samples,
    keys: wire.keys.length,
    files: wire.files.map((f) => ({ name: fileName(f.hash), blocks: f.blocks, key: f.key })),
  };
  por.checkChallenge(challenge);
  return challenge;
}

/** Hex SHA-256 of the challenge's canonical JSON: how the ledger names it. */
export function challengeDigest(wire: WireChallenge): string {
  return createHash('sha256')
    .update(canonicalize(wire) ?? '')
    .digest('hex');
}

/**
 * The one proof-of-storage public key the tagged records of an upload share (1,682 bytes): an upload carries it once,
 * beside the records, instead of once per record. Undefined when no record is tagged.
 * @throws MalformedInputError when the records carry different keys (a gateway tags one upload under one key).
 */
export function uploadStorageKey(records: readonly { storage?: RecordStorageTags }[]): Uint8Array | undefined {
  const keys = records.flatMap((r) => (r.storage === undefined ? [] : [r.storage.publicKey]));
  const first = keys[0];
  if (first !== undefined && keys.some((k) => !Buffer.from(k).equals(first)))
    throw new MalformedInputError('the records of one upload are tagged under one proof-of-storage key');
  return first;
}
