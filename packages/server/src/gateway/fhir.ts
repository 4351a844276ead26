/**
 * The FHIR R4 vocabulary of the hospital gateway: resources, ids, and the grouping of resources into record
 * categories by resource type (configurable; every category must be one of the patient's key categories).
 */
import { MalformedInputError } from '@medshare/crypto';

/** A FHIR resource as far as the gateway needs to know it (fhir-validate.ts checks the rest). */
export interface FhirResource {
  resourceType: string;
  id: string;
  [field: string]: unknown;
}

/** Resource type → record category; anything unlisted goes to `fallback`. */
export interface CategoryMapping {
  readonly byType: Readonly<Record<string, string>>;
  readonly fallback: string;
}

/** The default grouping of MedShare's demo and docs. */
export const DEFAULT_CATEGORY_MAPPING: CategoryMapping = {
  byType: {
    Observation: 'lab',
    DiagnosticReport: 'lab',
    ImagingStudy: 'imaging',
    Media: 'imaging',
    DocumentReference: 'notes',
    Composition: 'notes',
    MedicationRequest: 'medication',
    MedicationAdministration: 'medication',
    MedicationStatement: 'medication',
    Medication: 'medication',
    Immunization: 'medication',
  },
  fallback: 'clinical',
};

/** FHIR R4 id: [A-Za-z0-9\-\.]{1,64}. */
export const FHIR_ID = /^[A-Za-z0-9.-]{1,64}$/;
/** Entries of one Bundle at most. */
export const MAX_ENTRIES = 20_000;

/** The category of one resource under a mapping. */
export function categoryOf(mapping: CategoryMapping, resource: FhirResource): string {
  return mapping.byType[resource.resourceType] ?? mapping.fallback;
}

/** The FHIR id of the patient a resource references (`subject`, `patient` or `beneficiary`: `Patient/<id>`). */
export function referencedPatient(resource: FhirResource): string | undefined {
  for (const field of ['subject', 'patient', 'beneficiary']) {
    const reference = (resource[field] as { reference?: unknown } | undefined)?.reference;
    if (typeof reference !== 'string') continue;
    const match = /^(?:Patient\/|urn:uuid:)([A-Za-z0-9.-]{1,64})$/.exec(reference);
    if (match) return match[1];
  }
  return undefined;
}

/** The FHIR id of the one patient the resources are about (a Patient among them, else their references). @throws MalformedInputError */
export function patientOf(resources: readonly FhirResource[]): string {
  const patients = new Set(resources.filter((r) => r.resourceType === 'Patient').map((r) => r.id));
  if (patients.size === 0) {
    for (const r of resources) {
      const p = referencedPatient(r);
      if (p !== undefined) patients.add(p);
    }
  }
  if (patients.size !== 1) throw new MalformedInputError(`an upload must concern exactly one patient (found ${patients.size})`);
  return [...patients][0]!;
}
