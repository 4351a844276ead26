/**
 * The hospital gateway: maps the hospital's FHIR patients to MedShare pseudonyms (enrolment, with the patient's
 * consent at the cloud), validates each incoming resource (fhir-validate.ts), makes each change a new version
 * (fhir-versions.ts: meta.versionId/lastUpdated/source set here, inside the ciphertext), signs it with the hospital's
 * record key (record-signature.ts: provenance the cloud cannot forge), encrypts each version under
 * the patient's category key (pre.encrypt, docs/crypto.md §9) and uploads a transaction to the cloud at once. The
 * gateway runs at the hospital and sees plaintext FHIR; the cloud receives only ciphertexts and record ids, which
 * name the writing hospital (record-id.ts) and hash the FHIR id, version and content — so a retry stores nothing twice.
 *
 * Receipts: the cloud records every stored upload in the audit ledger (`record-create` entries naming the
 * ciphertexts by hash); the gateway obtains each entry's inclusion proof against a checkpoint the hospitals'
 * witnesses cosigned, checks it against the ledger keys it pins, and keeps it (gateway_receipts, receipts.ts), so the
 * hospital can later show that the cloud accepted exactly these ciphertexts if it drops or swaps one. While a witness
 * is down the receipt is kept pending and completed later.
 */
import { type abe, ConflictError, curve, MalformedInputError, MedShareError, pre } from '@medshare/crypto';
import type { Database } from '@medshare/db';
import type { CheckpointSigner } from '@medshare/ledger';
import { signRecord } from '../record-signature.ts';
import { InThreadEncryptor, type RecordEncryptor } from '../cloud/conversion-pool.ts';
import type { Caller } from '../http.ts';
import type { NewCapsule, NewRecord } from '../cloud/store.ts';
import { requireWriteScope } from '../scopes.ts';
import type { CloudApi } from './cloud-api.ts';
import type { IndexedRecord, SearchIndexWriter } from './search-index.ts';
import type { StorageTagger } from '../storage-audit/tagger.ts';
import type { Receipt, ReceiptBook } from './receipts.ts';
import { NotFoundError } from '../http.ts';
import { taggedRecordId } from '../record-id.ts';
import { categoryOf, referencedPatient, type CategoryMapping, type FhirResource } from './fhir.ts';
import { identifierTokens, parseWrite, retarget, type FhirOperation } from './fhir-bundle.ts';
import { FhirValidationError, validateFhirResource } from './fhir-validate.ts';
import type { IdentifierKey } from './identifier-index.ts';
import { keywordsOf, type IndexRules } from '../search/keywords.ts';
import { FhirHttpError } from './fhir-rest.ts';
import { contentHash, tombstone, versioned, VersionStore, type VersionRow } from './fhir-versions.ts';

/** What an upload did. */
export interface UploadResult {
  patient: string;
  received: number;
  stored: number;
  byCategory: Record<string, number>;
  /**
   * The ledger entries recording the stored records, each proven in the tree of `treeSize`: `complete` when its
   * checkpoint is witnessed, `pending` when only the log signed it (a witness down; completed later).
   */
  receipts: Pick<Receipt, 'index' | 'treeSize' | 'status'>[];
  /** Each resource's version after the upload, and the record that holds it. */
  versions: Array<{ resourceType: string; id: string; versionId: string; recordId: string }>;
}

/** What one write operation did (a transaction-response or batch-response entry). */
export interface WriteOutcome {
  /** The operation's entry index. */
  index: number;
  /** 201 created, 200 updated or unchanged (a retry), 204 deleted or nothing to delete. */
  status: 200 | 201 | 204;
  resourceType: string;
  id: string;
  /** The current version (absent when a delete found nothing). */
  versionId?: string;
  lastUpdated?: string;
  /** The version as stored (meta set by the gateway); absent for deletes. */
  resource?: FhirResource;
  recordId?: string;
  /** Whether this operation stored a new version. */
  stored: boolean;
}

const utf8 = new TextEncoder();
/** Patients whose epochs a gateway remembers (a few hundred bytes each). */
const MAX_TRACKED_PATIENTS = 100_000;
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
/** Uploads retried when another writer's index write committed first (409). */
const MAX_INDEX_ATTEMPTS = 8;

/** A version about to be stored: its row, its plaintext, and the version it supersedes (if any). */
interface FreshVersion {
  readonly row: VersionRow;
  readonly plaintext: FhirResource;
  readonly before?: VersionRow;
}

/**
 * The gateway of the caller's hospital (rows are keyed by hospital; each call names it through its caller's
 * token). Given the TA's public key and a cloud with an emergency policy, it also grants each record to a fresh
 * capsule per upload and category under that policy (platform emergency access, docs/platform.md §3): one FAME
 * encapsulation and one pairing per capsule, one GT exponentiation per record. Calls to the cloud carry the caller's own token.
 */
export class GatewayService {
  /**
   * The highest epoch of each patient's categories this gateway has encrypted under (kept in memory, for the life of
   * the process, for the MAX_TRACKED_PATIENTS most recent patients): a bundle that moves one back — an old bundle
   * replayed by the cloud — is refused.
   */
  private readonly seenEpochs = new Map<string, Map<string, number>>();
  /** Writes of one patient run one at a time in this process, so two updates of a resource cannot both be version n+1. */
  private readonly patientLocks = new Map<string, Promise<unknown>>();
  private readonly versions: VersionStore;

  /**
   * `abePublicKey` gives the TA's public key (fetched from the authority once, at first need), or undefined for no
   * platform emergency grants.
   */
  constructor(
    private readonly db: Database,
    private readonly cloud: CloudApi,
    private readonly mapping: CategoryMapping,
    /** The hospital's record-signing key (record-signature.ts): every version it writes is signed inside the ciphertext. */
    private readonly recordSigner: CheckpointSigner,
    private readonly abePublicKey?: () => Promise<abe.PublicKey>,
    /** Where upload receipts are checked and kept (none: none are asked for). */
    private readonly receipts?: ReceiptBook,
    /** Writes every uploaded record into the hospital's searchable sub-index (none: records are not searchable). */
    private readonly index?: SearchIndexWriter,
    /** Tags every ciphertext for storage audits with its KZG chunk commitments (none: records go untagged). */
    private readonly tagger?: StorageTagger,
    /** The consortium's identifier key: with it, Patient identifiers are indexed for cross-hospital lookup. */
    readonly identifierKey?: IdentifierKey,
    /** Where records are encrypted: this thread by default, or the hospital service's worker pool. */
    private readonly encryptor: RecordEncryptor = new InThreadEncryptor(),
  ) {
    this.versions = new VersionStore(db);
  }

  /**
   * Links the hospital's FHIR patient id to the patient's MedShare pseudonym (which must be registered, and must
   * have allowed this hospital to write into her record: AccessDeniedError otherwise).
   */
  async enrol(caller: Caller, fhirId: string, patient: string): Promise<void> {
    const hospital = caller.token.hospital;
    await this.cloud.patientKeys(caller.bearer, patient);
    await this.cloud.requireWriter(caller.bearer, patient);
    const result = await this.db.query(
      `INSERT INTO gateway_patients (hospital, fhir_id, patient) VALUES ($1, $2, $3)
       ON CONFLICT (hospital, fhir_id) DO UPDATE SET patient = gateway_patients.patient RETURNING patient`,
      [hospital, fhirId, patient],
    );
    const stored = (result.rows[0] as { patient: string } | undefined)?.patient;
    if (stored !== patient) throw new MalformedInputError('this FHIR patient is already enrolled under another pseudonym');
  }

  /** The pseudonym of a hospital's FHIR patient. */
  async pseudonymOf(hospital: string, fhirId: string): Promise<string> {
    const row = (await this.db.query<{ patient: string }>('SELECT patient FROM gateway_patients WHERE hospital = $1 AND fhir_id = $2', [hospital, fhirId]))
      .rows[0];
    if (row === undefined) throw new NotFoundError(`FHIR patient ${fhirId} is not enrolled at ${hospital}`);
    return row.patient;
  }

  /** `keys` if no epoch is below one this gateway already used for the patient (ConflictError otherwise). */
  private checkEpochs(keys: pre.PatientPublicKeys): pre.PatientPublicKeys {
    const seen = this.seenEpochs.get(keys.patientId) ?? new Map<string, number>();
    for (const { category, epoch } of keys.categories) {
      const before = seen.get(category) ?? 0;
      if (epoch < before)
        throw new ConflictError(`the cloud served '${category}' keys of epoch ${epoch} after epoch ${before}; refusing to encrypt under an old key`);
    }
    for (const { category, epoch } of keys.categories) seen.set(category, epoch);
    this.seenEpochs.delete(keys.patientId);
    if (this.seenEpochs.size >= MAX_TRACKED_PATIENTS) this.seenEpochs.delete(this.seenEpochs.keys().next().value!);
    this.seenEpochs.set(keys.patientId, seen);
    return keys;
  }

  /**
   * A resource or a Bundle, all or nothing, as the SDK's `GatewayClient.upload` sends it (entries without `request`
   * are updates by id); then the ledger receipts are obtained, checked and stored. @throws as `write`.
   */
  async upload(caller: Caller, body: unknown): Promise<UploadResult> {
    const parsed = parseWrite(body);
    const [refused] = parsed.refused.values();
    if (refused !== undefined) throw refused;
    const { patient, outcomes, byCategory, receipts } = await this.transaction(caller, parsed.operations);
    return {
      patient,
      received: outcomes.length,
      stored: outcomes.filter((o) => o.stored).length,
      byCategory,
      receipts,
      versions: outcomes
        .filter((o) => o.versionId !== undefined)
        .map((o) => ({ resourceType: o.resourceType, id: o.id, versionId: o.versionId!, recordId: o.recordId! })),
    };
  }

  /**
   * Runs write operations as one FHIR transaction: every resource is validated (FhirValidationError names the
   * element), all concern one enrolled patient, and the new versions are encrypted and uploaded in one cloud
   * transaction — nothing is stored if anything fails. A resource whose content equals its current version stores
   * nothing (a retry); a delete of a missing or deleted resource stores nothing.
   * @throws MalformedInputError, FhirValidationError, NotFoundError (patient not enrolled), AccessDeniedError (no
   * writer consent), ConflictError (an old key epoch), IntegrityError (a receipt the log did not sign), FhirHttpError
   * 412 (an update's `ifMatch` is not the current version).
   */
  async transaction(
    caller: Caller,
    requested: readonly FhirOperation[],
  ): Promise<{ patient: string; outcomes: WriteOutcome[]; byCategory: Record<string, number>; receipts: UploadResult['receipts'] }> {
    const hospital = caller.token.hospital;
    // The token's SMART scopes first: a client without the right to write learns nothing about the record.
    requireWriteScope(
      caller,
      requested.flatMap((op) => (op.resource === undefined ? [] : [op.resource])),
      this.mapping,
    );
    requireWriteScope(
      caller,
      requested.filter((op) => op.method === 'DELETE').map((op) => ({ resourceType: op.resourceType, id: op.id })),
      this.mapping,
      'd',
    );
    for (const op of requested) {
      if (op.resource === undefined) continue;
      try {
        validateFhirResource(op.resource);
      } catch (error) {
        if (error instanceof FhirValidationError) throw new FhirValidationError(error.issues.map((i) => ({ ...i, diagnostics: op.where })));
        throw error;
      }
    }
    // Conditional creates of a Patient are matched among every record the hospital wrote (she owns her own record);
    // the others, under the patient's lock, in her record only (the readers of her record must find what they reference).
    const patientMatches = await this.conditionalMatches(
      hospital,
      requested.filter((op) => op.resourceType === 'Patient'),
    );
    const first = this.withoutMatched(requested, patientMatches);
    const patient = await this.patientOf(
      hospital,
      first,
      [...patientMatches.values()].map((m) => m.patient),
    );
    const written = await this.withPatientLock(`${hospital}|${patient}`, async () => {
      const matched = new Map([
        ...patientMatches,
        ...(await this.conditionalMatches(
          hospital,
          first.filter((op) => op.resourceType !== 'Patient'),
          patient,
        )),
      ]);
      const operations = this.withoutMatched(first, matched);
      // Read under the lock: a concurrent write of the same patient may have added versions.
      const latest = await this.versions.latest(hospital, patient, [
        ...operations,
        ...[...matched.values()].map((m) => ({ resourceType: m.resourceType, id: m.id })),
      ]);
      const answer = await this.cloud.patientKeys(caller.bearer, patient);
      if (answer.keys.patientId !== patient) throw new MalformedInputError("the cloud answered with another patient's keys");
      const keys = this.checkEpochs(answer.keys);
      const now = new Date().toISOString();
      const outcomes: WriteOutcome[] = [];
      for (const [index, match] of matched) {
        const current = latest.get(`${match.resourceType}/${match.id}`)!;
        outcomes.push({
          index,
          status: 200,
          resourceType: match.resourceType,
          id: match.id,
          versionId: String(current.version),
          lastUpdated: current.lastUpdated,
          recordId: current.recordId,
          stored: false,
        });
      }
      const fresh: FreshVersion[] = [];
      for (const op of operations) {
        const key = `${op.resourceType}/${op.id}`;
        const before = latest.get(key);
        if (op.method === 'DELETE') {
          if (before === undefined || before.deleted) {
            outcomes.push({
              index: op.index,
              status: 204,
              resourceType: op.resourceType,
              id: op.id,
              stored: false,
              ...(before && { versionId: String(before.version), lastUpdated: before.lastUpdated, recordId: before.recordId }),
            });
            continue;
          }
          const version = before.version + 1;
          const row: VersionRow = {
            ...before,
            version,
            recordId: taggedRecordId(hospital, [patient, key, String(version), 'deleted']),
            contentHash: 'deleted',
            deleted: true,
            lastUpdated: now,
          };
          fresh.push({
            row,
            plaintext: signRecord(this.recordSigner, tombstone(op.resourceType, op.id, hospital, version, now), { patient, category: row.category }),
            before,
          });
          outcomes.push({
            index: op.index,
            status: 204,
            resourceType: op.resourceType,
            id: op.id,
            versionId: String(version),
            lastUpdated: now,
            recordId: row.recordId,
            stored: true,
          });
          continue;
        }
        if (op.ifMatch !== undefined && op.ifMatch !== before?.version) {
          throw new FhirHttpError(
            412,
            `${key}: If-Match names version ${op.ifMatch} but the current version is ${before === undefined ? 'none (no such resource)' : before.version}`,
          );
        }
        const resource = op.resource!;
        const hash = contentHash(resource);
        if (before !== undefined && !before.deleted && before.contentHash === hash) {
          outcomes.push({
            index: op.index,
            status: 200,
            resourceType: op.resourceType,
            id: op.id,
            versionId: String(before.version),
            lastUpdated: before.lastUpdated,
            resource: versioned(resource, hospital, before.version, before.lastUpdated),
            recordId: before.recordId,
            stored: false,
          });
          continue;
        }
        const version = (before?.version ?? 0) + 1;
        const category = categoryOf(this.mapping, resource);
        const row: VersionRow = {
          hospital,
          resourceType: op.resourceType,
          fhirId: op.id,
          version,
          patient,
          recordId: taggedRecordId(hospital, [patient, key, String(version), hash]),
          category,
          contentHash: hash,
          deleted: false,
          lastUpdated: now,
          identifiers: identifierTokens(resource),
        };
        const plaintext = versioned(resource, hospital, version, now);
        fresh.push({ row, plaintext: signRecord(this.recordSigner, plaintext, { patient, category }), ...(before && { before }) });
        outcomes.push({
          index: op.index,
          status: before === undefined || before.deleted ? 201 : 200,
          resourceType: op.resourceType,
          id: op.id,
          versionId: String(version),
          lastUpdated: now,
          resource: plaintext,
          recordId: row.recordId,
          stored: true,
        });
      }
      const indexed = await this.indexedRecords(hospital, fresh, answer.indexRules);
      const { byCategory, ledgerEntries, records } = await this.store(caller, patient, keys, answer.bundle, answer.emergencyPolicy, fresh, indexed);
      await this.versions.add(fresh.map((f) => f.row));
      const digests = this.identifierKey === undefined ? [] : fresh.flatMap((f) => (f.row.deleted ? [] : this.identifierKey!.digestsOf(f.plaintext)));
      if (digests.length > 0) await this.cloud.indexIdentifiers(caller.bearer, patient, [...new Set(digests)]);
      return { outcomes, byCategory, ledgerEntries, records };
    });
    // Receipts wait for the witnesses' next cosigned checkpoint: outside the lock, so concurrent writes share it.
    const receipts = await this.keepReceipts(caller, patient, written.ledgerEntries, written.records);
    return { patient, outcomes: written.outcomes, byCategory: written.byCategory, receipts };
  }

  /** Runs each operation as its own transaction (a FHIR batch): one failing entry does not stop the others. */
  async batch(caller: Caller, operations: readonly FhirOperation[]): Promise<Array<WriteOutcome | { index: number; error: Error }>> {
    const out: Array<WriteOutcome | { index: number; error: Error }> = [];
    for (const op of operations) {
      try {
        out.push(...(await this.transaction(caller, [op])).outcomes);
      } catch (error) {
        if (!(error instanceof MedShareError)) throw error;
        out.push({ index: op.index, error });
      }
    }
    return out;
  }

  private async withPatientLock<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.patientLocks.get(key) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(work);
    this.patientLocks.set(key, run);
    try {
      return await run;
    } finally {
      if (this.patientLocks.get(key) === run) this.patientLocks.delete(key);
    }
  }

  /**
   * The conditional creates among `operations` that match an existing resource (by entry index), in the patient's
   * record or, without `patient`, in any of the hospital's. @throws FhirHttpError 412 when criteria match several.
   */
  private async conditionalMatches(
    hospital: string,
    operations: readonly FhirOperation[],
    patient?: string,
  ): Promise<Map<number, { resourceType: string; id: string; minted: string; patient: string }>> {
    const matched = new Map<number, { resourceType: string; id: string; minted: string; patient: string }>();
    for (const op of operations) {
      if (op.ifNoneExist === undefined) continue;
      const found = await this.versions.matching(hospital, op.resourceType, op.ifNoneExist, patient);
      if (found.length > 1)
        throw new FhirHttpError(
          412,
          `${op.where}: If-None-Exist '${op.ifNoneExist.query}' matches ${found.length} ${op.resourceType} resources (a conditional create needs at most one)`,
        );
      if (found.length === 1) matched.set(op.index, { resourceType: op.resourceType, id: found[0]!.id, minted: op.id, patient: found[0]!.patient });
    }
    return matched;
  }

  /** The operations but the matched conditional creates, with references to those pointing at what they matched. */
  private withoutMatched(
    operations: readonly FhirOperation[],
    matched: ReadonlyMap<number, { resourceType: string; id: string; minted: string }>,
  ): FhirOperation[] {
    const targets = new Map([...matched.values()].map((m) => [`${m.resourceType}/${m.minted}`, `${m.resourceType}/${m.id}`]));
    return retarget(
      operations.filter((op) => !matched.has(op.index)),
      targets,
    );
  }

  /**
   * The pseudonym of the one patient the operations are about (a Patient written, else references, else a deleted
   * version's), with `known` pseudonyms (of the Patients that conditional creates matched).
   */
  private async patientOf(hospital: string, operations: readonly FhirOperation[], known: readonly string[] = []): Promise<string> {
    const fhirPatients = new Set<string>();
    const pseudonyms = new Set<string>(known);
    for (const op of operations) {
      if (op.resource === undefined) {
        for (const known of await this.versions.patientsOf(hospital, op.resourceType, op.id)) pseudonyms.add(known);
        continue;
      }
      const about = op.resourceType === 'Patient' ? op.id : referencedPatient(op.resource);
      if (about !== undefined) fhirPatients.add(about);
    }
    if (fhirPatients.size > 1) throw new MalformedInputError(`an upload must concern exactly one patient (found ${fhirPatients.size})`);
    for (const fhirId of fhirPatients) pseudonyms.add(await this.pseudonymOf(hospital, fhirId));
    if (pseudonyms.size !== 1) {
      const deletesOnly = operations.every((o) => o.method === 'DELETE');
      if (deletesOnly && pseudonyms.size === 0)
        throw new NotFoundError(`${operations.map((o) => `${o.resourceType}/${o.id}`).join(', ')}: not written by this hospital`);
      throw new MalformedInputError(`an upload must concern exactly one patient (found ${Math.max(fhirPatients.size, pseudonyms.size)})`);
    }
    return [...pseudonyms][0]!;
  }

  /** Encrypts the new versions under the patient's category keys and uploads them in one cloud transaction. */
  private async store(
    caller: Caller,
    patient: string,
    keys: pre.PatientPublicKeys,
    bundle: Uint8Array,
    policy: string | undefined,
    fresh: readonly FreshVersion[],
    indexed: IndexedRecord[],
  ): Promise<{ byCategory: Record<string, number>; ledgerEntries: number[]; records: NewRecord[] }> {
    const available = new Set(keys.categories.map((k) => k.category));
    const byCategory: Record<string, number> = {};
    const capsules = new Map<string, pre.EmergencyCapsule>();
    const abePublicKey = policy === undefined || this.abePublicKey === undefined || fresh.length === 0 ? undefined : await this.abePublicKey();
    const inputs = fresh.map(({ row, plaintext: resource }) => {
      const { category, recordId } = row;
      if (!available.has(category)) {
        throw new MalformedInputError(
          `the patient has no key for category '${category}' (${resource.resourceType}); she adds it with \`medshare keys add-category --key patient.key --category ${category} --out DIR\` and publishes the new patient.pub`,
        );
      }
      byCategory[category] = (byCategory[category] ?? 0) + 1;
      if (policy !== undefined && abePublicKey !== undefined && !capsules.has(category)) capsules.set(category, pre.emergencyCapsule(abePublicKey, policy));
      return { recordId, category, plaintext: utf8.encode(JSON.stringify(resource)) };
    });
    if (inputs.length === 0) return { byCategory, ledgerEntries: [], records: [] };
    const tagging = this.tagger === undefined ? undefined : { chunkSectors: this.tagger.chunkSectors };
    // Encrypted and tagged in this thread or across the encryptor's workers (both cores of a hospital's server for
    // an upload), each ciphertext tagged where it was encrypted.
    const sealed = await this.encryptor.encrypt({
      bundle,
      capsules: [...capsules].map(([category, capsule]) => ({
        category,
        capsule: pre.encodeEmergencyCapsule(capsule),
        hashOfX: curve.g2ToBytes(capsule.hashOfX),
      })),
      records: inputs,
      ...(tagging && { tagging }),
    });
    const records = inputs.map(({ recordId, category }, i): NewRecord => {
      const { ciphertext, grant, tags } = sealed[i]!;
      if (tagging !== undefined && tags === undefined) throw new Error(`the encryptor returned record ${recordId} without its storage tags`);
      const capsule = capsules.get(category);
      return {
        recordId,
        category,
        ciphertext,
        ...(capsule !== undefined && grant !== undefined && { emergency: { capsuleId: hex(capsule.delegationId), grant } }),
        ...(tagging !== undefined && tags !== undefined && { storage: { tags } }),
      };
    });
    const uploaded = [...capsules].map(([category, capsule]): NewCapsule => ({
      capsuleId: hex(capsule.delegationId),
      category,
      policy: capsule.policy,
      capsule: pre.encodeEmergencyCapsule(capsule),
    }));
    const { ledgerEntries } = await this.uploadWithIndex(caller, keys, records, uploaded, indexed, capsules);
    return { byCategory, ledgerEntries, records };
  }

  /**
   * What the searchable index gains with the new versions: each version's keywords (after the patient's rules),
   * stored KEK-wrapped with the version, and the deletion of the keywords of the version it supersedes, so that
   * a search finds current versions only (a tombstone deletes and adds nothing).
   */
  private async indexedRecords(hospital: string, fresh: readonly FreshVersion[], rules: IndexRules | undefined): Promise<IndexedRecord[]> {
    if (this.index === undefined) return [];
    const indexed: IndexedRecord[] = [];
    for (const f of fresh) {
      const keywords = f.row.deleted ? [] : keywordsOf(f.plaintext, rules);
      if (keywords.length > 0) f.row.indexKeywords = await this.index.sealKeywords(hospital, f.row.recordId, keywords);
      else delete f.row.indexKeywords; // a tombstone's row is copied from its predecessor's: it indexes nothing itself
      const old = f.before;
      const supersedes =
        old === undefined || old.deleted || old.indexKeywords === undefined || old.category !== f.row.category
          ? undefined
          : { recordId: old.recordId, keywords: await this.index.openKeywords(hospital, old.recordId, old.indexKeywords) };
      if (keywords.length > 0 || supersedes !== undefined)
        indexed.push({ recordId: f.row.recordId, category: f.row.category, keywords, ...(supersedes && { supersedes }) });
    }
    return indexed;
  }

  /** Uploads with the hospital's searchable-index writes, retried when another writer's index write committed first. */
  private async uploadWithIndex(
    caller: Caller,
    keys: pre.PatientPublicKeys,
    records: NewRecord[],
    capsules: NewCapsule[],
    indexed: IndexedRecord[],
    emergency: ReadonlyMap<string, pre.EmergencyCapsule>,
  ) {
    if (this.index === undefined || indexed.length === 0) return this.cloud.upload(caller.bearer, keys.patientId, records, capsules);
    for (let attempt = 1; ; attempt++) {
      const states = await this.cloud.indexStates(caller.bearer, keys.patientId, [...new Set(indexed.map((r) => r.category))]);
      for (const s of states) {
        if (keys.categories.find((k) => k.category === s.category)?.epoch !== s.keyEpoch)
          throw new ConflictError(`the patient's '${s.category}' key epoch moved during the upload; upload again`);
      }
      const writes = await this.index.writes(caller.token.hospital, keys, states, indexed, emergency);
      try {
        return await this.cloud.upload(caller.bearer, keys.patientId, records, capsules, writes);
      } catch (error) {
        // Over HTTP a 409 comes back as an error of code CONFLICT (http-client.ts's mapping), not a ConflictError.
        if (!(error instanceof MedShareError && error.code === 'CONFLICT') || attempt >= MAX_INDEX_ATTEMPTS) throw error;
      }
    }
  }

  /**
   * Obtains, checks (against the pinned ledger keys) and keeps the receipts of ledger entries: complete, or pending
   * when no witnessed checkpoint covers them in time. @throws IntegrityError
   */
  private async keepReceipts(
    caller: Caller,
    patient: string,
    ledgerEntries: readonly number[],
    records: readonly NewRecord[],
  ): Promise<UploadResult['receipts']> {
    if (ledgerEntries.length === 0 || this.receipts === undefined) return [];
    const bundles = await this.cloud.receipts(caller.bearer, ledgerEntries, this.receipts.waitMs);
    const kept = await this.receipts.keep(caller.token.hospital, patient, ledgerEntries, bundles, records);
    return kept.map(({ index, treeSize, status }) => ({ index, treeSize, status }));
  }
}
