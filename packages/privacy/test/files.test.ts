import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Deidentifier, deidentifyPath, parseConfig, profileConfig } from '../src/index.ts';
import { FIXTURE_BUNDLE } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'medshare-deid-'));
const safeHarbor = () => new Deidentifier(profileConfig('safe-harbor', { cryptoHashKey: 'h', dateShiftKey: 'd' }));

test('a Bundle file reports progress per entry and names from its own Patient are scrubbed from notes', async () => {
  const seen: number[] = [];
  const count = await deidentifyPath(safeHarbor(), FIXTURE_BUNDLE, join(dir, 'b.json'), { onResource: (n) => seen.push(n) });
  assert.equal(count, 26);
  assert.deepEqual(
    seen,
    Array.from({ length: 26 }, (_, i) => i + 1),
  );
  const out = readFileSync(join(dir, 'b.json'), 'utf8');
  assert.ok(!out.includes('Carolee951'));
});

test('NDJSON errors name the file and line; non-resources are refused', async () => {
  const ndjson = join(dir, 'bad.ndjson');
  writeFileSync(ndjson, '{"resourceType":"Patient","id":"a"}\n{"resourceType": \n');
  await assert.rejects(deidentifyPath(safeHarbor(), ndjson, join(dir, 'o.ndjson')), /bad\.ndjson:2: not valid JSON/);
  const notResource = join(dir, 'x.json');
  writeFileSync(notResource, '{"id": 1}');
  await assert.rejects(deidentifyPath(safeHarbor(), notResource, join(dir, 'o.json')), /not a FHIR resource/);
  const noType = join(dir, 'y.ndjson');
  writeFileSync(noType, '{"id": 1}\n');
  await assert.rejects(deidentifyPath(safeHarbor(), noType, join(dir, 'o2.ndjson')), { code: 'MALFORMED' });
});

test('dateShiftScope file shifts every resource of a file by the same offset', async () => {
  const ndjson = join(dir, 'two.ndjson');
  writeFileSync(
    ndjson,
    ['{"resourceType":"Patient","id":"a","birthDate":"2000-01-01"}', '{"resourceType":"Patient","id":"b","birthDate":"2000-01-01"}'].join('\n') + '\n',
  );
  const engine = new Deidentifier(
    parseConfig({ fhirPathRules: [{ path: "nodesByType('date')", method: 'dateShift' }], parameters: { dateShiftKey: 'k', dateShiftScope: 'file' } }),
  );
  await deidentifyPath(engine, ndjson, join(dir, 'two-out.ndjson'));
  const [a, b] = readFileSync(join(dir, 'two-out.ndjson'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(a.birthDate, b.birthDate);
  assert.notEqual(a.birthDate, '2000-01-01');
});
