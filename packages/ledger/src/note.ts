/**
 * C2SP signed notes (c2sp.org/signed-note) and tlog checkpoints (c2sp.org/tlog-checkpoint).
 *
 * A note is UTF-8 text ending in a newline, a blank line, then signature lines
 * "— <key name> <base64 signature>\n". A checkpoint's text is the origin, the tree size in decimal and the
 * base64 root hash, one per line; we write no extension lines (the spec does not recommend them) — the time
 * is carried by each tlog-cosignature/v1 signature instead (see keys.ts).
 */
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';
import { HASH_SIZE } from './hashing.ts';
import { MAX_TREE_SIZE } from './tree.ts';
import type { CheckpointSigner, CheckpointVerifier } from './keys.ts';

/** The tree head a checkpoint commits to. */
export interface Checkpoint {
  origin: string;
  size: number;
  rootHash: Buffer;
}

/** One signature line of a note. */
export interface NoteSignature {
  name: string;
  signature: Buffer;
}

// Bounds that keep parsing linear and small whatever the input.
const MAX_NOTE_BYTES = 64 * 1024;
const MAX_SIGNATURES = 100;

const EM_DASH = '\u2014';
const ORIGIN = /^[^\s+]{1,255}$/u;

/** The checkpoint body: three lines, each ending in a newline. */
export function formatCheckpoint({ origin, size, rootHash }: Checkpoint): string {
  if (!ORIGIN.test(origin)) throw new MalformedInputError('a log origin is 1-255 characters without spaces or "+"');
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_TREE_SIZE) throw new MalformedInputError('bad tree size');
  if (rootHash.length !== HASH_SIZE) throw new MalformedInputError('a root hash is 32 bytes');
  return `${origin}\n${size}\n${rootHash.toString('base64')}\n`;
}

/** Parses a checkpoint body strictly (canonical decimal and base64, no extension lines). */
export function parseCheckpoint(body: string): Checkpoint {
  const lines = body.split('\n');
  const [origin, sizeText, rootText, end, ...rest] = lines;
  if (origin === undefined || sizeText === undefined || rootText === undefined || end !== '' || rest.length > 0) {
    throw new MalformedInputError('a checkpoint body is exactly three newline-terminated lines');
  }
  if (!ORIGIN.test(origin)) throw new MalformedInputError('bad checkpoint origin');
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText) || Number(sizeText) > MAX_TREE_SIZE) {
    throw new MalformedInputError('bad checkpoint tree size');
  }
  const rootHash = Buffer.from(rootText, 'base64');
  if (rootHash.length !== HASH_SIZE || rootHash.toString('base64') !== rootText) {
    throw new MalformedInputError('bad checkpoint root hash');
  }
  return { origin, size: Number(sizeText), rootHash };
}

/** A new note: `body` signed by each signer at `timestamp` (seconds since the epoch). */
export function signNote(body: string, signers: readonly CheckpointSigner[], timestamp: number): string {
  return formatNote(
    body,
    signers.map((signer) => ({ name: signer.verifier.name, signature: signer.sign(body, timestamp) })),
  );
}

/** Serialises a note from its body and signature lines. */
export function formatNote(body: string, signatures: readonly NoteSignature[]): string {
  const lines = signatures.map(({ name, signature }) => `${EM_DASH} ${name} ${signature.toString('base64')}\n`);
  return `${body}\n${lines.join('')}`;
}

/** Splits a note into its body and signature lines, refusing anything malformed or oversized. */
export function parseNote(note: string): { body: string; signatures: NoteSignature[] } {
  if (Buffer.byteLength(note, 'utf8') > MAX_NOTE_BYTES) throw new LimitExceededError(`a note is at most ${MAX_NOTE_BYTES} bytes`);
  const split = note.lastIndexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) throw new MalformedInputError('a signed note is a body, a blank line and signature lines');
  const body = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) throw new LimitExceededError(`a note carries at most ${MAX_SIGNATURES} signatures`);
  const signatures = lines.map((line) => {
    const parts = line.split(' ');
    const [dash, name, encoded] = parts;
    const signature = Buffer.from(encoded ?? '', 'base64');
    if (parts.length !== 3 || dash !== EM_DASH || !name || signature.length < 5 || signature.toString('base64') !== encoded) {
      throw new MalformedInputError('a note signature line is "— <name> <base64>"');
    }
    return { name, signature };
  });
  return { body, signatures };
}

/**
 * The timestamp of the signature by `verifier` on a parsed note, or undefined when it has none or when any line
 * that names this key (its name and key ID) fails to verify: as stock note verifiers do (Go's note.Open), a bad
 * signature by a known key condemns the note even if a good one follows.
 */
export function findSignature(body: string, signatures: readonly NoteSignature[], verifier: CheckpointVerifier): number | undefined {
  let found: number | undefined;
  for (const { name, signature } of signatures) {
    if (name !== verifier.name || !verifier.keyId.equals(signature.subarray(0, 4))) continue;
    const time = verifier.verify(body, signature);
    if (time === undefined) return undefined;
    found ??= time;
  }
  return found;
}
