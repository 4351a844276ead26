import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Deidentifier, profileConfig, scrubText, findPhi, nameMatcher, termMatcher } from '../src/index.ts';
import { allText, FIXTURE_BUNDLE, hasSharedData, patientBundles, patientIdentifiers, readJson, SKIP_NO_DATA } from './helpers.ts';

type Json = Record<string, any>;
const keys = { cryptoHashKey: 'test-hash-key', dateShiftKey: 'test-shift-key' };

function assertNoIdentifierSurvives(path: string): void {
  const bundle = readJson(path) as Json;
  const resources = bundle['entry'].map((e: Json) => e['resource']);
  const patients = resources.filter((r: Json) => r['resourceType'] === 'Patient');
  const identifiers = patients.flatMap(patientIdentifiers);
  const engine = new Deidentifier(profileConfig('safe-harbor', keys));
  engine.processResource(bundle, { names: engine.namesFor(resources) });
  const text = allText(bundle).join('\n');
  for (const identifier of identifiers) assert.ok(!text.includes(identifier), `${identifier} survived in ${path}`);
}

test('safe-harbor: no identifier of the Patient survives anywhere, including decoded notes (fixture)', () => {
  assertNoIdentifierSurvives(FIXTURE_BUNDLE);
});

test('safe-harbor: no identifier survives in any of the 11 Synthea bundles', { skip: SKIP_NO_DATA }, () => {
  for (const path of patientBundles()) assertNoIdentifierSurvives(path);
});

test('research profile keeps codes and values, shifts dates per patient and pseudonymises ids', () => {
  const bundle = readJson(FIXTURE_BUNDLE) as Json;
  const before = structuredClone(bundle);
  const engine = new Deidentifier(profileConfig('research', keys));
  const resources = bundle['entry'].map((e: Json) => e['resource']);
  engine.processResource(bundle, { names: engine.namesFor(resources) });
  const obsBefore = before['entry'].find((e: Json) => e.resource.resourceType === 'Observation').resource;
  const obsAfter = bundle['entry'].find((e: Json) => e.resource.resourceType === 'Observation').resource;
  assert.deepEqual(obsAfter.code, obsBefore.code);
  assert.deepEqual(obsAfter.valueQuantity ?? null, obsBefore.valueQuantity ?? null);
  assert.notEqual(obsAfter.id, obsBefore.id);
  const encounters = (b: Json) =>
    b['entry'].filter((e: Json) => e.resource.resourceType === 'Encounter').map((e: Json) => Date.parse(e.resource.period.start.slice(0, 10)));
  const [e0, e1] = encounters(before);
  const [s0, s1] = encounters(bundle);
  assert.equal(s1! - s0!, e1! - e0!, "intervals between a patient's events survive");
  assert.notEqual(s0, e0);
});

test('free text: phone, e-mail, SSN, dates, URLs, IPs, ZIPs, addresses, MRNs and old ages are found', () => {
  assert.deepEqual(
    findPhi('take 12/0.015 mL and 0.15/30 tabs').map((f) => f.kind),
    [],
  );
  assert.deepEqual(
    findPhi('on 3-4-2019 or 03.04.19').map((f) => f.kind),
    ['DATE', 'DATE'],
  );
  const note =
    'Seen 03/04/2019 and on March 5, 2019. Call 555-123-4567 or mail jd@example.org. SSN 123-45-6789. MRN: A123456. Lives at 12 Main Street, 02138. See https://x.org/a from 10.0.0.1. A 93 year-old man; a 45 year-old woman.';
  const kinds = findPhi(note).map((f) => f.kind);
  for (const kind of ['DATE', 'PHONE', 'EMAIL', 'SSN', 'ID', 'ADDRESS', 'ZIP', 'URL', 'IP', 'AGE']) assert.ok(kinds.includes(kind as never), kind);
  assert.match(scrubText(note).text, /a 45 year-old woman/);
  assert.doesNotMatch(scrubText(note).text, /93|555-123|jd@|123-45/);
});

test(
  "free text recall on the Synthea notes, labelled from each bundle's Patient, is at least 0.99 for names and dates; date precision too",
  { skip: hasSharedData ? false : SKIP_NO_DATA },
  () => {
    const engine = new Deidentifier(profileConfig('safe-harbor', keys));
    const counts = { NAME: { found: 0, total: 0 }, DATE: { found: 0, total: 0 } };
    const dateFindings = { correct: 0, total: 0 };
    for (const path of patientBundles()) {
      const resources = (readJson(path) as Json)['entry'].map((e: Json) => e['resource']);
      const patient = resources.find((r: Json) => r.resourceType === 'Patient');
      const names = patient.name.flatMap((n: Json) => [...(n.given ?? []), n.family]);
      const matcher = engine.namesFor(resources);
      for (const doc of resources.filter((r: Json) => r.resourceType === 'DocumentReference')) {
        const text = Buffer.from(doc.content[0].attachment.data, 'base64').toString('utf8');
        const findings = findPhi(text, matcher);
        for (const f of findings.filter((x) => x.kind === 'DATE')) {
          dateFindings.total++;
          if (/^\d{4}-\d{2}-\d{2}$/.test(text.slice(f.start, f.end))) dateFindings.correct++;
        }
        const covered = (start: number, end: number, kind: string) => findings.some((f) => f.kind === kind && f.start <= start && f.end >= end);
        for (const name of names)
          for (const m of text.matchAll(new RegExp(`\\b${name}\\b`, 'g'))) {
            counts.NAME.total++;
            if (covered(m.index, m.index + name.length, 'NAME')) counts.NAME.found++;
          }
        for (const m of text.matchAll(/\b\d{4}-\d{2}-\d{2}\b/g)) {
          counts.DATE.total++;
          if (covered(m.index, m.index + 10, 'DATE')) counts.DATE.found++;
        }
      }
    }
    assert.ok(counts.NAME.total > 0 && counts.DATE.total > 0);
    assert.ok(counts.NAME.found / counts.NAME.total >= 0.99, JSON.stringify(counts));
    assert.ok(counts.DATE.found / counts.DATE.total >= 0.99, JSON.stringify(counts));
    // Every date finding in these notes should be a real date (dosages like 12/0.015 are not).
    assert.ok(dateFindings.correct / dateFindings.total >= 0.99, JSON.stringify(dateFindings));
  },
);

test('record names and places are found exactly where their whole-word pattern matches (case folding, letters and digits of any script at the edges)', () => {
  // The scan checks the word boundaries apart from the terms (free-text.ts termSpans); the pattern's own matchAll is the oracle.
  // No ASCII digit, @ or dot: no other detector can find anything, so every finding is the pattern's.
  const char = fc.constantFrom('a', 'A', 'n', 'N', 's', 'S', 'k', 'K', 'ſ', '\u212a', 'ß', 'é', 'É', 'ı', 'İ', '٣', 'Ⅻ', '𝐀', '😀', ' ', '  ', '-', "'", '\n');
  const word = fc.array(char, { minLength: 1, maxLength: 6 }).map((c) => c.join(''));
  fc.assert(
    fc.property(fc.array(word, { minLength: 1, maxLength: 5 }), fc.array(fc.oneof(word, char), { maxLength: 12 }), fc.boolean(), (terms, parts, asPlace) => {
      const text = parts.join('');
      const matcher = asPlace ? termMatcher('ADDRESS', terms) : nameMatcher(terms);
      if (!matcher) return;
      const pattern = matcher instanceof RegExp ? matcher : matcher.pattern;
      const expected = [...text.matchAll(pattern)].map((m) => [m.index, m.index + m[0].length]);
      assert.deepEqual(
        findPhi(text, [matcher], 'terminology').map((f) => [f.start, f.end]),
        expected,
      );
    }),
    { numRuns: 3000 },
  );
});

test('the built-in first-name dictionary finds names that are in no resource, case-sensitively', () => {
  const engine = new Deidentifier(profileConfig('safe-harbor', keys));
  const names = engine.namesFor([]);
  assert.equal(scrubText('Seen with her daughter Margaret today.', names).text, 'Seen with her daughter [NAME] today.');
  assert.equal(scrubText('symptoms may improve', names).text, 'symptoms may improve');
  assert.equal(scrubText('Seen with her daughter Margaret today.', []).text, 'Seen with her daughter Margaret today.');
});
