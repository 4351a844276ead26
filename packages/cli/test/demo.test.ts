import { spawn } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readFile } from 'node:fs/promises';
import { pre } from '@medshare/crypto';
import { PlatformClient } from '@medshare/server';
import { restoreBackup } from '../../portal/src/backup.ts';
import { chromiumSkip, launchChromium, signInWithTotp } from '../../portal/test/chromium.ts';
import { runCli } from './run-cli.ts';

const BIN = fileURLToPath(new URL('../bin/medshare.js', import.meta.url));

/** The service URLs from the demo's process table. */
function printedUrls(out: string): { authority: URL; cloud: URL; hospitals: Record<string, URL> } {
  const url = (name: string) => new URL(new RegExp(`^${name} +\\d+ +(\\S+)`, 'm').exec(out)![1]!);
  return { authority: url('authority'), cloud: url('cloud'), hospitals: { 'st-marys': url('hospital st-marys'), riverside: url('hospital riverside') } };
}

// One run (the demo is among the suite's slowest files): the story with --serve, then the portal and the accounts it
// printed are tried while it serves, then SIGINT stops it with exit 0.
test('medshare demo --serve tells the whole story, ends with the portal URL and demo accounts that sign in, and exits 0 on SIGINT', async (t) => {
  const child = spawn(process.execPath, [BIN, 'demo', '--serve'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      if (out.includes('Serving until Ctrl-C')) resolve();
    });
    void exited.then((code) => reject(new Error(`demo exited ${code} before serving: ${stderr}`)));
  });
  let file: string | undefined;
  let passphrase: string | undefined;
  try {
    const urls = printedUrls(out);
    for (const hospital of ['st-marys', 'riverside']) {
      const portal = new RegExp(`^${hospital} +(http://127\\.0\\.0\\.1:\\d+/portal/) *$`, 'm').exec(out)?.[1];
      assert.equal(portal, new URL('/portal/', urls.hospitals[hospital]).href, `${hospital}'s portal URL`);
      const page = await fetch(portal!);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
    }
    // A printed clinician account signs in with its printed password and TOTP secret; a wrong password does not.
    const [, password, totpSecret] = /^riverside +chen +(\S+) +([A-Z2-7]+) +role:doctor dept:cardiology\s*$/m.exec(out)!;
    const client = new PlatformClient(urls);
    const session = await client.login('riverside', 'chen', password!, totpSecret!);
    assert.ok(session);
    await assert.rejects(client.login('riverside', 'chen', `${password}x`, totpSecret!));
    // The printed administrator credential is the one the hospital's identity service accepts.
    const admin = new RegExp('^riverside +(\\S{16,}) *$', 'm').exec(out.slice(out.indexOf('administrator credential')))![1]!;
    const unlock = (credential: string) =>
      fetch(new URL('/identity/riverside/admin/users/chen/unlock', urls.hospitals.riverside), {
        method: 'POST',
        headers: { authorization: `Bearer ${credential}` },
      });
    const accepted = await unlock(admin);
    assert.ok(accepted.ok, `admin credential accepted: ${accepted.status}`);
    assert.equal((await unlock(`${admin.slice(0, -1)}${admin.endsWith('A') ? 'B' : 'A'}`)).status, 401);
    // The patient's printed key backup restores (with the portal's own code) to the key of the printed pseudonym.
    [, file, passphrase] = /"Restore from backup" with (\S+) and the passphrase (\S+) /.exec(out)!;
    const restored = pre.decodePatientKey(await restoreBackup(await readFile(file!, 'utf8'), passphrase!));
    assert.equal(restored.patientId, /pseudonym (psn:\S+),/.exec(out)![1]);
    // In Chromium, with what was printed only: the portal URL, her account (OpenID Connect sign-in at St Mary's),
    // her key backup and passphrase; her lab records decrypted in the browser.
    await t.test('the printed portal URL signs the printed patient in (OIDC) in Chromium and shows her records', { skip: chromiumSkip }, async () => {
      const [, patientPassword, patientTotp] = /^st-marys +patient +(\S+) +([A-Z2-7]+) +role:patient\s*$/m.exec(out)!;
      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on('pageerror', (error) => errors.push(error.message));
        await signInWithTotp(page, new URL('/portal/', urls.hospitals['st-marys']).href, 'st-marys', 'patient', patientPassword!, patientTotp!);
        await page.getByLabel('Backup file').setInputFiles(file!);
        await page.getByLabel('Backup passphrase').fill(passphrase!);
        await page.getByRole('button', { name: 'Restore from backup' }).click();
        await page.locator('#pseudonym').waitFor();
        assert.equal(await page.locator('#pseudonym').textContent(), restored.patientId);
        await page.locator('#records').getByLabel('Category').selectOption('lab');
        await page.getByRole('button', { name: 'Show my records' }).click();
        await page
          .getByText(/records decrypted in this browser/)
          .or(page.getByRole('alert'))
          .first()
          .waitFor();
        assert.match((await page.locator('#records').textContent()) ?? '', /15 records decrypted in this browser\..*Total Cholesterol/s);
        assert.deepEqual(errors, []);
      } finally {
        await browser.close();
      }
    });
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0, stderr);
  // Stopped: the services are gone and the key backup deleted with the demo's directory.
  await assert.rejects(fetch(printedUrls(out).cloud));
  await assert.rejects(readFile(file!), { code: 'ENOENT' });
  assert.match(out, /Antonia enrols at St Mary's/);
  assert.match(out, /a retry stored 0$/m);
  assert.match(out, /\d+ ledger receipts cosigned by both hospitals' witnesses/);
  assert.match(out, /Real HTTP services on 127\.0\.0\.1, one process per trust domain/);
  // Four processes, each printed with its pid and what it holds.
  for (const process of ['authority', 'cloud', 'hospital st-marys', 'hospital riverside'])
    assert.match(out, new RegExp(`^${process} +\\d+ +http://127\\.0\\.0\\.1:\\d+/ +\\S`, 'm'));
  assert.match(
    out,
    /14\. Someone copies the cloud's database.*\n\s+→ plaintext or FHIR ids found: none; key-shaped values: 0 ABE master keys, 0 ABE user keys, 0 patient keys, \d+ 32-byte scalars; records decrypted with them: 0 of \d+/,
  );
  assert.match(
    out,
    /5\. Dr Chen .*\n\s+→ read 15 lab records, e\.g\. Total Cholesterol 268\.1 mg\/dL; code=http:\/\/loinc\.org\|\S+ \(.*\) found [1-9]\d* without the cloud learning the code/,
  );
  assert.match(out, /6\. Dr Patel .*\n\s+→ refused: your attributes satisfy no active delegation of 'lab'/);
  assert.match(out, /8\. Dr Chen reads again\n\s+→ refused: no active delegation of 'lab' \(revoked or never granted\)/);
  assert.match(out, /emergency read\s+lab\s+15 records\s+unconscious on arrival/);
  assert.match(out, /10\. Emergency on 'medication'.*\n\s+→ read 6 medication records/);
  assert.match(out, /emergency read \(platform policy\)\s+medication\s+6 records\s+anaphylaxis/);
  assert.match(
    out,
    /12\. Cross-hospital statistics: .*\n\s+→ the hospitals' agents made the threshold key among themselves \(distributed key generation over the cloud\); each counted its own patients in its own process, .*proved every cell in range; the cloud checked the proofs.*st-marys and riverside decrypted only the total, with proofs; ε 0\.6 of 1 spent/,
  );
  assert.match(
    out,
    /13\. The same query again.*\n\s+→ refused: the cloud: the privacy budget of query set demo-diabetes is exhausted: ε 0\.6 of 1 spent, 0\.4 left, this query needs 0\.6/,
  );
  assert.match(out, /age band\s+patients\s*\n-+\s+-+\s*\n0-17\s+(suppressed \(< 10\)|\d+)\s*\n18-44/);
  assert.match(out, /^Summary:/m);
});

test('medshare demo refuses a missing bundle with one line and exit 2', async () => {
  const r = await runCli(['demo', '--bundle', '/nonexistent/bundle.json']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'medshare: /nonexistent/bundle.json: no such file\n');
});
