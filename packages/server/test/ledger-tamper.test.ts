/**
 * The tamper suite over a running platform (issue #13): whoever controls the cloud's database edits, deletes,
 * reorders and truncates ledger entries, edits the patient column, replaces the signing key, or shows two
 * hospitals' witnesses different histories. Each attack must be detected with the entry named: by an auditor over
 * the public /ledger routes with no database access (the running platform), and by the platform itself when it is
 * restarted on the tampered database (it halts: /ledger/health is 503).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IntegrityError } from '@medshare/crypto';
import { migrate, openTestDatabases, randomKeyEncryptionKey } from '@medshare/db';
import {
  formatAddCheckpoint,
  formatCheckpoint,
  generateCheckpointKey,
  hashLeaf,
  LedgerClient,
  MerkleTree,
  parseVerifierKey,
  signNote,
  verifyInclusionBundle,
  verifyRemoteLog,
  type InclusionBundle,
  type TrustPolicy,
} from '@medshare/ledger';
import { createPlatform, type PatientClient, type Platform, type UploadResult } from '../src/index.ts';
import { CLOUD_MIGRATIONS } from '../src/migrations.ts';
import { ADMINS, FAST_SCRYPT, LAB_POLICY, sampleBundle, startCast } from './harness.ts';

const { db } = (await openTestDatabases())[0]!;
const dir = await mkdtemp(join(tmpdir(), 'medshare-ledger-tamper-'));
const kek = randomKeyEncryptionKey();
const checkpointFile = join(dir, 'ledger-checkpoint');
const options = { db, hospitals: ['st-marys', 'riverside'], adminTokens: ADMINS, scrypt: FAST_SCRYPT, kek, ledgerCheckpointFile: checkpointFile };
const TABLES = ['ledger_entries', 'ledger_checkpoints', 'ledger_head', 'ledger_keys', 'ledger_witness_state', 'ledger_tree'];

let platform: Platform;
let base: string;
let trust: TrustPolicy;
let patient: string;
let savedCheckpoint: string;
let uploaded: UploadResult;
let provenLog: Awaited<ReturnType<PatientClient['provenAccessLog']>>;
/** The st-marys EHR system's own (DPoP-bound) token: a user of the hospital, not its administrator. */
let systemToken: string;

/** Starts a platform on the database; its log opens at once and audits the stored entries in the background. */
async function start(): Promise<void> {
  platform = await createPlatform(options);
  base = platform.urls.cloud.href.replace(/\/$/, '');
}

/** Waits for the background audit of the entries stored before the last start (a fault it finds halts the log). */
const audited = () => platform.ledger.audited().catch(() => undefined);

const ledger = () => new LedgerClient(`${base}/ledger`);
const health = async () => (await fetch(`${base}/ledger/health`)).status;

/** A log key an older version stored in plaintext (platform_keys): adopted, wrapped, and its plaintext row deleted. */
const legacyKey = generateCheckpointKey('medshare.cloud/audit');

before(async () => {
  await migrate(db, 'cloud', CLOUD_MIGRATIONS);
  await db.query('INSERT INTO platform_keys (name, secret) VALUES ($1, $2)', ['medshare.cloud/audit', legacyKey.skey]);
  const cast = await startCast(db, options);
  platform = cast.platform;
  await cast.patient.register();
  await cast.gateway.enrol(sampleBundle().entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id, cast.patient.key.patientId);
  uploaded = await cast.gateway.upload(sampleBundle());
  systemToken = cast.gateway.session.token;
  await cast.patient.delegate('lab', LAB_POLICY, await cast.client.abePublicKey());
  for (let i = 0; i < 9; i++) await cast.chen.read(cast.patient.key.patientId, 'lab');
  patient = cast.patient.key.patientId;
  base = cast.base.href.replace(/\/$/, '');
  await platform.ledger.flush();
  const keys = await ledger().keys();
  trust = { log: parseVerifierKey(keys.log), witnesses: keys.witnesses.map(parseVerifierKey) };
  assert.equal(keys.log, legacyKey.signer.verifier.vkey, 'the old plaintext key was adopted');
  assert.equal((await db.query('SELECT * FROM platform_keys')).rows.length, 0, 'and its plaintext row deleted');
  provenLog = await cast.patient.provenAccessLog(trust);
  assert.equal(keys.quorum, 2, "a majority of the two hospitals' witnesses");
  const report = await verifyRemoteLog(ledger(), trust);
  assert.equal(report.ok, true, report.problem);
  assert.ok(report.size >= 10, `${report.size} entries`);
  savedCheckpoint = await ledger().checkpoint();
  for (const table of TABLES) await db.query(`CREATE TABLE backup_${table} AS SELECT * FROM ${table}`);
  await writeFile(join(dir, 'checkpoint.backup'), await readFile(checkpointFile));
});

after(async () => {
  await platform.close();
  await db.close();
  await rm(dir, { recursive: true, force: true });
});

/** Puts the ledger back as it was before the attack and starts a fresh platform on it. */
async function restore(): Promise<void> {
  await platform.close();
  for (const table of TABLES) {
    await db.query(`DELETE FROM ${table}`);
    await db.query(`INSERT INTO ${table} SELECT * FROM backup_${table}`);
  }
  await writeFile(checkpointFile, await readFile(join(dir, 'checkpoint.backup')));
  await start();
  await audited();
  assert.equal(await health(), 200);
}

async function restartAndExpectHalt(index: number): Promise<void> {
  await platform.close();
  await start();
  await audited();
  assert.equal(await health(), 503);
  const alarm = platform.ledger.health().alarm;
  assert.equal(alarm?.index, index, alarm?.problem);
}

/** Runs one attack; whatever happens, the ledger is put back for the next. */
async function attack(steps: () => Promise<void>): Promise<void> {
  try {
    await steps();
  } finally {
    await restore();
  }
}

const entryRow = async (index: number) => (await db.query<{ entry: string }>('SELECT entry FROM ledger_entries WHERE idx = $1', [index])).rows[0]!.entry;

describe('upload receipts and the proven access log', () => {
  test('an upload is on the ledger: the gateway holds a witnessed receipt naming every stored ciphertext, which proves a record the cloud later drops', async () => {
    assert.equal(uploaded.receipts.length, Math.ceil(uploaded.stored / 64));
    const rows = (await db.query<{ bundle: string }>('SELECT bundle FROM gateway_receipts ORDER BY ledger_index')).rows;
    assert.equal(rows.length, uploaded.receipts.length);
    const named = new Set<string>();
    for (const { bundle } of rows) {
      const { event, cosigners } = verifyInclusionBundle(JSON.parse(bundle) as InclusionBundle, trust);
      assert.equal(event.type.code, 'record-create');
      assert.equal(cosigners.length, 2);
      for (const entity of event.entity) if (entity.type.code === 'record') named.add(entity.what.identifier.value);
    }
    // The cloud drops one record: the receipt still names its ciphertext hash, under a witnessed checkpoint.
    const dropped = (await db.query<{ record_id: string; ciphertext: Uint8Array }>('SELECT record_id, ciphertext FROM cloud_records LIMIT 1')).rows[0]!;
    const { sha256Name } = await import('../src/cloud/service.ts');
    assert.ok(named.has(sha256Name(dropped.ciphertext)));
    assert.equal(named.size, uploaded.stored);
  });

  test("the administrator's receipt list (GET /gateway/admin/receipts): each receipt re-verified, naming every stored ciphertext; its witness reachable; an edited receipt listed as invalid; anyone else refused", async () => {
    const list = (hospital: string, token?: string) =>
      fetch(
        new URL('/gateway/admin/receipts', platform.urls.hospitals[hospital]!),
        token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } },
      );
    type Listing = {
      witness: { name: string; lastCosignedSize: number; ledgerSize: number; reachable: boolean };
      receipts: Array<{ index: number; status: string; checkpointSize: number; records: Array<{ hash: string }>; problem?: string }>;
    };
    const listing = (await (await list('st-marys', ADMINS['st-marys'])).json()) as Listing;
    assert.deepEqual(
      listing.receipts.map((r) => r.index),
      uploaded.receipts.map((r) => r.index).sort((a, b) => b - a),
      'newest first',
    );
    for (const row of listing.receipts) {
      assert.equal(row.status, 'verified', row.problem);
      assert.equal(row.checkpointSize, uploaded.receipts.find((r) => r.index === row.index)!.treeSize);
    }
    assert.equal(new Set(listing.receipts.flatMap((r) => r.records.map((x) => x.hash))).size, uploaded.stored);
    assert.equal(listing.witness.name, 'st-marys.medshare/witness');
    assert.equal(listing.witness.reachable, true);
    assert.ok(listing.witness.lastCosignedSize >= Math.max(...listing.receipts.map((r) => r.checkpointSize)));
    assert.equal(listing.witness.ledgerSize, listing.witness.lastCosignedSize, 'both witnesses cosign every checkpoint (quorum 2 of 2)');
    assert.deepEqual(((await (await list('riverside', ADMINS['riverside'])).json()) as Listing).receipts, [], "another hospital's receipts are not listed");

    // The hospital's database is edited: a receipt's entry names another ciphertext. Listed as invalid, not verified.
    const newest = listing.receipts[0]!.index;
    const { bundle } = (await db.query<{ bundle: string }>('SELECT bundle FROM gateway_receipts WHERE ledger_index = $1', [newest])).rows[0]!;
    const edited = JSON.parse(bundle) as InclusionBundle;
    edited.entry = edited.entry.replace(/sha256:[0-9a-f]{4}/, 'sha256:0000');
    await db.query('UPDATE gateway_receipts SET bundle = $1 WHERE ledger_index = $2', [JSON.stringify(edited), newest]);
    try {
      const row = ((await (await list('st-marys', ADMINS['st-marys'])).json()) as Listing).receipts[0]!;
      assert.equal(row.status, 'invalid');
      assert.match(row.problem!, /not in the log/);
    } finally {
      await db.query('UPDATE gateway_receipts SET bundle = $1 WHERE ledger_index = $2', [bundle, newest]);
    }

    // No credential, another hospital's administrator credential, a user's token: 403 problem+json, nothing listed.
    for (const token of [undefined, ADMINS['riverside'], systemToken, `${ADMINS['st-marys']}x`]) {
      const refused = await list('st-marys', token);
      assert.equal(refused.status, 403);
      assert.match(refused.headers.get('content-type') ?? '', /application\/problem\+json/);
      assert.match(((await refused.json()) as { detail: string }).detail, /administrator credential of this hospital required/);
    }
    assert.equal(
      (
        await fetch(new URL('/gateway/admin/receipts?limit=0', platform.urls.hospitals['st-marys']!), {
          headers: { authorization: `Bearer ${ADMINS['st-marys']}` },
        })
      ).status,
      400,
    );
  });

  test("the patient's access log shows the upload and every line is proven by an inclusion bundle the SDK checked", () => {
    assert.ok(provenLog.some((e) => e.action === 'upload' && e.proof?.event.type.code === 'record-create'));
    assert.ok(provenLog.filter((e) => e.ledgerIndex !== null).every((e) => e.proof !== null && e.proof.cosigners.length === 2));
  });
});

describe('tampering with the ledger of a running platform is detected and the entry named', () => {
  test('edit an entry', () =>
    attack(async () => {
      await db.query(`UPDATE ledger_entries SET entry = replace(entry, '"outcome":"0"', '"outcome":"4"') WHERE idx = 6`);
      const report = await verifyRemoteLog(ledger(), trust);
      assert.equal(report.firstBadIndex, 6, report.problem);
      assert.equal(await health(), 503, 'serving the edited entry halted the log');
      await restartAndExpectHalt(6);
      assert.equal((await fetch(`${base}/ledger/checkpoint`)).status, 503, 'a halted log serves no checkpoint');
    }));

  test('edit an entry and its leaf hash, delete the checkpoints that cover it (the forged history the log used to sign)', () =>
    attack(async () => {
      const forged = (await entryRow(5)).replace('"outcome":"0"', '"outcome":"4"');
      await db.query('UPDATE ledger_entries SET entry = $1, leaf_hash = $2 WHERE idx = 5', [forged, hashLeaf(Buffer.from(forged))]);
      await db.query('DELETE FROM ledger_checkpoints WHERE size > 5');
      assert.equal((await verifyRemoteLog(ledger(), { ...trust, external: [savedCheckpoint] })).firstBadIndex, 5);
      await restartAndExpectHalt(5);
      assert.equal(
        await ledger()
          .checkpoint()
          .then(
            () => 'served',
            () => 'refused',
          ),
        'refused',
        'no checkpoint is signed over the forgery',
      );
    }));

  test('delete an entry', () =>
    attack(async () => {
      await db.query('DELETE FROM ledger_entries WHERE idx = 3');
      assert.equal((await verifyRemoteLog(ledger(), trust)).firstBadIndex, 3);
      await restartAndExpectHalt(3);
    }));

  test('reorder two entries', () =>
    attack(async () => {
      await db.query('UPDATE ledger_entries SET idx = -1 WHERE idx = 7');
      await db.query('UPDATE ledger_entries SET idx = 7 WHERE idx = 8');
      await db.query('UPDATE ledger_entries SET idx = 8 WHERE idx = -1');
      assert.equal((await verifyRemoteLog(ledger(), trust)).firstBadIndex, 7);
      await restartAndExpectHalt(7);
    }));

  test('truncate consistently (entries, checkpoints and head)', () =>
    attack(async () => {
      await db.query('DELETE FROM ledger_entries WHERE idx >= 4');
      await db.query('DELETE FROM ledger_checkpoints WHERE size > 4');
      await db.query('UPDATE ledger_head SET size = 4');
      await restartAndExpectHalt(4);
      // An auditor who kept an earlier checkpoint sees the cut wherever the log is served from.
      const report = await verifyRemoteLog(ledger(), { ...trust, external: [savedCheckpoint] }).catch((error: Error) => ({
        firstBadIndex: -1,
        problem: error.message,
      }));
      assert.notEqual(report.firstBadIndex, undefined);
    }));

  test('edit the patient column to hide entries from her log', () =>
    attack(async () => {
      await db.query("UPDATE ledger_entries SET patient = 'psn:AAAAAAAAAAAAAAAAAAAAAA' WHERE idx = 8");
      // Her log is found from the entries themselves; reading entry 8 back finds the column disagreeing with it.
      await assert.rejects(ledger().patientBundles(patient), /entry 8 is filed under another patient/);
      assert.equal(await health(), 503);
      await restartAndExpectHalt(8);
    }));

  test('replace the signing key: without the KEK it does not unwrap; with it, the checkpoint file outside the database is not signed by the new key', () =>
    attack(async () => {
      const theirs = generateCheckpointKey('medshare.cloud/audit', 'ed25519');
      await db.query('UPDATE ledger_keys SET wrapped = $1 WHERE name = $2', [
        await randomKeyEncryptionKey().wrap(Buffer.from(theirs.skey), 'ledger_keys/wrapped/medshare.cloud/audit'),
        'medshare.cloud/audit',
      ]);
      await platform.close();
      await assert.rejects(createPlatform(options), IntegrityError);
      await db.query('UPDATE ledger_keys SET wrapped = $1 WHERE name = $2', [
        await kek.wrap(Buffer.from(theirs.skey), 'ledger_keys/wrapped/medshare.cloud/audit'),
        'medshare.cloud/audit',
      ]);
      await db.query('UPDATE ledger_head SET log_vkey = $1', [theirs.signer.verifier.vkey]);
      await start();
      assert.equal(await health(), 503);
      assert.match(platform.ledger.health().alarm?.problem ?? '', /not signed by the log key/);
      // And an auditor pinning the genuine key refuses what the new key signs.
      assert.equal(
        await verifyRemoteLog(ledger(), trust).then(
          (r) => r.ok,
          () => false,
        ),
        false,
      );
    }));

  test("fork views between two hospitals' witnesses: the witness shown the other history refuses it, before and after a restart", async () => {
    // The operator, holding the log key, signs a second history extending another past and shows it to riverside.
    const size = platform.ledger.size;
    const tree = new MerkleTree();
    for (let i = 0; i < size + 2; i++) tree.append(hashLeaf(Buffer.from(`other history ${i}`)));
    const signer = (platform.ledger as unknown as { signer: Parameters<typeof signNote>[1][number] }).signer;
    const note = signNote(formatCheckpoint({ origin: 'medshare.cloud/audit', size: size + 2, rootHash: tree.rootHash() }), [signer], 0);
    const fork = () =>
      fetch(new URL('/witness/riverside/add-checkpoint', platform.urls.hospitals['riverside']!), {
        method: 'POST',
        body: formatAddCheckpoint({ oldSize: size, consistencyProof: tree.consistencyProof(size), note }),
      });
    assert.equal((await fork()).status, 422);
    await platform.close();
    await start();
    assert.equal((await fork()).status, 422);
    const report = await verifyRemoteLog(ledger(), trust);
    assert.equal(report.ok, true, 'the genuine history is still what both witnesses cosign');
    assert.equal(report.latestCosigners.length, 2);
  });
});
