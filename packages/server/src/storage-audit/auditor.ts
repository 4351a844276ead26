/**
 * The third-party storage auditor (docs/crypto.md §13, "Proofs of storage"; KZG openings, A. Kate, G. M. Zaverucha
 * and I. Goldberg, ASIACRYPT 2010). It trusts neither the cloud nor its inventory: what the cloud must hold comes
 * from the record-create entries of the ledger, verified against pinned log and witness keys (each commits to a
 * record's ciphertext hash, the SHA-256 of its tag set and its chunk count). It sends a fresh random challenge,
 * fetches the sampled records' tag sets from the cloud and checks each against the ledger's hash, checks the one
 * aggregated opening with one multi-exponentiation and one two-pair multi-pairing, and when that fails asks for
 * per-record openings to name the records the cloud cannot show. It never sees a plaintext or a ciphertext: only
 * commitments and an opening (y, π), y being a combination of ciphertext sectors.
 */
import { createHash } from 'node:crypto';
import { curve, IntegrityError, MedShareError, por } from '@medshare/crypto';
import { LedgerClient, storageCommitmentOf, verifyRemoteLogEntries, type AuditEvent, type TrustPolicy } from '@medshare/ledger';
import { callJson, HttpProblemError } from '../http-client.ts';
import type { FailingRecord } from './cloud.ts';
import { challengeDigest, fromWire, type WireChallenge } from './wire.ts';

/** A record the ledger says the cloud accepted, with its storage commitment. */
export interface CommittedRecord {
  hash: string;
  category: string;
  /** Chunks (tag set version 2) or blocks (version 1). */
  blocks: number;
  /** `sha256:` of the encoded tag set. */
  tags: string;
  /** The tag-set version the entry commits to: 1 (Shacham–Waters, with a hospital key; not audited any more) or 2. */
  version: 1 | 2;
  /** The ledger entry that commits to it. */
  entry: number;
}

/** What an audit found. */
export interface StorageAuditResult {
  ok: boolean;
  records: number;
  /** Chunks the challenge sampled. */
  samples: number;
  /** Records whose proof failed, or whose tag set the cloud no longer serves. */
  failing: FailingRecord[];
  /**
   * Records that could not be audited, with why: tagged in the retired Shacham–Waters format (`unsupported tag-set
   * version 1 (Shacham–Waters)`). The other records are audited all the same.
   */
  unaudited: (FailingRecord & { reason: string })[];
  /** Hex SHA-256 of the challenge (the ledger's name for it). */
  challenge: string;
  /** The storage-audit ledger entries the cloud appended for this result (empty when not reported). */
  ledgerEntries: number[];
}

/** Audit settings. */
export interface StorageAuditOptions {
  /** Chunks to sample (default 460: 1 % of chunks lost or altered is caught with probability ≥ 99 %). */
  samples?: number;
  /** Only these records (by hash); default every committed record. */
  records?: readonly string[];
  /** Append the result to the ledger (default true). */
  report?: boolean;
  /** Progress lines (the CLI writes them to stderr). */
  progress?: (line: string) => void;
}

/** Samples that catch the loss of 1 % of chunks with probability ≥ 99 % (por.detectionProbability). */
export const DEFAULT_SAMPLES = 460;

/** Why a version-1 record is not audited. */
export const VERSION_1_REASON = 'unsupported tag-set version 1 (Shacham–Waters)';

/** The records the record-create entries commit to, first commitment of a hash kept. */
export function committedRecords(events: readonly AuditEvent[]): CommittedRecord[] {
  const seen = new Map<string, CommittedRecord>();
  for (const event of events) {
    if (event.type?.code !== 'record-create' || !Array.isArray(event.entity)) continue;
    for (const entity of event.entity) {
      if (entity?.type?.code !== 'record') continue;
      const storage = storageCommitmentOf(entity);
      const hash = entity.what.identifier.value;
      if (storage === undefined || seen.has(hash)) continue;
      seen.set(hash, {
        hash,
        category: entity.securityLabel?.[0]?.code ?? 'unknown',
        blocks: storage.blocks,
        tags: storage.tags,
        version: storage.key === undefined ? 2 : 1,
        entry: Number(event.id),
      });
    }
  }
  return [...seen.values()];
}

/**
 * The committed records of a log served at `ledger`, after verifying the whole log against `trust`.
 * @throws IntegrityError when the log does not verify (its report's problem).
 */
export async function verifiedInventory(ledger: LedgerClient, trust: TrustPolicy): Promise<CommittedRecord[]> {
  const { report, entries } = await verifyRemoteLogEntries(ledger, trust);
  if (!report.ok) throw new IntegrityError(`the ledger does not verify: ${report.problem ?? 'unknown problem'}`);
  return committedRecords(entries);
}

/** A proof or tag set that does not decode (the cloud's fault, not a transport error). */
function isBadAnswer(error: unknown): boolean {
  return error instanceof MedShareError && !(error instanceof HttpProblemError) && ['MALFORMED', 'UNSUPPORTED', 'LIMIT'].includes(error.code);
}

/** Tag sets asked for per request (the cloud's limit is por.MAX_SAMPLES). */
const TAG_SETS_PER_REQUEST = 5_000;

/** The cloud's storage-audit routes, as an auditor calls them. */
export class StorageAuditClient {
  /** `base` is the platform's URL (the routes are under /cloud/storage); `token` an auditor's or a gateway's. */
  constructor(
    readonly base: URL,
    private readonly token: string,
  ) {}

  /** The encoded tag sets the cloud serves for these records (by ledger name); absent ones are left out. */
  async tagSets(hashes: readonly string[]): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    for (let start = 0; start < hashes.length; start += TAG_SETS_PER_REQUEST) {
      const answer = await callJson<{ tagSets: { hash: string; tags: string }[] }>(this.base, 'POST', '/cloud/storage/tags', {
        token: this.token,
        body: { hashes: hashes.slice(start, start + TAG_SETS_PER_REQUEST) },
        idempotent: true,
      });
      for (const { hash, tags } of answer.tagSets) if (!out.has(hash)) out.set(hash, new Uint8Array(Buffer.from(tags, 'base64')));
    }
    return out;
  }

  /** The cloud's proof for a challenge (bytes, to decode against the challenge). */
  async prove(challenge: WireChallenge, kind: por.Proof['kind']): Promise<Uint8Array> {
    // Proving changes nothing at the cloud: safe to retry.
    const answer = await callJson<{ proof: string }>(this.base, 'POST', '/cloud/storage/audit', {
      token: this.token,
      body: { challenge, kind },
      idempotent: true,
    });
    return new Uint8Array(Buffer.from(answer.proof, 'base64'));
  }

  /** Asks the cloud to append the result to the ledger; returns the entries. */
  async report(challenge: WireChallenge, failing: FailingRecord[]): Promise<number[]> {
    return (await callJson<{ ledgerEntries: number[] }>(this.base, 'POST', '/cloud/storage/audit/report', { token: this.token, body: { challenge, failing } }))
      .ledgerEntries;
  }
}

/**
 * The sampled chunks' commitments, from the cloud's tag sets checked against the ledger: `commitments[k]` is the
 * k-th sample's (the identity for a record whose tag set is missing or does not decode; such records are returned
 * in `missing` and must be named failing whatever their openings say).
 * @throws IntegrityError when a served tag set does not hash to what the ledger committed, or has another chunk count.
 */
export function sampledCommitments(
  challenge: por.Challenge,
  records: readonly CommittedRecord[],
  served: ReadonlyMap<string, Uint8Array>,
  expanded: por.Expanded = por.expandChallenge(challenge),
): { commitments: curve.G1[]; missing: Set<number> } {
  const { samples } = expanded;
  const chunksOf = new Map<number, number[]>();
  for (const s of samples) chunksOf.set(s.file, [...(chunksOf.get(s.file) ?? []), s.chunk]);
  const decoded = new Map<number, curve.G1[]>();
  const missing = new Set<number>();
  for (const [file, chunks] of chunksOf) {
    const record = records[file]!;
    const bytes = served.get(record.hash);
    if (bytes === undefined) {
      missing.add(file);
      continue;
    }
    if (`sha256:${createHash('sha256').update(bytes).digest('hex')}` !== record.tags)
      throw new IntegrityError(`the cloud serves a tag set for record ${record.hash} that does not hash to what the ledger committed`);
    try {
      if (por.tagSetShape(bytes).chunks !== record.blocks)
        throw new IntegrityError(`the tag set of record ${record.hash} has another chunk count than the ledger committed`);
      decoded.set(file, por.decodeCommitmentsAt(bytes, chunks));
    } catch (error) {
      if (!isBadAnswer(error)) throw error;
      missing.add(file);
    }
  }
  const next = new Map<number, number>();
  const commitments = samples.map((s) => {
    const mine = decoded.get(s.file);
    if (mine === undefined) return curve.g1Neg(curve.g1Generator()); // never trusted: the record is named failing
    const k = next.get(s.file) ?? 0;
    next.set(s.file, k + 1);
    return mine[k]!;
  });
  return { commitments, missing };
}

/**
 * One audit of `inventory`: a fresh challenge of `samples` chunks over all auditable records, the aggregated opening
 * checked with one multi-exponentiation and one two-pair multi-pairing; on failure per-record openings name the
 * failing records. A proof that does not decode counts as failing every sampled record (the cloud answered garbage);
 * records the ledger commits in the retired version-1 format are reported as unaudited.
 * @throws on transport errors, and IntegrityError when the cloud serves a tag set that does not match the ledger.
 */
export async function auditStorage(
  client: StorageAuditClient,
  inventory: readonly CommittedRecord[],
  options: StorageAuditOptions = {},
): Promise<StorageAuditResult> {
  await curve.initCurve();
  const progress = options.progress ?? (() => {});
  const wanted = options.records === undefined ? undefined : new Set(options.records);
  const records = inventory.filter((r) => wanted === undefined || wanted.has(r.hash));
  const unaudited = records.filter((r) => r.version === 1).map((r) => ({ hash: r.hash, category: r.category, reason: VERSION_1_REASON }));
  const auditable = records.filter((r) => r.version === 2);
  const failing: FailingRecord[] = [];
  if (unaudited.length > 0) progress(`${unaudited.length} record(s) not audited: ${VERSION_1_REASON}`);
  if (auditable.length === 0) {
    return { ok: unaudited.length === 0, records: records.length, samples: 0, failing, unaudited, challenge: '', ledgerEntries: [] };
  }
  const wire: WireChallenge = {
    nonce: Buffer.from(por.freshNonce()).toString('base64'),
    samples: options.samples ?? DEFAULT_SAMPLES,
    files: auditable.map((r) => ({ hash: r.hash, chunks: r.blocks })),
  };
  const challenge = fromWire(wire);
  const expanded = por.expandChallenge(challenge);
  const { samples } = expanded;
  const sampled = [...new Set(samples.map((s) => s.file))];
  progress(`challenge: ${auditable.length} records, ${samples.length} chunk(s) of ${sampled.length} record(s) sampled`);
  const served = await client.tagSets(sampled.map((i) => auditable[i]!.hash));
  const { commitments, missing } = sampledCommitments(challenge, auditable, served, expanded);
  if (missing.size > 0) progress(`${missing.size} sampled record(s) without a usable tag set at the cloud`);
  let ok = missing.size === 0;
  if (ok) {
    try {
      const proof = por.decodeProof(await client.prove(wire, 'aggregate'), challenge);
      ok = proof.kind === 'aggregate' && por.verifyAggregate(challenge, commitments, proof, expanded);
    } catch (error) {
      if (!isBadAnswer(error)) throw error;
      ok = false;
    }
    progress(`aggregate proof: ${ok ? 'valid' : 'INVALID'}`);
  }
  if (!ok) {
    let failed: number[];
    try {
      const perFile = por.decodeProof(await client.prove(wire, 'per-file'), challenge);
      failed = perFile.kind === 'per-file' ? por.failingFiles(challenge, commitments, perFile, expanded) : sampled;
    } catch (error) {
      if (!isBadAnswer(error)) throw error;
      failed = sampled;
    }
    const named = [...new Set([...failed, ...missing])].sort((a, b) => a - b);
    failing.push(...named.map((i) => ({ hash: auditable[i]!.hash, category: auditable[i]!.category })));
    progress(`per-record proofs: ${named.length} record(s) failing`);
  }
  const ledgerEntries = options.report === false ? [] : await client.report(wire, failing);
  // After an invalid aggregate, the per-record openings of the same challenge decide: each is sound on its own.
  return {
    ok: failing.length === 0 && unaudited.length === 0,
    records: records.length,
    samples: samples.length,
    failing,
    unaudited,
    challenge: challengeDigest(wire),
    ledgerEntries,
  };
}
