/**
 * The hospital administrator's list of its gateway's upload receipts (gateway_receipts, kept by GatewayService at
 * each upload): each stored inclusion bundle is checked again, as it is listed, against the ledger keys the
 * hospital pins (`verifyReceipt`: the log's signature, the audit path, the witness quorum and this hospital's own
 * witness's cosignature), so a status is computed, never remembered. The ledger names the records of an upload by
 * the SHA-256 of their ciphertexts (the cloud's `record-create` entries), so those are what a row shows.
 */
import type { Database } from '@medshare/db';
import { parseEntry, type AuditEvent, type InclusionBundle } from '@medshare/ledger';
import { verifyReceipt, type ReceiptTrust } from '../ledger.ts';

/** Most receipts one listing returns. */
export const MAX_RECEIPTS_LISTED = 500;

/** One upload receipt as the administrator sees it. */
export interface ReceiptRow {
  /** The ledger entry's index. */
  readonly index: number;
  readonly patient: string;
  /** When the cloud recorded the upload (the entry's time), if the entry could be read. */
  readonly recorded?: string;
  /** The records the entry names: ciphertext hash and category. */
  readonly records: ReadonlyArray<{ readonly hash: string; readonly category: string }>;
  /** The size of the checkpoint the receipt proves the entry in. */
  readonly checkpointSize?: number;
  /**
   * `verified`: the receipt checks now against the pinned keys; `invalid`: it does not (`problem` says why);
   * `unchecked`: the pinned keys could not be had (the cloud unreachable before they were first pinned);
   * `pending`: kept while a witness was down, proven only under the log's own signature so far (receipts.ts), and
   * not checked against the quorum until it completes (`problem`: the other entry the cloud served at its index).
   */
  readonly status: 'verified' | 'invalid' | 'unchecked' | 'pending';
  readonly problem?: string;
}

/** What one listing answers: the receipts, newest first, and why none could be checked, if so. */
export interface ReceiptListing {
  readonly receipts: ReceiptRow[];
  readonly trustProblem?: string;
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The records an entry names (its `record` entities): ciphertext hash and category. */
function recordsOf(event: Pick<AuditEvent, 'entity'>): ReceiptRow['records'] {
  return event.entity.filter((e) => e.type.code === 'record').map((e) => ({ hash: e.what.identifier.value, category: e.securityLabel?.[0]?.code ?? '' }));
}

/** A stored bundle's entry read without verifying it (for an `unchecked` or `invalid` row's details). */
function unverifiedEvent(bundle: InclusionBundle): { recorded?: string; records: ReceiptRow['records'] } {
  try {
    const event = parseEntry(Buffer.from(bundle.entry, 'utf8'));
    return { recorded: event.recorded, records: recordsOf(event) };
  } catch {
    return { records: [] };
  }
}

/**
 * The receipts of `hospital`, newest first: at most `limit`, of entries below `before` when given. `trust` gives the
 * pinned ledger keys (undefined: the gateway has none configured, every row `unchecked`).
 */
export async function listReceipts(
  db: Database,
  hospital: string,
  trust: (() => Promise<ReceiptTrust>) | undefined,
  options: { limit: number; before?: number },
): Promise<ReceiptListing> {
  const { rows } = await db.query<{ patient: string; ledger_index: string | number; bundle: string; witnessed: boolean; problem: string | null }>(
    'SELECT patient, ledger_index, bundle, witnessed, problem FROM gateway_receipts WHERE hospital = $1 AND ($2::bigint IS NULL OR ledger_index < $2) ORDER BY ledger_index DESC LIMIT $3',
    [hospital, options.before ?? null, Math.min(options.limit, MAX_RECEIPTS_LISTED)],
  );
  let keys: ReceiptTrust | undefined;
  let trustProblem: string | undefined = trust === undefined ? 'this gateway checks no receipts (no ledger keys configured)' : undefined;
  if (trust !== undefined) {
    try {
      keys = await trust();
    } catch (error) {
      trustProblem = `the ledger keys could not be had: ${message(error)}`;
    }
  }
  const receipts = rows.map((row): ReceiptRow => {
    const bundle = JSON.parse(row.bundle) as InclusionBundle;
    const base = { index: Number(row.ledger_index), patient: row.patient };
    if (!row.witnessed) return { ...base, ...unverifiedEvent(bundle), status: 'pending', ...(row.problem === null ? {} : { problem: row.problem }) };
    if (keys === undefined) return { ...base, ...unverifiedEvent(bundle), status: 'unchecked' };
    try {
      const verified = verifyReceipt(bundle, keys);
      return {
        ...base,
        recorded: verified.event.recorded,
        records: recordsOf(verified.event),
        checkpointSize: verified.treeSize,
        status: 'verified',
      };
    } catch (error) {
      return { ...base, ...unverifiedEvent(bundle), status: 'invalid', problem: message(error) };
    }
  });
  return { receipts, ...(trustProblem === undefined ? {} : { trustProblem }) };
}
