/**
 * `audit verify`: recompute the whole log from its stored entries and check it against every signed checkpoint
 * and cosignature, trusting nothing the database says about itself.
 *
 * Per entry i (in index order): the row must be index i, the entry canonical JSON whose `id` is i (an inserted,
 * deleted or reordered row breaks this), and its recomputed leaf hash must equal the stored one (an edited
 * entry). Per checkpoint: the log's signature, then the recomputed root at its size. An attacker who rewrites
 * entries *and* their stored hashes consistently is still caught by the first signed checkpoint after the change;
 * the fault is then located to the entries after the previous good checkpoint, and the report names the first
 * of them (exactly the bad entry when checkpoints are per entry). The smaller of the two findings is reported.
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

interface Fault {
  index: number;
  problem: string;
}

const PAGE = 10_000;

/** Recomputes leaf hashes in index order until the first entry-level fault. */
async function scanEntries(db: Database): Promise<{ tree: MerkleTree; fault?: Fault }> {
  const tree = new MerkleTree();
  for (;;) {
    const rows = await db.query<{ idx: number; entry: string; leaf_hash: Uint8Array }>(
      'SELECT idx, entry, leaf_hash FROM ledger_entries WHERE idx >= $1 ORDER BY idx LIMIT $2',
      [tree.size, PAGE],
    );
    for (const row of rows.rows) {
      const i = tree.size;
      if (row.idx !== i) return { tree, fault: { index: i, problem: `entry ${i} is missing (deleted or renumbered)` } };
      const bytes = Buffer.from(row.entry, 'utf8');
      let id: string;
      try {
        id = parseEntry(bytes).id;
      } catch (error) {
        return { tree, fault: { index: i, problem: `entry ${i} is not a canonical AuditEvent: ${describe(error)}` } };
      }
      if (id !== String(i)) return { tree, fault: { index: i, problem: `entry ${i} carries id ${id}: an entry was inserted, deleted or reordered` } };
      const leafHash = hashLeaf(bytes);
      if (!leafHash.equals(Buffer.from(row.leaf_hash))) return { tree, fault: { index: i, problem: `entry ${i} was changed after it was logged` } };
      tree.append(leafHash);
    }
    if (rows.rows.length < PAGE) break;
  }
  const head = (await db.query<{ size: number }>('SELECT size FROM ledger_head WHERE id = 1')).rows[0];
  if (head !== undefined && head.size !== tree.size) {
    return { tree, fault: { index: Math.min(head.size, tree.size), problem: `the head says ${head.size} entries, ${tree.size} are stored` } };
  }
  return { tree };
}

/** Checks one signed checkpoint against the recomputed tree; `goodSize` is the last size known good. */
function checkAgainstTree(note: string, tree: MerkleTree, trust: TrustPolicy, goodSize: number, complete: boolean): Fault | VerifiedCheckpoint {
  let checkpoint: VerifiedCheckpoint;
  try {
    checkpoint = verifyCheckpointNote(note, trust.log);
  } catch (error) {
    return { index: goodSize, problem: `a checkpoint: ${describe(error)}` };
  }
  if (checkpoint.size > tree.size) {
    return complete ? { index: tree.size, problem: `checkpoint ${checkpoint.size} covers entries that are no longer stored` } : checkpoint;
  }
  if (!tree.rootHash(checkpoint.size).equals(checkpoint.rootHash)) {
    return { index: goodSize, problem: `entries ${goodSize}..${checkpoint.size - 1} do not match the signed checkpoint ${checkpoint.size}` };
  }
  return checkpoint;
}

/** Recomputes the log in `db` and checks it against `trust`. Never throws for a tampered log: it reports. */
export async function verifyLog(db: Database, trust: TrustPolicy): Promise<VerifyReport> {
  const { tree, fault: entryFault } = await scanEntries(db);
  const complete = entryFault === undefined;
  const rows = (await db.query<{ size: number; note: string }>('SELECT size, note FROM ledger_checkpoints ORDER BY size')).rows;
  let goodSize = 0;
  let latest: VerifiedCheckpoint | undefined;
  let fault: Fault | undefined;
  for (const row of rows) {
    const result = checkAgainstTree(row.note, tree, trust, goodSize, complete);
    if ('problem' in result) {
      fault = result;
      break;
    }
    if (result.size !== row.size) {
      fault = { index: goodSize, problem: `checkpoint stored as size ${row.size} says ${result.size}` };
      break;
    }
    if (result.size <= tree.size) goodSize = result.size;
    latest = result;
  }
  for (const note of trust.external ?? []) {
    if (fault !== undefined) break;
    const result = checkAgainstTree(note, tree, trust, 0, complete);
    if ('problem' in result) fault = { index: result.index, problem: `external checkpoint: ${result.problem}` };
  }
  if (entryFault !== undefined && (fault === undefined || entryFault.index <= fault.index)) fault = entryFault;
  if (fault === undefined && tree.size > goodSize) {
    fault = { index: goodSize, problem: `entries from ${goodSize} are not covered by any signed checkpoint` };
  }
  const latestCosigners = latest === undefined ? [] : cosignersOf(latest.note, trust.witnesses ?? []);
  const report: VerifyReport = { ok: fault === undefined, size: tree.size, checkpoints: rows.length, latestCosigners };
  if (fault !== undefined) return { ...report, firstBadIndex: fault.index, problem: fault.problem };
  const quorum = trust.quorum ?? 0;
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
