import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { runCli } from './run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'medshare-stats-cli-'));
const QUERY = JSON.stringify({
  querySet: 'cli',
  asOf: '2026-01-01',
  where: [{ resourceType: 'Observation', codes: ['http://loinc.org|4548-4'] }],
  groupBy: ['gender'],
  epsilon: 1,
});

/** A bundle of `n` patients with one HbA1c each, all `gender`. */
function bundle(name: string, n: number, gender: string): string {
  const entry = Array.from({ length: n }, (_, i) => [
    { resource: { resourceType: 'Patient', id: `${name}-${i}`, birthDate: '1960-01-01', gender } },
    {
      resource: {
        resourceType: 'Observation',
        subject: { reference: `urn:uuid:${name}-${i}` },
        code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
        effectiveDateTime: '2024-01-01',
        valueQuantity: { value: 6.5 },
      },
    },
  ]).flat();
  mkdirSync(join(dir, name));
  const path = join(dir, name, 'bundle.json');
  writeFileSync(path, JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }));
  return join(dir, name);
}

test('medshare stats run: three hospitals, the noisy total released with small cells suppressed and the budget shown', async () => {
  const r = await runCli([
    'stats',
    'run',
    '--query',
    QUERY,
    '--hospital',
    `a=${bundle('a', 40, 'female')}`,
    '--hospital',
    `b=${bundle('b', 30, 'female')}`,
    '--hospital',
    `c=${bundle('c', 1, 'male')}`,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const release = JSON.parse(r.stdout);
  assert.equal(release.cells.length, 4);
  assert.ok(Math.abs(release.cells[0].count - 71) <= 12 * release.noise.countStdDev, `female ${release.cells[0].count}`);
  assert.equal(release.cells[2].count, null, 'no "other" patients: suppressed');
  assert.deepEqual(release.decryptedBy, ['a', 'b']);
  assert.deepEqual(release.budget, { querySet: 'cli', budget: 1, spent: 1, remaining: 0 });
});

test('medshare stats refuses a query outside the allow-list with one line and exit 3', async () => {
  const outside = QUERY.replace('http://loinc.org|4548-4', 'http://hl7.org/fhir/sid/icd-10|E11');
  const r = await runCli(['stats', 'check', '--query', outside]);
  assert.equal(r.code, 3);
  assert.equal(r.stderr, 'medshare: query: where[0]: code system http://hl7.org/fhir/sid/icd-10 is not allowed for Observation\n');
});

test('medshare stats query: a bad URL or query is one line and a non-zero exit, before any secret is read', async () => {
  const args = (url: string, query: string) => [
    'stats',
    'query',
    '--url',
    url,
    '--hospital-url',
    'http://127.0.0.1:1/',
    '--hospital',
    'riverside',
    '--username',
    'r',
    '--query',
    query,
  ];
  const badUrl = await runCli(args('not a url', QUERY));
  assert.notEqual(badUrl.code, 0);
  assert.equal(badUrl.stderr, 'medshare: --url: not a URL: not a url\n');
  const outside = await runCli(args('http://127.0.0.1:1/', QUERY.replace('http://loinc.org|4548-4', 'http://hl7.org/fhir/sid/icd-10|E11')));
  assert.equal(outside.code, 3);
  assert.match(outside.stderr, /^medshare: query: where\[0\]: code system http:\/\/hl7.org\/fhir\/sid\/icd-10 is not allowed for Observation\n$/);
});
