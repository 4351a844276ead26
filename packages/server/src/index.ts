/**
 * @medshare/server — the MedShare platform over HTTP (docs/platform.md): trusted authority, hospital identity,
 * cloud store and re-encryption proxy, hospital FHIR gateway, and the typed client SDK used by the CLI.
 */
export { createPlatform, DEFAULT_EMERGENCY_POLICY, TA_AUDIENCE, type Platform, type PlatformOptions } from './platform.ts';
export { PLATFORM_AUDIENCE, agentPseudonym, UnauthenticatedError, NotFoundError } from './http.ts';
export { CloudService, repeatedAttributePolicies, sha256Name, type ConvertedRecord, type PlatformEmergencyStatus, type RepeatedAttributePolicy } from './cloud/service.ts';
export { CloudStore } from './cloud/store.ts';
export { CLOUD_MIGRATIONS } from './migrations.ts';
export { defaultConversionWorkers } from './cloud/conversion-pool.ts';
export type { AccessEntry, RecordMeta } from './cloud/store.ts';
export { DEFAULT_CATEGORY_MAPPING, categoryOf, type CategoryMapping, type FhirResource } from './gateway/fhir.ts';
export { parseWrite, type FhirOperation } from './gateway/fhir-bundle.ts';
export { FhirValidationError, validateFhirResource } from './gateway/fhir-validate.ts';
export { PROVENANCE_SYSTEM, isTombstone } from './gateway/fhir-versions.ts';
export { hospitalTag, isRecordOf } from './record-id.ts';
export { CONVERTED_RECORD_TYPE, GATEWAY_BODY_LIMIT, PSEUDONYM_SYSTEM } from './gateway/plugin.ts';
export { IdentifierKey } from './gateway/identifier-index.ts';
export type { UploadResult } from './gateway/service.ts';
export { PlatformClient, PatientClient, DoctorClient, GatewayClient, HttpProblemError, type Session, type UserEnrolment } from './sdk/client.ts';
export { DEFAULT_SEARCH_PARAMETERS, startFhirView, type FhirView, type FhirViewOptions, type SearchParameter } from './sdk/fhir-view.ts';
export { cloudContents } from './inspect.ts';
export * from './stats/index.ts';
