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
 *
 * The `patient` column, which `audit log --patient` queries by, must equal the entry's own patient: an edited
 * column would hide entries from the patient's log while every hash still matched.
 *
 * The same scan is how the log checks itself when it opens (log.ts): `auditStoredLog` returns the recomputed tree.
 */
import { MedShareError } from '@medshare/crypto';
import type { Database, Queryable } from '@medshare/db';
import { parseEntry, patientOf } from './entry.ts';
import { hashLeaf } from './hashing.ts';
import { MerkleTree } from './tree.ts';
import { findSignature, parseCheckpoint, parseNote } from './note.ts';
import { verifyCheckpointNote, type VerifiedCheckpoint } from './witness.ts';
import type { CheckpointVerifier } from './keys.ts';

/** Who is trusted: the log's key, the witnesses' keys, and how many witnesses must cosign the latest checkpoint. */
export interface TrustPolicy {
  log: CheckpointVerifier;
  witnesses?: readonly CheckpointVerifier[];
  /** Valid cosignatures required on the latest checkpoint; default: a majority of `witnesses`. */
  quorum?: number;
  /** Checkpoints obtained elsewhere (a witness, the chain): each must match the stored log. */
  external?: readonly string[];
  /** Tree heads anchored on chain (`AnchorClient.latestAnchor`): the served log must extend each (remote verification). */
  anchored?: readonly { size: number; rootHash: Buffer }[];
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

/** Where a check failed: the first bad index (or the first of the smallest range known to hold the fault). */
export interface Fault {
  index: number;
  problem: string;
}

const PAGE = 10_000;

/** A stored entry row as the scan reads it. */
export interface EntryRow {
  idx: number;
  entry: string;
  leaf_hash: Uint8Array;
  patient: string;
}

/**
 * Checks that `row` is entry `index`: its position, canonical form, id, stored leaf hash and patient column.
 * Returns the recomputed leaf hash, or the fault.
 */
export function checkEntryRow(row: EntryRow, index: number): { leafHash: Buffer; patient: string } | Fault {
  if (row.idx !== index) return { index, problem: `entry ${index} is missing (deleted or renumbered)` };
  const bytes = Buffer.from(row.entry, 'utf8');
  let event;
  try {
    event = parseEntry(bytes);
  } catch (error) {
    return { index, problem: `entry ${index} is not a canonical AuditEvent: ${describe(error)}` };
  }
  if (event.id !== String(index)) return { index, problem: `entry ${index} carries id ${event.id}: an entry was inserted, deleted or reordered` };
  const leafHash = hashLeaf(bytes);
  if (!leafHash.equals(Buffer.from(row.leaf_hash))) return { index, problem: `entry ${index} was changed after it was logged` };
  const patient = patientOf(event) ?? '';
  if (patient !== row.patient) return { index, problem: `entry ${index} is filed under another patient than it names` };
  return { leafHash, patient };
}

/**
 * Recomputes leaf hashes in index order from `tree.size` up to `upTo` (default: all stored) until the first fault;
 * `onEntry` sees each good entry's patient (the log indexes patients from the entries themselves).
 */
export async function scanEntries(
  db: Queryable,
  tree: MerkleTree = new MerkleTree(),
  upTo = Infinity,
  onEntry?: (index: number, patient: string) => void,
): Promise<{ tree: MerkleTree; fault?: Fault }> {
  while (tree.size < upTo) {
    const rows = await db.query<EntryRow>('SELECT idx, entry, leaf_hash, patient FROM ledger_entries WHERE idx >= $1 ORDER BY idx LIMIT $2', [
      tree.size,
      Math.min(PAGE, upTo - tree.size),
    ]);
    for (const row of rows.rows) {
      const checked = checkEntryRow(row, tree.size);
      if ('problem' in checked) return { tree, fault: checked };
      onEntry?.(tree.size, checked.patient);
      tree.append(checked.leafHash);
    }
    if (rows.rows.length < PAGE) break;
  }
  if (upTo !== Infinity && tree.size < upTo) return { tree, fault: { index: tree.size, problem: `entry ${tree.size} is missing from the log` } };
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
  return (await auditStoredLog(db, trust)).report;
}

/** `verifyLog`, also returning the tree recomputed from the entries (up to the first bad one). */
export async function auditStoredLog(
  db: Queryable,
  trust: TrustPolicy,
  onEntry?: (index: number, patient: string) => void,
  upTo?: number,
): Promise<{ report: VerifyReport; tree: MerkleTree }> {
  // With `upTo` (a running log auditing itself while it appends), only the first upTo entries and the checkpoints
  // up to that size are checked: the head moves meanwhile.
  const scanned = await scanEntries(db, new MerkleTree(), upTo ?? Infinity, onEntry);
  const { tree } = scanned;
  let entryFault = scanned.fault;
  const head = upTo === undefined ? (await db.query<{ size: number }>('SELECT size FROM ledger_head WHERE id = 1')).rows[0] : undefined;
  if (entryFault === undefined && head !== undefined && head.size !== tree.size) {
    entryFault = { index: Math.min(head.size, tree.size), problem: `the head says ${head.size} entries, ${tree.size} are stored` };
  }
  const complete = entryFault === undefined;
  const rows = (
    await db.query<{ size: number; note: string }>('SELECT size, note FROM ledger_checkpoints WHERE size <= $1 ORDER BY size', [
      upTo ?? Number.MAX_SAFE_INTEGER,
    ])
  ).rows;
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
    // The stored checkpoints that matched bound where the fault can be: after the last of them that the external one covers.
    const covered = rows.map((r) => r.size).filter((size) => size <= goodSize && size <= externalSize(note));
    const result = checkAgainstTree(note, tree, trust, covered.length === 0 ? 0 : Math.max(...covered), true);
    if ('problem' in result) fault = { index: result.index, problem: `external checkpoint: ${result.problem}` };
  }
  if (entryFault !== undefined && (fault === undefined || entryFault.index <= fault.index)) fault = entryFault;
  if (fault === undefined && tree.size > goodSize) {
    fault = { index: goodSize, problem: `entries from ${goodSize} are not covered by any signed checkpoint` };
  }
  const latestCosigners = latest === undefined ? [] : cosignersOf(latest.note, trust.witnesses ?? []);
  const report: VerifyReport = { ok: fault === undefined, size: tree.size, checkpoints: rows.length, latestCosigners };
  if (fault !== undefined) return { report: { ...report, firstBadIndex: fault.index, problem: fault.problem }, tree };
  const quorum = trust.quorum ?? defaultQuorum(trust.witnesses?.length ?? 0);
  if (latestCosigners.length < quorum) {
    const problem = `the latest checkpoint has ${latestCosigners.length} valid witness cosignatures, ${quorum} required`;
    return { report: { ...report, ok: false, problem }, tree };
  }
  return { report, tree };
}

/** The default witness quorum: a majority of the configured witnesses (none when there are none). */
export function defaultQuorum(witnesses: number): number {
  return witnesses === 0 ? 0 : Math.floor(witnesses / 2) + 1;
}

/** The tree size a checkpoint note claims, or 0 when it cannot be read (its check then reports why). */
function externalSize(note: string): number {
  try {
    return parseCheckpoint(parseNote(note).body).size;
  } catch {
    return 0;
  }
}

/** Names of the trusted witnesses whose cosignature on `note` verifies. */
export function cosignersOf(note: string, witnesses: readonly CheckpointVerifier[]): string[] {
  const { body, signatures } = parseNote(note);
  return witnesses.filter((w) => findSignature(body, signatures, w) !== undefined).map((w) => w.name);
}

function describe(error: unknown): string {
  return error instanceof MedShareError ? error.message : 'unreadable';
}
