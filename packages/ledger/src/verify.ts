/**
 * `audit verify`: recompute the whole log from its stored entries and check it against every signed checkpoint
 * and cosignature, trusting nothing the database says about itself.
 *
 * Per entry i (in index order): the row must be index i, the entry canonical JSON whose `id` is i (an inserted,
 * deleted or reordered row breaks this at the first bad index), and its recomputed leaf hash must equal the stored
 * one (an edited entry). Per checkpoint: the log's signature, then the recomputed root at its size. An attacker who
 * edits an entry *and* its stored leaf hash is still caught by the first checkpoint after it; the entry is then
 * located to the range between that checkpoint and the previous good one (the report names the range's start).
 */
import { MedShareError } from '@medshare/crypto';
import type { Database } from '@medshare/db';
import { parseEntry } from './entry.ts';
import { hashLeaf } from './hashing.ts';
import { MerkleTree } from './tree.ts';
import { findSignature, parseNote } from './note.ts';
import { verifyCheckpointNote, type VerifiedCheckpoint } from './witness.ts';
import type { CheckpointVerifier } from './keys.ts';

/** Who is trusted: the log's key, the witnesses' keys, and how many witnesses must cosign the latest checkpoint. */
export interface TrustPolicy {
  log: CheckpointVerifier;
  witnesses?: readonly CheckpointVerifier[];
  quorum?: number;
  /** Checkpoints obtained elsewhere (a witness, the chain): each must match the stored log. */
  external?: readonly string[];
}

/** The outcome of `verifyLog`. */
export interface VerifyReport {
  ok: boolean;
  size: number;
  checkpoints: number;
  /** Witness names with a valid cosignature on the latest checkpoint. */
  latestCosigners: string[];
  /** First index that is wrong (or the first index of the smallest range known to hold the fault). */
  firstBadIndex?: number;
  problem?: string;
}

const PAGE = 10_000;

/** Recomputes the log in `db` and checks it against `trust`. Never throws for a tampered log: it reports. */
export async function verifyLog(db: Database, trust: TrustPolicy): Promise<VerifyReport> {
  const tree = new MerkleTree();
  const fail = (firstBadIndex: number, problem: string, checkpoints = 0): VerifyReport => ({
    ok: false, size: tree.size, checkpoints, latestCosigners: [], firstBadIndex, problem,
  });
  for (;;) {
    const rows = await db.query<{ idx: number; entry: string; leaf_hash: Uint8Array }>(
      'SELECT idx, entry, leaf_hash FROM ledger_entries WHERE idx >= $1 ORDER BY idx LIMIT $2',
      [tree.size, PAGE],
    );
    for (const row of rows.rows) {
      const i = tree.size;
      if (row.idx !== i) return fail(i, `entry ${i} is missing (deleted or renumbered)`);
      const bytes = Buffer.from(row.entry, 'utf8');
      let id: string;
      try {
        id = parseEntry(bytes).id;
      } catch (error) {
        return fail(i, `entry ${i} is not a canonical AuditEvent: ${(error as Error).message}`);
      }
      if (id !== String(i)) return fail(i, `entry ${i} carries id ${id}: an entry was inserted, deleted or reordered`);
      const leafHash = hashLeaf(bytes);
      if (!leafHash.equals(Buffer.from(row.leaf_hash))) return fail(i, `entry ${i} was changed after it was logged`);
      tree.append(leafHash);
    }
    if (rows.rows.length < PAGE) break;
  }
  const head = (await db.query<{ size: number }>('SELECT size FROM ledger_head WHERE id = 1')).rows[0];
  if (head !== undefined && head.size !== tree.size) return fail(Math.min(head.size, tree.size), `the head says ${head.size} entries, ${tree.size} are stored`);

  const notes = (await db.query<{ size: number; note: string }>('SELECT size, note FROM ledger_checkpoints ORDER BY size')).rows;
  let goodSize = 0;
  let latest: VerifiedCheckpoint | undefined;
  for (const [position, row] of notes.entries()) {
    let checkpoint: VerifiedCheckpoint;
    try {
      checkpoint = verifyCheckpointNote(row.note, trust.log);
    } catch (error) {
      return fail(goodSize, `checkpoint ${row.size}: ${describe(error)}`, position);
    }
    if (checkpoint.size !== row.size) return fail(goodSize, `checkpoint stored as size ${row.size} says ${checkpoint.size}`, position);
    if (checkpoint.size > tree.size) return fail(tree.size, `checkpoint ${checkpoint.size} covers entries that are no longer stored`, position);
    if (!tree.rootHash(checkpoint.size).equals(checkpoint.rootHash)) {
      return fail(goodSize, `entries ${goodSize}..${checkpoint.size - 1} do not match the signed checkpoint ${checkpoint.size}`, position);
    }
    goodSize = checkpoint.size;
    latest = checkpoint;
  }
  for (const note of trust.external ?? []) {
    let external: VerifiedCheckpoint;
    try {
      external = verifyCheckpointNote(note, trust.log);
    } catch (error) {
      return fail(0, `external checkpoint: ${describe(error)}`, notes.length);
    }
    if (external.size > tree.size) return fail(tree.size, `an external checkpoint of size ${external.size} proves entries were removed`, notes.length);
    if (!tree.rootHash(external.size).equals(external.rootHash)) {
      return fail(0, `fork: the external checkpoint of size ${external.size} does not match this log`, notes.length);
    }
  }
  const latestCosigners = latest === undefined ? [] : cosignersOf(latest.note, trust.witnesses ?? []);
  const quorum = trust.quorum ?? 0;
  const report: VerifyReport = { ok: true, size: tree.size, checkpoints: notes.length, latestCosigners };
  if (tree.size > goodSize) return { ...report, ok: false, firstBadIndex: goodSize, problem: `entries from ${goodSize} are not covered by any signed checkpoint` };
  if (latestCosigners.length < quorum) {
    return { ...report, ok: false, problem: `the latest checkpoint has ${latestCosigners.length} valid witness cosignatures, ${quorum} required` };
  }
  return report;
}

/** Names of the trusted witnesses whose cosignature on `note` verifies. */
export function cosignersOf(note: string, witnesses: readonly CheckpointVerifier[]): string[] {
  const { body, signatures } = parseNote(note);
  return witnesses.filter((w) => findSignature(body, signatures, w) !== undefined).map((w) => w.name);
}

function describe(error: unknown): string {
  return error instanceof MedShareError ? error.message : 'unreadable';
}
