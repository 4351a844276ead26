import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePath, toLocations } from '../src/deid/fhir-nodes.ts';
import { compileNative, indexResource } from '../src/deid/native-paths.ts';
import { FIXTURE_BUNDLE, hasSharedData, patientBundles, readJson } from './helpers.ts';

const PATHS = [
  "nodesByType('HumanName')",
  "nodesByType('date') | nodesByType('dateTime') | nodesByType('instant')",
  "nodesByType('string')",
  "nodesByType('Address').postalCode",
  "nodesByType('Reference').reference",
  "nodesByType('Attachment').where(contentType.exists() and contentType.startsWith('image')).data",
  "nodesByType('Attachment').data",
  "nodesByType('Extension').where(url = 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName')",
  "nodesByType('Identifier').value",
  "nodesByType('Narrative').`div`",
  "nodesByType('Quantity')",
  "nodesByName('value')",
  "nodesByName('reference')",
  'Resource.id',
  'Patient.name.given',
  'Observation.value',
  'Bundle.entry.fullUrl',
];

// The model types Resource.id and Extension.url as FHIRPath's System.String; the index names them
// id and uri, as FHIR (and the reference tool) do.
const typeName = (l: { key: string; type: string }) => (l.key === 'id' || l.key === 'url' ? 'id-or-url' : l.type);

test('the native path evaluator finds exactly the nodes fhirpath finds (type and location)', () => {
  const files = hasSharedData ? patientBundles().slice(0, 3) : [FIXTURE_BUNDLE];
  let compared = 0;
  for (const file of files) {
    const bundle = readJson(file) as { entry: { resource: Record<string, unknown> }[] };
    for (const resource of [...bundle.entry.map((e) => e.resource).slice(0, 400), bundle as unknown as Record<string, unknown>]) {
      const index = indexResource(resource);
      for (const path of PATHS) {
        const native = compileNative(path);
        assert.ok(native, `${path} should compile natively`);
        const key = (l: { parent: object; key: string; index: number | null; type: string }) =>
          `${index.all.findIndex((n) => n.parent === l.parent)}|${l.key}|${l.index}|${typeName(l)}`;
        // FHIRPath's union removes duplicates by value, so two equal dates would collapse into
        // one node; the native evaluator keeps every node. Compare with the branches' union by location.
        const branches = path.includes(' | ') ? path.split(' | ') : [path];
        const expected = [...new Set(branches.flatMap((branch) => toLocations(compilePath(branch)(resource, {}), resource).map(key)))].sort();
        const actual = native(index).map(key).sort();
        assert.deepEqual(actual, expected, `${path} on ${String(resource['resourceType'])}/${String(resource['id'])}`);
        compared++;
      }
    }
  }
  assert.ok(compared > 100);
});

test('shapes the native evaluator does not handle fall back to fhirpath', () => {
  assert.equal(compileNative('Patient.name.first()'), undefined);
  assert.equal(compileNative("Patient.name.where(use = 'official').given.first()"), undefined);
  assert.notEqual(compileNative("Patient.name.where(use = 'official').given"), undefined);
});
