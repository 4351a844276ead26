/**
 * What a hospital gateway needs from the cloud, as an interface: in production an HTTP client of the cloud's
 * gateway routes (`HttpCloudApi`), authenticated with its caller's token (a `role:gateway` token of the hospital's
 * own system, or a user's reading through it) and a DPoP proof signed by the hospital's token-signing key (the
 * cloud accepts that key's proofs for that hospital's tokens: identity's dpop/verify.ts `issuerProofs`), so the gateway
 * can run in the hospital's domain and the cloud in another. What crosses is what the cloud may hold anyway:
 * pseudonyms, record ids (hashes), categories, ciphertexts, emergency capsules and grants, searchable-index rows and
 * sealed states — never FHIR, FHIR ids or index keywords.
 */
import { pre } from '@medshare/crypto';
import type { InclusionBundle } from '@medshare/ledger';
import { decodeWriterStates, encodeIndexWrites } from '../cloud/index-wire.ts';
import type { IndexWrite } from '../cloud/search-store.ts';
import { ConvertedRecord, type UploadOutcome } from '../cloud/service.ts';
import type { WriterIndexState } from '../cloud/search-store.ts';
import type { NewCapsule, NewRecord } from '../cloud/store.ts';
import { parseIndexRules, type IndexRules } from '../search/keywords.ts';
import type { DpopKey } from '@medshare/identity';
import { callJson, callRecordStream, type CallOptions } from '../http-client.ts';

/** A patient's verified category keys and the platform emergency policy (what an upload encrypts and grants under). */
export interface PatientKeys {
  readonly keys: pre.PatientPublicKeys;
  /** The signed bundle `keys` was decoded from (what the gateway's encryption workers decode and verify themselves). */
  readonly bundle: Uint8Array;
  /** The cloud's platform emergency policy; undefined when there is none. */
  readonly emergencyPolicy: string | undefined;
  /** The patient's desensitisation rules for the words of her notes; undefined when she has set none. */
  readonly indexRules?: IndexRules;
}

/** The cloud as a gateway sees it. Every call carries the bearer token of the gateway's caller. */
export interface CloudApi {
  /** The patient's signed public keys (NotFoundError when she is not registered). */
  patientKeys(token: string, patient: string): Promise<PatientKeys>;
  /**
   * Stores one upload atomically and idempotently, with its searchable-index writes; returns how many records were new
   * and the ledger entries recording them. ConflictError when an index write lost a race (fetch the states again).
   */
  upload(token: string, patient: string, records: readonly NewRecord[], capsules: readonly NewCapsule[], index?: readonly IndexWrite[]): Promise<UploadOutcome>;
  /** The gateway's own sub-indexes of `categories` for the patient, at the current epochs. */
  indexStates(token: string, patient: string, categories: readonly string[]): Promise<WriterIndexState[]>;
  /**
   * Inclusion bundles of ledger entries against a checkpoint the witness quorum cosigned, waiting up to `waitMs`
   * (default 10 s) for one; after that, against the latest checkpoint the log signed (the gateway keeps those pending).
   */
  receipts(token: string, entries: readonly number[], waitMs?: number): Promise<InclusionBundle[]>;
  /** Converted records of one category for the token's holder. */
  read(token: string, patient: string, category: string): Promise<ConvertedRecord[]>;
  /** Records a research release on the ledger (AccessDeniedError when the patient has not consented); the entry's index. */
  recordResearchExport(token: string, patient: string, release: { profile: string; digest: string; resources: number }): Promise<number>;
  /** Resolves if the token's hospital may write into the patient's record (AccessDeniedError otherwise). */
  requireWriter(token: string, patient: string): Promise<void>;
  /** Stores keyed hashes of the patient's business identifiers (identifier-index.ts). */
  indexIdentifiers(token: string, patient: string, digests: readonly string[]): Promise<void>;
  /** The pseudonyms of consenting patients with an identifier of this keyed hash (the token's holder looks up). */
  lookupIdentifier(token: string, digest: string): Promise<string[]>;
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const unb64 = (text: string) => new Uint8Array(Buffer.from(text, 'base64'));
/** An upload of thousands of records converts nothing but writes them all in one transaction. */
const UPLOAD_TIMEOUT_MS = 300_000;

/** The cloud's gateway routes over HTTP(S). */
export class HttpCloudApi implements CloudApi {
  /**
   * `base` is the cloud's URL, or a function giving it (known once the cloud listens); `proofKey` signs each call's
   * DPoP proof (the hospital's signing key), without which the cloud refuses the token.
   */
  constructor(
    base: URL | (() => URL),
    private readonly options: { proofKey?: () => Promise<DpopKey>; timeoutMs?: number } = {},
  ) {
    this.baseOf = base instanceof URL ? () => base : base;
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  private readonly timeoutMs: number;

  /** `token` with a fresh proof for each attempt of a `method` call. */
  private auth(method: string, token: string): Pick<CallOptions, 'token' | 'dpop'> {
    const proofKey = this.options.proofKey;
    if (proofKey === undefined) return { token };
    return { token, dpop: async (url) => (await proofKey()).proof(method, url, { accessToken: token }) };
  }

  private readonly baseOf: () => URL;

  private get base(): URL {
    return this.baseOf();
  }

  private path(patient: string, suffix: string): string {
    return `/cloud/patients/${encodeURIComponent(patient)}${suffix}`;
  }

  async patientKeys(token: string, patient: string): Promise<PatientKeys> {
    const answer = await callJson<{ publicKeys: string; emergencyPolicy: string | null; indexRules?: unknown }>(
      this.base,
      'GET',
      this.path(patient, '/public-keys'),
      { ...this.auth('GET', token), timeoutMs: this.timeoutMs },
    );
    // The bundle is signed by the patient's own key: the cloud can withhold it but not alter it unnoticed.
    const bundle = unb64(answer.publicKeys);
    const indexRules = answer.indexRules == null ? undefined : parseIndexRules(answer.indexRules);
    return { keys: pre.decodePublicKeys(bundle), bundle, emergencyPolicy: answer.emergencyPolicy ?? undefined, ...(indexRules && { indexRules }) };
  }

  async upload(
    token: string,
    patient: string,
    records: readonly NewRecord[],
    capsules: readonly NewCapsule[],
    index: readonly IndexWrite[] = [],
  ): Promise<UploadOutcome> {
    const body = uploadBody(records, capsules, index);
    // Record ids are deterministic and stored ON CONFLICT DO NOTHING: a repeated upload stores nothing twice.
    return callJson<UploadOutcome>(this.base, 'POST', this.path(patient, '/uploads'), {
      ...this.auth('POST', token),
      body,
      idempotent: true,
      timeoutMs: UPLOAD_TIMEOUT_MS,
    });
  }

  async indexStates(token: string, patient: string, categories: readonly string[]): Promise<WriterIndexState[]> {
    const answer = await callJson<{ states: Parameters<typeof decodeWriterStates>[0] }>(this.base, 'POST', this.path(patient, '/index-states'), {
      ...this.auth('POST', token),
      body: { categories },
      idempotent: true,
      timeoutMs: this.timeoutMs,
    });
    return decodeWriterStates(answer.states);
  }

  async receipts(token: string, entries: readonly number[], waitMs?: number): Promise<InclusionBundle[]> {
    if (entries.length === 0) return [];
    // Reading bundles changes nothing: safe to retry.
    const body = waitMs === undefined ? { entries } : { entries, waitMs };
    const answer = await callJson<{ bundles: InclusionBundle[] }>(this.base, 'POST', '/cloud/receipts', {
      ...this.auth('POST', token),
      body,
      idempotent: true,
      timeoutMs: this.timeoutMs,
    });
    return answer.bundles;
  }

  async requireWriter(token: string, patient: string): Promise<void> {
    await callJson(this.base, 'GET', this.path(patient, '/writable'), { ...this.auth('GET', token), timeoutMs: this.timeoutMs });
  }

  async indexIdentifiers(token: string, patient: string, digests: readonly string[]): Promise<void> {
    // The index keeps each digest once: safe to retry.
    await callJson(this.base, 'POST', this.path(patient, '/identifiers'), {
      ...this.auth('POST', token),
      body: { digests },
      idempotent: true,
      timeoutMs: this.timeoutMs,
    });
  }

  async lookupIdentifier(token: string, digest: string): Promise<string[]> {
    return (
      await callJson<{ patients: string[] }>(this.base, 'POST', '/cloud/identifier-lookup', {
        ...this.auth('POST', token),
        body: { digest },
        timeoutMs: this.timeoutMs,
      })
    ).patients;
  }

  async read(token: string, patient: string, category: string): Promise<ConvertedRecord[]> {
    // The binary record stream: large records cross without base64 or JSON.
    const records = await callRecordStream(this.base, this.path(patient, '/read'), {
      ...this.auth('POST', token),
      body: { category },
      timeoutMs: this.timeoutMs,
    });
    return records.map((r) => new ConvertedRecord(r.recordId, r.header, r.payload));
  }

  async recordResearchExport(token: string, patient: string, release: { profile: string; digest: string; resources: number }): Promise<number> {
    // Not retried: a second entry for one release would be a second release on the ledger.
    const answer = await callJson<{ ledgerIndex: number }>(this.base, 'POST', this.path(patient, '/research-exports'), {
      ...this.auth('POST', token),
      body: release,
      timeoutMs: this.timeoutMs,
    });
    return answer.ledgerIndex;
  }
}

/** The JSON body of an upload: each record with its ciphertext and, when tagged, its proof-of-storage tag set. */
export function uploadBody(records: readonly NewRecord[], capsules: readonly NewCapsule[], index: readonly IndexWrite[] = []) {
  return {
    ...(index.length > 0 ? { index: encodeIndexWrites(index) } : {}),
    records: records.map((r) => ({
      recordId: r.recordId,
      category: r.category,
      ciphertext: b64(r.ciphertext),
      ...(r.emergency ? { emergency: { capsuleId: r.emergency.capsuleId, grant: b64(r.emergency.grant) } } : {}),
      ...(r.storage ? { storage: { tags: b64(r.storage.tags) } } : {}),
    })),
    capsules: capsules.map((c) => ({ capsuleId: c.capsuleId, category: c.category, policy: c.policy, capsule: b64(c.capsule) })),
  };
}
