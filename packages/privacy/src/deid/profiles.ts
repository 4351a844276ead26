/**
 * Built-in de-identification profiles, written in the same rule format as user configurations.
 *
 * `safe-harbor` removes the 18 identifier kinds of the HIPAA Safe Harbor method
 * (45 CFR 164.514(b)(2)(i)): (A) names, (B) geography below the state (ZIP kept to 3 digits, 000
 * for restricted areas), (C) all date elements but the year and ages over 89, (D) phone,
 * (E) fax, (F) e-mail, (G) SSN, (H) MRN, (I) health-plan, (J) account, (K) licence numbers,
 * (L) vehicle and (M) device identifiers, (N) URLs, (O) IP addresses, (P) biometrics,
 * (Q) photographs, (R) any other unique number (resource ids and references are keyed-hashed,
 * which 164.514(c) allows for a code not derived from the identifier and kept secret).
 *
 * `research` keeps clinical codes and values, pseudonymises ids and identifiers by keyed hash,
 * removes names, contacts, and sub-state geography, and shifts every date of a patient by the
 * same keyed offset (scope `patient`, HMAC variant) so intervals between events survive. It is
 * a limited-data-set style release, not Safe Harbor: shifted dates are not "year only".
 */
import { parseConfig, type DeidConfig } from './config.ts';

export type ProfileName = 'safe-harbor' | 'research';
export const PROFILES: readonly ProfileName[] = ['safe-harbor', 'research'];

/** Keys of a profile; callers pass fresh random keys unless outputs must be linkable across runs. */
export interface ProfileKeys {
  cryptoHashKey: string;
  dateShiftKey: string;
}

/**
 * Terminology text is scrubbed for the record's own names and places and fixed-form identifiers
 * only, not the name dictionaries, so that "Primary Care Practitioner" is not read as a name.
 */
/** Extension text first: a later `keep` (Address.state) would otherwise keep the extensions below the kept value. */
const EXTENSION_TEXT = [{ path: "nodesByType('Extension').valueString | nodesByType('Extension').valueMarkdown", method: 'scrubText' }];

const TERMINOLOGY = [{ path: "nodesByType('Coding').display | nodesByType('CodeableConcept').text", method: 'scrubText', scope: 'terminology' }];

const FREE_TEXT = [
  { path: "nodesByType('Narrative').`div`", method: 'scrubText' },
  { path: "nodesByType('Annotation').text", method: 'scrubText' },
  { path: "nodesByType('Attachment').where(contentType.exists() and contentType.startsWith('image')).data", method: 'redact' },
  { path: "nodesByType('Attachment').data", method: 'scrubText' },
  { path: "nodesByType('Attachment').url", method: 'redact' },
  { path: 'Binary.data', method: 'scrubText' },
];

const DIRECT_IDENTIFIERS = [
  { path: "nodesByType('Extension').where(url = 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName')", method: 'redact' },
  { path: "nodesByType('HumanName')", method: 'redact' },
  { path: "nodesByType('ContactPoint')", method: 'redact' },
  { path: "nodesByType('Address').state", method: 'keep' },
  { path: "nodesByType('Address').country", method: 'keep' },
  { path: "nodesByType('Address').postalCode", method: 'redact' },
  { path: "nodesByType('Address')", method: 'redact' },
  { path: 'Patient.photo', method: 'redact' },
  { path: 'Media.content', method: 'redact' },
  { path: 'Device.serialNumber | Device.lotNumber | Device.udiCarrier | Device.distinctIdentifier', method: 'redact' },
  // (N) URLs: url-typed values (Extension.valueUrl, Endpoint.address, ...) and uri values of extensions; Coding.system stays.
  { path: "nodesByType('url')", method: 'redact' },
  { path: "nodesByType('Extension').valueUri", method: 'redact' },
  // (R) DICOM study, series and instance UIDs identify the imaging of one patient.
  { path: 'ImagingStudy.series.uid | ImagingStudy.series.instance.uid', method: 'cryptoHash' },
];

const IDS_AND_REFERENCES = [
  { path: 'Resource.id', method: 'cryptoHash' },
  { path: "nodesByType('Reference').reference", method: 'cryptoHash' },
  { path: 'Bundle.entry.fullUrl', method: 'cryptoHash' },
  { path: 'Bundle.entry.request.url', method: 'cryptoHash' },
];

const SAFE_HARBOR_RULES = [
  ...EXTENSION_TEXT,
  ...TERMINOLOGY,
  ...DIRECT_IDENTIFIERS,
  ...FREE_TEXT,
  { path: "nodesByType('Identifier')", method: 'redact' },
  ...IDS_AND_REFERENCES,
  { path: "nodesByType('date')", method: 'redact' },
  { path: "nodesByType('dateTime')", method: 'redact' },
  { path: "nodesByType('instant')", method: 'redact' },
  { path: "nodesByType('Age')", method: 'redact' },
  { path: "nodesByType('string')", method: 'scrubText' },
  { path: "nodesByType('markdown')", method: 'scrubText' },
];

const RESEARCH_RULES = [
  ...EXTENSION_TEXT,
  ...TERMINOLOGY,
  ...DIRECT_IDENTIFIERS,
  ...FREE_TEXT,
  { path: "nodesByType('Identifier').value", method: 'cryptoHash' },
  { path: "nodesByType('Identifier').assigner | nodesByType('Identifier').period", method: 'redact' },
  ...IDS_AND_REFERENCES,
  { path: "nodesByType('date')", method: 'dateShift' },
  { path: "nodesByType('dateTime')", method: 'dateShift' },
  { path: "nodesByType('instant')", method: 'dateShift' },
  { path: "nodesByType('Age')", method: 'redact' },
  { path: "nodesByType('string')", method: 'scrubText' },
  { path: "nodesByType('markdown')", method: 'scrubText' },
];

/** Builds a built-in profile's configuration with the given keys. */
export function profileConfig(name: ProfileName, keys: ProfileKeys): DeidConfig {
  const common = {
    cryptoHashKey: keys.cryptoHashKey,
    dateShiftKey: keys.dateShiftKey,
    enablePartialAgesForRedact: true,
    enablePartialDatesForRedact: true,
    enablePartialZipCodesForRedact: true,
    builtinNameDictionary: true,
    cryptoHashKeepsForm: true,
    quantityAgesAsAges: true,
    // ZIP3 areas with 20,000 or fewer people (2000 Census), listed by HHS for Safe Harbor.
    restrictedZipCodeTabulationAreas: ['036', '059', '063', '102', '203', '556', '692', '790', '821', '823', '830', '831', '878', '879', '884', '890', '893'],
  };
  const json =
    name === 'safe-harbor'
      ? { fhirVersion: 'R4', processingErrors: 'raise', fhirPathRules: SAFE_HARBOR_RULES, parameters: common }
      : {
          fhirVersion: 'R4',
          processingErrors: 'raise',
          fhirPathRules: RESEARCH_RULES,
          parameters: { ...common, dateShiftScope: 'patient', dateShiftAlgorithm: 'hmac' },
        };
  // Their rules meet the walk's condition (rule-walk.ts): no rule changes what a later rule's `where` reads.
  return { ...parseConfig(json, `profile ${name}`), singlePass: true };
}
