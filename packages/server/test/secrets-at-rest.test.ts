/**
 * Secrets at rest, tested as a thief with a copy of the database would: the raw files of a PGlite data directory
 * (tables, indexes and the write-ahead log) and, when DATABASE_URL is set, a pg_dump of the platform's schema are
 * searched for every secret the platform keeps — TOTP secrets, the hospitals' private signing keys, the trusted
 * authority's master key, the ledger's and witnesses' signing keys, the hospitals' de-identification and tracing keys — as raw bytes and in hex, base64, base64url and base32. None may appear: each is stored
 * wrapped by the key-encryption key, which is not in the database. The secrets to look for are unwrapped with that
 * key (the one thing the copy lacks); the same database under another key does not start.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase, randomKeyEncryptionKey, type Database, type KeyEncryptionKey } from '@medshare/db';
import { base32Decode, base32Encode } from '@medshare/identity';
import { pre } from '@medshare/crypto';
import { createPlatform, GatewayClient, PatientClient, PlatformClient, roleScopes } from '../src/index.ts';
import { ADMINS, FAST_SCRYPT } from './harness.ts';

const PASSWORD = 'a long enough passphrase';

/** Every form a secret could be written in. */
function forms(secret: Uint8Array): Buffer[] {
  const bytes = Buffer.from(secret);
  return [
    bytes,
    ...[bytes.toString('hex'), bytes.toString('hex').toUpperCase(), bytes.toString('base64'), bytes.toString('base64url'), base32Encode(bytes)].map((text) =>
      Buffer.from(text),
    ),
  ];
}

/** The secrets the platform keeps in `db`, unwrapped with `kek`. */
async function keptSecrets(db: Database, kek: KeyEncryptionKey, totpSecrets: string[]): Promise<Array<[string, Uint8Array]>> {
  const secrets: Array<[string, Uint8Array]> = totpSecrets.map((s) => ['a TOTP secret', base32Decode(s)]);
  const keys = (
    await db.query<{ hospital: string; kid: string; private_key_wrapped: Uint8Array }>('SELECT hospital, kid, private_key_wrapped FROM identity_signing_keys')
  ).rows;
  for (const row of keys) {
    const jwk = JSON.parse(
      Buffer.from(await kek.unwrap(row.private_key_wrapped, `identity_signing_keys.private_key_wrapped|${row.hospital}|${row.kid}`)).toString(),
    ) as { d: string };
    secrets.push(['a private signing key', Buffer.from(jwk.d, 'base64url')]);
  }
  const master = (await db.query<{ master_key: Uint8Array }>('SELECT master_key FROM ta_setup')).rows[0]!.master_key;
  const masterKey = await kek.unwrap(master, 'ta_setup.master_key|1');
  secrets.push(['the TA master key', masterKey]);
  // A window of its scalars, in case the encoding around them were ever changed.
  secrets.push(['a window of the TA master key', masterKey.subarray(masterKey.length - 48, masterKey.length - 16)]);
  // The ledger's and the witnesses' note signing keys (PRIVATE+KEY+<name>+<hash>+<base64 key>) and chain keys.
  const ledgerKeys = (await db.query<{ name: string; wrapped: Uint8Array }>('SELECT name, wrapped FROM ledger_keys')).rows;
  assert.ok(ledgerKeys.length >= 3, 'the log and the witnesses have keys');
  for (const row of ledgerKeys) {
    const skey = Buffer.from(await kek.unwrap(row.wrapped, `ledger_keys/wrapped/${row.name}`)).toString('utf8');
    // A witness's chain key (secp256k1, 0x + 64 hex).
    if (skey.startsWith('0x')) {
      secrets.push([`the chain key ${row.name}`, Buffer.from(skey.slice(2), 'hex')]);
      continue;
    }
    const material = /^PRIVATE\+KEY\+[^+]*\+[0-9a-f]+\+(.+)$/.exec(skey)![1]!;
    secrets.push([`the ledger signing key ${row.name}`, Buffer.from(material, 'base64').subarray(1)]);
  }
  // Each hospital's tracing key of session pseudonyms (identity's sso/pseudonyms.ts).
  const tracing = (await db.query<{ hospital: string; key_wrapped: Uint8Array }>('SELECT hospital, key_wrapped FROM identity_tracing_keys')).rows;
  assert.ok(tracing.length >= 1, 'a hospital keeps a tracing key');
  for (const row of tracing)
    secrets.push([`the tracing key of ${row.hospital}`, await kek.unwrap(row.key_wrapped, `identity_tracing_keys.key_wrapped|${row.hospital}`)]);
  // Each hospital's research-release de-identification key.
  const deid = (await db.query<{ hospital: string; key_wrapped: Uint8Array }>('SELECT hospital, key_wrapped FROM gateway_deid_keys')).rows;
  assert.equal(deid.length, 1, 'a release made a de-identification key');
  for (const row of deid)
    secrets.push([`the de-identification key of ${row.hospital}`, await kek.unwrap(row.key_wrapped, `gateway_deid_keys.key_wrapped|${row.hospital}`)]);
  return secrets;
}

/** Fails naming the secret and form found in `haystack`. */
function assertAbsent(haystack: Buffer, secrets: Array<[string, Uint8Array]>, where: string): void {
  for (const [what, secret] of secrets) {
    for (const [i, form] of forms(secret).entries()) assert.equal(haystack.indexOf(form), -1, `${what} (form ${i}) is readable in ${where}`);
  }
}

/** Runs a platform on `db`, enrols users (TOTP secrets), logs one in; returns the TOTP secrets. */
async function populate(db: Database, kek: KeyEncryptionKey): Promise<string[]> {
  const platform = await createPlatform({ db, hospitals: ['st-marys', 'riverside'], adminTokens: ADMINS, kek, scrypt: FAST_SCRYPT });
  try {
    const client = new PlatformClient(platform.urls);
    const secrets: string[] = [];
    for (const [hospital, username] of [
      ['st-marys', 'antonia'],
      ['riverside', 'chen'],
      ['riverside', 'patel'],
    ] as const) {
      const { totpSecret } = await client.registerUser(hospital, ADMINS[hospital]!, {
        username,
        password: PASSWORD,
        attributes: ['role:doctor'],
        scopes: ['user/*.rs'],
      });
      secrets.push(totpSecret);
    }
    await client.loginReader('riverside', 'chen', PASSWORD, secrets[1]!, ['role:doctor']);
    // A research release attempt (refused: no consent) makes St Mary's de-identification key.
    const enrol = async (username: string, attributes: string[]) => {
      const { totpSecret } = await client.registerUser('st-marys', ADMINS['st-marys']!, {
        username,
        password: PASSWORD,
        attributes,
        scopes: roleScopes(attributes),
      });
      secrets.push(totpSecret);
      return client.login('st-marys', username, PASSWORD, totpSecret);
    };
    const patient = new PatientClient(
      await enrol('bea', ['role:patient']),
      pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, ['clinical']),
    );
    await patient.register();
    const gateway = new GatewayClient(await enrol('ehr', ['role:gateway']));
    await gateway.enrol('p1', patient.key.patientId);
    await assert.rejects(gateway.researchExport({ resourceType: 'Patient', id: 'p1' }, 'safe-harbor'), /not consented/);
    return secrets;
  } finally {
    await platform.close();
  }
}

/** Every file under `dir`, concatenated. */
async function allFiles(dir: string): Promise<Buffer> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  return Buffer.concat(await Promise.all(files.map((f) => readFile(f))));
}

describe('secrets at rest', () => {
  test('the raw files of a PGlite data directory hold no TOTP secret, signing key or TA master key', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'medshare-at-rest-'));
    const kek = randomKeyEncryptionKey();
    try {
      let db = await openDatabase({ dataDir });
      const totpSecrets = await populate(db, kek);
      const secrets = await keptSecrets(db, kek, totpSecrets);
      await db.close();
      const files = await allFiles(dataDir);
      assert.ok(files.length > 1_000_000, 'there is a database to scan');
      assert.notEqual(files.indexOf(Buffer.from('antonia')), -1, 'the scan reads table contents (a username is there in clear)');
      assertAbsent(files, secrets, 'the PGlite data directory');
      // The copy under another key-encryption key: the platform refuses to start rather than use other keys.
      db = await openDatabase({ dataDir });
      await assert.rejects(createPlatform({ db, hospitals: ['st-marys'], adminTokens: ADMINS, kek: randomKeyEncryptionKey(), scrypt: FAST_SCRYPT }), {
        code: 'INTEGRITY',
      });
      await db.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  const url = process.env['DATABASE_URL'];
  test("a pg_dump of the platform's PostgreSQL schema holds none of them", { skip: !url && 'DATABASE_URL is not set' }, async () => {
    const schema = `at_rest_${randomBytes(4).toString('hex')}`;
    const kek = randomKeyEncryptionKey();
    const db = await openDatabase({ url: url!, schema });
    try {
      const secrets = await keptSecrets(db, kek, await populate(db, kek));
      const dump = spawnSync('pg_dump', ['--dbname', url!, '--schema', schema, '--data-only'], { maxBuffer: 256 * 1024 * 1024 });
      assert.equal(dump.status, 0, `pg_dump: ${dump.stderr?.toString()}`);
      assert.ok(dump.stdout.length > 10_000, 'there is a dump to scan');
      assert.notEqual(dump.stdout.indexOf(Buffer.from('antonia')), -1, 'the dump holds table contents');
      assertAbsent(dump.stdout, secrets, 'the pg_dump');
    } finally {
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await db.close();
    }
  });
});
