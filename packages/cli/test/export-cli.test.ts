/**
 * `medshare export` against a running platform: a gateway system releases a folder of patients' bundles; the
 * consenting patient's is written de-identified and recorded on the ledger, the other is skipped with
 * --patient-consent and stops the export (exit 3, one line) without it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pre } from '@medshare/crypto';
import { openDatabase, randomKeyEncryptionKey, type Database } from '@medshare/db';
import { base32Decode, totp } from '@medshare/identity';
import { createPlatform, GatewayClient, PatientClient, PlatformClient, roleScopes, type Platform } from '@medshare/server';
import { runCli } from './run-cli.ts';

const ADMIN = 'export-cli-admin-token-0123456789';
const PASSWORD = 'a long enough passphrase';
const dir = mkdtempSync(join(tmpdir(), 'medshare-export-cli-'));
let db: Database;
let platform: Platform;
let base: string;
/** TOTP secrets of the gateway accounts the CLI runs log in with (one each: a TOTP step is accepted once). */
const cliAccounts: Record<string, string> = {};

/** A small bundle of one patient with a name, an address and a dated observation. */
function patientBundle(id: string, family: string): object {
  return {
    resourceType: 'Bundle', type: 'collection', entry: [
      { resource: { resourceType: 'Patient', id, name: [{ family, given: ['Alexandra'] }], birthDate: '1961-04-26', address: [{ line: ['12 Harbour Parade'], city: 'Springfield', postalCode: '02139' }] } },
      { resource: { resourceType: 'Observation', id: `${id}-obs`, status: 'final', subject: { reference: `Patient/${id}` }, code: { text: 'HbA1c' }, effectiveDateTime: '2024-03-05', valueQuantity: { value: 6.5, unit: '%' } } },
    ],
  };
}

before(async () => {
  db = await openDatabase();
  platform = await createPlatform({ db, hospitals: ['st-marys'], adminTokens: { 'st-marys': ADMIN }, kek: randomKeyEncryptionKey(), scrypt: { logN: 12, r: 8, p: 1 } });
  base = platform.urls.hospitals['st-marys']!.href;
  const client = new PlatformClient(platform.urls);
  const enrol = async (username: string, attributes: string[]) =>
    (await client.registerUser('st-marys', ADMIN, { username, password: PASSWORD, attributes, scopes: roleScopes(attributes) })).totpSecret;
  const gateway = new GatewayClient(await client.login('st-marys', 'ehr', PASSWORD, await enrol('ehr', ['role:gateway'])));
  for (const name of ['ehr-cli-1', 'ehr-cli-2']) cliAccounts[name] = await enrol(name, ['role:gateway']);
  mkdirSync(join(dir, 'in'));
  for (const [username, fhirId, family, consents] of [['ann', 'p-ann', 'Okonkwo-Smythe', true], ['bob', 'p-bob', 'Vandersloot', false]] as const) {
    const session = await client.login('st-marys', username, PASSWORD, await enrol(username, ['role:patient']));
    const patient = new PatientClient(session, pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, ['clinical', 'lab']));
    await patient.register();
    await gateway.enrol(fhirId, patient.key.patientId);
    if (consents) await patient.setResearchConsent(true);
    writeFileSync(join(dir, 'in', `${username}.json`), JSON.stringify(patientBundle(fhirId, family)));
  }
});
after(async () => {
  await platform.close();
  await db.close();
});

const secrets = (account: string) => `${PASSWORD}\n${totp(base32Decode(cliAccounts[account]!), Date.now() / 1000)}\n`;
const args = (account: string, out: string, ...extra: string[]) =>
  ['export', '--url', base, '--hospital', 'st-marys', '--username', account, '--profile', 'safe-harbor', '--in', join(dir, 'in'), '--out', out, ...extra];

test('medshare export --patient-consent releases the consenting patient de-identified, on the ledger, and skips the other', async () => {
  const out = join(dir, 'out-consent');
  const r = await runCli(args('ehr-cli-1', out, '--patient-consent', '--json'), { stdin: secrets('ehr-cli-1') });
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { released: Array<{ file: string; ledgerIndex: number }>; skipped: string[] };
  assert.deepEqual(readdirSync(out), ['ann.json']);
  assert.deepEqual(result.skipped, [join(dir, 'in', 'bob.json')]);
  const text = readFileSync(join(out, 'ann.json'), 'utf8');
  for (const needle of ['Okonkwo-Smythe', 'Alexandra', 'Harbour Parade', 'Springfield', '02139', '1961-04-26', 'p-ann']) assert.ok(!text.includes(needle), needle);
  assert.match(text, /HbA1c/, 'clinical content stays');
  await platform.ledger.flush();
  const entry = await platform.ledger.entry(result.released[0]!.ledgerIndex);
  assert.equal(entry.event.type.code, 'research-export');
  assert.match(r.stderr, /export 2\/2: 1 released, 1 skipped/);
});

test('medshare export without --patient-consent stops at the patient without consent: exit 3, one line', async () => {
  const r = await runCli(args('ehr-cli-2', join(dir, 'out-strict')), { stdin: secrets('ehr-cli-2') });
  assert.equal(r.code, 3);
  assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('medshare:')).length, 1);
  assert.match(r.stderr, /medshare: bob\.json: the patient has not consented to research release\n$/);
  assert.deepEqual(readdirSync(join(dir, 'out-strict')), ['ann.json'], 'what was released before stays written');
});
