/**
 * `medshare export` against a running platform: a gateway system releases a folder of patients' bundles; the
 * consenting patient's is written de-identified and recorded on the ledger, the other is skipped with
 * --patient-consent and stops the export (exit 3, one line) without it. `medshare search` on the same platform:
 * a reader finds the patient's current records on the encrypted index; refusals and bad queries are one line.
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
/** TOTP secrets of the accounts the CLI runs log in with (one each: a TOTP step is accepted once). */
const cliAccounts: Record<string, string> = {};
/** Ann's pseudonym and the record ids of her current and superseded LDL observations (what `medshare search` must find). */
const ann = { patient: '', current: [] as string[], superseded: '' };

/** A small bundle of one patient with a name, an address and a dated observation. */
function patientBundle(id: string, family: string): object {
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      {
        resource: {
          resourceType: 'Patient',
          id,
          name: [{ family, given: ['Alexandra'] }],
          birthDate: '1961-04-26',
          address: [{ line: ['12 Harbour Parade'], city: 'Springfield', postalCode: '02139' }],
        },
      },
      {
        resource: {
          resourceType: 'Observation',
          id: `${id}-obs`,
          status: 'final',
          subject: { reference: `Patient/${id}` },
          code: { text: 'HbA1c' },
          effectiveDateTime: '2024-03-05',
          valueQuantity: { value: 6.5, unit: '%' },
        },
      },
    ],
  };
}

before(async () => {
  db = await openDatabase();
  platform = await createPlatform({
    db,
    hospitals: ['st-marys'],
    adminTokens: { 'st-marys': ADMIN },
    kek: randomKeyEncryptionKey(),
    scrypt: { logN: 12, r: 8, p: 1 },
  });
  base = platform.urls.hospitals['st-marys']!.href;
  const client = new PlatformClient(platform.urls);
  const enrol = async (username: string, attributes: string[]) =>
    (await client.registerUser('st-marys', ADMIN, { username, password: PASSWORD, attributes, scopes: roleScopes(attributes) })).totpSecret;
  const gateway = new GatewayClient(await client.login('st-marys', 'ehr', PASSWORD, await enrol('ehr', ['role:gateway'])));
  for (const name of ['ehr-cli-1', 'ehr-cli-2']) cliAccounts[name] = await enrol(name, ['role:gateway']);
  mkdirSync(join(dir, 'in'));
  for (const [username, fhirId, family, consents] of [
    ['ann', 'p-ann', 'Okonkwo-Smythe', true],
    ['bob', 'p-bob', 'Vandersloot', false],
  ] as const) {
    const session = await client.login('st-marys', username, PASSWORD, await enrol(username, ['role:patient']));
    const patient = new PatientClient(session, pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, ['clinical', 'lab']));
    await patient.register();
    await gateway.enrol(fhirId, patient.key.patientId);
    if (consents) await patient.setResearchConsent(true);
    writeFileSync(join(dir, 'in', `${username}.json`), JSON.stringify(patientBundle(fhirId, family)));
    if (username !== 'ann') continue;
    // Searchable records: two LDL observations, one of them amended to another code (its first version must not be found).
    ann.patient = patient.key.patientId;
    await patient.delegate('lab', 'role:doctor and dept:cardiology', await client.abePublicKey());
    const ldl = (id: string, code: string) => ({
      resourceType: 'Observation',
      id,
      status: 'final',
      subject: { reference: `Patient/${fhirId}` },
      code: { coding: [{ system: 'http://loinc.org', code }] },
      effectiveDateTime: '2024-02-01',
    });
    const first = await gateway.upload({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: ldl('ldl-1', '2089-1') }, { resource: ldl('ldl-2', '2089-1') }],
    });
    const amended = await gateway.upload(ldl('ldl-2', '13457-7'));
    ann.current = [first.versions.find((v) => v.id === 'ldl-1')!.recordId];
    ann.superseded = first.versions.find((v) => v.id === 'ldl-2')!.recordId;
    assert.notEqual(amended.versions[0]!.recordId, ann.superseded);
  }
  for (const name of ['dr-cli-1', 'dr-cli-2']) cliAccounts[name] = await enrol(name, ['role:doctor', 'dept:cardiology']);
  cliAccounts['derm-cli'] = await enrol('derm-cli', ['role:doctor', 'dept:dermatology']);
});
after(async () => {
  await platform.close();
  await db.close();
});

const secrets = (account: string) => `${PASSWORD}\n${totp(base32Decode(cliAccounts[account]!), Date.now() / 1000)}\n`;
const args = (account: string, out: string, ...extra: string[]) => [
  'export',
  '--url',
  base,
  '--hospital',
  'st-marys',
  '--username',
  account,
  '--profile',
  'safe-harbor',
  '--in',
  join(dir, 'in'),
  '--out',
  out,
  ...extra,
];

test('medshare export --patient-consent releases the consenting patient de-identified, on the ledger, and skips the other', async () => {
  const out = join(dir, 'out-consent');
  const r = await runCli(args('ehr-cli-1', out, '--patient-consent', '--json'), { stdin: secrets('ehr-cli-1') });
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { released: Array<{ file: string; ledgerIndex: number }>; skipped: string[] };
  assert.deepEqual(readdirSync(out), ['ann.json']);
  assert.deepEqual(result.skipped, [join(dir, 'in', 'bob.json')]);
  const text = readFileSync(join(out, 'ann.json'), 'utf8');
  for (const needle of ['Okonkwo-Smythe', 'Alexandra', 'Harbour Parade', 'Springfield', '02139', '1961-04-26', 'p-ann'])
    assert.ok(!text.includes(needle), needle);
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

const search = (account: string, attributes: string[], query: string, ...options: string[]) => [
  'search',
  '--url',
  base,
  '--cloud-url',
  platform.urls.cloud.href,
  '--authority-url',
  platform.urls.authority.href,
  '--hospital',
  'st-marys',
  '--username',
  account,
  '--patient',
  ann.patient,
  ...options,
  '--attribute',
  ...attributes,
  '--',
  query,
];

test('medshare search finds the current version of a coded observation on the encrypted index, with its record id', async () => {
  const r = await runCli(search('dr-cli-1', ['role:doctor', 'dept:cardiology'], 'code=http://loinc.org|2089-1&date=ge2024-01-01', '--ids'), {
    stdin: secrets('dr-cli-1'),
  });
  assert.equal(r.code, 0, r.stderr);
  const found = JSON.parse(r.stdout) as Array<{ recordId: string; reference: string; versionId: string }>;
  assert.deepEqual(found, [{ recordId: ann.current[0], reference: 'Observation/ldl-1', versionId: '1' }]);
  assert.ok(!r.stdout.includes(ann.superseded), 'the amended version 1 is not found');
  assert.match(r.stderr, /1 match\(es\) of 1 candidate/);
  // The Bundle form: a FHIR searchset of the decrypted resource.
  const out = join(dir, 'search.json');
  const b = await runCli(search('dr-cli-2', ['role:doctor', 'dept:cardiology'], 'code=13457-7', '--out', out), { stdin: secrets('dr-cli-2') });
  assert.equal(b.code, 0, b.stderr);
  const bundle = JSON.parse(readFileSync(out, 'utf8')) as {
    type: string;
    total: number;
    entry: Array<{ resource: { id: string; meta: { versionId: string } } }>;
  };
  assert.deepEqual([bundle.type, bundle.total, bundle.entry[0]!.resource.id, bundle.entry[0]!.resource.meta.versionId], ['searchset', 1, 'ldl-2', '2']);
});

test('medshare search: a reader her delegation does not cover is refused (exit 3), bad queries and pseudonyms are usage errors (exit 2); one line each', async () => {
  const refused = await runCli(search('derm-cli', ['role:doctor', 'dept:dermatology'], 'code=2089-1'), { stdin: secrets('derm-cli') });
  assert.equal(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, /delegation|policy|not allowed|denied/i);
  assert.equal(refused.stdout, '');
  const bad = await runCli(search('nobody', ['role:doctor'], 'foo=bar'), { stdin: `${PASSWORD}\n000000\n` });
  const pseudonym = await runCli([
    'search',
    '--url',
    base,
    '--hospital',
    'st-marys',
    '--username',
    'x',
    '--patient',
    'ann',
    '--attribute',
    'role:doctor',
    '--',
    'code=1',
  ]);
  for (const r of [refused, bad, pseudonym]) {
    assert.equal(r.stderr.split('\n').filter((l) => l.length > 0).length, 1, r.stderr);
    assert.match(r.stderr, /^medshare: [^\n]+\n$/);
    assert.ok(!/\bat .*\.ts:\d+/.test(r.stderr), 'no stack trace');
  }
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unsupported search parameter 'foo'/);
  assert.equal(pseudonym.code, 2);
  assert.match(pseudonym.stderr, /pseudonym/);
});
