/**
 * The cloud: a semi-trusted store and re-encryption proxy (docs/platform.md §2). It holds ciphertexts, patients'
 * signed public-key bundles and re-encryption keys, converts a record for a reader on read (pre.convert copies
 * the payload and changes only the header — docs/crypto.md §9), revokes by deleting a key, and records every
 * grant, revocation, access and emergency access in the audit ledger (pseudonyms and hashes only) and in the
 * patient-visible access log. It never sees a plaintext record, a record key or a patient secret.
 *
 * Authorisation is enforced twice: here (the caller's vouched attributes must satisfy a delegation's policy)
 * and cryptographically (the converted header opens only under an ABE key that satisfies that policy).
 *
 * Emergency reads use the patient's own emergency delegation when one is usable, else the platform's emergency
 * grants (made by the encrypting hospitals under the platform's emergency policy, docs/platform.md §3), unless
 * the patient has opted out of those.
 */
import {
  abe,
  AccessDeniedError,
  ConflictError,
  formatVersion,
  IntegrityError,
  LimitExceededError,
  MalformedInputError,
  ObjectType,
  pre,
  sse,
  UnavailableError,
} from '@medshare/crypto';
import { buildInclusionBundle, buildWitnessedBundles, type AuditEventInput, type AuditLog, type InclusionBundle } from '@medshare/ledger';
import type { Caller } from '../http.ts';
import { NotFoundError } from '../http.ts';
import { isRecordOf } from '../record-id.ts';
import { parseIndexRules, type IndexRules } from '../search/keywords.ts';
import { InThreadConverter, type Converter } from './conversion-pool.ts';
import type { CheckedTags, StorageAuditCloud } from '../storage-audit/cloud.ts';
import { checkIndexWrite, MAX_SEARCH_LABELS, type IndexWrite, type ReaderSubIndex, type WriterIndexState } from './search-store.ts';
import { ChunkedPayload } from './record-payloads.ts';
import {
  CloudStore,
  sha256Name,
  type AccessEntry,
  type DelegationRow,
  type EmergencyRecord,
  type NewCapsule,
  type NewRecord,
  type ReadableDelegations,
  type RecordMeta,
  type StoredCiphertext,
  type StoredPolicy,
} from './store.ts';

/** The longest an upload's receipts wait for a witnessed checkpoint before the log-signed ones are returned. */
export const MAX_RECEIPT_WAIT_MS = 10_000;

/**
 * A converted record: its converted header and the payload as stored (a view of the stored bytes, or a large
 * record's chunk rows, read as they are streamed: conversion never touches the payload). `joined` joins them, ready
 * for the reader's `pre.createReader(key).decrypt`; streaming responses write the parts without joining them.
 */
export class ConvertedRecord {
  constructor(
    readonly recordId: string,
    readonly header: Uint8Array,
    readonly payload: Uint8Array | ChunkedPayload,
  ) {}

  /** Bytes of the converted ciphertext (header ‖ payload). */
  get size(): number {
    return this.header.length + this.payload.length;
  }

  /** The converted ciphertext in one buffer (a copy of the payload). */
  async joined(): Promise<Uint8Array> {
    if (this.payload instanceof ChunkedPayload) return this.payload.joinAfter(this.header);
    const joined = new Uint8Array(this.size);
    joined.set(this.header);
    joined.set(this.payload, this.header.length);
    return joined;
  }
}

/** A stored record as header and payload: a chunked record's row holds exactly its header. */
function storedParts(record: StoredCiphertext): { header: Uint8Array; payload: Uint8Array | ChunkedPayload } {
  const { header, payload } = pre.splitRecord(record.ciphertext);
  if (record.chunked === undefined) return { header, payload };
  if (payload.length > 0) throw new IntegrityError(`record ${record.recordId}: its row holds more than the header of a chunked payload`);
  return { header, payload: record.chunked };
}

const LEDGER_SOURCE = 'cloud';
const MAX_RECORDS_PER_EVENT = 64;
const ROLE_CODE = /^[a-z][a-z0-9-]{0,62}$/;
const MAX_REASON = 500;
/** What a research consent is a consent to (its ledger policy hash is this text's). */
export const RESEARCH_PURPOSE = 'medshare/research-release/v1';
/** Entries in each of the service's caches of pure decodings (capsules, compiled policies). */
const MAX_CACHED = 10_000;
const utf8 = new TextEncoder();

/** What an upload stored, and the ledger entries that record it. */
export interface UploadOutcome {
  stored: number;
  ledgerEntries: number[];
}

/** The cloud's settings. */
export interface CloudOptions {
  /** The platform's emergency policy; hospitals' emergency grants must be made under it. None: no platform emergency access. */
  readonly emergencyPolicy?: string;
  /** Storage auditing: checks and keeps uploaded records' proof-of-storage tags (none: tags are refused). */
  readonly storage?: StorageAuditCloud;
}

/** What a patient sees of platform emergency access to her records. */
export interface PlatformEmergencyStatus {
  /** The platform's emergency policy, or null when the platform has none. */
  policy: string | null;
  /** Her consent (opt-out model: true until she withdraws it). */
  allowed: boolean;
  /** How many of her records hospitals have granted under it. */
  grantedRecords: number;
}

/** Where an authorised read takes its conversion keys from. */
type ReadSource = { kind: 'delegation'; delegation: DelegationRow } | { kind: 'platform' };

/** `cache.get(key)`, computed and stored on a miss; the oldest entry goes when full. Only for values that never go stale. */
function cached<V>(cache: Map<string, V>, key: string, compute: () => V): V {
  let value = cache.get(key);
  if (value === undefined) {
    value = compute();
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
    cache.set(key, value);
  }
  return value;
}

export { sha256Name };

/** A stored policy that repeats an attribute, with what it repeats and whether its object must be re-issued. */
export interface RepeatedAttributePolicy extends StoredPolicy {
  repeated: string[];
  reissue: boolean;
}

/**
 * The stored delegations and emergency capsules (of one patient, or all: the operator's review) whose policy repeats
 * an attribute. A policy this build cannot compile is listed with what it fails on, to be re-issued as well.
 */
export async function repeatedAttributePolicies(store: CloudStore, patient?: string): Promise<RepeatedAttributePolicy[]> {
  const current = { delegation: formatVersion(ObjectType.ReEncryptionKey), capsule: formatVersion(ObjectType.EmergencyCapsule) };
  const out: RepeatedAttributePolicy[] = [];
  for (const row of await store.storedPolicies(patient)) {
    let repeated: string[];
    try {
      repeated = abe.repeatedAttributes(row.policy);
    } catch (error) {
      repeated = [`(policy refused: ${(error as Error).message})`];
    }
    if (repeated.length > 0) out.push({ ...row, repeated, reissue: row.format < current[row.kind] });
  }
  return out;
}

/**
 * A re-published bundle must keep every category and move no epoch back, and must change at least one:
 * ConflictError otherwise (the cloud would serve an old epoch again, or nothing changed).
 */
export function checkEpochsAdvance(previous: pre.PatientPublicKeys, next: pre.PatientPublicKeys): void {
  let advanced = false;
  for (const old of previous.categories) {
    const now = next.categories.find((k) => k.category === old.category);
    if (now === undefined) throw new ConflictError(`the new key bundle drops category '${old.category}'`);
    if (now.epoch < old.epoch) throw new ConflictError(`the new key bundle moves '${old.category}' back from epoch ${old.epoch} to ${now.epoch}`);
    if (now.epoch > old.epoch) advanced = true;
    else if (!Buffer.from(now.keyId).equals(Buffer.from(old.keyId)))
      throw new ConflictError(`the new key bundle changes the '${old.category}' key without a new epoch`);
  }
  if (!advanced && next.categories.length === previous.categories.length)
    throw new ConflictError('the key bundle is already published (no epoch moved forward)');
}

/** The cloud service behind the HTTP routes and the gateway. */
export class CloudService {
  /** Decoded emergency capsules by id (decoding validates the FAME header); capsules never change. */
  private readonly decodedCapsules = new Map<string, pre.EmergencyCapsuleInfo>();
  /** Compiled policies by their text: every read checks the reader against the patient's delegation policies. */
  private readonly policyChecks = new Map<string, ReturnType<typeof abe.policyCheck>>();
  /** The key epoch of each delegation by id (a delegation's key never changes; revocation deletes the row). */
  private readonly delegationEpochs = new Map<string, number>();

  /**
   * `converter` converts in this thread or in worker threads (conversion-pool.ts); either caches decoded keys by
   * delegation id, but every read first finds the delegation in the database, so a revoked key is never used.
   */
  constructor(
    private readonly store: CloudStore,
    private readonly ledger: AuditLog,
    private readonly converter: Converter = new InThreadConverter(),
    private readonly options: CloudOptions = {},
  ) {}

  /** The platform's emergency policy (what gateways grant under), or undefined when there is none. */
  get emergencyPolicy(): string | undefined {
    return this.options.emergencyPolicy;
  }

  /**
   * A patient registers her signed key bundle under her pseudonym; she becomes its owner, and the hospital she
   * registered through (her token's) may write into her record (others only once she allows them). Publishing again replaces
   * it (after `keys rotate`) when it is signed by her registered signing key (IntegrityError otherwise), keeps every
   * category and moves at least one epoch forward and none back (ConflictError for a no-op or a backwards
   * bundle, or when another replacement committed first). Returns whether it was a first registration.
   */
  async registerPatient(caller: Caller, patient: string, bundle: Uint8Array): Promise<{ created: boolean }> {
    if (caller.role !== 'patient') throw new AccessDeniedError('only a patient registers her keys');
    const keys = pre.decodePublicKeys(bundle);
    if (keys.patientId !== patient) throw new MalformedInputError('the key bundle is for another pseudonym');
    const existing = await this.store.patient(patient);
    if (existing === undefined) {
      if (await this.store.addPatient(patient, caller.pseudonym, bundle, keys.signingKey, caller.token.hospital)) return { created: true };
      throw new AccessDeniedError('this pseudonym belongs to another patient');
    }
    if (existing.owner !== caller.pseudonym) throw new AccessDeniedError('this pseudonym belongs to another patient');
    pre.decodePublicKeys(bundle, existing.signingKey);
    checkEpochsAdvance(pre.decodePublicKeys(existing.publicKeys, existing.signingKey), keys);
    if (!(await this.store.replacePatientKeys(patient, existing.publicKeys, bundle)))
      throw new ConflictError('the key bundle was replaced concurrently; fetch it and publish again');
    return { created: false };
  }

  /**
   * The owner's delegations and the emergency capsules of her records whose policy names an attribute more than
   * once (after expanding comparisons): under format 1 those were unsafe, so they are to be re-issued (`reissue`
   * when the stored object is still format 1).
   */
  async repeatedAttributePolicies(caller: Caller, patient: string): Promise<RepeatedAttributePolicy[]> {
    await this.requireOwner(caller, patient);
    return repeatedAttributePolicies(this.store, patient);
  }

  /** A patient's verified public keys (for a hospital gateway that encrypts for her). */
  async publicKeys(patient: string): Promise<pre.PatientPublicKeys> {
    const found = await this.store.patient(patient);
    if (found === undefined) throw new NotFoundError('no such patient');
    return pre.decodePublicKeys(found.publicKeys, found.signingKey);
  }

  /** A patient's signed key bundle as registered (verified first), for a gateway in another domain. */
  async publicKeyBundle(patient: string): Promise<Uint8Array> {
    const found = await this.store.patient(patient);
    if (found === undefined) throw new NotFoundError('no such patient');
    pre.decodePublicKeys(found.publicKeys, found.signingKey);
    return found.publicKeys;
  }

  /**
   * Stores a hospital gateway's records of one patient atomically and idempotently, then appends `record-create`
   * entries naming the new records by ciphertext hash (≤ 64 a entry) and shows the upload in the patient's access
   * log. Returns how many records were new and the ledger entries (the gateway asks for their receipts). Records
   * may carry platform emergency grants under `capsules`, which must be made under the platform's emergency policy,
   * and searchable-index writes (`index`, stored in the same transaction; ConflictError when a sub-index moved).
   */
  async upload(
    uploader: Caller,
    patient: string,
    records: readonly NewRecord[],
    capsules: readonly NewCapsule[] = [],
    index: readonly IndexWrite[] = [],
  ): Promise<UploadOutcome> {
    if ((await this.store.patient(patient)) === undefined) throw new NotFoundError('no such patient');
    await this.requireWriter(patient, uploader.token.hospital);
    this.checkEmergencyGrants(patient, records, capsules);
    const foreign = records.find((r) => !isRecordOf(r.recordId, uploader.token.hospital));
    if (foreign !== undefined)
      throw new AccessDeniedError(`record ${foreign.recordId} does not carry the tag of ${uploader.token.hospital} (record ids name their writing hospital)`);
    const recordCategories = new Map(records.map((r) => [r.recordId, r.category]));
    for (const write of index) checkIndexWrite(patient, write, recordCategories);
    const storage = this.options.storage;
    if (storage === undefined && records.some((r) => r.storage !== undefined))
      throw new MalformedInputError('this cloud keeps no proof-of-storage tags; upload without them');
    const tags = storage === undefined ? new Map<string, CheckedTags>() : await storage.checkUpload(records);
    const added = await this.store.addRecords(
      patient,
      uploader.token.hospital,
      records,
      capsules,
      index,
      (tx, added) => storage?.storeTags(tx, added, tags) ?? Promise.resolve(),
    );
    if (added.length === 0) return { stored: 0, ledgerEntries: [] };
    const touched = added.map((r) => {
      const commitment = tags.get(r.recordId)?.commitment;
      return { hash: sha256Name(r.ciphertext), category: r.category, ...(commitment === undefined ? {} : { storage: commitment }) };
    });
    const categories = [...new Set(added.map((r) => r.category))].sort().join(',');
    const ledgerEntries = await this.audit(uploader, patient, 'upload', categories, 'success', added.length, null, { type: 'record-create' }, touched);
    return { stored: added.length, ledgerEntries };
  }

  /**
   * Refuses (403) a hospital the patient has not allowed to write into her record: only her home hospital and those
   * she allowed (allowWriter) may enrol her pseudonym and upload for her.
   */
  async requireWriter(patient: string, hospital: string): Promise<void> {
    if (!(await this.store.writers(patient)).includes(hospital)) {
      throw new AccessDeniedError(
        `the patient has not allowed ${hospital} to write into her record (she allows it with PUT /cloud/patients/<pseudonym>/writers/${hospital})`,
      );
    }
  }

  /** The hospitals that may write into her record (the patient only). */
  async writers(caller: Caller, patient: string): Promise<string[]> {
    await this.requireOwner(caller, patient);
    return this.store.writers(patient);
  }

  /** The patient allows a hospital to write into her record; recorded as a consent grant. */
  async allowWriter(caller: Caller, patient: string, hospital: string): Promise<string[]> {
    await this.requireOwner(caller, patient);
    if (await this.store.addWriter(patient, hospital)) {
      await this.audit(caller, patient, `allow ${hospital} to write`, 'all', 'success', 0, null, {
        type: 'consent-grant',
        policyHash: sha256Name(utf8.encode(`writer:${hospital}`)),
      });
    }
    return this.store.writers(patient);
  }

  /** The patient withdraws a hospital's permission to write (its records stay readable); recorded as a consent revocation. */
  async removeWriter(caller: Caller, patient: string, hospital: string): Promise<string[]> {
    await this.requireOwner(caller, patient);
    if (!(await this.store.removeWriter(patient, hospital))) throw new NotFoundError(`${hospital} may not write into her record`);
    await this.audit(caller, patient, `refuse ${hospital} to write`, 'all', 'success', 0, null, {
      type: 'consent-revoke',
      policyHash: sha256Name(utf8.encode(`writer:${hospital}`)),
    });
    return this.store.writers(patient);
  }

  /**
   * A writing hospital's gateway stores keyed hashes of the patient's business identifiers (identifier-index.ts): the
   * cloud cannot invert them without the consortium's key. @throws AccessDeniedError for a hospital she did not allow.
   */
  async indexIdentifiers(uploader: Caller, patient: string, digests: readonly string[]): Promise<void> {
    await this.requireWriter(patient, uploader.token.hospital);
    if (digests.some((d) => !/^[A-Za-z0-9_-]{43}$/.test(d))) throw new MalformedInputError('an identifier digest is 43 base64url characters (HMAC-SHA-256)');
    await this.store.addIdentifierDigests(patient, uploader.token.hospital, digests);
  }

  /**
   * The pseudonyms of the patients who allowed being found and one of whose identifiers has this keyed hash; each
   * found patient sees the lookup in her access log and the ledger (a record-access of no record).
   */
  async lookupIdentifier(caller: Caller, digest: string): Promise<string[]> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(digest)) throw new MalformedInputError('an identifier digest is 43 base64url characters (HMAC-SHA-256)');
    const found = await this.store.findByDigest(digest);
    for (const patient of found) await this.audit(caller, patient, 'lookup by identifier', 'all', 'success', 0, null, { type: 'record-access' });
    return found;
  }

  /** The patient allows or refuses being found by her business identifiers; recorded as a consent grant or revocation. */
  async setFindable(caller: Caller, patient: string, allowed: boolean): Promise<{ findable: boolean }> {
    await this.requireOwner(caller, patient);
    if (await this.store.setFindable(patient, allowed)) {
      await this.audit(caller, patient, allowed ? 'allow lookup by identifier' : 'refuse lookup by identifier', 'all', 'success', 0, null, {
        type: allowed ? 'consent-grant' : 'consent-revoke',
        policyHash: sha256Name(utf8.encode('lookup-by-identifier')),
      });
    }
    return { findable: allowed };
  }

  /**
   * The patient sets the desensitisation rules gateways apply to the words of her notes before indexing them
   * (search/keywords.ts); recorded as a consent grant. @throws MalformedInputError for malformed rules.
   */
  async setIndexRules(caller: Caller, patient: string, rules: unknown): Promise<IndexRules> {
    await this.requireOwner(caller, patient);
    const parsed = parseIndexRules(rules);
    const text = JSON.stringify(parsed);
    await this.store.setIndexRules(patient, text);
    await this.audit(caller, patient, 'set index rules', 'all', 'success', 0, null, {
      type: 'consent-grant',
      policyHash: sha256Name(utf8.encode(`index-rules:${text}`)),
    });
    return parsed;
  }

  /** The patient's own index rules (undefined: none set). */
  async ownIndexRules(caller: Caller, patient: string): Promise<IndexRules | undefined> {
    await this.requireOwner(caller, patient);
    return this.indexRules(patient);
  }

  /** The patient's index rules (undefined: none set), for the gateways writing her record. */
  async indexRules(patient: string): Promise<IndexRules | undefined> {
    const text = await this.store.indexRules(patient);
    return text === undefined ? undefined : parseIndexRules(JSON.parse(text));
  }

  /**
   * Receipts of ledger entries: each entry's inclusion bundle against a checkpoint the witness quorum cosigned,
   * waiting for one up to `waitMs` (asking the witnesses again meanwhile); after that (a witness is down), against the
   * latest checkpoint the log signed, which the gateway keeps as a pending receipt and completes later.
   * @throws UnavailableError when the log is halted
   */
  async receipts(entries: readonly number[], waitMs = MAX_RECEIPT_WAIT_MS): Promise<InclusionBundle[]> {
    if (entries.length === 0) return [];
    const needed = Math.max(...entries) + 1;
    if (this.ledger.health().witnessedSize < needed) void this.ledger.rewitness();
    try {
      return await buildWitnessedBundles(this.ledger, entries, waitMs);
    } catch (error) {
      if (!(error instanceof UnavailableError) || !this.ledger.health().ok) throw error;
      return Promise.all(entries.map((index) => buildInclusionBundle(this.ledger, index)));
    }
  }

  /** The patient's view of platform emergency access: the policy, her consent, how many records it covers. */
  async platformEmergency(caller: Caller, patient: string): Promise<PlatformEmergencyStatus> {
    await this.requireOwner(caller, patient);
    const found = await this.store.patient(patient);
    return { policy: this.options.emergencyPolicy ?? null, allowed: found!.platformEmergency, grantedRecords: await this.store.emergencyGrantCount(patient) };
  }

  /**
   * The patient gives or withdraws consent to platform emergency access. Withdrawing deletes every grant at once;
   * hospitals' later grants are dropped. Recorded as a consent grant or revocation of the platform policy.
   */
  async setPlatformEmergency(caller: Caller, patient: string, allowed: boolean): Promise<PlatformEmergencyStatus> {
    await this.requireOwner(caller, patient);
    if (await this.store.setPlatformEmergency(patient, allowed)) {
      const policyHash = sha256Name(utf8.encode(this.options.emergencyPolicy ?? ''));
      await this.audit(caller, patient, allowed ? 'allow platform emergency access' : 'refuse platform emergency access', 'all', 'success', 0, null, {
        type: allowed ? 'consent-grant' : 'consent-revoke',
        policyHash,
      });
    }
    return this.platformEmergency(caller, patient);
  }

  /** Whether the patient consents to de-identified research release of her records (the patient only). */
  async researchConsent(caller: Caller, patient: string): Promise<{ allowed: boolean }> {
    await this.requireOwner(caller, patient);
    return { allowed: (await this.store.researchConsent(patient)) === true };
  }

  /** The patient gives or withdraws research consent; recorded as a consent grant or revocation of RESEARCH_PURPOSE. */
  async setResearchConsent(caller: Caller, patient: string, allowed: boolean): Promise<{ allowed: boolean }> {
    await this.requireOwner(caller, patient);
    if (await this.store.setResearchConsent(patient, allowed)) {
      await this.audit(caller, patient, allowed ? 'allow research release' : 'refuse research release', 'all', 'success', 0, null, {
        type: allowed ? 'consent-grant' : 'consent-revoke',
        policyHash: sha256Name(utf8.encode(RESEARCH_PURPOSE)),
      });
    }
    return { allowed };
  }

  /**
   * A hospital's gateway (role:gateway) is about to release a patient's records de-identified: refused unless she
   * consents; else recorded on the ledger (the released bundle by hash, its profile as the record's label) and in
   * her access log, before anything is released. Returns the ledger index. @throws AccessDeniedError, NotFoundError
   */
  async recordResearchExport(caller: Caller, patient: string, release: { profile: string; digest: string; resources: number }): Promise<number> {
    if (caller.role !== 'gateway') throw new AccessDeniedError('a research release is made by a hospital gateway');
    const consent = await this.store.researchConsent(patient);
    if (consent === undefined) throw new NotFoundError('no such patient');
    const event = { type: 'research-export' as const };
    const touched = [{ hash: release.digest, category: release.profile }];
    if (!consent) {
      await this.audit(caller, patient, `research release (${release.profile})`, 'all', 'minor-failure', 0, null, event, touched);
      throw new AccessDeniedError('the patient has not consented to research release');
    }
    const [index] = await this.audit(caller, patient, `research release (${release.profile})`, 'all', 'success', release.resources, null, event, touched);
    return index!;
  }

  /** Record metadata for the patient herself, or for a reader one of whose delegations covers the category. */
  async listRecords(caller: Caller, patient: string, category?: string): Promise<RecordMeta[]> {
    if (!(await this.isOwner(caller, patient))) {
      if (category === undefined) throw new AccessDeniedError('only the patient lists all her records; readers name a category');
      this.usableDelegation(caller, await this.store.delegations(patient, category), category, false);
    }
    return this.store.listRecords(patient, category);
  }

  /**
   * The patient's own ciphertexts of a category, as stored (under her public key: only she can open them, in her
   * browser or with her key file). Owner only; not an access to record in her log (no one else learns anything).
   * @throws AccessDeniedError for anyone but the patient.
   */
  async ownRecords(caller: Caller, patient: string, category: string): Promise<Array<{ recordId: string; ciphertext: Uint8Array }>> {
    await this.requireOwner(caller, patient);
    const stored = await this.store.ciphertexts(patient, category);
    return Promise.all(stored.map(async (r) => ({ recordId: r.recordId, ciphertext: await CloudStore.whole(r) })));
  }

  /** The owner stores a delegation (a re-encryption key); it is recorded as a consent grant. */
  async delegate(
    caller: Caller,
    patient: string,
    keyBytes: Uint8Array,
    emergency: boolean,
  ): Promise<{ delegationId: string; category: string; policy: string }> {
    await this.requireOwner(caller, patient);
    const rk = pre.decodeReEncryptionKey(keyBytes);
    if (rk.patientId !== patient) throw new MalformedInputError('the re-encryption key is for another patient');
    if (rk.scope.kind !== 'category') throw new MalformedInputError('the cloud stores category delegations');
    const { policy } = abe.openHeader(rk.rk2);
    if (emergency && !abe.satisfies('role:emergency', policy)) throw new MalformedInputError('an emergency delegation must be satisfiable by role:emergency');
    const delegationId = Buffer.from(rk.delegationId).toString('hex');
    await this.store.addDelegation({ delegationId, patient, category: rk.category, policy, emergency, reencryptionKey: keyBytes });
    await this.audit(caller, patient, 'grant', rk.category, 'success', 0, null, { type: 'consent-grant', policyHash: sha256Name(keyBytes) });
    return { delegationId, category: rk.category, policy };
  }

  /** The owner's active delegations (without the keys). */
  async delegations(caller: Caller, patient: string): Promise<Array<Omit<DelegationRow, 'reencryptionKey'>>> {
    await this.requireOwner(caller, patient);
    return (await this.store.delegations(patient)).map(({ reencryptionKey: _key, ...rest }) => rest);
  }

  /** Revocation: the re-encryption key is deleted, so nothing more converts under it. */
  async revoke(caller: Caller, patient: string, delegationId: string): Promise<void> {
    await this.requireOwner(caller, patient);
    const removed = await this.store.deleteDelegation(patient, delegationId);
    this.converter.forget(delegationId);
    if (removed === undefined) throw new NotFoundError('no such delegation');
    // New index entries go to sub-indexes under fresh keys, which the revoked delegation never converted.
    await this.store.search.advanceIndexEpoch(patient, removed.category);
    await this.audit(caller, patient, 'revoke', removed.category, 'success', 0, null, {
      type: 'consent-revoke',
      policyHash: sha256Name(removed.reencryptionKey),
    });
  }

  /**
   * Converts every record of `category` (or only `recordIds`) for a reader whose attributes satisfy an active
   * delegation. Emergency reads need role:emergency and a stated reason, and use an emergency delegation of the
   * patient or, failing that, the platform's emergency grants (records without one are not returned).
   */
  async read(caller: Caller, patient: string, category: string, options: { recordIds?: readonly string[]; reason?: string } = {}): Promise<ConvertedRecord[]> {
    const emergency = options.reason !== undefined;
    // A reader's delegations and the records come in one query, the records used only once the delegations authorise
    // the read; an emergency read (its delegation or the platform's grants) fetches its records once authorised.
    let fetched: StoredCiphertext[] | undefined;
    const lookup = emergency
      ? undefined
      : async () => {
          const found = await this.store.readableRecords(patient, category, options.recordIds);
          fetched = found?.records;
          return found;
        };
    const { source, event } = await this.authoriseRead(caller, patient, category, options.reason, emergency ? 'emergency read' : 'read', lookup);
    let converted: ConvertedRecord[];
    let stored: Array<{ hash: string }>;
    if (source.kind === 'delegation') {
      const records = fetched ?? (await this.store.ciphertexts(patient, category, options.recordIds));
      const parts = records.map(storedParts);
      const headers = await this.converter.convert(
        source.delegation,
        parts.map((p) => p.header),
      );
      converted = records.map((r, i) => new ConvertedRecord(r.recordId, headers[i]!, parts[i]!.payload));
      stored = records;
    } else {
      // A grant is already c2': no pairing, so no worker.
      const records = await this.store.emergencyRecords(patient, category, options.recordIds);
      converted = records.map((r) => {
        const { header, payload } = storedParts(r);
        return new ConvertedRecord(r.recordId, pre.convertHeader(pre.emergencyGrantKey(this.capsule(r), r.grant), pre.openRecordHeader(header)), payload);
      });
      stored = records;
    }
    const action = source.kind === 'platform' ? 'emergency read (platform policy)' : emergency ? 'emergency read' : 'read';
    await this.audit(
      caller,
      patient,
      action,
      category,
      'success',
      converted.length,
      options.reason ?? null,
      event,
      stored.map((r) => ({ hash: r.hash, category })),
    );
    return converted;
  }

  /**
   * Where a read (or a search) of `category` takes its keys from, refused (and audited as refused) when the
   * caller's attributes satisfy no delegation; `reason` makes it an emergency access.
   */
  private async authoriseRead(
    caller: Caller,
    patient: string,
    category: string,
    reason: string | undefined,
    action: string,
    lookup: () => Promise<ReadableDelegations | undefined> = () => this.store.readableDelegations(patient, category),
  ): Promise<{ source: ReadSource; event: Parameters<CloudService['audit']>[7] }> {
    const emergency = reason !== undefined;
    if (emergency) {
      if (caller.role !== 'emergency') throw new AccessDeniedError('emergency access needs role:emergency');
      if (reason.trim().length === 0 || reason.length > MAX_REASON)
        throw new MalformedInputError(`an emergency access needs a stated reason of 1-${MAX_REASON} characters`);
    }
    const found = await lookup();
    if (found === undefined) throw new NotFoundError('no such patient');
    const event: Parameters<CloudService['audit']>[7] = emergency ? { type: 'emergency-access', emergencyReason: 'BTG' } : { type: 'record-access' };
    try {
      return { source: this.readSource(caller, found.delegations, category, emergency, found.platformEmergency), event };
    } catch (error) {
      await this.audit(caller, patient, action, category, 'minor-failure', 0, reason ?? null, event);
      throw error;
    }
  }

  // ---- searchable index (search-store.ts, docs/platform.md § Search) ----------------------------------------

  /**
   * A gateway's view of its own sub-indexes of `categories` for one patient: the current index epoch and, if the
   * hospital has written to the sub-index of the current key and index epochs, its sealed state and version.
   */
  async indexStates(caller: Caller, patient: string, categories: readonly string[]): Promise<WriterIndexState[]> {
    if (caller.role !== 'gateway') throw new AccessDeniedError('only a hospital gateway writes to the index');
    const keys = await this.publicKeys(patient);
    return Promise.all(
      categories.map(async (category): Promise<WriterIndexState> => {
        const keyEpoch = keys.categories.find((k) => k.category === category)?.epoch;
        if (keyEpoch === undefined) throw new MalformedInputError(`the patient has no key for category '${category}'`);
        const indexEpoch = await this.store.search.indexEpoch(patient, category);
        const mine = await this.store.search.subIndex(patient, category, caller.token.hospital, keyEpoch, indexEpoch);
        return { category, keyEpoch, indexEpoch, ...(mine === undefined ? { version: 0 } : { version: mine.version, state: mine.state }) };
      }),
    );
  }

  /**
   * A reader's entry to searching `category`: every sub-index (writer, key epoch, index epoch) whose key it may
   * have — the key capsule converted for it exactly as a record would be (one conversion each), with the sealed
   * state. For a platform emergency search, only sub-indexes whose key the writer granted. Audited as a search.
   */
  async searchIndexes(caller: Caller, patient: string, category: string, reason?: string): Promise<ReaderSubIndex[]> {
    const action = reason === undefined ? 'search' : 'emergency search';
    const { source, event } = await this.authoriseRead(caller, patient, category, reason, action);
    const subs = await this.store.search.subIndexes(patient, category);
    let keys: Uint8Array[];
    let usable: typeof subs;
    if (source.kind === 'delegation') {
      // A delegation converts the key epoch it was made for; sub-indexes of other epochs need their own delegation.
      const epoch = cached(this.delegationEpochs, source.delegation.delegationId, () => pre.decodeReEncryptionKey(source.delegation.reencryptionKey).epoch);
      usable = subs.filter((s) => s.keyEpoch === epoch);
      // Converters take headers only: each converted header is joined with its capsule's payload again.
      const parts = usable.map((s) => pre.splitRecord(s.keyCapsule));
      const headers = await this.converter.convert(
        source.delegation,
        parts.map((p) => p.header),
      );
      keys = parts.map((p, i) => new Uint8Array(Buffer.concat([headers[i]!, p.payload])));
    } else {
      usable = subs.filter((s) => s.emergency !== undefined);
      keys = usable.map((s) =>
        pre.convert(
          pre.emergencyGrantKey(
            cached(this.decodedCapsules, s.emergency!.capsuleId, () => pre.decodeEmergencyCapsule(s.emergency!.capsule)),
            s.emergency!.grant,
          ),
          s.keyCapsule,
        ),
      );
    }
    await this.audit(caller, patient, source.kind === 'platform' ? `${action} (platform policy)` : action, category, 'success', 0, reason ?? null, event);
    return usable.map((s, i) => ({
      source: s.source,
      keyEpoch: s.keyEpoch,
      indexEpoch: s.indexEpoch,
      keyCapsule: keys[i]!,
      state: s.state,
      version: s.version,
    }));
  }

  /**
   * The stored values of `labels` (a search token) in a patient's category, for a reader authorised as for
   * `searchIndexes`: one indexed lookup per label, so the cost follows the entries searched, not the records held.
   */
  async searchRows(caller: Caller, patient: string, category: string, labels: readonly Uint8Array[], reason?: string): Promise<Array<Uint8Array | undefined>> {
    if (labels.length > MAX_SEARCH_LABELS) throw new LimitExceededError(`a search sends at most ${MAX_SEARCH_LABELS} labels`);
    if (labels.some((l) => l.length !== sse.LABEL_BYTES)) throw new MalformedInputError(`a search label is ${sse.LABEL_BYTES} bytes`);
    await this.authoriseRead(caller, patient, category, reason, reason === undefined ? 'search' : 'emergency search');
    return this.store.search.lookup(patient, category, labels);
  }

  /** The patient's access log: every grant, revocation, access and emergency access about her. */
  async accessLog(caller: Caller, patient: string): Promise<AccessEntry[]> {
    await this.requireOwner(caller, patient);
    return this.store.accessLog(patient);
  }

  private capsule(record: EmergencyRecord): pre.EmergencyCapsuleInfo {
    return cached(this.decodedCapsules, record.capsuleId, () => pre.decodeEmergencyCapsule(record.capsule));
  }

  /** abe.satisfies with the policy compiled once. */
  private satisfies(caller: Caller, policy: string): boolean {
    return cached(this.policyChecks, policy, () => abe.policyCheck(policy))(caller.token.attributes.join(', '));
  }

  /** The patient's delegation that authorises this read; for an emergency, the platform's grants as a fallback. */
  private readSource(caller: Caller, delegations: readonly DelegationRow[], category: string, emergency: boolean, platformEmergency: boolean): ReadSource {
    try {
      return { kind: 'delegation', delegation: this.usableDelegation(caller, delegations, category, emergency) };
    } catch (error) {
      const policy = this.options.emergencyPolicy;
      if (!emergency || policy === undefined || !platformEmergency || !this.satisfies(caller, policy)) throw error;
      return { kind: 'platform' };
    }
  }

  /** Every capsule is under the platform's policy; every grant names its record, patient, category, key and capsule. */
  private checkEmergencyGrants(patient: string, records: readonly NewRecord[], capsules: readonly NewCapsule[]): void {
    const byId = new Map<string, NewCapsule>();
    for (const capsule of capsules) {
      const info = pre.decodeEmergencyCapsule(capsule.capsule);
      if (this.options.emergencyPolicy === undefined) throw new MalformedInputError('this platform has no emergency policy; upload without emergency grants');
      if (info.policy !== this.options.emergencyPolicy || capsule.policy !== info.policy)
        throw new MalformedInputError(`an emergency capsule must be under the platform's emergency policy '${this.options.emergencyPolicy}'`);
      if (capsule.capsuleId !== Buffer.from(info.delegationId).toString('hex'))
        throw new MalformedInputError('an emergency capsule id must be its delegation id');
      byId.set(capsule.capsuleId, capsule);
    }
    for (const record of records) {
      if (record.emergency === undefined) continue;
      const capsule = byId.get(record.emergency.capsuleId);
      const grant = pre.decodeEmergencyGrant(record.emergency.grant);
      const { core } = pre.openRecordHeader(record.ciphertext);
      if (
        capsule === undefined ||
        capsule.category !== record.category ||
        Buffer.from(grant.delegationId).toString('hex') !== capsule.capsuleId ||
        grant.patientId !== patient ||
        grant.recordId !== record.recordId ||
        core.recordId !== record.recordId ||
        grant.category !== record.category ||
        core.category !== record.category ||
        grant.epoch !== core.epoch ||
        Buffer.compare(grant.keyId, core.keyId) !== 0
      ) {
        throw new MalformedInputError(`the emergency grant of record ${record.recordId} does not match its record or capsule`);
      }
    }
  }

  private async isOwner(caller: Caller, patient: string): Promise<boolean> {
    return caller.role === 'patient' && (await this.store.patient(patient))?.owner === caller.pseudonym;
  }

  private async requireOwner(caller: Caller, patient: string): Promise<void> {
    if (!(await this.isOwner(caller, patient))) throw new AccessDeniedError('only the patient herself may do this');
  }

  /** The first of the patient's active delegations of `category` whose policy the caller's attributes satisfy. */
  private usableDelegation(caller: Caller, delegations: readonly DelegationRow[], category: string, emergency: boolean): DelegationRow {
    const candidates = delegations.filter((d) => d.emergency === emergency);
    const usable = candidates.find((d) => this.satisfies(caller, d.policy));
    if (usable !== undefined) return usable;
    if (candidates.length === 0)
      throw new AccessDeniedError(`no active ${emergency ? 'emergency ' : ''}delegation of '${category}' (revoked or never granted)`);
    throw new AccessDeniedError(`your attributes satisfy no active delegation of '${category}'`);
  }

  /** Appends to the ledger (pseudonyms, codes and hashes only) and to the patient's access log. */
  private async audit(
    caller: Caller,
    patient: string,
    action: string,
    category: string,
    outcome: 'success' | 'minor-failure',
    records: number,
    reason: string | null,
    event: Pick<AuditEventInput, 'type' | 'policyHash' | 'emergencyReason'>,
    touched: NonNullable<AuditEventInput['records']> = [],
  ): Promise<number[]> {
    const role = ROLE_CODE.test(caller.role) ? caller.role : 'other';
    const base = { ...event, outcome, patient, source: LEDGER_SOURCE, agents: [{ who: caller.pseudonym, role }] };
    // One ledger entry per 64 records touched (the entry format's limit), at least one entry.
    const indices: number[] = [];
    for (let i = 0; i === 0 || i < touched.length; i += MAX_RECORDS_PER_EVENT) {
      indices.push((await this.ledger.append({ ...base, records: touched.slice(i, i + MAX_RECORDS_PER_EVENT) })).index);
    }
    const first = indices[0];
    await this.store.logAccess(patient, {
      actor: caller.pseudonym,
      hospital: caller.token.hospital,
      role,
      action,
      category,
      outcome: outcome === 'success' ? (event.type === 'record-access' || event.type === 'emergency-access' ? `${records} records` : 'ok') : 'refused',
      records,
      reason,
      ledgerIndex: first ?? null,
    });
    return indices;
  }
}
