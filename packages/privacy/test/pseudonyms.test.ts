import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pseudonym, ReidentificationTable } from '../src/index.ts';

test('pseudonyms are stable per key and kind, and differ across keys and kinds', () => {
  const key = randomBytes(32);
  assert.equal(pseudonym(key, 'patient', 'p1'), pseudonym(key, 'patient', 'p1'));
  assert.notEqual(pseudonym(key, 'patient', 'p1'), pseudonym(key, 'record', 'p1'));
  assert.notEqual(pseudonym(key, 'patient', 'p1'), pseudonym(randomBytes(32), 'patient', 'p1'));
  assert.match(pseudonym(key, 'patient', 'p1'), /^pa-[A-Za-z0-9_-]{27}$/);
  assert.throws(() => pseudonym(randomBytes(16), 'patient', 'p1'), { code: 'MALFORMED' });
});

test('the re-identification table answers only an authorised role and stores no plaintext', () => {
  const table = new ReidentificationTable(randomBytes(32), randomBytes(32));
  const code = table.register('patient', 'MRN-0042');
  assert.equal(table.reidentify(code, 'privacy-officer'), 'MRN-0042');
  assert.throws(() => table.reidentify(code, 'researcher'), { code: 'ACCESS_DENIED' });
  assert.ok(!JSON.stringify(table.export()).includes('MRN-0042'));
  const exported = table.export();
  const tampered = Buffer.from(exported[code]!, 'base64');
  tampered[20] = (tampered[20] ?? 0) ^ 1;
  table.import({ [code]: tampered.toString('base64') });
  assert.throws(() => table.reidentify(code, 'privacy-officer'), { code: 'INTEGRITY' });
});
