/**
 * @medshare/server — the MedShare platform over HTTP (docs/platform.md): one service per trust domain (the trusted
 * authority, the cloud store and re-encryption proxy, each hospital's identity service and FHIR gateway), their
 * composition on one machine (`createPlatform`, `medshare serve all`), and the typed client SDK used by the CLI.
 */
export { createPlatform, type Platform, type PlatformDatabases, type PlatformKeks, type PlatformOptions } from './platform.ts';
export { serviceApp, listen, DEFAULT_REQUESTS_PER_MINUTE, type ServiceHttpOptions } from './services/app.ts';
export { createAuthorityService, TA_AUDIENCE, type AuthorityService, type AuthorityServiceOptions } from './services/authority.ts';
export { createCloudService, DEFAULT_EMERGENCY_POLICY, type CloudDeployment, type CloudServiceOptions } from './services/cloud.ts';
export { createHospitalService, PORTAL_CLIENT, type HospitalDeployment, type HospitalServiceOptions, type ServiceUrl } from './services/hospital.ts';
export {
  openCloudLedger,
  openHospitalWitness,
  pinnedKey,
  verifyReceipt,
  type ReceiptTrust,
  type LedgerAnchoring,
  LEDGER_KEY_NAME,
  witnessKeyName,
  type CloudLedger,
  type HospitalWitness,
  type WitnessPeer,
} from './ledger.ts';
export { federationTrust, trustHospital, issuerOf, checkHospitalName, remoteSessionCheck, HOSPITAL_NAME, type HospitalPeer } from './services/trust.ts';
export { PLATFORM_AUDIENCE, agentPseudonym, UnauthenticatedError, NotFoundError } from './http.ts';
export { callJson, errorFromProblem, codeForStatus, HttpProblemError, sameOrigin, type CallOptions, type ServiceUrls } from './http-client.ts';
export {
  CloudService,
  repeatedAttributePolicies,
  sha256Name,
  type ConvertedRecord,
  type PlatformEmergencyStatus,
  type RepeatedAttributePolicy,
} from './cloud/service.ts';
export { CloudStore } from './cloud/store.ts';
export { CLOUD_MIGRATIONS } from './migrations.ts';
export { defaultConversionWorkers, defaultEncryptionWorkers } from './cloud/conversion-pool.ts';
export type { AccessEntry, RecordMeta } from './cloud/store.ts';
export { HttpCloudApi, type CloudApi, type PatientKeys } from './gateway/cloud-api.ts';
export { DEFAULT_CATEGORY_MAPPING, categoryOf, type CategoryMapping, type FhirResource } from './gateway/fhir.ts';
export { parseWrite, type FhirOperation } from './gateway/fhir-bundle.ts';
export { FhirValidationError, validateFhirResource } from './gateway/fhir-validate.ts';
export { PROVENANCE_SYSTEM, isTombstone } from './gateway/fhir-versions.ts';
export { hospitalTag, isRecordOf, taggedRecordId } from './record-id.ts';
export {
  recordKeyName,
  signRecord,
  SIGNATURE_EXTENSION,
  UNSIGNED_TAG,
  VERIFIED_SYSTEM,
  verifyRecord,
  writerKeys,
  type RecordProvenance,
} from './record-signature.ts';
export { CONVERTED_RECORD_TYPE, GATEWAY_BODY_LIMIT, PSEUDONYM_SYSTEM } from './gateway/plugin.ts';
export { IdentifierKey } from './gateway/identifier-index.ts';
export type { UploadResult } from './gateway/service.ts';
export { ResearchExporter, RELEASE_PROFILES, type ReleaseRecorder, type ResearchRelease } from './gateway/research-export.ts';
export {
  PlatformClient,
  PatientClient,
  DoctorClient,
  GatewayClient,
  httpSearchTransport,
  sessionCall,
  type Session,
  type UserEnrolment,
} from './sdk/client.ts';
export { parseQuery as parseSearchQuery, type IndexRules } from './search/keywords.ts';
export type { FoundRecord, SearchStats } from './search/reader.ts';
export { DEFAULT_SEARCH_PARAMETERS, startFhirView, type FhirView, type FhirViewOptions, type SearchParameter } from './sdk/fhir-view.ts';
export { cloudContents, everyValue, tryEveryKey, type KeyScan } from './inspect.ts';
export { parseDeploymentConfig, formatDeploymentConfig, type DeploymentConfig } from './services/config.ts';
export { roleScopes, requireRecordScope, requireWriteScope } from './scopes.ts';
export * from './stats/index.ts';
export {
  StorageAuditClient,
  auditStorage,
  committedRecords,
  verifiedInventory,
  DEFAULT_SAMPLES,
  VERSION_1_REASON,
  type CommittedRecord,
  type StorageAuditResult,
  type StorageAuditOptions,
} from './storage-audit/auditor.ts';
export { StorageAuditCloud, type FailingRecord } from './storage-audit/cloud.ts';
export { StorageTagger } from './storage-audit/tagger.ts';
export { challengeDigest, type WireChallenge } from './storage-audit/wire.ts';
