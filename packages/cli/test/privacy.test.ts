import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from './run-cli.ts';

const FIXTURES = fileURLToPath(new URL('../../privacy/test/fixtures', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'medshare-privacy-'));

test('medshare deid --profile safe-harbor de-identifies a Bundle file', async () => {
  const out = join(dir, 'out.json');
  const result = await runCli(['deid', '--profile', 'safe-harbor', '--in', join(FIXTURES, 'synthea-carolee-trimmed.json'), '--out', out]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /de-identified 26 resources/);
  const text = readFileSync(out, 'utf8');
  assert.ok(!text.includes('Carolee951') && !text.includes('Sanford861'));
});

test('medshare deid streams NDJSON and processes folders', async () => {
  const folder = join(dir, 'in');
  mkdirSync(join(folder, 'sub'), { recursive: true });
  const lines = [
    { resourceType: 'Patient', id: 'p', name: [{ family: 'Zyx', given: ['Qwerty'] }], birthDate: '1980-05-06' },
    { resourceType: 'Observation', id: 'o', subject: { reference: 'Patient/p' }, note: [{ text: 'Qwerty Zyx called on 1999-01-02' }] },
  ];
  writeFileSync(join(folder, 'sub', 'data.ndjson'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  copyFileSync(join(FIXTURES, 'synthea-carolee-trimmed.json'), join(folder, 'bundle.json'));
  const result = await runCli(['deid', '--profile', 'safe-harbor', '--in', folder, '--out', join(dir, 'out')]);
  assert.equal(result.code, 0, result.stderr);
  const ndjson = readFileSync(join(dir, 'out', 'sub', 'data.ndjson'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(ndjson.length, 2);
  assert.equal(ndjson[0].birthDate, '1980');
  assert.equal(ndjson[1].note[0].text, '[NAME] [NAME] called on [DATE]');
});

test('medshare deid: bad config, unknown method and malformed input are one-line usage errors naming the file and rule', async () => {
  const config = join(dir, 'bad.json');
  writeFileSync(
    config,
    JSON.stringify({
      fhirPathRules: [
        { path: 'Patient.name', method: 'redact' },
        { path: 'Patient.(', method: 'redact' },
      ],
    }),
  );
  const bad = await runCli(['deid', '--config', config, '--in', join(FIXTURES, 'synthea-carolee-trimmed.json'), '--out', join(dir, 'x.json')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /bad\.json: fhirPathRules\[1\] \(Patient\.\(\): invalid FHIRPath/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /);
  const notJson = join(dir, 'broken.json');
  writeFileSync(notJson, '{"resourceType": ');
  const broken = await runCli(['deid', '--profile', 'research', '--in', notJson, '--out', join(dir, 'y.json')]);
  assert.equal(broken.code, 2);
  assert.match(broken.stderr, /broken\.json: not valid JSON/);
  const both = await runCli(['deid', '--in', notJson, '--out', join(dir, 'y.json')]);
  assert.equal(both.code, 2);
});

test('medshare anonymize writes a k-anonymous CSV, a JSON report and an SVG plot', async () => {
  const out = join(dir, 'anon.csv');
  const report = join(dir, 'report.json');
  const plot = join(dir, 'plot.svg');
  const result = await runCli([
    'anonymize',
    '--in',
    join(FIXTURES, 'adult_subset.csv'),
    '--qi',
    'age,sex,race,marital-status,education,native-country,workclass,salary-class',
    '--sensitive',
    'occupation',
    '--k',
    '10',
    '--l',
    '2',
    '--hierarchies',
    join(FIXTURES, 'adult-hierarchies'),
    '--max-suppression',
    '0.02',
    '--out',
    out,
    '--report',
    report,
    '--plot',
    plot,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const json = JSON.parse(readFileSync(report, 'utf8'));
  assert.equal(json.model.k, 10);
  assert.ok(json.after.highestProsecutorRisk <= 0.1);
  assert.ok(json.before.uniqueRecordShare > json.after.uniqueRecordShare);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 3017 - json.after.suppressedRecords);
  assert.match(readFileSync(plot, 'utf8'), /^<svg/);
  const badK = await runCli(['anonymize', '--in', join(FIXTURES, 'adult_subset.csv'), '--qi', 'age', '--k', 'zero', '--out', out]);
  assert.equal(badK.code, 2);
  const badQi = await runCli(['anonymize', '--in', join(FIXTURES, 'adult_subset.csv'), '--qi', 'height', '--k', '2', '--out', out]);
  assert.equal(badQi.code, 2);
  assert.match(badQi.stderr, /unknown column "height"/);
});

test('medshare anonymize builds its table from FHIR resources by FHIRPath columns', async () => {
  const columns = join(dir, 'columns.json');
  writeFileSync(
    columns,
    JSON.stringify({ resourceType: 'Observation', columns: { code: 'code.coding.code', year: 'effective.toString().substring(0,4)', status: 'status' } }),
  );
  const out = join(dir, 'obs.csv');
  const result = await runCli([
    'anonymize',
    '--in',
    join(FIXTURES, 'synthea-carolee-trimmed.json'),
    '--fhir-columns',
    columns,
    '--qi',
    'code,year',
    '--k',
    '2',
    '--out',
    out,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  assert.equal(lines[0], 'code,year,status');
  assert.equal(lines.length, 7);
  writeFileSync(columns, '{"resourceType": 3}');
  const bad = await runCli([
    'anonymize',
    '--in',
    join(FIXTURES, 'synthea-carolee-trimmed.json'),
    '--fhir-columns',
    columns,
    '--qi',
    'code',
    '--k',
    '2',
    '--out',
    out,
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /columns\.json: expected/);
});
