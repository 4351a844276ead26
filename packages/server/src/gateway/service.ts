/**
 * The hospital gateway: maps the hospital's FHIR patients to MedShare pseudonyms (enrolment), encrypts each
 * incoming resource under the patient's category key (pre.encrypt, docs/crypto.md §9) and uploads the whole
 * upload to the cloud in one transaction. The gateway runs at the hospital, in the hospital's process and
 * database, and sees plaintext FHIR; the cloud, reached through `CloudApi` (HTTP in production), receives only
 * ciphertexts. Record ids are deterministic (fhir.ts), so a retry stores nothing twice.
 *
 * Receipts: the cloud records every stored upload in the audit ledger (`record-create` entries naming the
 * ciphertexts by hash); the gateway obtains each entry's inclusion proof against a checkpoint the hospitals'
 * witnesses cosigned, checks it against the ledger keys it pins, and keeps it (gateway_receipts), so the hospital
 * can later show that the cloud accepted exactly these ciphertexts if it drops or swaps one.
 */
import { type abe, ConflictError, curve, MalformedInputError, MedShareError, pre } from '@medshare/crypto';
import type { Database } from '@medshare/db';
import { verifyInclusionBundle, type TrustPolicy } from '@medshare/ledger';
import { InThreadEncryptor, type RecordEncryptor } from '../cloud/conversion-pool.ts';
import type { NewCapsule, NewRecord } from '../cloud/store.ts';
import { NotFoundError, type Caller } from '../http.ts';
import { requireWriteScope } from '../scopes.ts';
import type { CloudApi } from './cloud-api.ts';
import type { IndexedRecord, SearchIndexWriter } from './search-index.ts';
import { categoryOf, patientOf, recordIdOf, resourcesOf, type CategoryMapping } from './fhir.ts';
import { checkReceiptCommitments, type StorageTagger } from '../storage-audit/tagger.ts';

/** What an upload did. */
export interface UploadResult {
  patient: string;
  received: number;
  stored: number;
  byCategory: Record<string, number>;
  /** The ledger entries recording the stored records, each proven in the tree of `treeSize` (witnessed). */
  receipts: { index: number; treeSize: number }[];
}

const utf8 = new TextEncoder();
/** Patients whose epochs a gateway remembers (a few hundred bytes each). */
const MAX_TRACKED_PATIENTS = 100_000;
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
/** Attempts of an upload whose index write keeps losing races with the hospital's other gateway instances. */
const MAX_INDEX_ATTEMPTS = 8;

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

  /**
   * `abePublicKey` gives the TA's public key (fetched from the authority once, at first need), or undefined for no
   * platform emergency grants.
   */
  constructor(
    private readonly db: Database,
    private readonly cloud: CloudApi,
    private readonly mapping: CategoryMapping,
    private readonly abePublicKey?: () => Promise<abe.PublicKey>,
    /** The ledger keys receipts must verify against (the log's and the witnesses', with their quorum), when known. */
    private readonly receiptTrust?: () => Promise<TrustPolicy>,
    /** Writes every uploaded record into the hospital's searchable sub-index (none: records are not searchable). */
    private readonly index?: SearchIndexWriter,
    /** Tags every ciphertext for storage audits under the hospital's key (none: records go untagged). */
    private readonly tagger?: StorageTagger,
    /** Where records are encrypted: this thread by default, or the hospital service's worker pool. */
    private readonly encryptor: RecordEncryptor = new InThreadEncryptor(),
  ) {}

  /** Links the hospital's FHIR patient id to the patient's MedShare pseudonym (which must be registered). */
  async enrol(caller: Caller, fhirId: string, patient: string): Promise<void> {
    const hospital = caller.token.hospital;
    await this.cloud.patientKeys(caller.bearer, patient);
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
    const row = (await this.db.query<{ patient: string }>('SELECT patient FROM gateway_patients WHERE hospital = $1 AND fhir_id = $2', [hospital, fhirId])).rows[0];
    if (row === undefined) throw new NotFoundError(`FHIR patient ${fhirId} is not enrolled at ${hospital}`);
    return row.patient;
  }

  /** `keys` if no epoch is below one this gateway already used for the patient (ConflictError otherwise). */
  private checkEpochs(keys: pre.PatientPublicKeys): pre.PatientPublicKeys {
    const seen = this.seenEpochs.get(keys.patientId) ?? new Map<string, number>();
    for (const { category, epoch } of keys.categories) {
      const before = seen.get(category) ?? 0;
      if (epoch < before) throw new ConflictError(`the cloud served '${category}' keys of epoch ${epoch} after epoch ${before}; refusing to encrypt under an old key`);
    }
    for (const { category, epoch } of keys.categories) seen.set(category, epoch);
    this.seenEpochs.delete(keys.patientId);
    if (this.seenEpochs.size >= MAX_TRACKED_PATIENTS) this.seenEpochs.delete(this.seenEpochs.keys().next().value!);
    this.seenEpochs.set(keys.patientId, seen);
    return keys;
  }

  /**
   * Validates, groups, encrypts and uploads a resource or a Bundle, all or nothing, for the caller's hospital; then
   * obtains, checks and stores the ledger receipts. @throws AccessDeniedError when the token has no SMART scope to
   * write one of the resources; IntegrityError for a receipt that does not verify.
   */
  async upload(caller: Caller, body: unknown): Promise<UploadResult> {
    const hospital = caller.token.hospital;
    const resources = resourcesOf(body);
    requireWriteScope(caller, resources, this.mapping);
    const patient = await this.pseudonymOf(hospital, patientOf(resources));
    const answer = await this.cloud.patientKeys(caller.bearer, patient);
    if (answer.keys.patientId !== patient) throw new MalformedInputError('the cloud answered with another patient\'s keys');
    const keys = this.checkEpochs(answer.keys);
    const policy = answer.emergencyPolicy;
    const abePublicKey = policy === undefined || this.abePublicKey === undefined ? undefined : await this.abePublicKey();
    const available = new Set(keys.categories.map((k) => k.category));
    const byCategory: Record<string, number> = {};
    const capsules = new Map<string, pre.EmergencyCapsule>();
    const indexed: IndexedRecord[] = [];
    const inputs = resources.map((resource) => {
      const category = categoryOf(this.mapping, resource);
      if (!available.has(category)) throw new MalformedInputError(`the patient has no key for category '${category}' (${resource.resourceType})`);
      byCategory[category] = (byCategory[category] ?? 0) + 1;
      if (policy !== undefined && abePublicKey !== undefined && !capsules.has(category)) capsules.set(category, pre.emergencyCapsule(abePublicKey, policy));
      const recordId = recordIdOf(hospital, patient, resource);
      indexed.push({ recordId, category, resource });
      return { recordId, category, plaintext: utf8.encode(JSON.stringify(resource)) };
    });
    // Encrypted in this thread or across the encryptor's workers (both cores of a hospital's server for an upload).
    const sealed = await this.encryptor.encrypt({
      bundle: answer.bundle,
      capsules: [...capsules].map(([category, capsule]) => ({ category, capsule: pre.encodeEmergencyCapsule(capsule), hashOfX: curve.g2ToBytes(capsule.hashOfX) })),
      records: inputs,
    });
    const encrypted = inputs.map(({ recordId, category }, i): NewRecord => {
      const { ciphertext, grant } = sealed[i]!;
      const capsule = capsules.get(category);
      return capsule === undefined || grant === undefined ? { recordId, category, ciphertext } : { recordId, category, ciphertext, emergency: { capsuleId: hex(capsule.delegationId), grant } };
    });
    const records = this.tagger === undefined ? encrypted : await this.tagger.attach(hospital, encrypted);
    const uploaded = [...capsules].map(([category, capsule]): NewCapsule => ({
      capsuleId: hex(capsule.delegationId), category, policy: capsule.policy, capsule: pre.encodeEmergencyCapsule(capsule),
    }));
    const { stored, ledgerEntries } = await this.uploadWithIndex(caller, keys, records, uploaded, indexed, capsules);
    const receipts = [];
    const trust = ledgerEntries.length === 0 || this.receiptTrust === undefined ? undefined : await this.receiptTrust();
    for (const bundle of await this.cloud.receipts(caller.bearer, ledgerEntries)) {
      let treeSize = 0;
      if (trust !== undefined) {
        const verified = verifyInclusionBundle(bundle, trust);
        checkReceiptCommitments(verified.event, records);
        treeSize = verified.treeSize;
      }
      await this.db.query(
        'INSERT INTO gateway_receipts (hospital, patient, ledger_index, bundle) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
        [hospital, patient, bundle.index, JSON.stringify(bundle)],
      );
      receipts.push({ index: bundle.index, treeSize });
    }
    return { patient, received: resources.length, stored, byCategory, receipts };
  }

  /**
   * cloud.upload with the index writes of the records, in the same transaction at the cloud. A write that lost a
   * race with another instance of this hospital's gateway (ConflictError) is rebuilt on the new state and retried.
   */
  private async uploadWithIndex(caller: Caller, keys: pre.PatientPublicKeys, records: NewRecord[], capsules: NewCapsule[], indexed: IndexedRecord[], emergency: ReadonlyMap<string, pre.EmergencyCapsule>) {
    if (this.index === undefined) return this.cloud.upload(caller.bearer, keys.patientId, records, capsules);
    for (let attempt = 1; ; attempt++) {
      const states = await this.cloud.indexStates(caller.bearer, keys.patientId, [...new Set(indexed.map((r) => r.category))]);
      for (const s of states) {
        if (keys.categories.find((k) => k.category === s.category)?.epoch !== s.keyEpoch) throw new ConflictError(`the patient's '${s.category}' key epoch moved during the upload; upload again`);
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
}
