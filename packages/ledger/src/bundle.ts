/**
 * Inclusion-proof bundles: everything needed to check, offline and without trusting the cloud, that one entry is
 * in the log — the entry's canonical bytes, its index, the RFC 9162 audit path, and the signed (and cosigned)
 * checkpoint it leads to. A patient's app or an auditor needs only the log's and witnesses' public keys.
 */
import { IntegrityError, MalformedInputError } from '@medshare/crypto';
import { parseEntry, type AuditEvent } from './entry.ts';
import { HASH_SIZE, hashLeaf } from './hashing.ts';
import { parseCheckpoint, parseNote } from './note.ts';
import { verifyInclusion } from './proofs.ts';
import { cosignersOf, defaultQuorum } from './verify.ts';
import { verifyCheckpointNote } from './witness.ts';
import type { CheckpointVerifier } from './keys.ts';
import type { AuditLog, StoredEntry } from './log.ts';

/** The JSON form of an inclusion proof bundle. */
export interface InclusionBundle {
  index: number;
  /** The entry's canonical JSON, exactly the leaf's bytes. */
  entry: string;
  /** Audit path, base64, leaf side first. */
  inclusionProof: string[];
  /** The signed checkpoint note the path leads to. */
  checkpoint: string;
}

/** Builds the bundle of entry `index` against the latest checkpoint of `log`. */
export async function buildInclusionBundle(log: AuditLog, index: number): Promise<InclusionBundle> {
  await log.flush();
  const checkpoint = await log.checkpoint();
  const { size } = parseCheckpoint(parseNote(checkpoint).body);
  const stored = await log.entry(index);
  if (index >= size) throw new MalformedInputError(`entry ${index} is not yet covered by a checkpoint`);
  return bundlesAgainst(log, [stored], checkpoint, size)[0]!;
}

/**
 * The bundles of `indices` against the latest checkpoint the witness quorum cosigned, waiting (up to `timeoutMs`)
 * until one covers them all: an upload receipt, a patient's proven access log.
 * @throws UnavailableError when no witnessed checkpoint covers them in time, IntegrityError for a tampered entry.
 */
export async function buildWitnessedBundles(log: AuditLog, indices: readonly number[], timeoutMs?: number): Promise<InclusionBundle[]> {
  if (indices.length === 0) return [];
  const checkpoint = await log.witnessedCheckpoint(Math.max(...indices) + 1, timeoutMs);
  const { size } = parseCheckpoint(parseNote(checkpoint).body);
  return bundlesAgainst(log, await Promise.all(indices.map((i) => log.entry(i))), checkpoint, size);
}

/** Bundles of stored entries against `checkpoint` (of tree `size`, covering them). */
export function bundlesAgainst(log: AuditLog, entries: readonly StoredEntry[], checkpoint: string, size: number): InclusionBundle[] {
  return entries.map((stored) => ({
    index: stored.index,
    entry: stored.bytes.toString('utf8'),
    checkpoint,
    inclusionProof: log.inclusionProof(stored.index, size).map((h) => h.toString('base64')),
  }));
}

/**
 * Checks a bundle against trusted keys (quorum: a majority of `witnesses` unless given); returns the event and who
 * cosigned, or throws IntegrityError.
 */
export function verifyInclusionBundle(
  bundle: InclusionBundle,
  trust: { log: CheckpointVerifier; witnesses?: readonly CheckpointVerifier[]; quorum?: number },
): { event: AuditEvent; treeSize: number; cosigners: string[] } {
  if (
    typeof bundle !== 'object' ||
    bundle === null ||
    typeof bundle.entry !== 'string' ||
    typeof bundle.checkpoint !== 'string' ||
    !Array.isArray(bundle.inclusionProof) ||
    bundle.inclusionProof.length > 64 ||
    !Number.isSafeInteger(bundle.index)
  ) {
    throw new MalformedInputError('not an inclusion proof bundle');
  }
  const checkpoint = verifyCheckpointNote(bundle.checkpoint, trust.log);
  const proof = bundle.inclusionProof.map((h) => (typeof h === 'string' ? Buffer.from(h, 'base64') : Buffer.alloc(0)));
  if (proof.some((h) => h.length !== HASH_SIZE)) throw new MalformedInputError('an audit path hash is 32 bytes of base64');
  const bytes = Buffer.from(bundle.entry, 'utf8');
  const event = parseEntry(bytes);
  if (event.id !== String(bundle.index)) throw new IntegrityError(`the entry says it is ${event.id}, the bundle says ${bundle.index}`);
  if (!verifyInclusion(hashLeaf(bytes), bundle.index, checkpoint.size, proof, checkpoint.rootHash)) {
    throw new IntegrityError(`entry ${bundle.index} is not in the log at checkpoint ${checkpoint.size}`);
  }
  const cosigners = cosignersOf(bundle.checkpoint, trust.witnesses ?? []);
  const quorum = trust.quorum ?? defaultQuorum(trust.witnesses?.length ?? 0);
  if (cosigners.length < quorum) {
    throw new IntegrityError(`the checkpoint has ${cosigners.length} witness cosignatures, ${quorum} required`);
  }
  return { event, treeSize: checkpoint.size, cosigners };
}
