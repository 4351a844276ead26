/**
 * A gateway's upload receipts (docs/ledger.md § Upload receipts): for every ledger entry recording an upload, the
 * entry's inclusion bundle, kept in the hospital's database (gateway_receipts).
 *
 * A receipt is **complete** once its checkpoint carries the cosignatures of the witness quorum this hospital trusts,
 * its own witness among them (`checkReceipt`). While a witness is down the cloud still stores the upload and logs its
 * entries; it then answers with bundles against the latest checkpoint the log signed, which the witnesses have not
 * cosigned. The gateway checks those as far as they go (the log's signature, the inclusion proof, that the entry
 * commits to the ciphertexts and storage tags it sent) and keeps them **pending**: the log's signed word that the
 * entry is at that index. A pending receipt is completed later — on a timer and on demand — by a bundle against a
 * witnessed checkpoint of *the same entry bytes*; a different entry at that index (the log signed two histories) is
 * recorded as the receipt's problem, and it is never marked complete without the quorum.
 */
import { IntegrityError, MalformedInputError, UnavailableError } from '@medshare/crypto';
import type { Database } from '@medshare/db';
import { parseCheckpoint, parseNote, type InclusionBundle, type LedgerClient } from '@medshare/ledger';
import { checkReceipt, type ReceiptTrust } from '../ledger.ts';
import type { NewRecord } from '../cloud/store.ts';
import { checkReceiptCommitments } from '../storage-audit/tagger.ts';

/** One upload receipt as the gateway holds it. */
export interface Receipt {
  /** The ledger entry's index. */
  index: number;
  patient: string;
  /** complete: proven against a checkpoint the witness quorum cosigned; pending: only the log has signed it so far. */
  status: 'complete' | 'pending';
  /** The tree size of the checkpoint the kept bundle leads to. */
  treeSize: number;
  /** Why a pending receipt cannot complete (the cloud served another entry at its index). */
  problem?: string;
}

/** Pending receipts completed per round (the rest wait for the next). */
const COMPLETE_BATCH = 1_000;

const treeSizeOf = (bundle: InclusionBundle): number => parseCheckpoint(parseNote(bundle.checkpoint).body).size;

interface ReceiptRow {
  ledger_index: string | number;
  patient: string;
  bundle: string;
  witnessed: boolean;
  problem: string | null;
}

const receiptOf = (row: ReceiptRow): Receipt => ({
  index: Number(row.ledger_index),
  patient: row.patient,
  status: row.witnessed ? 'complete' : 'pending',
  treeSize: treeSizeOf(JSON.parse(row.bundle) as InclusionBundle),
  ...(row.problem === null ? {} : { problem: row.problem }),
});

/** The receipts of one gateway's database. */
export class ReceiptBook {
  constructor(
    private readonly db: Database,
    /** The ledger keys and witnesses receipts are checked against (docs/ledger.md § Whose witnesses). */
    private readonly trust: () => Promise<ReceiptTrust>,
    /** How long an upload waits for a witnessed checkpoint before its receipts are kept pending (at most 10 s). */
    readonly waitMs = 10_000,
  ) {}

  /**
   * Checks the cloud's bundles of one upload's ledger entries against what was sent and keeps one receipt per entry,
   * complete or pending. @throws IntegrityError for a missing bundle, a bundle the log did not sign or whose entry
   * does not commit to the storage tags sent (nothing is kept for it)
   */
  async keep(
    hospital: string,
    patient: string,
    entries: readonly number[],
    bundles: readonly InclusionBundle[],
    records: readonly NewRecord[],
  ): Promise<Receipt[]> {
    const trust = await this.trust();
    const byIndex = new Map(bundles.map((b) => [b.index, b]));
    const receipts: Receipt[] = [];
    for (const index of entries) {
      const bundle = byIndex.get(index);
      if (bundle === undefined) throw new IntegrityError(`the cloud returned no receipt for ledger entry ${index}`);
      const checked = checkReceipt(bundle, trust);
      checkReceiptCommitments(checked.event, records);
      const witnessed = checked.shortOf === undefined;
      await this.db.query(
        'INSERT INTO gateway_receipts (hospital, patient, ledger_index, bundle, witnessed) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
        [hospital, patient, index, JSON.stringify(bundle), witnessed],
      );
      receipts.push({ index, patient, status: witnessed ? 'complete' : 'pending', treeSize: checked.treeSize });
    }
    return receipts;
  }

  /**
   * Tries to complete the hospital's pending receipts with bundles from `fetch` (which may return fewer, or throw
   * UnavailableError: they stay pending). Returns how many completed and how many are still pending.
   */
  async complete(
    hospital: string,
    fetch: (entries: readonly number[]) => Promise<readonly InclusionBundle[]>,
  ): Promise<{ completed: number; pending: number }> {
    const rows = (
      await this.db.query<ReceiptRow>(
        'SELECT ledger_index, patient, bundle, witnessed, problem FROM gateway_receipts WHERE hospital = $1 AND NOT witnessed ORDER BY ledger_index LIMIT $2',
        [hospital, COMPLETE_BATCH],
      )
    ).rows;
    if (rows.length === 0) return { completed: 0, pending: 0 };
    const trust = await this.trust();
    let fetched: readonly InclusionBundle[];
    try {
      fetched = await fetch(rows.map((r) => Number(r.ledger_index)));
    } catch (error) {
      if (error instanceof UnavailableError) return { completed: 0, pending: await this.pendingCount(hospital) };
      throw error;
    }
    const byIndex = new Map(fetched.map((b) => [b.index, b]));
    let completed = 0;
    for (const row of rows) {
      const index = Number(row.ledger_index);
      const bundle = byIndex.get(index);
      if (bundle === undefined) continue;
      const kept = JSON.parse(row.bundle) as InclusionBundle;
      let problem: string | undefined;
      try {
        const checked = checkReceipt(bundle, trust);
        if (bundle.entry !== kept.entry)
          problem = `the log signed another entry ${index} (checkpoint ${checked.treeSize}) than the one it signed at upload (checkpoint ${treeSizeOf(kept)})`;
        else if (checked.shortOf !== undefined) continue; // not witnessed yet
      } catch (error) {
        if (!(error instanceof IntegrityError || error instanceof MalformedInputError)) throw error;
        problem = `a later bundle of entry ${index} does not verify: ${error.message}`;
      }
      if (problem !== undefined) {
        await this.db.query('UPDATE gateway_receipts SET problem = $3 WHERE hospital = $1 AND ledger_index = $2 AND NOT witnessed', [hospital, index, problem]);
        continue;
      }
      await this.db.query(
        'UPDATE gateway_receipts SET bundle = $3, witnessed = true, problem = NULL WHERE hospital = $1 AND ledger_index = $2 AND NOT witnessed',
        [hospital, index, JSON.stringify(bundle)],
      );
      completed += 1;
    }
    return { completed, pending: await this.pendingCount(hospital) };
  }

  /** The hospital's receipts, by entry index (at most 1,000 from `from`), optionally only pending or complete ones, or one patient's. */
  async list(hospital: string, filter: { status?: Receipt['status']; patient?: string; from?: number } = {}): Promise<Receipt[]> {
    const witnessed = filter.status === undefined ? null : filter.status === 'complete';
    const rows = (
      await this.db.query<ReceiptRow>(
        `SELECT ledger_index, patient, bundle, witnessed, problem FROM gateway_receipts
       WHERE hospital = $1 AND ledger_index >= $2 AND ($3::boolean IS NULL OR witnessed = $3) AND ($4::text IS NULL OR patient = $4)
       ORDER BY ledger_index LIMIT 1000`,
        [hospital, filter.from ?? 0, witnessed, filter.patient ?? null],
      )
    ).rows;
    return rows.map(receiptOf);
  }

  private async pendingCount(hospital: string): Promise<number> {
    return Number(
      (await this.db.query<{ n: string | number }>('SELECT count(*) AS n FROM gateway_receipts WHERE hospital = $1 AND NOT witnessed', [hospital])).rows[0]!.n,
    );
  }
}

/**
 * The witnessed bundles of `entries` from the public ledger routes (`GET /ledger/bundle/:index`, no token needed);
 * an entry no witnessed checkpoint covers yet (503) is left out.
 */
export async function publicBundles(ledger: LedgerClient, entries: readonly number[]): Promise<InclusionBundle[]> {
  const bundles: InclusionBundle[] = [];
  for (const index of entries) {
    try {
      bundles.push(await ledger.bundle(index));
    } catch (error) {
      if (error instanceof UnavailableError) break; // the later ones are not covered either
      throw error;
    }
  }
  return bundles;
}
