import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cryptoHash, Deidentifier, parseConfig, parseConfigText, type ResourceContext } from '../src/index.ts';

type Json = Record<string, any>;
/** A Deidentifier whose output is typed loosely, for terse assertions. */
function engine(rules: object[], parameters: object = {}, processingErrors = 'raise') {
  const deidentifier = new Deidentifier(parseConfig({ fhirVersion: 'R4', processingErrors, fhirPathRules: rules, parameters }));
  return { processResource: (resource: Json, context?: ResourceContext): Json => deidentifier.processResource(resource, context) };
}
const labels = (r: Json) => (r['meta']?.['security'] ?? []).map((s: Json) => s['code']);

function patient(): Json {
  return {
    resourceType: 'Patient',
    id: 'example',
    name: [{ family: 'Chalmers', given: ['Peter', 'James'] }],
    telecom: [{ system: 'phone', value: '555-123-4567' }],
    gender: 'male',
    birthDate: '1974-12-25',
    deceasedDateTime: '2015-02-14T13:42:00+10:00',
    address: [{ line: ['534 Erewhon St'], city: 'PleasantVille', state: 'Vic', postalCode: '38012' }],
    contained: [{ resourceType: 'RelatedPerson', id: 'rp', name: [{ family: 'Chalmers', given: ['Jim'] }], birthDate: '1970-01-01' }],
  };
}

test('config errors name the file, the rule and the position', () => {
  assert.throws(() => parseConfigText('{"fhirPathRules": [', 'my.json'), /my\.json: not valid JSON/);
  assert.throws(
    () => parseConfig({ fhirPathRules: [{ path: 'Patient.name', method: 'zap' }] }, 'c.json'),
    /c\.json: fhirPathRules\[0\] \(Patient\.name\): unknown method "zap"/,
  );
  assert.throws(
    () =>
      parseConfig({
        fhirPathRules: [
          { path: 'Patient.name', method: 'keep' },
          { path: 'Patient.(', method: 'redact' },
        ],
      }),
    /fhirPathRules\[1\].*invalid FHIRPath.*column/,
  );
  assert.throws(() => parseConfig({ parameters: { dateShiftKeyy: 'x' } }), /unknown parameter "dateShiftKeyy"/);
  assert.throws(() => parseConfig({ parameters: { enablePartialDatesForRedact: 'yes' } }), /must be a boolean/);
  assert.throws(() => parseConfig({ fhirPathRules: [{ path: 'Patient.name', method: 'redact', span: 3 }] }), /unknown key "span"/);
  assert.throws(() => parseConfig({ fhirVersion: 'STU3' }), { code: 'UNSUPPORTED' });
  assert.throws(() => parseConfig({ fhirPathRules: [{ path: 'x', method: 'substitute' }] }), /needs "replaceWith"/);
});

test('the first matching rule wins; redact removes and tags; keep protects', () => {
  const p = engine([
    { path: 'Patient.name.family', method: 'keep' },
    { path: 'Patient.name', method: 'redact' },
    { path: 'Patient.telecom', method: 'redact' },
  ]).processResource(patient());
  assert.deepEqual(p['name'], [{ family: 'Chalmers' }]);
  assert.equal(p['telecom'], undefined);
  assert.deepEqual(labels(p), ['REDACTED']);
  // the contained RelatedPerson is a resource of its own: Patient.* rules do not reach it
  assert.deepEqual(p['contained'][0]['name'], [{ family: 'Chalmers', given: ['Jim'] }]);
});

test('partial redaction: year of dates, 3-digit ZIP, 000 for restricted areas, ages over 89', () => {
  const params = {
    enablePartialDatesForRedact: true,
    enablePartialZipCodesForRedact: true,
    enablePartialAgesForRedact: true,
    restrictedZipCodeTabulationAreas: ['036'],
  };
  const rules = [
    { path: "nodesByType('date') | nodesByType('dateTime')", method: 'redact' },
    { path: "nodesByType('Address').postalCode", method: 'redact' },
    { path: "nodesByType('Age')", method: 'redact' },
  ];
  const p = engine(rules, params).processResource(patient());
  assert.equal(p['birthDate'], '1974');
  assert.equal(p['deceasedDateTime'], '2015');
  assert.equal(p['address'][0]['postalCode'], '38000');
  assert.ok(labels(p).includes('ABSTRED'));
  const restricted = engine(rules, params).processResource({ ...patient(), address: [{ postalCode: '03601-1234' }] });
  assert.equal(restricted['address'][0]['postalCode'], '00000-0000');
  const obs = (age: number): Json => ({
    resourceType: 'Condition',
    id: 'c',
    onsetAge: { value: age, unit: 'years', system: 'http://unitsofmeasure.org', code: 'a' },
  });
  assert.equal(engine(rules, params).processResource(obs(89))['onsetAge']['value'], 89);
  assert.equal(engine(rules, params).processResource(obs(90))['onsetAge'], undefined);
  const old = engine(rules, params).processResource({ ...patient(), birthDate: '1920-03-04' });
  assert.equal(old['birthDate'], undefined);
});

test('dateShift uses the resource id (reference vector) and the patient, file and folder scopes', () => {
  const shifted = engine([{ path: "nodesByType('date') | nodesByType('dateTime')", method: 'dateShift' }], { dateShiftKey: '123' }).processResource({
    ...patient(),
    birthDate: '2000-01-01',
  });
  assert.equal(shifted['birthDate'], '2000-02-11');
  assert.equal(shifted['deceasedDateTime'], '2015-03-27T00:00:00+10:00');
  assert.ok(labels(shifted).includes('PERTURBED'));
  const byPatient = engine([{ path: "nodesByType('dateTime')", method: 'dateShift' }], {
    dateShiftKey: 'k',
    dateShiftScope: 'patient',
    dateShiftAlgorithm: 'hmac',
  });
  const a = byPatient.processResource({ resourceType: 'Observation', id: 'o1', subject: { reference: 'Patient/p1' }, effectiveDateTime: '2020-01-10' });
  const b = byPatient.processResource({ resourceType: 'Encounter', id: 'e9', subject: { reference: 'Patient/p1' }, period: { start: '2020-01-20' } });
  const days = (s: string) => Date.parse(s) / 86_400_000;
  assert.equal(days(b['period']['start']) - days(a['effectiveDateTime']), 10, 'intervals survive per-patient shifting');
  const byFile = engine([{ path: "nodesByType('date')", method: 'dateShift' }], { dateShiftKey: 'k', dateShiftScope: 'file' });
  const f1 = byFile.processResource({ resourceType: 'Patient', id: 'x', birthDate: '2000-01-01' }, { scopeName: 'a.json' });
  const f2 = byFile.processResource({ resourceType: 'Patient', id: 'y', birthDate: '2000-01-01' }, { scopeName: 'a.json' });
  assert.equal(f1['birthDate'], f2['birthDate']);
});

test('cryptoHash hashes ids and the id part of references consistently', () => {
  const r = engine(
    [
      { path: 'Resource.id', method: 'cryptoHash' },
      { path: "nodesByType('Reference').reference", method: 'cryptoHash' },
    ],
    { cryptoHashKey: 'k' },
  ).processResource({ resourceType: 'Observation', id: 'p1', subject: { reference: 'Patient/p1' } });
  assert.equal(r['id'], cryptoHash('p1', 'k'));
  assert.equal(r['subject']['reference'], `Patient/${cryptoHash('p1', 'k')}`);
  assert.deepEqual(labels(r), ['CRYTOHASH']);
});

test('substitute (value and JSON fragment), generalize (cases, otherValues), perturb and encrypt', () => {
  const rules = [
    { path: 'Patient.name', method: 'substitute', replaceWith: { family: 'Anonymous' } },
    { path: 'Patient.gender', method: 'substitute', replaceWith: 'unknown' },
    { path: 'Patient.multipleBirthInteger', method: 'generalize', cases: { '$this < 2': '1', '$this >= 2': '2' } },
    { path: 'Patient.address.city', method: 'encrypt' },
    { path: "nodesByType('Address').state", method: 'generalize', cases: { "$this = 'Vic'": "'AU'" }, otherValues: 'redact' },
  ];
  const p = engine(rules, { encryptKey: 'e' }).processResource({ ...patient(), multipleBirthInteger: 3 });
  assert.deepEqual(p['name'], [{ family: 'Anonymous' }]);
  assert.equal(p['gender'], 'unknown');
  assert.equal(p['multipleBirthInteger'], 2);
  assert.equal(p['address'][0]['state'], 'AU');
  assert.notEqual(p['address'][0]['city'], 'PleasantVille');
  for (const code of ['SUBSTITUTED', 'GENERALIZED', 'ENCRYPT']) assert.ok(labels(p).includes(code), code);
  const obs = engine([{ path: 'Observation.value.value', method: 'perturb', span: 2, roundTo: 0 }]).processResource({
    resourceType: 'Observation',
    id: 'o',
    valueQuantity: { value: 100, unit: 'mg' },
  });
  assert.ok(Math.abs(obs['valueQuantity']['value'] - 100) <= 1);
  assert.ok(labels(obs).includes('PERTURBED'));
});

test('nodesByName finds elements by name, including choice elements', () => {
  const r = engine([
    { path: "nodesByName('deceased')", method: 'redact' },
    { path: "nodesByName('given')", method: 'redact' },
  ]).processResource(patient());
  assert.equal(r['deceasedDateTime'], undefined);
  assert.deepEqual(r['name'], [{ family: 'Chalmers' }]);
});

test('Bundles: entries and contained resources are processed; Bundle fullUrls hashed whole, as the reference tool does', () => {
  const bundle: Json = { resourceType: 'Bundle', type: 'collection', entry: [{ fullUrl: 'urn:uuid:example', resource: patient() }] };
  const out = engine(
    [
      { path: 'Bundle.entry.fullUrl', method: 'cryptoHash' },
      { path: "nodesByType('HumanName')", method: 'redact' },
    ],
    { cryptoHashKey: 'k' },
  ).processResource(bundle);
  // fullUrl is a uri, not a Reference: the reference tool hashes all of it.
  assert.equal(out['entry'][0]['fullUrl'], cryptoHash('urn:uuid:example', 'k'));
  assert.equal(out['entry'][0]['resource']['name'], undefined);
  assert.equal(out['entry'][0]['resource']['contained'][0]['name'], undefined);
});

test('processingErrors: skip turns a failing resource into an empty REDACTED resource; raise names it', () => {
  const rules = [{ path: "Patient.birthDate.toDate() + 'x'", method: 'redact' }];
  assert.throws(() => engine(rules).processResource(patient()), /^MalformedInputError: Patient\/example: rule 0 \(Patient\.birthDate/);
  assert.throws(
    () => engine([{ path: 'Patient.gender', method: 'encrypt' }]).processResource(patient()),
    /Patient\/example: the encrypt method needs the encryptKey parameter/,
  );
  const skipped = engine(rules, {}, 'skip').processResource(patient());
  // The reference tool's empty element: resourceType and the REDACTED label only (the id goes too).
  assert.deepEqual(Object.keys(skipped).sort(), ['meta', 'resourceType']);
  assert.deepEqual(labels(skipped), ['REDACTED']);
  assert.throws(() => engine([]).processResource({ id: 'x' } as Json), { code: 'MALFORMED' });
});

test('redact-only configurations are idempotent', () => {
  const e = engine(
    [
      { path: "nodesByType('date')", method: 'redact' },
      { path: "nodesByType('HumanName')", method: 'redact' },
      { path: "nodesByType('Address').postalCode", method: 'redact' },
    ],
    { enablePartialDatesForRedact: true, enablePartialZipCodesForRedact: true },
  );
  const once = e.processResource(patient());
  const twice = e.processResource(structuredClone(once));
  assert.deepEqual(twice, once);
});

test('a top-level union in a rule path does not collapse equal values (FHIRPath | deduplicates by value)', () => {
  const condition = { resourceType: 'Condition', id: 'c', onsetDateTime: '2001-02-03', recordedDate: '2001-02-03' };
  for (const path of ['Condition.onset.first() | Condition.recordedDate', "nodesByType('dateTime') | Condition.recordedDate"]) {
    const out = engine([{ path, method: 'redact' }]).processResource(structuredClone(condition));
    assert.equal(out['onsetDateTime'], undefined, path);
    assert.equal(out['recordedDate'], undefined, path);
  }
});
