/** @medshare/privacy: desensitization of FHIR records and anonymization of tables for research release. */
export { parseConfig, parseConfigText, METHODS, type DeidConfig, type Rule, type Parameters, type Method } from './deid/config.ts';
export { Deidentifier, patientId, type ResourceContext } from './deid/engine.ts';
export { profileConfig, PROFILES, type ProfileName, type ProfileKeys } from './deid/profiles.ts';
export { dateShiftOffset, shiftDate, partialDate, indicatesAgeOver89 } from './deid/dates.ts';
export { cryptoHash, cryptoHashReference, encryptValue, decryptValue, perturbNumber } from './deid/methods.ts';
export { scrubText, findPhi, nameMatcher, type Finding, type PhiKind } from './deid/free-text.ts';
