import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from './run-cli.ts';

const FIXTURES = fileURLToPath(new URL('../../privacy/test/fixtures', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'medshare-anonymize-'));

test('medshare anonymize --method both writes both tables and reports both methods with risk; --fhir-fields builds the research table', async () => {
  const out = join(dir, 'anon.csv');
  const report = join(dir, 'report.json');
  const result = await runCli([
    'anonymize',
    '--in',
    join(FIXTURES, 'adult_subset.csv'),
    '--qi',
    'age,sex,race,marital-status,education,native-country,workclass,salary-class',
    '--k',
    '5',
    '--method',
    'both',
    '--hierarchies',
    join(FIXTURES, 'adult-hierarchies'),
    '--max-suppression',
    '0.05',
    '--population',
    '30000',
    '--out',
    out,
    '--report',
    report,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const json = JSON.parse(readFileSync(report, 'utf8'));
  assert.deepEqual(
    json.methods.map((m: { method: string }) => m.method),
    ['mondrian', 'global'],
  );
  for (const m of json.methods) {
    assert.ok(m.risk.prosecutor.highest <= 0.2 && m.risk.journalist.highest <= m.risk.prosecutor.highest);
    assert.equal(Object.keys(m.attributeLoss).length, 8);
  }
  const global = readFileSync(join(dir, 'anon.global.csv'), 'utf8').trim().split('\n');
  assert.equal(global.length - 1, 3016 - json.methods[1].metrics.suppressedRecords);
  const fhir = await runCli([
    'anonymize',
    '--in',
    join(FIXTURES, 'synthea-carolee-trimmed.json'),
    '--fhir-fields',
    'age,sex,zip3,conditions',
    '--as-of',
    '2020-06-01',
    '--qi',
    'age,sex,zip3',
    '--k',
    '1',
    '--out',
    join(dir, 'fhir.csv'),
  ]);
  assert.equal(fhir.code, 0, fhir.stderr);
  assert.equal(readFileSync(join(dir, 'fhir.csv'), 'utf8').split('\n')[0], 'age,sex,zip3,conditions');
  const bad = await runCli([
    'anonymize',
    '--in',
    join(FIXTURES, 'synthea-carolee-trimmed.json'),
    '--fhir-fields',
    'age',
    '--as-of',
    'soon',
    '--qi',
    'age',
    '--k',
    '1',
    '--out',
    join(dir, 'x.csv'),
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--as-of/);
});
