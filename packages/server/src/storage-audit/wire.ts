/**
 * The JSON form of a storage-audit challenge of the KZG proof of possession (A. Kate, G. M. Zaverucha and
 * I. Goldberg, ASIACRYPT 2010; J. Xu and E.-C. Chang, ASIACCS 2012; docs/crypto.md §13), as the auditor sends it and the ledger names it
 * (by the SHA-256 of its RFC 8785 canonical JSON). Records are named by their ledger name, `sha256:<hex of the
 * ciphertext hash>`, with the chunk count their record-create entry commits to.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { MalformedInputError, por } from '@medshare/crypto';

/** A challenge on the wire. */
export interface WireChallenge {
  /** 32 bytes, base64. */
  nonce: string;
  samples: number;
  files: { hash: string; chunks: number }[];
}

const RECORD_HASH = /^sha256:[0-9a-f]{64}$/;

/** JSON schema of a record's ledger name. */
export const RECORD_HASH_SCHEMA = { type: 'string', pattern: RECORD_HASH.source } as const;

/** JSON schema of a wire challenge (Fastify validation; the limits are the scheme's). */
export const WIRE_CHALLENGE_SCHEMA = {
  type: 'object',
  required: ['nonce', 'samples', 'files'],
  additionalProperties: false,
  properties: {
    nonce: { type: 'string', minLength: 44, maxLength: 44, pattern: '^[A-Za-z0-9+/]{43}=$' },
    samples: { type: 'integer', minimum: 1, maximum: por.MAX_SAMPLES },
    files: {
      type: 'array',
      minItems: 1,
      maxItems: por.MAX_CHALLENGE_FILES,
      items: {
        type: 'object',
        required: ['hash', 'chunks'],
        additionalProperties: false,
        properties: { hash: RECORD_HASH_SCHEMA, chunks: { type: 'integer', minimum: 1, maximum: por.MAX_CHUNKS } },
      },
    },
  },
} as const;

/** The record's name in the scheme: the 32 bytes of its ciphertext hash. @throws MalformedInputError. */
export function fileName(hash: string): Uint8Array {
  if (!RECORD_HASH.test(hash)) throw new MalformedInputError('a record is named by sha256:<64 hex>');
  return new Uint8Array(Buffer.from(hash.slice('sha256:'.length), 'hex'));
}

/** The scheme's challenge. @throws MalformedInputError, LimitExceededError (por.checkChallenge). */
export function fromWire(wire: WireChallenge): por.Challenge {
  if (typeof wire !== 'object' || wire === null || !Array.isArray(wire.files)) throw new MalformedInputError('a storage challenge is an object with files');
  const challenge: por.Challenge = {
    nonce: new Uint8Array(Buffer.from(String(wire.nonce), 'base64')),
    samples: wire.samples,
    files: wire.files.map((f) => ({ name: fileName(f.hash), chunks: f.chunks })),
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
