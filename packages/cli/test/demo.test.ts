import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './run-cli.ts';

test('medshare demo tells the whole story and exits 0', async () => {
  const r = await runCli(['demo']);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, /Antonia enrols at St Mary's/);
  assert.match(out, /a retry stored 0$/m);
  assert.match(out, /\d+ ledger receipts cosigned by both hospitals' witnesses/);
  assert.match(out, /Real HTTP services on 127\.0\.0\.1, one process per trust domain/);
  // Four processes, each printed with its pid and what it holds.
  for (const process of ['authority', 'cloud', 'hospital st-marys', 'hospital riverside']) assert.match(out, new RegExp(`^${process} +\\d+ +http://127\\.0\\.0\\.1:\\d+/ +\\S`, 'm'));
  assert.match(out, /14\. Someone copies the cloud's database.*\n\s+→ plaintext or FHIR ids found: none; key-shaped values: 0 ABE master keys, 0 ABE user keys, 0 patient keys, \d+ 32-byte scalars; records decrypted with them: 0 of \d+/);
  assert.match(out, /5\. Dr Chen .*\n\s+→ read 15 lab records, e\.g\. Total Cholesterol 268\.1 mg\/dL; code=http:\/\/loinc\.org\|\S+ \(.*\) found [1-9]\d* without the cloud learning the code/);
  assert.match(out, /6\. Dr Patel .*\n\s+→ refused: your attributes satisfy no active delegation of 'lab'/);
  assert.match(out, /8\. Dr Chen reads again\n\s+→ refused: no active delegation of 'lab' \(revoked or never granted\)/);
  assert.match(out, /emergency read\s+lab\s+15 records\s+unconscious on arrival/);
  assert.match(out, /10\. Emergency on 'medication'.*\n\s+→ read 6 medication records/);
  assert.match(out, /emergency read \(platform policy\)\s+medication\s+6 records\s+anaphylaxis/);
  assert.match(out, /12\. Cross-hospital statistics: .*\n\s+→ each hospital counted its own patients, .*proved every cell in range; the cloud checked the proofs.*st-marys and riverside decrypted only the total, with proofs; ε 0\.6 of 1 spent/);
  assert.match(out, /13\. The same query again.*\n\s+→ refused: the cloud: the privacy budget of query set demo-diabetes is exhausted: ε 0\.6 of 1 spent, 0\.4 left, this query needs 0\.6/);
  assert.match(out, /age band\s+patients\s*\n-+\s+-+\s*\n0-17\s+(suppressed \(< 10\)|\d+)\s*\n18-44/);
  assert.match(out, /^Summary:/m);
});

test('medshare demo refuses a missing bundle with one line and exit 2', async () => {
  const r = await runCli(['demo', '--bundle', '/nonexistent/bundle.json']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'medshare: /nonexistent/bundle.json: no such file\n');
});
