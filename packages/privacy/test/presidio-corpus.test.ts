import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Deidentifier, profileConfig, scrubText } from '../src/index.ts';
import { byTemplateHalf, presidioSentences, readPresidioSamples, safeHarborKind, scorePhi } from './phi-eval.ts';

// A labelled corpus made by others: 590 samples of Microsoft presidio-research's synth_dataset_v2.json
// (fixtures/README.md). Its templates are split by number: the detectors were tuned on the even ones
// (fit half); the odd ones (held-out half, 297 samples) were not looked at while tuning.
const samples = readPresidioSamples();
const keys = { cryptoHashKey: 'a', dateShiftKey: 'b' };

test('presidio corpus: the transcription is faithful (every span is the text at its offsets) and both halves are used', () => {
  assert.equal(samples.length, 590);
  assert.deepEqual(
    samples.map((s) => s.i),
    samples.map((_, i) => i),
  );
  for (const s of samples) for (const span of s.spans) assert.equal(s.text.slice(span.start, span.end), span.value, `sample ${s.i} ${span.type}`);
  const { fit, heldOut } = byTemplateHalf(presidioSentences(samples));
  assert.equal(fit.length + heldOut.length, samples.length);
  assert.ok(heldOut.length >= 290);
});

test('presidio corpus: the Safe Harbor mapping keeps years, weekdays, ages up to 89, countries and organisations out of scoring', () => {
  assert.equal(safeHarborKind('DATE_TIME', '1977'), undefined);
  assert.equal(safeHarborKind('DATE_TIME', 'Tuesday'), undefined);
  assert.equal(safeHarborKind('DATE_TIME', '2/8/1935'), 'DATE');
  assert.equal(safeHarborKind('AGE', '79'), undefined);
  assert.equal(safeHarborKind('AGE', '95'), 'AGE');
  assert.equal(safeHarborKind('GPE', 'Cyprus (Greek)'), undefined);
  assert.equal(safeHarborKind('GPE', 'United Kingdom'), undefined);
  assert.equal(safeHarborKind('GPE', 'Kenosha'), 'ADDRESS');
  assert.equal(safeHarborKind('ORGANIZATION', 'Persint'), undefined);
  assert.equal(safeHarborKind('CREDIT_CARD', '4454794511390933'), 'ID');
});

// The figures of docs/privacy.md ("A corpus made by others"), from `node --import tsx bench/privacy.ts --free-text`.
test("presidio corpus, held-out half: recall >= 0.95 of identifier spans, >= 0.95 of ordinary words kept, precision >= 0.90, both profiles alike, without the record's own dictionary", () => {
  const { heldOut } = byTemplateHalf(presidioSentences(samples));
  const scores = ['research', 'safe-harbor'].map((profile) => scorePhi(heldOut, new Deidentifier(profileConfig(profile as 'research', keys)).namesFor([])));
  assert.deepEqual(scores[0], scores[1]);
  const s = scores[0]!;
  const table = Object.entries(s.byKind)
    .map(([kind, k]) => `${kind} ${k.removed}/${k.spans}`)
    .join(', ');
  assert.ok(s.recall >= 0.95, `recall ${s.recall.toFixed(3)} (${table})`);
  assert.ok(s.words.kept / s.words.total >= 0.95, `words kept ${s.words.kept}/${s.words.total}`);
  assert.ok(s.precision >= 0.9, `precision ${s.precision.toFixed(3)}`);
  for (const kind of ['EMAIL', 'URL', 'IP', 'SSN', 'ID', 'DATE']) assert.equal(s.byKind[kind]!.removed, s.byKind[kind]!.spans, `${kind}: ${table}`);
});

test('shape detectors leave clinical text alone: drug brand names in the name list, doses, stages, honorifics', () => {
  const names = new Deidentifier(profileConfig('safe-harbor', keys)).namesFor([]);
  for (const clinical of [
    'Prescribed errin daily; camila was stopped. Continue levora.',
    'Type 2 diabetes mellitus, stage 3 chronic kidney disease; aspirin 81 mg daily for 30 days.',
    'Seen in clinic. Blood pressure 120/80. Follow up in 2 weeks.',
  ])
    assert.equal(scrubText(clinical, names).text, clinical);
  // A title is not grown into the name after "and" (the attack that turned "and Mrs Ngata" into two names).
  assert.equal(scrubText('Seen with Jaxon and Mrs Ngata.', names).text, 'Seen with [NAME] and Mrs [NAME].');
});

test('shape detectors find what no list has: names by shape and cue, streets written number-last, cities after a place word, international phones', () => {
  const names = new Deidentifier(profileConfig('safe-harbor', keys)).namesFor([]);
  assert.equal(scrubText('Referred by Dr. Wairimu Njoroge-Kamau.', names).text, 'Referred by Dr. [NAME].');
  assert.equal(scrubText('She lives at Tammsaare tee 47, Tartu.', names).text, 'She lives at [ADDRESS].');
  assert.equal(scrubText('Call +358 40 123 4567 or 0491 57 01 10.', names).text, 'Call [PHONE] or [PHONE].');
  assert.equal(scrubText('Moved here from Kuressaare last spring.', names).text, 'Moved here from [ADDRESS] last spring.');
  assert.equal(scrubText('Her daughter Ayodele Young visits.', names).text, 'Her daughter [NAME] visits.');
});
