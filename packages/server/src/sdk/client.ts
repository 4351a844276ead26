/**
 * The typed client SDK of the platform, used by the CLI (and later the web portal). It speaks HTTP to the
 * services — one URL per service: the authority, the cloud, each hospital — and does on the client what must
 * never happen on a server: the patient's key stays with the patient (delegations are computed here,
 * pre.delegate), and the doctor's CP-ABE key is opened and used only here (pre.createReader). Problems (RFC 9457)
 * come back as typed errors (http-client.ts); every call has a timeout and idempotent ones are retried. Methods
 * that use the pairing library initialise it first (abe.init is idempotent).
 */
import { randomBytes } from 'node:crypto';
import { abe, IntegrityError, MalformedInputError, NotFoundError, pre, UnavailableError, type PayloadOpener } from '@medshare/crypto';
import { LedgerClient, verifyInclusionBundle, type AuditEvent, type CheckpointVerifier, type InclusionBundle, type TrustPolicy } from '@medshare/ledger';
import { base32Decode, DeviceKeys, openIssuedKey, totp, type IssuedKey, type TracedPseudonym } from '@medshare/identity';
import type { AccessEntry, RecordMeta } from '../cloud/store.ts';
import type { PlatformEmergencyStatus } from '../cloud/service.ts';
import { categoryOf, DEFAULT_CATEGORY_MAPPING, type CategoryMapping, type FhirResource } from '../gateway/fhir.ts';
import { indexRuleDigest, parseQuery, wordsOf, type IndexRules } from '../search/keywords.ts';
import { cloudSearchTransport, searchRecords, searchset, SubIndexCache, type FoundRecord, type SearchStats, type SearchTransport } from '../search/reader.ts';
import type { UploadResult } from '../gateway/service.ts';
import type { Receipt } from '../gateway/receipts.ts';
import type { RecordStreamEvent } from '../cloud/record-stream.ts';
import { callJson, callRecordStreamEvents, type CallOptions, type ServiceUrls } from '../http-client.ts';
import { PLATFORM_AUDIENCE } from '../http.ts';
import { writerKeys } from '../record-signature.ts';

/** What registration returns (shown once). */
export interface UserEnrolment {
  userId: string;
  totpSecret: string;
  recoveryCodes: string[];
}

/** A logged-in user; `device` holds the keys the login proved (the token is bound to them). */
export interface Session {
  /** The services' URLs. */
  readonly urls: ServiceUrls;
  readonly hospital: string;
  readonly token: string;
  readonly refreshToken: string;
  readonly device: DeviceKeys;
}

const TA_AUDIENCE = 'medshare-ta';
/** A whole patient bundle is encrypted by the gateway and stored by the cloud in one call. */
const UPLOAD_TIMEOUT_MS = 300_000;
const utf8 = new TextDecoder();

/** One JSON request to a service (callJson: timeouts, retries of idempotent calls, problems as typed errors). */
export const call = <T>(base: URL, method: string, path: string, options: CallOptions = {}): Promise<T> => callJson<T>(base, method, path, options);

/** The URL of a hospital's service. */
function hospitalUrl(urls: ServiceUrls, hospital: string): URL {
  const url = urls.hospitals[hospital];
  if (url === undefined) throw new MalformedInputError(`no URL is configured for hospital '${hospital}'`);
  return url;
}

/**
 * One request as `session` to the service at `base`: its token as `Authorization: DPoP`, with a fresh proof of the
 * session's device key for this method, URL and token for every attempt (the platform refuses the token without one).
 */
export function sessionCall<T>(session: Session, base: URL, method: string, path: string, options: Omit<CallOptions, 'token' | 'dpop'> = {}): Promise<T> {
  return call<T>(base, method, path, { ...options, ...sessionAuth(session, method) });
}

/** The session's token with a fresh DPoP proof of its device key for each URL called. */
function sessionAuth(session: Session, method: string): Pick<CallOptions, 'token' | 'dpop'> {
  return { token: session.token, dpop: (url) => session.device.dpop.proof(method, url, { accessToken: session.token }) };
}

/** Entry point: registration and login, given the URL of each service. */
export class PlatformClient {
  constructor(readonly urls: ServiceUrls) {}

  /** Registers a user at a hospital (administrator credential). */
  registerUser(
    hospital: string,
    adminToken: string,
    user: { username: string; password: string; attributes: string[]; scopes: string[] },
  ): Promise<UserEnrolment> {
    return call(hospitalUrl(this.urls, hospital), 'POST', `/identity/${hospital}/users`, { body: user, token: adminToken });
  }

  /**
   * Password + TOTP login on fresh device keys, which sign the login challenge: the token (for the platform and the
   * trusted authority) is bound to them, and only they can refresh it or have a CP-ABE key sealed to them.
   */
  async login(hospital: string, username: string, password: string, totpSecret: string): Promise<Session> {
    return this.loginWithCode(hospital, username, password, () => totp(base32Decode(totpSecret), Date.now() / 1000));
  }

  /** Whom a session pseudonym of `hospital` names (its administrator's credential; an IntegrityError 400 for another's pseudonym). */
  async traceAgent(hospital: string, adminToken: string, pseudonym: string): Promise<TracedPseudonym> {
    return call(hospitalUrl(this.urls, hospital), 'POST', `/identity/${hospital}/admin/trace`, { body: { pseudonym }, token: adminToken });
  }

  /** The same login with a one-time code the user typed (`code` is asked for after the password step). */
  async loginWithCode(hospital: string, username: string, password: string, code: string | (() => string)): Promise<Session> {
    const base = hospitalUrl(this.urls, hospital);
    const device = await DeviceKeys.generate();
    const { ticket, challenge } = await call<{ ticket: string; challenge: string }>(base, 'POST', `/identity/${hospital}/login/password`, {
      body: { username, password },
    });
    const path = `/identity/${hospital}/login/totp`;
    const body = { ticket, code: typeof code === 'string' ? code : code(), audience: [PLATFORM_AUDIENCE, TA_AUDIENCE], deviceKey: device.sealingPublicJwk };
    const { token, refreshToken } = await call<{ token: string; refreshToken: string }>(base, 'POST', path, {
      body,
      dpop: await device.loginProof(new URL(path, base), challenge),
    });
    return { urls: this.urls, hospital, token, refreshToken, device };
  }

  /**
   * A fresh token for the same session (tokens live minutes): the refresh credential, with a DPoP proof by the
   * session's device keys (nobody else can use it). The session itself is unchanged.
   */
  async refresh(session: Session): Promise<Session> {
    const base = hospitalUrl(this.urls, session.hospital);
    const path = `/identity/${session.hospital}/token`;
    const { token, refreshToken } = await call<{ token: string; refreshToken?: string }>(base, 'POST', path, {
      body: { refreshToken: session.refreshToken, audience: [PLATFORM_AUDIENCE, TA_AUDIENCE] },
      dpop: await session.device.dpop.proof('POST', new URL(path, base)),
    });
    return { ...session, token, refreshToken: refreshToken ?? session.refreshToken };
  }

  /** The trusted authority's CP-ABE public parameters. */
  async abePublicKey(): Promise<abe.PublicKey> {
    await abe.init();
    const { publicKey } = await call<{ publicKey: string }>(this.urls.authority, 'GET', '/ta/public-key');
    return abe.decodePublicKey(Buffer.from(publicKey, 'base64'));
  }

  /** Logs a reader in on fresh device keys, obtains her CP-ABE key sealed to them, and returns a doctor client. */
  async loginReader(hospital: string, username: string, password: string, totpSecret: string, attributes: string[]): Promise<DoctorClient> {
    return this.loginReaderWithCode(hospital, username, password, () => totp(base32Decode(totpSecret), Date.now() / 1000), attributes);
  }

  /** The same reader login with a one-time code the user typed. */
  async loginReaderWithCode(hospital: string, username: string, password: string, code: string | (() => string), attributes: string[]): Promise<DoctorClient> {
    await abe.init();
    const session = await this.loginWithCode(hospital, username, password, code);
    const { device, token } = session;
    const dpop = await device.dpop.proof('POST', new URL('/ta/keys', this.urls.authority), { accessToken: token });
    const issued = await call<IssuedKey>(this.urls.authority, 'POST', '/ta/keys', { body: { attributes, deviceKey: device.sealingPublicJwk }, token, dpop });
    return new DoctorClient(session, openIssuedKey(device.sealingPrivateKey, issued));
  }
}

/** A patient: her own key stays here; the cloud gets public keys and re-encryption keys only. */
export class PatientClient {
  constructor(
    readonly session: Session,
    readonly key: pre.PatientSecretKey,
  ) {}

  private path(suffix = ''): string {
    return `/cloud/patients/${encodeURIComponent(this.key.patientId)}${suffix}`;
  }

  /** Publishes her signed category public keys under her pseudonym. */
  async register(): Promise<void> {
    await abe.init();
    await sessionCall(this.session, this.session.urls.cloud, 'PUT', this.path(), {
      body: { publicKeys: Buffer.from(pre.encodePublicKeys(this.key)).toString('base64') },
    });
  }

  /**
   * Starts a new key epoch for `category` and publishes the new bundle, which replaces the old one at the cloud
   * (hospitals encrypt new records under it). Returns the client holding the rotated key; keep it (and its file):
   * the old key objects still open older records. Delegations of the old epoch convert no new record: delegate again.
   */
  async rotate(category: string): Promise<PatientClient> {
    const rotated = new PatientClient(this.session, pre.rotate(this.key, category));
    await rotated.register();
    return rotated;
  }

  /** Her delegations and her records' emergency capsules whose policy repeats an attribute (to re-issue those still `reissue`). */
  async repeatedAttributePolicies(): Promise<
    Array<{ kind: 'delegation' | 'capsule'; id: string; category: string; policy: string; repeated: string[]; format: number; reissue: boolean }>
  > {
    return (await sessionCall<{ policies: [] }>(this.session, this.session.urls.cloud, 'GET', this.path('/repeated-attribute-policies'))).policies;
  }

  /** Her records' metadata (optionally one category). */
  async records(category?: string): Promise<RecordMeta[]> {
    const query = category === undefined ? '' : `?category=${encodeURIComponent(category)}`;
    return (await sessionCall<{ records: RecordMeta[] }>(this.session, this.session.urls.cloud, 'GET', this.path(`/records${query}`))).records;
  }

  /** Delegates a category to a CP-ABE policy: the re-encryption key is made here and stored by the cloud. */
  async delegate(
    category: string,
    policy: string,
    abePublicKey: abe.PublicKey,
    options: { emergency?: boolean } = {},
  ): Promise<{ delegationId: string; category: string; policy: string }> {
    await abe.init();
    const rk = pre.delegate(this.key, category, abePublicKey, policy);
    const body = { reencryptionKey: Buffer.from(pre.encodeReEncryptionKey(rk)).toString('base64'), emergency: options.emergency ?? false };
    return sessionCall(this.session, this.session.urls.cloud, 'POST', this.path('/delegations'), { body });
  }

  /** Her active delegations. */
  async delegations(): Promise<Array<{ delegationId: string; category: string; policy: string; emergency: boolean; createdAt: string }>> {
    return (await sessionCall<{ delegations: [] }>(this.session, this.session.urls.cloud, 'GET', this.path('/delegations'))).delegations;
  }

  /** Revokes a delegation: the cloud deletes the re-encryption key. */
  async revoke(delegationId: string): Promise<void> {
    await sessionCall(this.session, this.session.urls.cloud, 'DELETE', this.path(`/delegations/${encodeURIComponent(delegationId)}`));
  }

  /** Every grant, revocation, access and emergency access about her. */
  async accessLog(): Promise<AccessEntry[]> {
    return (await sessionCall<{ entries: AccessEntry[] }>(this.session, this.session.urls.cloud, 'GET', this.path('/access-log'))).entries;
  }

  /**
   * Her access log with each entry proven: its ledger entry's inclusion bundle is fetched from the public ledger
   * routes and checked against the keys she pins (`trust`: the log's and witnesses' keys, a majority quorum by
   * default), and the entry must be about her and of what the log line says. @throws IntegrityError on any mismatch.
   */
  async provenAccessLog(
    trust: TrustPolicy,
  ): Promise<Array<AccessEntry & { proof: { event: AuditEvent; treeSize: number; cosigners: string[] } | null; pending?: true }>> {
    const ledger = new LedgerClient(new URL('/ledger', this.session.urls.cloud).href);
    const proven = [];
    for (const entry of await this.accessLog()) {
      if (entry.ledgerIndex === null) {
        proven.push({ ...entry, proof: null });
        continue;
      }
      let bundle: InclusionBundle;
      try {
        bundle = await ledger.bundle(entry.ledgerIndex);
      } catch (error) {
        // Logged, but no witnessed checkpoint covers it yet (a witness down): shown as pending, never as proven.
        if (!(error instanceof UnavailableError)) throw error;
        proven.push({ ...entry, proof: null, pending: true as const });
        continue;
      }
      const proof = verifyInclusionBundle(bundle, trust);
      const about = proof.event.entity.find((e) => e.type.code === 'patient')?.what.identifier.value;
      if (proof.event.id !== String(entry.ledgerIndex) || about !== this.key.patientId) {
        throw new IntegrityError(`ledger entry ${entry.ledgerIndex} is not the one her access log names`);
      }
      proven.push({ ...entry, proof });
    }
    return proven;
  }

  /** The platform's emergency policy, whether she allows it, and how many of her records hospitals granted under it. */
  async platformEmergency(): Promise<PlatformEmergencyStatus> {
    return sessionCall(this.session, this.session.urls.cloud, 'GET', this.path('/platform-emergency'));
  }

  /** Whether she consents to de-identified research release of her records. */
  async researchConsent(): Promise<{ allowed: boolean }> {
    return sessionCall(this.session, this.session.urls.cloud, 'GET', this.path('/research-consent'));
  }

  /** Gives or withdraws her consent to de-identified research release (recorded on the ledger). */
  async setResearchConsent(allowed: boolean): Promise<{ allowed: boolean }> {
    return sessionCall(this.session, this.session.urls.cloud, 'PUT', this.path('/research-consent'), { body: { allowed } });
  }

  /** The hospitals that may write into her record (her home hospital and those she allowed). */
  async writers(): Promise<string[]> {
    return (await sessionCall<{ writers: string[] }>(this.session, this.session.urls.cloud, 'GET', this.path('/writers'))).writers;
  }

  /** Allows another hospital to enrol her and write into her record (recorded as a consent grant). */
  async allowWriter(hospital: string): Promise<string[]> {
    return (await sessionCall<{ writers: string[] }>(this.session, this.session.urls.cloud, 'PUT', this.path(`/writers/${encodeURIComponent(hospital)}`)))
      .writers;
  }

  /** Withdraws a hospital's permission to write (what it wrote stays readable). */
  async removeWriter(hospital: string): Promise<string[]> {
    return (await sessionCall<{ writers: string[] }>(this.session, this.session.urls.cloud, 'DELETE', this.path(`/writers/${encodeURIComponent(hospital)}`)))
      .writers;
  }

  /** Adds a category to her key (epoch 1) and publishes the new bundle; returns the client holding the extended key. */
  async addCategory(category: string): Promise<PatientClient> {
    const extended = new PatientClient(this.session, pre.addCategory(this.key, category));
    await extended.register();
    return extended;
  }

  /**
   * Sets the desensitisation rules of her notes' words in the searchable index: `excludedWords` are never indexed
   * (sent as salted digests, so the cloud keeps no word), nor, with `excludeNumbers`, any word with a digit. Applies
   * to records written from now on. @throws MalformedInputError for a word that is not a searchable word.
   */
  async setIndexRules(rules: { excludedWords: readonly string[]; excludeNumbers?: boolean }): Promise<IndexRules> {
    const salt = randomBytes(16).toString('base64url');
    const words = rules.excludedWords.map((w) => {
      const [word, ...rest] = wordsOf(w);
      if (word === undefined || rest.length > 0) throw new MalformedInputError(`'${w}' is not one word of 3 to 40 letters or digits`);
      return word;
    });
    const body = { salt, excludedWords: [...new Set(words)].map((w) => indexRuleDigest(salt, w)), excludeNumbers: rules.excludeNumbers ?? false };
    return (await sessionCall<{ indexRules: IndexRules }>(this.session, this.session.urls.cloud, 'PUT', this.path('/index-rules'), { body })).indexRules;
  }

  /** Allows or refuses being found by her business identifiers (cross-hospital lookup). */
  async setFindable(allowed: boolean): Promise<{ findable: boolean }> {
    return sessionCall(this.session, this.session.urls.cloud, 'PUT', this.path('/findable'), { body: { allowed } });
  }

  /** Gives or withdraws her consent to platform emergency access (withdrawing deletes every grant at once). */
  async setPlatformEmergency(allowed: boolean): Promise<PlatformEmergencyStatus> {
    return sessionCall(this.session, this.session.urls.cloud, 'PUT', this.path('/platform-emergency'), { body: { allowed } });
  }
}

/**
 * The cloud's search routes over HTTP as `session`, as the reader's search module (search/reader.ts) uses them;
 * with `reason`, the emergency variants (audited as emergency searches and reads).
 */
export function httpSearchTransport(session: Session, reason?: string): SearchTransport {
  return cloudSearchTransport((path, body) => sessionCall(session, session.urls.cloud, 'POST', path, { body }), reason);
}

/** A reader (doctor, emergency staff): finds records by category and decrypts converted ones locally. */
export class DoctorClient {
  /** The reader of converted records under this doctor's CP-ABE key (its FAME results are cached per delegation). */
  readonly reader: pre.Reader;
  /** Sub-indexes opened by earlier searches (keys and states, by version). */
  private readonly subIndexes = new SubIndexCache();

  constructor(
    readonly session: Session,
    private readonly userKey: abe.UserKey,
  ) {
    this.reader = pre.createReader(userKey);
  }

  /** The same reader (her CP-ABE key) with another session: a refreshed token, or other service URLs (another cloud instance). */
  withSession(session: Session): DoctorClient {
    return new DoctorClient(session, this.userKey);
  }

  /** Metadata of a patient's records in a category she delegated to this reader. */
  async search(patient: string, category: string): Promise<RecordMeta[]> {
    const path = `/cloud/patients/${encodeURIComponent(patient)}/records?category=${encodeURIComponent(category)}`;
    return (await sessionCall<{ records: RecordMeta[] }>(this.session, this.session.urls.cloud, 'GET', path)).records;
  }

  /**
   * Reads (and decrypts here) a patient's records of one category, optionally only some ids. The records come as
   * the cloud's binary record stream (no base64) and each payload is decrypted chunk by chunk as it arrives.
   */
  async read(patient: string, category: string, recordIds?: string[]): Promise<FhirResource[]> {
    return (await this.readRecords(patient, category, recordIds)).map((r) => r.resource);
  }

  /** As `read`, with each resource's record id (the cloud's name for it, which carries the writing hospital's tag). */
  async readRecords(patient: string, category: string, recordIds?: string[]): Promise<Array<{ recordId: string; resource: FhirResource }>> {
    return this.resources(this.recordStream(patient, 'read', { category, ...(recordIds ? { recordIds } : {}) }));
  }

  /** Break the glass: reads under an emergency delegation with a stated reason (recorded, shown to the patient). */
  async emergencyRead(patient: string, category: string, reason: string): Promise<FhirResource[]> {
    return (await this.resources(this.recordStream(patient, 'emergency-read', { category, reason }))).map((r) => r.resource);
  }

  /**
   * One record's plaintext as a byte stream, decrypted as the cloud's record stream arrives: the cloud reads a large
   * record's payload chunk row by chunk row while this process decrypts the chunks already received. Every piece
   * handed out is authenticated (each STREAM chunk has its own tag), but only a completed iteration proves the record
   * whole: a truncated or cut stream throws (IntegrityError or MalformedInputError) after the pieces that did
   * arrive. With `reason`, an emergency read (audited as one). NotFoundError when the cloud has no such record for
   * this reader.
   */
  async *readStream(patient: string, category: string, recordId: string, options: { reason?: string } = {}): AsyncGenerator<Uint8Array> {
    const route = options.reason === undefined ? 'read' : 'emergency-read';
    const body = { category, recordIds: [recordId], ...(options.reason === undefined ? {} : { reason: options.reason }) };
    let ended = false;
    for await (const piece of this.decrypted(this.recordStream(patient, route, body))) {
      if (piece.recordId !== recordId || ended) throw new IntegrityError(`the cloud answered record ${piece.recordId} for ${recordId}`);
      if (piece.bytes.length > 0) yield piece.bytes;
      ended = piece.end;
    }
    if (!ended) throw new NotFoundError(`no record ${recordId} of category ${category} is readable for this reader`);
  }

  private recordStream(patient: string, route: 'read' | 'emergency-read', body: Record<string, unknown>): AsyncGenerator<RecordStreamEvent> {
    return callRecordStreamEvents(this.session.urls.cloud, `/cloud/patients/${encodeURIComponent(patient)}/${route}`, {
      body,
      ...sessionAuth(this.session, 'POST'),
    });
  }

  /** The plaintext of each record of a record stream in pieces, decrypted chunk by chunk as the payload arrives. */
  private async *decrypted(events: AsyncIterable<RecordStreamEvent>): AsyncGenerator<{ recordId: string; bytes: Uint8Array; end: boolean }> {
    let opener: PayloadOpener | undefined;
    let recordId = '';
    for await (const event of events) {
      if (event.kind === 'start') {
        opener = this.reader.decryptStream(pre.openConvertedHeader(event.header));
        recordId = event.recordId;
      } else if (event.kind === 'payload') {
        // The payload pieces are views of received bytes nothing writes into again: the opener keeps them, uncopied.
        for (const bytes of opener!.push(event.bytes, { owned: true })) yield { recordId, bytes, end: false };
      } else {
        yield { recordId, bytes: opener!.finish(), end: true };
      }
    }
  }

  /** The FHIR resources of a record stream, each parsed once its plaintext is complete. */
  private async resources(events: AsyncIterable<RecordStreamEvent>): Promise<Array<{ recordId: string; resource: FhirResource }>> {
    const out: Array<{ recordId: string; resource: FhirResource }> = [];
    let pieces: Uint8Array[] = [];
    for await (const piece of this.decrypted(events)) {
      pieces.push(piece.bytes);
      if (!piece.end) continue;
      out.push({ recordId: piece.recordId, resource: JSON.parse(utf8.decode(pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces))) as FhirResource });
      pieces = [];
    }
    return out;
  }

  /**
   * FHIR search of a patient's records on the encrypted index (docs/platform.md § Search): `query` is a FHIR query
   * string or parameters (code, status, date, _content, _text). The cloud sees labels and record ids, never the
   * codes, dates or words; results (current versions only) are checked to be the records the index named, decrypted
   * here, checked against the query, and returned as a searchset Bundle and with their record ids (`records`). With `reason`, an emergency search (audited; platform emergency grants as for emergency reads).
   */
  async searchFhir(
    patient: string,
    resourceType: string,
    query: string | URLSearchParams,
    options: { reason?: string; categories?: CategoryMapping } = {},
  ): Promise<{ bundle: Record<string, unknown>; records: FoundRecord[]; stats: SearchStats }> {
    const parsed = parseQuery(resourceType, typeof query === 'string' ? new URLSearchParams(query) : query);
    const category = categoryOf(options.categories ?? DEFAULT_CATEGORY_MAPPING, { resourceType, id: 'query' });
    const { resources, records, stats } = await searchRecords(
      this.reader,
      httpSearchTransport(this.session, options.reason),
      patient,
      category,
      parsed,
      this.subIndexes,
    );
    return { bundle: searchset(resources), records, stats };
  }

  /**
   * The hospitals whose record signatures this reader accepts, with their keys (record-signature.ts): the list of
   * her own hospital's gateway (its federation configuration, pinned there), never one the cloud serves.
   * @throws IntegrityError when a listed key is not that hospital's record key
   */
  async writerKeys(): Promise<Map<string, CheckpointVerifier>> {
    const { keys } = await sessionCall<{ keys: Array<{ hospital: string; key: string }> }>(
      this.session,
      hospitalUrl(this.session.urls, this.session.hospital),
      'GET',
      '/gateway/writer-keys',
    );
    return writerKeys(keys);
  }

  /** Decrypts one converted record given in base64 (from the cloud, or a FHIR Binary of a gateway searchset). */
  decrypt(ciphertext: string): FhirResource {
    return JSON.parse(utf8.decode(this.reader.decrypt(Buffer.from(ciphertext, 'base64')))) as FhirResource;
  }
}

/** A hospital system talking to its gateway. */
export class GatewayClient {
  constructor(readonly session: Session) {}

  /** Enrols a FHIR patient of this hospital under her pseudonym. */
  async enrol(fhirId: string, patient: string): Promise<void> {
    await sessionCall(this.session, hospitalUrl(this.session.urls, this.session.hospital), 'POST', '/gateway/patients', {
      body: { fhirId, patient },
      idempotent: true,
    });
  }

  /**
   * A research release: the resource or Bundle of one consenting patient, de-identified under `profile` with the
   * hospital's keys and recorded on the ledger (403 HttpProblemError when she has not consented).
   */
  researchExport(resourceOrBundle: unknown, profile: string): Promise<{ profile: string; released: FhirResource; digest: string; ledgerIndex: number }> {
    return sessionCall(
      this.session,
      hospitalUrl(this.session.urls, this.session.hospital),
      'POST',
      `/gateway/research-exports?profile=${encodeURIComponent(profile)}`,
      {
        body: resourceOrBundle,
        contentType: 'application/fhir+json',
        timeoutMs: UPLOAD_TIMEOUT_MS,
      },
    );
  }

  /** The hospital's upload receipts (at most 1,000 from entry `from`), optionally only the pending or the complete ones. */
  receipts(filter: { status?: 'pending' | 'complete'; from?: number } = {}): Promise<{ receipts: Receipt[] }> {
    const query = new URLSearchParams(Object.entries(filter).map(([k, v]): [string, string] => [k, String(v)]));
    return sessionCall(this.session, hospitalUrl(this.session.urls, this.session.hospital), 'GET', `/gateway/receipts${query.size > 0 ? `?${query}` : ''}`);
  }

  /** Completes pending receipts now (the cloud asks the witnesses again); how many completed and how many are still pending. */
  completeReceipts(): Promise<{ completed: number; pending: number }> {
    return sessionCall(this.session, hospitalUrl(this.session.urls, this.session.hospital), 'POST', '/gateway/receipts/complete', {
      body: {},
      idempotent: true,
    });
  }

  /** Uploads a FHIR resource or transaction Bundle (encrypted by the gateway, stored atomically; retried safely: record ids are deterministic). */
  upload(resourceOrBundle: unknown): Promise<UploadResult> {
    return sessionCall(this.session, hospitalUrl(this.session.urls, this.session.hospital), 'POST', '/gateway/upload', {
      body: resourceOrBundle,
      contentType: 'application/fhir+json',
      idempotent: true,
      timeoutMs: UPLOAD_TIMEOUT_MS,
    });
  }
}
