import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Deidentifier, dateShiftOffset, findPhi, profileConfig, scrubText } from '../src/index.ts';
import { allText } from './helpers.ts';

// Each test is a leak found on hand-made probe records (issue: "De-identification that holds"),
// named after it; each fails on the engine as it was before the fix.
type Json = Record<string, any>;
const keys = { cryptoHashKey: 'leak-hash-key', dateShiftKey: 'leak-shift-key' };
const safeHarbor = new Deidentifier(profileConfig('safe-harbor', keys));
const research = new Deidentifier(profileConfig('research', keys));

function run(engine: Deidentifier, resource: Json, people: Json[] = [resource]): Json {
  return engine.processResource(resource, { names: engine.namesFor(people) }) as Json;
}
const text = (value: unknown) => allText(value).join('\n');

test('leak: primitive extensions (_birthDate birth time, _gender string with a name, phone and SSN) are processed', () => {
  for (const engine of [safeHarbor, research]) {
    const patient: Json = {
      resourceType: 'Patient',
      id: 'p1',
      name: [{ family: 'Okafor', given: ['Chidi'] }],
      gender: 'male',
      birthDate: '1980-04-05',
      _birthDate: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1980-04-05T13:14:15+01:00' }] },
      _gender: { extension: [{ url: 'http://example.org/note', valueString: 'told by Chidi Okafor, 555-867-5309, SSN 123-45-6789' }] },
    };
    const out = text(run(engine, patient));
    for (const leaked of ['13:14:15', '1980-04-05T', 'Okafor', 'Chidi', '867-5309', '123-45-6789']) assert.ok(!out.includes(leaked), `${leaked} survived`);
  }
});

test('leak: url and uri values (valueUrl, valueUri) are removed; Coding.system stays', () => {
  const patient: Json = {
    resourceType: 'Patient',
    id: 'p2',
    extension: [
      { url: 'http://example.org/homepage', valueUrl: 'https://chidi-okafor.example.com/me' },
      { url: 'http://example.org/profile', valueUri: 'http://social.example.org/u/chidi' },
    ],
    maritalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M' }] },
  };
  const out = run(safeHarbor, patient);
  assert.ok(!text(out).includes('chidi'), text(out));
  assert.equal(out['maritalStatus']['coding'][0]['system'], 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus');
});

test('leak: DICOM study, series and instance UIDs (ImagingStudy.series.uid) are not released', () => {
  const study: Json = {
    resourceType: 'ImagingStudy',
    id: 's1',
    status: 'available',
    subject: { reference: 'Patient/p1' },
    series: [
      {
        uid: '1.2.840.99999.1.1.12345',
        modality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'CT' },
        instance: [{ uid: '1.2.840.99999.1.1.12345.1', sopClass: { code: '1.2.840.10008.5.1.4.1.1.2' } }],
      },
    ],
  };
  for (const engine of [safeHarbor, research]) {
    const out = text(run(engine, structuredClone(study)));
    assert.ok(!out.includes('1.2.840.99999'), out);
    assert.ok(out.includes('1.2.840.10008.5.1.4.1.1.2'), 'the SOP class code is terminology and stays');
  }
});

test('leak: an age of 95 as valueQuantity with unit a is removed; an age of 45 stays', () => {
  const observation = (value: number): Json => ({
    resourceType: 'Observation',
    id: 'o',
    status: 'final',
    code: { text: 'Age' },
    valueQuantity: { value, unit: 'a', system: 'http://unitsofmeasure.org', code: 'a' },
  });
  assert.equal(run(safeHarbor, observation(95))['valueQuantity']?.['value'], undefined);
  assert.equal(run(safeHarbor, observation(45))['valueQuantity']['value'], 45);
  assert.equal(run(research, observation(95))['valueQuantity']?.['value'], undefined);
});

test('leak: separator-less SSNs and phones, URLs without scheme, Medicare numbers, VINs and licence plates in text', () => {
  const cases: [string, string][] = [
    ['SSN 123456789 on file', '123456789'],
    ['call 5558675309 tomorrow', '5558675309'],
    ['see chidi-okafor.example.com/about for more', 'chidi-okafor.example.com'],
    ['Medicare 1EG4-TE5-MK73 active', '1EG4-TE5-MK73'],
    ['Medicare 1EG4TE5MK73 active', '1EG4TE5MK73'],
    ['car VIN 1HGCM82633A004352 towed', '1HGCM82633A004352'],
    ['licence plate 7ABC123 seen', '7ABC123'],
    ['license plate: ABC-1234', 'ABC-1234'],
  ];
  for (const [sentence, identifier] of cases) assert.ok(!scrubText(sentence).text.includes(identifier), `${identifier} survived: ${scrubText(sentence).text}`);
  assert.match(scrubText('licence plate 7ABC123 seen').text, /^licence plate \[ID\] seen$/);
});

test('leak: dates before a full stop, 2019/03/04, Apr 26, 26th of April 1978, and May 5, 1978 as a date not a name', () => {
  const names = safeHarbor.namesFor([]);
  const cases: [string, string][] = [
    ['Seen on 03/05/2019.', 'Seen on [DATE].'],
    ['Biopsy 2019/03/04 benign', 'Biopsy [DATE] benign'],
    ['follow-up Apr 26 at clinic', 'follow-up [DATE] at clinic'],
    ['born on the 26th of April 1978 in town', 'born on the [DATE] in town'],
    ['born May 5, 1978 at home', 'born [DATE] at home'],
  ];
  for (const [sentence, expected] of cases) assert.equal(scrubText(sentence, names).text, expected);
  assert.equal(scrubText('symptoms may improve in march', names).text, 'symptoms may improve in march');
});

test("leak: the record's own addresses, cities and ZIPs are found in its text (streets the suffix list lacks too)", () => {
  const patient: Json = {
    resourceType: 'Patient',
    id: 'p3',
    name: [{ family: 'Okafor', given: ['Chidi'] }],
    address: [{ line: ['17 Wattle Grove Parade'], city: 'Wagga Wagga', postalCode: '26501' }],
    text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Lives at 17 Wattle Grove Parade, Wagga Wagga 26501 with family.</div>' },
  };
  const out = run(safeHarbor, patient);
  const div = out['text']['div'] as string;
  for (const leaked of ['Wattle', 'Wagga', '26501']) assert.ok(!div.includes(leaked), `${leaked} survived: ${div}`);
  assert.match(div, /with family/);
  for (const street of ['12 Maple Run', '4 Harbour Route', '88 Elm Pathway', '9 Cedar Park'])
    assert.deepEqual(
      findPhi(`at ${street} today`).map((f) => f.kind),
      ['ADDRESS'],
      street,
    );
});

test('leak: built-in gazetteer finds cities in no resource; English words that are also names or places survive', () => {
  const names = safeHarbor.namesFor([]);
  // Both are in the name list too, which runs first: what matters is that they go.
  assert.match(scrubText('Moved from Boston to Sacramento last year.', names).text, /^Moved from \[(ADDRESS|NAME)\] to \[(ADDRESS|NAME)\] last year\.$/);
  assert.equal(scrubText('Moved from Wagga Wagga to Toowoomba.', names).text, 'Moved from [ADDRESS] to [ADDRESS].');
  assert.equal(scrubText('Seen with her son Jaxon and Mrs Ngata.', names).text, 'Seen with her son [NAME] and Mrs [NAME].');
  const clinical = 'Patient is Mobile, Normal gait. Will review. Hope for Grant of Mercy Care. Primary Care Practitioner. Major depression disorder.';
  assert.equal(scrubText(clinical, names).text, clinical);
});

test('leak: Coding.display and CodeableConcept.text (terminology) are left alone', () => {
  const encounter: Json = {
    resourceType: 'Encounter',
    id: 'e1',
    status: 'finished',
    class: { code: 'AMB' },
    type: [{ coding: [{ system: 'http://snomed.info/sct', code: '185345009', display: 'Encounter for symptom' }], text: 'Primary Care Practitioner visit' }],
    reasonCode: [
      { coding: [{ system: 'http://snomed.info/sct', code: '370143000', display: 'Major depression disorder' }], text: 'Major depression disorder' },
    ],
    participant: [{ individual: { reference: 'Practitioner/x', display: 'Dr. Chidi Okafor' } }],
  };
  const out = run(safeHarbor, encounter, [{ resourceType: 'Practitioner', name: [{ family: 'Okafor', given: ['Chidi'] }] }]);
  assert.equal(out['type'][0]['text'], 'Primary Care Practitioner visit');
  assert.equal(out['reasonCode'][0]['coding'][0]['display'], 'Major depression disorder');
  assert.ok(!text(out).includes('Okafor'));
});

test('leak: Bundle links stay valid: # references match contained ids, fullUrls are UUIDs matching references, request.url keeps its type', () => {
  const uuid = '6f1b7c3e-2a4d-4e5f-9a8b-0c1d2e3f4a5b';
  const bundle: Json = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: `urn:uuid:${uuid}`,
        resource: {
          resourceType: 'Patient',
          id: uuid,
          name: [{ family: 'Okafor' }],
          contained: [{ resourceType: 'Organization', id: 'org1', name: 'Clinic' }],
          managingOrganization: { reference: '#org1' },
        },
        request: { method: 'POST', url: 'Patient' },
      },
      {
        fullUrl: 'urn:uuid:0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
        resource: {
          resourceType: 'Observation',
          id: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
          status: 'final',
          code: { text: 'x' },
          subject: { reference: `urn:uuid:${uuid}` },
        },
        request: { method: 'PUT', url: `Observation/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d` },
      },
      { resource: { resourceType: 'Patient', id: 'q' }, request: { method: 'POST', url: 'Patient?identifier=http://hospital.org/mrn|12345' } },
    ],
  };
  for (const engine of [safeHarbor, research]) {
    const out = run(engine, structuredClone(bundle), [bundle['entry'][0]['resource']]);
    const [first, second, third] = out['entry'];
    const uuidForm = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    assert.match(first['fullUrl'], uuidForm);
    assert.equal(first['fullUrl'], `urn:uuid:${first['resource']['id']}`);
    assert.equal(second['resource']['subject']['reference'], first['fullUrl']);
    assert.equal(first['resource']['managingOrganization']['reference'], `#${first['resource']['contained'][0]['id']}`);
    assert.equal(first['request']['url'], 'Patient');
    assert.equal(second['request']['url'], `Observation/${second['resource']['id']}`);
    assert.equal(third['request']['url'], 'Patient', 'the search query (an MRN) is dropped');
  }
});

test('leak: narrative XHTML stays valid (xmlns kept, text scrubbed, attributes dropped)', () => {
  const patient: Json = {
    resourceType: 'Patient',
    id: 'p4',
    name: [{ family: 'Okafor', given: ['Chidi'] }],
    text: {
      status: 'generated',
      div: '<div xmlns="http://www.w3.org/1999/xhtml"><p title="Chidi Okafor">Chidi Okafor &amp; family, born 1980-04-05</p><a href="https://x.example.com/chidi">home</a><br/></div>',
    },
  };
  const div = run(safeHarbor, patient)['text']['div'] as string;
  assert.equal(div, '<div xmlns="http://www.w3.org/1999/xhtml"><p>[NAME] [NAME] &amp; family, born [DATE]</p><a>home</a><br/></div>');
});

test('leak: a Patient photo with a contentType does not crash either profile, and the photo goes', () => {
  const patient: Json = {
    resourceType: 'Patient',
    id: 'p5',
    photo: [{ contentType: 'image/jpeg', data: Buffer.from('not really a jpeg').toString('base64'), title: 'Chidi at the beach' }],
  };
  for (const engine of [safeHarbor, research]) assert.equal(run(engine, structuredClone(patient))['photo'], undefined);
});

test('leak: a research date shift is never 0 (keyed HMAC offsets over many patients)', () => {
  const seen = new Set<number>();
  for (let i = 0; i < 5000; i++) {
    const offset = dateShiftOffset(`patient-${i}`, 'some-key', 'hmac');
    assert.notEqual(offset, 0);
    assert.ok(offset >= -50 && offset <= 50);
    seen.add(offset);
  }
  assert.equal(seen.size, 100, 'every non-zero offset in [-50, 50] occurs');
});

test('hostile: an element part of a Quantity without the Quantity (`_valueQuantity` alone) does not crash either profile', () => {
  const observation = {
    resourceType: 'Observation',
    id: 'o1',
    status: 'final',
    code: { text: 'age' },
    _valueQuantity: { extension: [{ url: 'http://example.org/x', valueString: 'Chidi Okafor' }] },
  };
  for (const profile of ['safe-harbor', 'research'] as const) {
    const engine = new Deidentifier(profileConfig(profile, { cryptoHashKey: 'k', dateShiftKey: 's' }));
    const out = JSON.stringify(engine.processResource(structuredClone(observation), { names: engine.namesFor([]) }));
    assert.ok(!out.includes('Okafor'), `${profile}: ${out}`);
  }
});
