/**
 * Checking a running log over HTTP, with no database access and trusting only pinned keys (http.ts serves what
 * this reads): fetch the latest witnessed checkpoint, every entry, recompute the tree and compare. When the
 * recomputed root differs, the first bad entry is found by bisection with consistency proofs: a proof from size
 * m to the checkpoint verifies against the client's own root of the first m entries exactly when those entries
 * are the ones the checkpoint commits to.
 */
import { IntegrityError, MalformedInputError, MedShareError, UnavailableError } from '@medshare/crypto';
import { parseEntry } from './entry.ts';
import { HASH_SIZE, hashLeaf } from './hashing.ts';
import { verifyConsistency } from './proofs.ts';
import { MerkleTree } from './tree.ts';
import { verifyInclusionBundle, type InclusionBundle } from './bundle.ts';
import { cosignersOf, defaultQuorum, type Fault, type TrustPolicy, type VerifyReport } from './verify.ts';
import { verifyCheckpointNote, type VerifiedCheckpoint } from './witness.ts';
import { MAX_ENTRIES_PER_PAGE } from './http.ts';
import type { AuditEvent } from './entry.ts';

/** A client of the public ledger routes at `url` (e.g. http://host/ledger). */
export class LedgerClient {
  constructor(readonly url: string) {}

  private async get(path: string): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(`${this.url.replace(/\/$/, '')}${path}`, { signal: AbortSignal.timeout(30_000) });
    } catch {
      throw new UnavailableError(`the ledger at ${this.url} is unreachable`);
    }
    if (!response.ok) {
      const detail = (await response.text()).slice(0, 300);
      const message = `${path}: ${response.status} ${detail}`;
      throw response.status >= 500 ? new UnavailableError(message) : new MalformedInputError(message);
    }
    return response;
  }

  private async json<T>(path: string): Promise<T> {
    return (await (await this.get(path)).json()) as T;
  }

  /** The published keys (pin them; do not take them from the server you are checking). */
  keys(): Promise<{ log: string; witnesses: string[]; quorum: number }> {
    return this.json('/keys');
  }

  /** The latest witnessed checkpoint note. */
  async checkpoint(): Promise<string> {
    return (await this.get('/checkpoint')).text();
  }

  /** Stored entries [start, end), as served. */
  async entries(start: number, end: number): Promise<{ index: number; entry: string }[]> {
    return (await this.json<{ entries: { index: number; entry: string }[] }>(`/entries?start=${start}&end=${end}`)).entries;
  }

  /** The consistency proof from `first` to `second`. */
  async consistencyProof(first: number, second: number): Promise<Buffer[]> {
    return decodeProof((await this.json<{ proof: unknown }>(`/proof/consistency?first=${first}&second=${second}`)).proof);
  }

  /** The inclusion bundle of one entry (check it with `verifyInclusionBundle`). */
  bundle(index: number): Promise<InclusionBundle> {
    return this.json(`/bundle/${index}`);
  }

  /** The bundles of every witnessed entry about `patient` (check each with `verifyInclusionBundle`). */
  async patientBundles(patient: string): Promise<InclusionBundle[]> {
    return (await this.json<{ bundles: InclusionBundle[] }>(`/patients/${encodeURIComponent(patient)}/bundles`)).bundles;
  }
}

function decodeProof(proof: unknown): Buffer[] {
  if (!Array.isArray(proof) || proof.length > 64) throw new MalformedInputError('a proof is a list of at most 64 hashes');
  return proof.map((hash) => {
    const bytes = typeof hash === 'string' ? Buffer.from(hash, 'base64') : Buffer.alloc(0);
    if (bytes.length !== HASH_SIZE) throw new MalformedInputError('a proof hash is 32 bytes of base64');
    return bytes;
  });
}

/** Fetches entries up to `size` and recomputes their tree, stopping at the first that is not entry i. */
async function fetchTree(client: LedgerClient, size: number): Promise<{ tree: MerkleTree; fault?: Fault; events: AuditEvent[] }> {
  const tree = new MerkleTree();
  const events: AuditEvent[] = [];
  while (tree.size < size) {
    const page = await client.entries(tree.size, Math.min(size, tree.size + MAX_ENTRIES_PER_PAGE));
    if (page.length === 0) return { tree, events, fault: { index: tree.size, problem: `entry ${tree.size} is missing` } };
    for (const { index, entry } of page) {
      const i = tree.size;
      if (index !== i || typeof entry !== 'string') return { tree, events, fault: { index: i, problem: `entry ${i} is missing (deleted or renumbered)` } };
      const bytes = Buffer.from(entry, 'utf8');
      let event: AuditEvent;
      try {
        event = parseEntry(bytes);
      } catch {
        return { tree, events, fault: { index: i, problem: `entry ${i} is not a canonical AuditEvent` } };
      }
      if (event.id !== String(i))
        return { tree, events, fault: { index: i, problem: `entry ${i} carries id ${event.id}: an entry was inserted, deleted or reordered` } };
      tree.append(hashLeaf(bytes));
      events.push(event);
    }
  }
  return { tree, events };
}

/** The first entry where the fetched entries stop matching `checkpoint`, by bisection over consistency proofs. */
async function firstMismatch(client: LedgerClient, tree: MerkleTree, checkpoint: Pick<VerifiedCheckpoint, 'size' | 'rootHash'>): Promise<number> {
  const matches = async (m: number) => {
    const proof = m === checkpoint.size ? [] : await client.consistencyProof(m, checkpoint.size);
    return verifyConsistency(m, checkpoint.size, proof, tree.rootHash(m), checkpoint.rootHash);
  };
  let good = 0; // the empty prefix always matches
  let bad = checkpoint.size;
  while (bad - good > 1) {
    const middle = Math.floor((good + bad) / 2);
    if (await matches(middle)) good = middle;
    else bad = middle;
  }
  return good;
}

/**
 * Verifies the log served at `client` against `trust`: the checkpoint's log signature and quorum, every entry,
 * the root, and each of `trust.external` (checkpoints seen before, kept by the auditor) being a prefix of it.
 * Reports rather than throws for a tampered log.
 */
export async function verifyRemoteLog(client: LedgerClient, trust: TrustPolicy): Promise<VerifyReport> {
  return (await verifyRemoteLogEntries(client, trust)).report;
}

/**
 * `verifyRemoteLog`, also returning the entries it checked (parsed) when the report is ok — what a storage
 * auditor reads the record-create commitments from, so that it relies on exactly the entries the witnessed
 * checkpoint commits to. `entries` is empty when the report is not ok.
 */
export async function verifyRemoteLogEntries(client: LedgerClient, trust: TrustPolicy): Promise<{ report: VerifyReport; entries: AuditEvent[] }> {
  const fail = (report: VerifyReport) => ({ report, entries: [] as AuditEvent[] });
  const base = { ok: false, size: 0, checkpoints: 1, latestCosigners: [] as string[] };
  let checkpoint: VerifiedCheckpoint;
  try {
    checkpoint = verifyCheckpointNote(await client.checkpoint(), trust.log);
  } catch (error) {
    if (error instanceof UnavailableError) throw error;
    return fail({ ...base, problem: `the served checkpoint: ${error instanceof MedShareError ? error.message : 'unreadable'}` });
  }
  const latestCosigners = cosignersOf(checkpoint.note, trust.witnesses ?? []);
  const report = { ...base, size: checkpoint.size, latestCosigners };
  const { tree, fault, events } = await fetchTree(client, checkpoint.size);
  if (fault !== undefined) return fail({ ...report, firstBadIndex: fault.index, problem: fault.problem });
  if (!tree.rootHash().equals(checkpoint.rootHash)) {
    const index = await firstMismatch(client, tree, checkpoint);
    return fail({ ...report, firstBadIndex: index, problem: `entry ${index} is not the one the signed checkpoint ${checkpoint.size} commits to` });
  }
  for (const note of trust.external ?? []) {
    let earlier: VerifiedCheckpoint;
    try {
      earlier = verifyCheckpointNote(note, trust.log);
    } catch (error) {
      return fail({ ...report, problem: `external checkpoint: ${error instanceof MedShareError ? error.message : 'unreadable'}` });
    }
    if (earlier.size > checkpoint.size) {
      const problem = `the log was cut back: a checkpoint of ${earlier.size} was seen, ${checkpoint.size} is served`;
      return fail({ ...report, firstBadIndex: checkpoint.size, problem });
    }
    if (!tree.rootHash(earlier.size).equals(earlier.rootHash)) {
      const index = await firstMismatch(client, tree, earlier);
      return fail({
        ...report,
        firstBadIndex: index,
        problem: `entry ${index} differs from the one an earlier checkpoint (${earlier.size}) committed to: a fork`,
      });
    }
  }
  for (const anchor of trust.anchored ?? []) {
    if (anchor.size > checkpoint.size) {
      return fail({
        ...report,
        firstBadIndex: checkpoint.size,
        problem: `the log was cut back: the chain anchored ${anchor.size} entries, ${checkpoint.size} are served`,
      });
    }
    if (!tree.rootHash(anchor.size).equals(anchor.rootHash)) {
      const index = await firstMismatch(client, tree, anchor);
      return fail({
        ...report,
        firstBadIndex: index,
        problem: `entry ${index} differs from the one the checkpoint anchored on chain (${anchor.size}) committed to: a fork`,
      });
    }
  }
  const quorum = trust.quorum ?? defaultQuorum(trust.witnesses?.length ?? 0);
  if (latestCosigners.length < quorum) {
    return fail({ ...report, problem: `the latest checkpoint has ${latestCosigners.length} valid witness cosignatures, ${quorum} required` });
  }
  return { report: { ...report, ok: true }, entries: events };
}

/** Fetches and checks the inclusion bundles of `indices` (a patient's access log); throws IntegrityError on the first bad one. */
export async function fetchVerifiedEntries(
  client: LedgerClient,
  indices: readonly number[],
  trust: TrustPolicy,
): Promise<{ event: AuditEvent; treeSize: number; cosigners: string[] }[]> {
  const checked = [];
  for (const index of indices) {
    const result = verifyInclusionBundle(await client.bundle(index), trust);
    if (result.event.id !== String(index)) throw new IntegrityError(`asked for entry ${index}, got ${result.event.id}`);
    checked.push(result);
  }
  return checked;
}
