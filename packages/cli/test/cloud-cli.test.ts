/**
 * `medshare cloud repeated-attributes` on a real cloud database: it lists the delegations and capsules whose policy
 * repeats an attribute (a format-1 one as to re-issue), leaves the others out, and changes nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { abe, dearmor, ObjectType, pre } from '@medshare/crypto';
import { migrate, openDatabase } from '@medshare/db';
import { CLOUD_MIGRATIONS } from '@medshare/server';
import { runCli } from './run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'medshare-cloud-'));
const dataDir = join(dir, 'data');
const patient = `psn:${'a'.repeat(22)}`;
const REPEATED = '(role:doctor and level >= 3) or (role:nurse and level >= 5)';
let repeatedId: string;

before(async () => {
  await abe.init();
  const db = await openDatabase({ dataDir });
  await migrate(db, 'cloud', CLOUD_MIGRATIONS);
  const key = pre.generatePatientKey(patient);
  const ta = abe.setup();
  await db.query('INSERT INTO cloud_patients (patient, owner, public_keys, signing_key) VALUES ($1, $2, $3, $4)', [
    patient,
    'psn:owner',
    pre.encodePublicKeys(key),
    pre.publicKeys(key).signingKey,
  ]);
  const insert = (id: string, category: string, policy: string, rk: Uint8Array) =>
    db.query('INSERT INTO cloud_delegations (delegation_id, patient, category, policy, emergency, reencryption_key) VALUES ($1, $2, $3, $4, false, $5)', [
      id,
      patient,
      category,
      policy,
      rk,
    ]);
  const repeated = pre.delegate(key, 'lab', ta.publicKey, REPEATED);
  repeatedId = Buffer.from(repeated.delegationId).toString('hex');
  await insert(repeatedId, 'lab', REPEATED, pre.encodeReEncryptionKey(repeated));
  const plain = pre.delegate(key, 'notes', ta.publicKey, 'role:doctor or role:nurse');
  await insert('plain', 'notes', 'role:doctor or role:nurse', pre.encodeReEncryptionKey(plain));
  // A format-1 key as an older cloud stored it (its policy, like every policy stored then, as the cloud recorded it).
  const v1 = dearmor(new Uint8Array(readFileSync(new URL('../../crypto/testdata/v1/lab.rk', import.meta.url))), ObjectType.ReEncryptionKey);
  await insert('legacy', 'imaging', 'role:doctor and (role:doctor or dept:cardiology)', v1);
  await db.close();
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('cloud repeated-attributes lists the policies that repeat an attribute, with what they repeat and whether to re-issue', async () => {
  const [result, other] = await Promise.all([
    runCli(['cloud', 'repeated-attributes', '--data', dataDir]),
    runCli(['cloud', 'repeated-attributes', '--data', dataDir, '--patient', `psn:${'b'.repeat(22)}`]),
  ]);
  assert.equal(result.code, 0, result.stderr);
  const rows = result.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { id: string; repeated: string[]; format: number; reissue: boolean });
  assert.deepEqual(
    rows.map((r) => [r.id, r.repeated, r.format, r.reissue]).sort(),
    [
      ['legacy', ['role:doctor'], 1, true],
      [repeatedId, ['level (integer bits)'], 2, false],
    ].sort(),
  );
  assert.equal(other.code, 0, other.stderr);
  assert.equal(other.stdout, '', 'another patient has none');
});
