/**
 * The third-party storage auditor (docs/crypto.md, "Proofs of storage"). It trusts neither the cloud nor its
 * inventory: what the cloud must hold comes from the record-create entries of the ledger, verified against pinned
 * log and witness keys (each commits to a record's ciphertext hash, block count, tag-set hash and hospital key);
 * hospitals' keys come from the cloud but must hash to the ids those entries commit to and carry a valid proof of
 * possession. It sends a fresh random challenge, checks the aggregated proof with one multi-pairing, and when that
 * fails asks for per-record proofs to name the records the cloud cannot show. It never sees a plaintext, a key
 * other than public ones, or a ciphertext: only a proof (σ, μ), whose μ are combinations of ciphertext blocks.
 */
import { createHash } from 'node:crypto';
import { curve, IntegrityError, MedShareError, por, UnsupportedError } from '@medshare/crypto';
import { LedgerClient, storageCommitmentOf, verifyRemoteLogEntries, type AuditEvent, type TrustPolicy } from '@medshare/ledger';
import { callJson, HttpProblemError } from '../http-client.ts';
import type { FailingRecord } from './cloud.ts';
import { challengeDigest, fromWire, type WireChallenge } from './wire.ts';

/** A record the ledger says the cloud accepted, with its storage commitment. */
export interface CommittedRecord {
  hash: string;
  category: string;
  blocks: number;
  /** Hex SHA-256 of the hospital's encoded public key. */
  key: string;
  /** `sha256:` of the encoded tag set. */
  tags: string;
  /** The ledger entry that commits to it. */
  entry: number;
}

/** What an audit found. */
export interface StorageAuditResult {
  ok: boolean;
  records: number;
  hospitals: number;
  /** Blocks the challenge sampled. */
  samples: number;
  /** Records whose proof failed, or whose hospital key the cloud no longer serves. */
  failing: FailingRecord[];
  /**
   * Records that could not be audited, with why: tagged under a key of a version this auditor does not support
   * (`unsupported key version 1`: the global-generator keys). The other records are audited all the same.
   */
  unaudited: (FailingRecord & { reason: string })[];
  /** Hex SHA-256 of the challenge (the ledger's name for it). */
  challenge: string;
  /** The storage-audit ledger entries the cloud appended for this result (empty when not reported). */
  ledgerEntries: number[];
}

/** Audit settings. */
export interface StorageAuditOptions {
  /** Blocks to sample (default 460: 1 % of blocks deleted is caught with probability ≥ 99 %). */
  samples?: number;
  /** Only these records (by hash); default every committed record. */
  records?: readonly string[];
  /** Append the result to the ledger (default true). */
  report?: boolean;
  /** Progress lines (the CLI writes them to stderr). */
  progress?: (line: string) => void;
}

/** Samples that catch the loss of 1 % of blocks with probability ≥ 99 % (por.detectionProbability). */
export const DEFAULT_SAMPLES = 460;

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
        key: storage.key.slice('sha256:'.length),
        tags: storage.tags,
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

/** A proof that does not decode (the cloud's fault, not a transport error). */
function isBadProof(error: unknown): boolean {
  return error instanceof MedShareError && !(error instanceof HttpProblemError) && ['MALFORMED', 'UNSUPPORTED', 'LIMIT'].includes(error.code);
}

/** A served key this auditor cannot check proofs with, and why. */
export interface UnsupportedKey {
  readonly unsupported: string;
}

const isUnsupported = (key: por.PorPublicKey | UnsupportedKey | undefined): key is UnsupportedKey => key !== undefined && 'unsupported' in key;

/** The cloud's storage-audit routes, as an auditor calls them. */
export class StorageAuditClient {
  /** `base` is the platform's URL (the routes are under /cloud/storage); `token` an auditor's or a gateway's. */
  constructor(
    readonly base: URL,
    private readonly token: string,
  ) {}

  /**
   * The hospitals' public keys by id; a key of a version this auditor does not support (version 1, from before the
   * owners' own generators) maps to the reason, so that only the records tagged under it go unaudited.
   * @throws IntegrityError when a served key does not hash to its id, MalformedInputError when one does not decode
   *   or its proof of possession fails.
   */
  async keys(): Promise<Map<string, por.PorPublicKey | UnsupportedKey>> {
    const answer = await callJson<{ keys: { keyId: string; publicKey: string }[] }>(this.base, 'GET', '/cloud/storage/keys', {
      token: this.token,
      idempotent: true,
    });
    const keys = new Map<string, por.PorPublicKey | UnsupportedKey>();
    for (const { keyId, publicKey } of answer.keys) {
      const bytes = new Uint8Array(Buffer.from(publicKey, 'base64'));
      if (createHash('sha256').update(bytes).digest('hex') !== keyId)
        throw new IntegrityError(`the cloud serves a key under id ${keyId.slice(0, 16)}… that does not hash to it`);
      try {
        keys.set(keyId, por.decodePublicKey(bytes));
      } catch (error) {
        if (!(error instanceof UnsupportedError)) throw error;
        keys.set(keyId, { unsupported: `unsupported key version ${bytes[0]}` });
      }
    }
    return keys;
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
 * One audit of `inventory`: a fresh challenge of `samples` blocks over all records, the aggregated proof checked
 * with one multi-pairing; on failure per-record proofs name the failing records. A proof that does not decode
 * counts as failing every sampled record (the cloud answered garbage). @throws on transport errors only, and
 * IntegrityError when the cloud serves a key that does not hash to its id.
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
  const keys = await client.keys();
  const unverifiable = records.filter((r) => !keys.has(r.key));
  const unaudited = records.flatMap((r) => {
    const key = keys.get(r.key);
    return isUnsupported(key) ? [{ hash: r.hash, category: r.category, reason: key.unsupported }] : [];
  });
  const auditable = records.filter((r) => keys.has(r.key) && !isUnsupported(keys.get(r.key)));
  const keyIds = [...new Set(auditable.map((r) => r.key))].sort();
  const failing: FailingRecord[] = unverifiable.map((r) => ({ hash: r.hash, category: r.category }));
  if (unaudited.length > 0) progress(`${unaudited.length} record(s) not audited: ${[...new Set(unaudited.map((u) => u.reason))].join(', ')}`);
  if (auditable.length === 0) {
    return {
      ok: failing.length === 0 && unaudited.length === 0,
      records: records.length,
      hospitals: 0,
      samples: 0,
      failing,
      unaudited,
      challenge: '',
      ledgerEntries: [],
    };
  }
  const wire: WireChallenge = {
    nonce: Buffer.from(por.freshNonce()).toString('base64'),
    sectors: por.DEFAULT_SECTORS,
    samples: options.samples ?? DEFAULT_SAMPLES,
    keys: keyIds,
    files: auditable.map((r) => ({ hash: r.hash, blocks: r.blocks, key: keyIds.indexOf(r.key) })),
  };
  const challenge = fromWire(wire);
  const publicKeys = keyIds.map((id) => keys.get(id) as por.PorPublicKey);
  const sampled = new Set(por.expandChallenge(challenge).map((s) => s.file));
  progress(`challenge: ${auditable.length} records of ${keyIds.length} hospital key(s), ${sampled.size} record(s) sampled`);
  let ok: boolean;
  try {
    const proof = por.decodeProof(await client.prove(wire, 'aggregate'), challenge);
    ok = proof.kind === 'aggregate' && por.verifyAggregate(challenge, publicKeys, proof);
  } catch (error) {
    if (!isBadProof(error)) throw error;
    ok = false;
  }
  progress(`aggregate proof: ${ok ? 'valid' : 'INVALID'}`);
  if (!ok) {
    let failed: number[];
    try {
      const perFile = por.decodeProof(await client.prove(wire, 'per-file'), challenge);
      failed = perFile.kind === 'per-file' ? por.failingFiles(challenge, publicKeys, perFile) : [...sampled];
    } catch (error) {
      if (!isBadProof(error)) throw error;
      failed = [...sampled];
    }
    failing.push(...failed.map((i) => ({ hash: auditable[i]!.hash, category: auditable[i]!.category })));
    progress(`per-record proofs: ${failed.length} record(s) failing`);
  }
  const challenged = new Set(wire.files.map((f) => f.hash));
  const ledgerEntries =
    options.report === false
      ? []
      : await client.report(
          wire,
          failing.filter((f) => challenged.has(f.hash)),
        );
  // After an invalid aggregate, the per-record proofs of the same challenge decide: each is sound on its own.
  return {
    ok: failing.length === 0 && unaudited.length === 0,
    records: records.length,
    hospitals: keyIds.length,
    samples: por.expandChallenge(challenge).length,
    failing,
    unaudited,
    challenge: challengeDigest(wire),
    ledgerEntries,
  };
}
