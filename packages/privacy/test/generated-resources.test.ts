import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import { Deidentifier, parseConfig, profileConfig } from '../src/index.ts';
import { readFileSync } from 'node:fs';
import { PRIMITIVE_TYPES as PRIMITIVES, RESOURCE_TYPES } from '../src/deid/native-paths.ts';
import { compileWalk } from '../src/deid/rule-walk.ts';

type Json = Record<string, any>;
const model = r4Model as unknown as {
  path2Type: Record<string, string>;
  path2Repeating: Record<string, boolean>;
  choiceTypePaths: Record<string, string[]>;
  pathsDefinedElsewhere: Record<string, string>;
};

/** The elements of each model path (`Patient` -> birthDate, name, ...), from the fhirpath package's R4 model. */
const childrenOf = new Map<string, string[]>();
for (const path of [...Object.keys(model.path2Type), ...Object.keys(model.choiceTypePaths)]) {
  const dot = path.lastIndexOf('.');
  if (dot < 0) continue;
  const parent = path.slice(0, dot);
  const list = childrenOf.get(parent) ?? [];
  if (!list.includes(path.slice(dot + 1))) list.push(path.slice(dot + 1));
  childrenOf.set(parent, list);
}

const PHI_STRINGS = fc.constantFrom(
  'Chidi Okafor',
  '555-867-5309',
  'chidi@example.org',
  '17 Wattle Grove Parade',
  'SSN 123456789',
  'born May 5, 1978',
  'https://x.example.com/a',
  '',
  ' ',
  '<b>x</b>',
  'Major depression disorder',
);
const value = (type: string): fc.Arbitrary<unknown> => {
  switch (type) {
    case 'boolean':
      return fc.boolean();
    case 'integer':
    case 'unsignedInt':
    case 'positiveInt':
    case 'integer64':
      return fc.integer({ min: 0, max: 200 });
    case 'decimal':
      return fc.double({ min: -1000, max: 1000, noNaN: true, noDefaultInfinity: true });
    case 'date':
      return fc.constantFrom('1930-02-03', '2019-03-04', '2019-03', '2019', 'not a date');
    case 'dateTime':
    case 'instant':
      return fc.constantFrom('2019-03-04T10:11:12Z', '2019-03-04T10:11:12.123+08:00', '1925-01-01', '2019', 'garbage');
    case 'xhtml':
      return fc.constantFrom('<div xmlns="http://www.w3.org/1999/xhtml">Chidi Okafor, 555-867-5309</div>', '<div xmlns="http://www.w3.org/1999/xhtml"/>');
    case 'base64Binary':
      return fc.constantFrom(Buffer.from('Chidi Okafor 555-867-5309').toString('base64'), '!!not base64');
    case 'string':
    case 'markdown':
    case 'url':
      return PHI_STRINGS;
    default:
      // Codes, ids, uris, canonicals: terminology and links, not free text (Safe Harbor leaves them).
      return fc.constantFrom('abc', 'http://loinc.org', 'urn:oid:1.2.3', 'final', '1.0.0');
  }
};

/** A random element of model path `path`, `depth` levels deep at most; primitives sometimes carry an `_x` element part. */
function element(path: string, depth: number): fc.Arbitrary<Json> {
  const keys = (childrenOf.get(path) ?? []).filter((k) => k !== 'contained');
  if (keys.length === 0 || depth <= 0) return fc.constant({});
  return fc.subarray(keys, { maxLength: Math.min(6, keys.length) }).chain((chosen) => {
    const parts: Record<string, fc.Arbitrary<unknown>> = {};
    for (const key of chosen) {
      const full = `${path}.${key}`;
      const choices = model.choiceTypePaths[full];
      const name = choices ? `${key}${choices[0]}` : key;
      const choiceType = choices ? choices[0]!.charAt(0).toLowerCase() + choices[0]!.slice(1) : undefined;
      const type =
        choiceType && PRIMITIVES.has(choiceType) ? choiceType : (choices?.[0] ?? model.path2Type[model.pathsDefinedElsewhere[full] ?? full] ?? 'string');
      const next = model.pathsDefinedElsewhere[full] ?? (type === 'BackboneElement' || type === 'Element' ? full : type);
      const item =
        type.startsWith('System.') || PRIMITIVES.has(type)
          ? value(type === 'System.String' ? (key === 'url' || key === 'id' ? 'uri' : 'string') : type)
          : element(next, depth - 1);
      parts[name] = model.path2Repeating[full] ? fc.array(item, { minLength: 1, maxLength: 2 }) : item;
      if (PRIMITIVES.has(type))
        parts[`_${name}`] = fc.option(fc.constant({ extension: [{ url: 'http://example.org/x', valueString: 'Chidi Okafor 555-867-5309' }] }), {
          nil: undefined,
        });
    }
    return fc.record(parts, { requiredKeys: [] }).map((object) => JSON.parse(JSON.stringify(object)) as Json);
  });
}

const RESOURCE_NAMES = [...RESOURCE_TYPES].filter((t) => t !== 'Resource' && t !== 'DomainResource').sort();
const resource = fc.constantFrom(...RESOURCE_NAMES).chain((type) =>
  element(type, 3).map((body) => ({
    ...body,
    resourceType: type,
    id: 'r1',
    contained: [{ resourceType: 'Patient', id: 'c1', name: [{ family: 'Okafor' }] }],
  })),
);

// Rules of every shape the reference tool's R4 sample configuration uses: type rules, resource-scoped paths, choice elements, `as`.
const SAMPLE_LIKE = parseConfig({
  fhirVersion: 'R4',
  fhirPathRules: [
    { path: "nodesByType('Extension')", method: 'redact' },
    { path: 'Organization.identifier', method: 'keep' },
    { path: 'Organization.telecom', method: 'keep' },
    { path: "nodesByType('Address').state", method: 'keep' },
    { path: 'Bundle.entry.request.url', method: 'redact' },
    { path: 'Bundle.entry.response.location', method: 'redact' },
    { path: 'Condition.onset', method: 'redact' },
    { path: 'Task.input.value', method: 'redact' },
    { path: 'QuestionnaireResponse.item.item', method: 'redact' },
    { path: 'Contract.term.asset.valuedItem.payment', method: 'redact' },
    { path: "nodesByType('Expression').description", method: 'redact' },
    { path: "nodesByType('Coding').code", method: 'redact' },
    { path: "nodesByType('Reference').display", method: 'redact' },
    { path: "nodesByType('HumanName').use", method: 'keep' },
    { path: 'Resource.id', method: 'cryptoHash' },
    { path: 'Bundle.entry.fullUrl', method: 'redact' },
    { path: 'Observation.value', method: 'redact' },
    { path: 'FamilyMemberHistory.condition.onset as Age', method: 'perturb', span: 0.1, rangeType: 'proportional', roundTo: 0 },
    { path: "nodesByType('Reference').reference", method: 'cryptoHash' },
    { path: "nodesByType('Narrative')", method: 'redact' },
    { path: "nodesByType('base64Binary')", method: 'redact' },
    { path: "nodesByType('date')", method: 'dateshift' },
    { path: "nodesByType('dateTime')", method: 'dateshift' },
    { path: "nodesByType('instant')", method: 'dateshift' },
    { path: "nodesByType('Address')", method: 'redact' },
    { path: "nodesByType('Age')", method: 'redact' },
    { path: "nodesByType('Annotation')", method: 'redact' },
    { path: "nodesByType('HumanName')", method: 'redact' },
    { path: "nodesByType('ContactPoint')", method: 'redact' },
  ],
  parameters: {
    dateShiftKey: 'k',
    cryptoHashKey: 'k',
    enablePartialAgesForRedact: true,
    enablePartialDatesForRedact: true,
    enablePartialZipCodesForRedact: true,
  },
});

const keys = { cryptoHashKey: 'gen-hash', dateShiftKey: 'gen-shift' };
const engines = {
  'safe-harbor': new Deidentifier(profileConfig('safe-harbor', keys)),
  research: new Deidentifier(profileConfig('research', keys)),
  'sample-like': new Deidentifier(SAMPLE_LIKE),
};

test('no crash on any generated resource of any R4 type (both profiles and a sample-like configuration); output is JSON without empty values', () => {
  fc.assert(
    fc.property(resource, (input) => {
      for (const [name, engine] of Object.entries(engines)) {
        const copy = structuredClone(input);
        let out: Json;
        try {
          out = engine.processResource(copy, { names: engine.namesFor([copy]) }) as Json;
        } catch (error) {
          throw new Error(`${name} on ${input.resourceType}: ${(error as Error).message}\n${JSON.stringify(input).slice(0, 2000)}`);
        }
        assert.equal(out['resourceType'], input.resourceType);
        const json = JSON.stringify(out);
        assert.doesNotMatch(json, /:null[,}]|:\{\}|:\[\]/, `${name}: empty value left in ${json.slice(0, 400)}`);
        if (name === 'safe-harbor')
          assert.ok(!json.includes('867-5309') && !json.includes('Okafor'), `${name} leaked on ${input.resourceType}: ${json.slice(0, 600)}`);
      }
    }),
    { numRuns: 150, seed: 20261201 },
  );
});

test('the built-in profiles in one walk (rule-walk.ts) give the output of the rule-by-rule engine: generated resources of every R4 type and a Synthea bundle', () => {
  const walked = new Deidentifier(profileConfig('safe-harbor', keys));
  const ruleByRule = new Deidentifier({ ...profileConfig('safe-harbor', keys), singlePass: false });
  assert.notEqual(
    compileWalk(profileConfig('safe-harbor', keys).rules, { quantityAgesAsAges: true }),
    undefined,
    'safe-harbor must be walkable, or this test compares the engine with itself',
  );
  const same = (input: Json) => {
    const a = structuredClone(input);
    const b = structuredClone(input);
    const withEntries = (r: Json) => [
      r,
      ...(Array.isArray(r['entry']) ? (r['entry'] as Json[]) : []).map((e) => e?.['resource']).filter((e) => e?.['resourceType']),
    ];
    walked.processResource(a, { names: walked.namesFor(withEntries(a)) });
    ruleByRule.processResource(b, { names: ruleByRule.namesFor(withEntries(b)) });
    assert.deepEqual(a, b, `differs on ${input['resourceType']}: ${JSON.stringify(input).slice(0, 1500)}`);
  };
  same(JSON.parse(readFileSync(new URL('./fixtures/synthea-carolee-trimmed.json', import.meta.url), 'utf8')) as Json);
  fc.assert(
    fc.property(resource, (input) => same(input)),
    { numRuns: 150, seed: 20261202 },
  );
});

test('a rule the walk cannot apply alone (a where that is not a simple test, substitute, dateShift) keeps the rule-by-rule engine', () => {
  const rules = (path: string, method: string) =>
    parseConfig({
      fhirVersion: 'R4',
      fhirPathRules: [{ path, method, ...(method === 'substitute' ? { replaceWith: 'x' } : {}) }],
      parameters: { dateShiftKey: 'k', cryptoHashKey: 'k' },
    }).rules;
  assert.equal(compileWalk(rules("nodesByType('HumanName').where(given.count() > 1)", 'redact'), { quantityAgesAsAges: false }), undefined);
  assert.equal(compileWalk(rules("nodesByName('given')", 'redact'), { quantityAgesAsAges: false }), undefined);
  assert.equal(compileWalk(rules("nodesByType('date')", 'dateShift'), { quantityAgesAsAges: false }), undefined);
  assert.equal(compileWalk(rules('Patient.name', 'substitute'), { quantityAgesAsAges: false }), undefined);
  assert.notEqual(
    compileWalk(rules("nodesByType('Attachment').where(contentType.exists() and contentType.startsWith('image')).data", 'redact'), {
      quantityAgesAsAges: false,
    }),
    undefined,
  );
});
