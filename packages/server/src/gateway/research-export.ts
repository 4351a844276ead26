/**
 * Research release on the platform path: a hospital's system hands its gateway a patient's FHIR resources (a
 * resource or a Bundle, as for an upload) and gets them back de-identified under a profile of @medshare/privacy
 * (`safe-harbor`: HIPAA Safe Harbor; `research`: a limited data set with shifted dates), for a patient who consented
 * (her research consent at the cloud, which only she sets). Before anything is released the cloud records the
 * release on the ledger — the released bundle by SHA-256, the profile, the hospital's agent — and in her access log;
 * without consent the attempt is recorded as refused and nothing is released.
 *
 * The de-identification keys are the hospital's own: one random 256-bit key per hospital, kept in the gateway's
 * database wrapped by the platform's key-encryption key (never in clear in the database), from which HKDF-SHA256
 * derives the cryptoHash key and the date-shift key. So one hospital's releases are consistent (a patient's hashed
 * ids and date shift are the same in every release) and no other party, the cloud included, can recompute them.
 */
import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import { MalformedInputError } from '@medshare/crypto';
import type { Database, KeyEncryptionKey } from '@medshare/db';
import type { Deidentifier, ProfileName } from '@medshare/privacy';
import type { Caller } from '../http.ts';
import { patientOf, type FhirResource } from './fhir.ts';
import { parseWrite } from './fhir-bundle.ts';

/** The profiles a research release may use. */
export const RELEASE_PROFILES: readonly ProfileName[] = ['safe-harbor', 'research'];

/** What the gateway needs of the cloud for a release (in-process CloudService, or the cloud's HTTP API). */
export interface ReleaseRecorder {
  /** Records the release on the ledger, or refuses it (AccessDeniedError) when the patient has not consented. */
  recordResearchExport(caller: Caller, patient: string, release: { profile: string; digest: string; resources: number }): Promise<number>;
}

/** A release: the de-identified resources and where the ledger recorded it. */
export interface ResearchRelease {
  readonly profile: ProfileName;
  /** The de-identified resource or Bundle (the input's shape). */
  readonly released: FhirResource;
  /** `sha256:<hex>` of the released JSON, as the ledger names it. */
  readonly digest: string;
  readonly ledgerIndex: number;
}

const KEY_BYTES = 32;
const keyContext = (hospital: string) => `gateway_deid_keys.key_wrapped|${hospital}`;

/** Releases de-identified FHIR for consenting patients, with each hospital's own de-identification keys. */
export class ResearchExporter {
  private readonly engines = new Map<string, Deidentifier>();

  constructor(
    private readonly db: Database,
    private readonly kek: KeyEncryptionKey,
    private readonly recorder: ReleaseRecorder,
    /** The hospital's enrolment: FHIR patient id → pseudonym (NotFoundError when not enrolled). */
    private readonly pseudonymOf: (hospital: string, fhirId: string) => Promise<string>,
  ) {}

  /**
   * De-identifies `body` (a resource or a Bundle of one patient of the caller's hospital) under `profile`, has the
   * release recorded, and returns it. @throws MalformedInputError for an unknown profile or bad FHIR; NotFoundError
   * for a patient not enrolled; AccessDeniedError when she has not consented (nothing is released).
   */
  async release(caller: Caller, body: unknown, profile: string): Promise<ResearchRelease> {
    if (!RELEASE_PROFILES.includes(profile as ProfileName)) throw new MalformedInputError(`profile must be one of ${RELEASE_PROFILES.join(', ')}`);
    const hospital = caller.token.hospital;
    const resources = parseWrite(body).operations.flatMap((op) => (op.resource === undefined ? [] : [op.resource]));
    const patient = await this.pseudonymOf(hospital, patientOf(resources));
    const engine = await this.engine(hospital, profile as ProfileName);
    const copy = structuredClone(body) as FhirResource & Record<string, unknown>;
    engine.processResource(copy, { names: engine.namesFor(resources as unknown as Array<Record<string, unknown>>) });
    const digest = `sha256:${createHash('sha256').update(JSON.stringify(copy)).digest('hex')}`;
    const ledgerIndex = await this.recorder.recordResearchExport(caller, patient, { profile, digest, resources: resources.length });
    return { profile: profile as ProfileName, released: copy, digest, ledgerIndex };
  }

  private async engine(hospital: string, profile: ProfileName): Promise<Deidentifier> {
    const name = `${hospital}\u0000${profile}`;
    let engine = this.engines.get(name);
    if (engine === undefined) {
      const key = await this.hospitalKey(hospital);
      const derive = (purpose: string) =>
        Buffer.from(hkdfSync('sha256', key, Buffer.from(hospital, 'utf8'), `medshare/research-release/${purpose}/v1`, 32)).toString('hex');
      // Loaded on the first release: @medshare/privacy (its word lists, FHIRPath, the anonymizer's report plots) is
      // ~1 s of loading that every service process, CLI command and test importing @medshare/server paid before.
      const { Deidentifier, profileConfig } = await import('@medshare/privacy');
      engine = new Deidentifier(profileConfig(profile, { cryptoHashKey: derive('crypto-hash'), dateShiftKey: derive('date-shift') }));
      this.engines.set(name, engine);
    }
    return engine;
  }

  /** The hospital's de-identification key: made on first use (one writer wins), unwrapped by the KEK. */
  private async hospitalKey(hospital: string): Promise<Uint8Array> {
    const wrapped = await this.kek.wrap(randomBytes(KEY_BYTES), keyContext(hospital));
    await this.db.query('INSERT INTO gateway_deid_keys (hospital, key_wrapped) VALUES ($1, $2) ON CONFLICT (hospital) DO NOTHING', [hospital, wrapped]);
    const row = (await this.db.query<{ key_wrapped: Uint8Array }>('SELECT key_wrapped FROM gateway_deid_keys WHERE hospital = $1', [hospital])).rows[0]!;
    return this.kek.unwrap(row.key_wrapped, keyContext(hospital));
  }
}
