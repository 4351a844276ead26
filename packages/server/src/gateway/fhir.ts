/**
 * The FHIR R4 side of the hospital gateway: validating incoming resources and transaction Bundles
 * (https://hl7.org/fhir/R4/bundle.html, https://hl7.org/fhir/R4/http.html#transaction), finding the patient they
 * are about, and grouping resources into record categories by resource type (configurable).
 */
import { createHash } from 'node:crypto';
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';

/** A FHIR resource as far as the gateway needs to know it. */
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

const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
/** FHIR R4 id: [A-Za-z0-9\-\.]{1,64}. */
export const FHIR_ID = /^[A-Za-z0-9.-]{1,64}$/;
export const MAX_ENTRIES = 20_000;

/** The category of one resource under a mapping. */
export function categoryOf(mapping: CategoryMapping, resource: FhirResource): string {
  return mapping.byType[resource.resourceType] ?? mapping.fallback;
}

function checkResource(value: unknown, where: string): FhirResource {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new MalformedInputError(`${where}: a FHIR resource is a JSON object`);
  const resource = value as Partial<FhirResource>;
  if (typeof resource.resourceType !== 'string' || !RESOURCE_TYPE.test(resource.resourceType)) throw new MalformedInputError(`${where}: resourceType is missing or invalid`);
  if (resource.resourceType === 'Bundle') throw new MalformedInputError(`${where}: nested Bundles are not accepted`);
  if (typeof resource.id !== 'string' || !FHIR_ID.test(resource.id)) throw new MalformedInputError(`${where}: id must match [A-Za-z0-9.-]{1,64}`);
  return resource as FhirResource;
}

/** The resources of a transaction/batch/collection Bundle, or of a single resource; validated. */
export function resourcesOf(body: unknown): FhirResource[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new MalformedInputError('the body must be a FHIR resource or Bundle (a JSON object)');
  const candidate = body as { resourceType?: unknown; type?: unknown; entry?: unknown };
  if (candidate.resourceType !== 'Bundle') return [checkResource(body, 'resource')];
  if (!['transaction', 'batch', 'collection'].includes(String(candidate.type))) throw new MalformedInputError('Bundle.type must be transaction, batch or collection');
  if (!Array.isArray(candidate.entry) || candidate.entry.length === 0) throw new MalformedInputError('Bundle.entry must be a non-empty list');
  if (candidate.entry.length > MAX_ENTRIES) throw new LimitExceededError(`a Bundle may hold at most ${MAX_ENTRIES} entries`);
  return candidate.entry.map((entry: unknown, i) => checkResource((entry as { resource?: unknown } | null)?.resource, `Bundle.entry[${i}]`));
}

function referencedPatient(resource: FhirResource): string | undefined {
  for (const field of ['subject', 'patient', 'beneficiary']) {
    const reference = (resource[field] as { reference?: unknown } | undefined)?.reference;
    if (typeof reference !== 'string') continue;
    const match = /^(?:Patient\/|urn:uuid:)([A-Za-z0-9.-]{1,64})$/.exec(reference);
    if (match) return match[1];
  }
  return undefined;
}

/** The FHIR id of the one patient the resources are about (a Patient in the bundle, else the references). */
export function patientOf(resources: readonly FhirResource[]): string {
  const patients = new Set(resources.filter((r) => r.resourceType === 'Patient').map((r) => r.id));
  if (patients.size === 0) for (const r of resources) { const p = referencedPatient(r); if (p !== undefined) patients.add(p); }
  if (patients.size !== 1) throw new MalformedInputError(`an upload must concern exactly one patient (found ${patients.size})`);
  return [...patients][0]!;
}

/**
 * The record id under which a resource is stored: a hash of hospital, patient pseudonym and resource identity, so
 * a retried upload maps to the same ids (idempotency) and the cloud learns no FHIR id.
 */
export function recordIdOf(hospital: string, patient: string, resource: FhirResource): string {
  return createHash('sha256').update(`medshare/record/v1|${hospital}|${patient}|${resource.resourceType}/${resource.id}`).digest('base64url').slice(0, 32);
}
