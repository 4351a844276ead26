/**
 * The patient key backup: a file written in Node (the demo's patient) is restored by the portal's own code
 * (backup.ts, on Node's WebCrypto); a wrong passphrase, an edited ciphertext and another file are refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { patientKeyBackup } from '../src/index.ts';
import { backupFile, restoreBackup } from '../src/backup.ts';

test('a Node backup restores in the portal; wrong passphrase, edited ciphertext and a foreign file are refused', async () => {
  const secret = randomBytes(200);
  const file = patientKeyBackup('psn:AAAAAAAAAAAAAAAAAAAAAA', secret, 'correct horse battery');
  assert.ok(!file.includes(secret.toString('base64')) && !file.includes(secret.toString('base64url')) && !file.includes(secret.toString('hex')));
  assert.deepEqual(Buffer.from(await restoreBackup(file, 'correct horse battery')), secret);
  await assert.rejects(restoreBackup(file, 'wrong horse battery!'), /wrong passphrase/);
  const parsed = JSON.parse(file);
  const ct = Buffer.from(parsed.ct, 'base64url');
  ct[3]! ^= 1;
  await assert.rejects(
    restoreBackup(JSON.stringify({ ...parsed, ct: ct.toString('base64url') }), 'correct horse battery'),
    /wrong passphrase, or the backup file is damaged/,
  );
  await assert.rejects(restoreBackup('{"format":"other"}', 'correct horse battery'), /not a MedShare key backup/);
  await assert.rejects(restoreBackup('not json', 'correct horse battery'), /not a MedShare key backup/);
  // The portal's own backup round-trips too.
  assert.deepEqual(Buffer.from(await restoreBackup(await backupFile('psn:x', secret, 'another passphrase'), 'another passphrase')), secret);
});
