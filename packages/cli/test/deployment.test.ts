/**
 * The deployment as it is meant to run: the trusted authority, the cloud and two hospitals as four OS processes
 * (`medshare serve authority|cloud|hospital`), each with its own database and key-encryption key, talking only over
 * HTTP. The whole story runs across them; then each service is killed with SIGKILL in the middle of an operation and
 * started again — nothing acknowledged is lost, nothing is half-written, and a remote service being down is a 503
 * upstream, never a hang. Finally the databases are opened: each domain's keys are only in its own, and a copy of
 * the cloud's database decrypts nothing (with a positive control: the same attack succeeds once the authority's
 * master key is added). PGlite always; PostgreSQL (a schema per service) too when DATABASE_URL is set.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { abe, MedShareError, pre } from '@medshare/crypto';
import { loadKeyEncryptionKey, openDatabase, type Database } from '@medshare/db';
import { SigningKeyRing, SqlSigningKeyStore } from '@medshare/identity';
import { AnchorClient, parseCheckpoint, parseNote } from '@medshare/ledger';
import { everyValue, GatewayClient, HttpProblemError, LEDGER_KEY_NAME, PatientClient, PlatformClient, roleScopes, tryEveryKey, type DoctorClient } from '@medshare/server';
import { startGanache, type GanacheNode } from '../../ledger/test/ganache.ts';
import { startLocalDeployment, type LocalDeployment } from '../src/deployment.ts';
import { runCli } from './run-cli.ts';

const BIN = fileURLToPath(new URL('../bin/medshare.js', import.meta.url));
const ADMINS: Record<string, string> = { 'st-marys': 'deployment-test-admin-st-marys-0123', riverside: 'deployment-test-admin-riverside-4567' };
const PASSWORD = 'a long enough passphrase';
const HOSPITALS = ['st-marys', 'riverside'];
const CATEGORIES = ['lab', 'imaging', 'notes', 'medication', 'clinical'];
const LAB_POLICY = '(role:doctor and dept:cardiology) or role:emergency';
const ATTACKER_ATTRIBUTES = 'role:doctor, dept:cardiology, role:emergency';
const BUNDLE = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/synthea-sample.json', import.meta.url)), 'utf8').replace(/^\uFEFF/, '')) as {
  entry: Array<{ resource: { resourceType: string; id: string } }>;
};
const FHIR_PATIENT = BUNDLE.entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id;
const LAB_COUNT = BUNDLE.entry.filter((e) => ['Observation', 'DiagnosticReport'].includes(e.resource.resourceType)).length;

const url = process.env['DATABASE_URL'];
const engines = [{ label: 'pglite', postgres: false }, ...(url ? [{ label: 'postgres', postgres: true }] : [])];

/** A transaction Bundle of `n` observations of one FHIR patient (a few seconds of gateway work). */
function observations(fhirPatient: string, n: number, tag: string) {
  return {
    resourceType: 'Bundle', type: 'transaction',
    entry: Array.from({ length: n }, (_, i) => ({ resource: { resourceType: 'Observation', id: `${tag}-${i}`, status: 'final', code: { text: 'heart rate' }, subject: { reference: `Patient/${fhirPatient}` }, valueQuantity: { value: i } } })),
  };
}

/** Resolves to the outcome of `work`, whatever it is (the kill tests accept success or a typed failure). */
const settle = <T>(work: Promise<T>) => work.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));

for (const engine of engines) {
  describe(`four processes on ${engine.label}`, () => {
    let root: string;
    let deployment: LocalDeployment;
    let client: PlatformClient;
    let patient: PatientClient;
    let gateway: GatewayClient;
    let chen: DoctorClient;
    let patel: DoctorClient;
    let okafor: DoctorClient;
    const schemaPrefix = `dep_${randomBytes(4).toString('hex')}`;
    /** Records the cloud acknowledged (uploads that answered). */
    let acknowledged = 0;
    /** Lab records Dr Chen should read now: the bundle's, plus what later tests uploaded. */
    let labRecords = LAB_COUNT;
    /**
     * A killed service is a crash of its embedded database only on PGlite (on PostgreSQL the server outlives the
     * process, and its own restart is postgres-restart.test.ts), so the kill tests run there; PostgreSQL runs what
     * only it can (two processes on one schema). The story and the database-copy attack run on both.
     */
    const killTest = engine.postgres && 'the kill tests run on PGlite, where the killed process holds the database';

    const enrol = async (hospital: string, username: string, attributes: string[]) =>
      (await client.registerUser(hospital, ADMINS[hospital]!, { username, password: PASSWORD, attributes, scopes: roleScopes(attributes) })).totpSecret;
    const reader = async (username: string, attributes: string[]) => client.loginReader('riverside', username, PASSWORD, await enrol('riverside', username, attributes), attributes);
    /** Fresh tokens for the same sessions (tokens live 5 minutes; a slow machine takes longer than that for the file). */
    const refresh = async () => {
      patient = new PatientClient(await client.refresh(patient.session), patient.key);
      gateway = new GatewayClient(await client.refresh(gateway.session));
      [chen, patel, okafor] = await Promise.all([chen, patel, okafor].map(async (d) => d.withSession(await client.refresh(d.session)))) as [DoctorClient, DoctorClient, DoctorClient];
    };

    /** The consortium chain (a ganache JSON-RPC node process) the cloud process anchors its ledger on. */
    let chain: GanacheNode;
    let anchorContract: AnchorClient;
    before(async () => {
      root = await mkdtemp(join(tmpdir(), 'medshare-deployment-'));
      chain = await startGanache();
      anchorContract = await AnchorClient.deploy(chain.wallet(0));
      // The cloud's anchorer account key reaches it only through its environment, as in production.
      const ledgerEnv = { LEDGER_RPC_URL: chain.url, LEDGER_ANCHOR_ADDRESS: await anchorContract.address(), LEDGER_PRIVATE_KEY: chain.wallet(1).privateKey };
      deployment = await startLocalDeployment({
        root, hospitals: HOSPITALS, adminTokens: ADMINS, args: ['--requests-per-minute', '100000'], cloudArgs: ['--anchor-interval', '1'],
        env: { ...process.env, ...(engine.postgres ? {} : { DATABASE_URL: '' }), ...ledgerEnv },
        ...(engine.postgres ? { schemaPrefix } : {}),
      });
      client = new PlatformClient(deployment.urls);
    });
    after(async () => {
      await deployment?.stop();
      await chain?.stop();
      if (engine.postgres) {
        const db = await openDatabase({ url: url! });
        for (const name of ['authority', 'cloud', ...HOSPITALS]) await db.query(`DROP SCHEMA IF EXISTS ${schemaPrefix}_${name.replaceAll('-', '_')} CASCADE`);
        await db.close();
      }
      await rm(root, { recursive: true, force: true });
    });

    test('the story over HTTP: enrol, upload, delegate, read, refuse, revoke, emergency, access log', async () => {
      const patientSecret = await enrol('st-marys', 'antonia', ['role:patient']);
      patient = new PatientClient(await client.login('st-marys', 'antonia', PASSWORD, patientSecret), pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, CATEGORIES));
      await patient.register();
      gateway = new GatewayClient(await client.login('st-marys', 'ehr', PASSWORD, await enrol('st-marys', 'ehr', ['role:gateway'])));
      [chen, patel, okafor] = await Promise.all([
        reader('chen', ['role:doctor', 'dept:cardiology']), reader('patel', ['role:doctor', 'dept:dermatology']), reader('okafor', ['role:emergency']),
      ]);
      await gateway.enrol(FHIR_PATIENT, patient.key.patientId);
      const upload = await gateway.upload(BUNDLE);
      assert.equal(upload.stored, BUNDLE.entry.length);
      acknowledged += upload.stored;
      assert.equal((await gateway.upload(BUNDLE)).stored, 0, 'a retry stores nothing twice');
      const abeKey = await client.abePublicKey();
      const lab = await patient.delegate('lab', LAB_POLICY, abeKey);
      await patient.delegate('lab', 'role:emergency', abeKey, { emergency: true });
      assert.equal((await chen.read(patient.key.patientId, 'lab')).length, LAB_COUNT);
      await assert.rejects(patel.read(patient.key.patientId, 'lab'), (e: MedShareError) => e.code === 'ACCESS_DENIED');
      await patient.revoke(lab.delegationId);
      await assert.rejects(chen.read(patient.key.patientId, 'lab'), /no active delegation/);
      assert.equal((await okafor.emergencyRead(patient.key.patientId, 'lab', 'unconscious on arrival')).length, LAB_COUNT);
      assert.ok((await okafor.emergencyRead(patient.key.patientId, 'medication', 'anaphylaxis')).length > 0, 'the platform emergency policy');
      const log = await patient.accessLog();
      assert.deepEqual(log.map((e) => e.action), ['upload', 'grant', 'grant', 'read', 'read', 'revoke', 'read', 'emergency read', 'emergency read (platform policy)']);
      assert.deepEqual(log.map((e) => e.hospital), ['st-marys', 'st-marys', 'st-marys', 'riverside', 'riverside', 'st-marys', 'riverside', 'riverside', 'riverside']);
      // The upload's receipts: witnessed by both hospitals' witnesses (each in its own process and database).
      assert.ok(upload.receipts.length > 0 && upload.receipts.every((r) => r.treeSize > 0), 'the gateway holds a witnessed receipt for every ledger entry');
      // She delegates again: the tests that follow read under this delegation.
      await patient.delegate('lab', LAB_POLICY, abeKey);
      assert.equal((await chen.read(patient.key.patientId, 'lab')).length, LAB_COUNT, 'a new delegation restores access');
    });

    test('the cloud process anchors on chain every --anchor-interval; audit verify --url --rpc-url checks the served log against the anchor', async () => {
      const ledgerUrl = new URL('/ledger', deployment.urls.cloud).href;
      const sizeOf = (note: string) => parseCheckpoint(parseNote(note).body).size;
      const earlier = await (await fetch(`${ledgerUrl}/checkpoint`)).text();
      await chen.read(patient.key.patientId, 'lab'); // a logged read: the log grows past `earlier`
      // The consortium's admin registers the log: the cloud's anchorer account and the hospitals' chain addresses
      // (each published by the hospital itself), a quorum of both.
      const published = await Promise.all(HOSPITALS.map(async (h) =>
        (await (await fetch(new URL(`/witness/${h}/key`, deployment.urls.hospitals[h]))).json()) as { key: string; chainAddress: string }));
      await anchorContract.configureLog(LEDGER_KEY_NAME, chain.wallet(1).address, published.map((p) => p.chainAddress), 2);
      let anchored = await anchorContract.latestAnchor(LEDGER_KEY_NAME);
      for (const deadline = Date.now() + 60_000; (anchored?.size ?? 0) <= sizeOf(earlier); anchored = await anchorContract.latestAnchor(LEDGER_KEY_NAME)) {
        assert.ok(Date.now() < deadline, 'the cloud process anchored nothing beyond the earlier checkpoint within 60 s');
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const { log: logKey } = (await (await fetch(`${ledgerUrl}/keys`)).json()) as { log: string };
      const pinned = ['--log-key', logKey, ...published.flatMap((p) => ['--witness-key', p.key])];
      const chainFlags = ['--rpc-url', chain.url, '--anchor-address', await anchorContract.address()];
      const verified = await runCli(['audit', 'verify', '--url', ledgerUrl, ...pinned, ...chainFlags]);
      assert.equal(verified.code, 0, verified.stderr);
      const report = JSON.parse(verified.stdout);
      assert.equal(report.anchored.size, anchored!.size);
      assert.equal(report.anchored.rootHash, anchored!.rootHash.toString('base64'));

      // A cloud that shows an auditor its earlier (genuine, witnessed) checkpoint to hide what came after it.
      const rollingBack = createServer((request, response) => {
        const path = request.url ?? '/';
        if (path === '/ledger/checkpoint') return void response.writeHead(200, { 'content-type': 'text/plain' }).end(earlier);
        fetch(new URL(path, deployment.urls.cloud)).then(async (upstream) => {
          response.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' }).end(Buffer.from(await upstream.arrayBuffer()));
        }, () => response.writeHead(502).end());
      });
      await new Promise<void>((resolve) => rollingBack.listen(0, '127.0.0.1', resolve));
      try {
        const staleUrl = `http://127.0.0.1:${(rollingBack.address() as AddressInfo).port}/ledger`;
        const unchained = await runCli(['audit', 'verify', '--url', staleUrl, ...pinned]);
        assert.equal(unchained.code, 0, `without the chain the earlier view checks out: ${unchained.stderr}`);
        // The chain read through the environment, as an auditor's shell would have it.
        const env = { ...process.env, LEDGER_RPC_URL: chain.url, LEDGER_ANCHOR_ADDRESS: await anchorContract.address() };
        const caught = await runCli(['audit', 'verify', '--url', staleUrl, ...pinned], { env });
        assert.equal(caught.code, 4, caught.stderr);
        assert.match(caught.stderr, new RegExp(`at entry ${sizeOf(earlier)}: the log was cut back: the chain anchored ${anchored!.size} entries, ${sizeOf(earlier)} are served`));
        assert.equal(caught.stderr.trim().split('\n').length, 1, 'one line');
      } finally {
        await new Promise((resolve) => rollingBack.close(resolve));
      }
    });

    test('the cloud killed (SIGKILL) in the middle of an upload: none of it or all of it, nothing acknowledged lost', { skip: killTest }, async () => {
      await refresh();
      const big = observations(FHIR_PATIENT, 60, 'cloud-kill');
      const uploading = settle(gateway.upload(big));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await deployment.kill('cloud');
      try {
        const outcome = await uploading;
        if (outcome.ok) acknowledged += outcome.value.stored;
        else assert.ok(outcome.error instanceof MedShareError && outcome.error.code === 'UNAVAILABLE', `a typed 503, not ${String(outcome.error)}`);
        // While the cloud is down, the gateway answers 503 problem+json with Retry-After at once.
        const enrolUrl = new URL('/gateway/patients', deployment.urls.hospitals['st-marys']);
        const proof = await gateway.session.device.dpop.proof('POST', enrolUrl, { accessToken: gateway.session.token });
        const down = await fetch(enrolUrl, {
          method: 'POST', headers: { authorization: `DPoP ${gateway.session.token}`, dpop: proof, 'content-type': 'application/json' }, body: JSON.stringify({ fhirId: 'someone', patient: patient.key.patientId }),
        });
        assert.equal(down.status, 503);
        assert.match(down.headers.get('content-type') ?? '', /^application\/problem\+json/);
        assert.ok(Number(down.headers.get('retry-after')) > 0);
      } finally {
        await deployment.restart('cloud');
      }
      const stored = (await patient.records()).length;
      assert.ok(stored === acknowledged || stored === acknowledged + 60, `all or nothing: ${stored} records after ${acknowledged} acknowledged`);
      const retry = await gateway.upload(big);
      assert.equal(retry.stored + stored, acknowledged + 60, 'the retry stores exactly what was missing');
      acknowledged += retry.stored + (stored - acknowledged);
      assert.equal((await patient.records()).length, acknowledged);
      labRecords += 60;
      assert.equal((await chen.read(patient.key.patientId, 'lab')).length, labRecords, 'a token issued before the restart still reads');
    });

    test('a hospital killed in the middle of an upload, and a reader\'s hospital killed: 503 upstream, then service resumes', { skip: killTest }, async () => {
      await refresh();
      const uploading = settle(gateway.upload(observations(FHIR_PATIENT, 40, 'hospital-kill')));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await deployment.kill('st-marys');
      try {
        const outcome = await uploading;
        if (outcome.ok) acknowledged += outcome.value.stored;
      } finally {
        await deployment.restart('st-marys');
      }
      const stored = (await patient.records()).length;
      assert.ok(stored === acknowledged || stored === acknowledged + 40, `all or nothing: ${stored} after ${acknowledged}`);
      acknowledged = stored;
      // The session lives in the hospital's database: the gateway's token still works after the restart.
      const retry = await gateway.upload(observations(FHIR_PATIENT, 40, 'hospital-kill'));
      acknowledged += retry.stored;
      assert.equal((await patient.records()).length, acknowledged);

      await deployment.kill('riverside');
      try {
        // The cloud cannot ask riverside about Dr Chen's session: 503, promptly.
        const asked = Date.now();
        await assert.rejects(chen.read(patient.key.patientId, 'lab'), (e: HttpProblemError) => e.status === 503 && e.code === 'UNAVAILABLE');
        assert.ok(Date.now() - asked < 30_000, 'no hang');
      } finally {
        await deployment.restart('riverside');
      }
      labRecords += 40;
      assert.equal((await chen.read(patient.key.patientId, 'lab')).length, labRecords);
    });

    test('the authority killed while issuing keys: its setup survives, keys from before still read, new ones are issued', { skip: killTest }, async () => {
      await refresh();
      const authorityId = Buffer.from((await client.abePublicKey()).authorityId).toString('hex');
      const issuing = settle(reader('kim', ['role:doctor', 'dept:cardiology']));
      await new Promise((resolve) => setTimeout(resolve, 200));
      await deployment.kill('authority');
      try {
        await issuing;
        await assert.rejects(client.abePublicKey(), (e: MedShareError) => e.code === 'UNAVAILABLE');
      } finally {
        await deployment.restart('authority');
      }
      assert.equal(Buffer.from((await client.abePublicKey()).authorityId).toString('hex'), authorityId, 'the same setup after the restart');
      const kim = await reader('kim2', ['role:doctor', 'dept:cardiology']);
      assert.equal((await kim.read(patient.key.patientId, 'lab')).length, labRecords, 'a key issued after the restart is of the same authority');
      assert.equal((await chen.read(patient.key.patientId, 'lab')).length, labRecords, 'and one from before');
    });

    test('two cloud processes on one PostgreSQL schema serve uploads and reads at once; a hospital key rotation is seen by both', { skip: !engine.postgres && 'PGlite is one process\'s database' }, async () => {
      await refresh();
      // A second `serve cloud` on the first one's schema and data directory (its KEK file): stateless apart from the database.
      const cloud = deployment.services.get('cloud')!;
      const second = spawn(process.execPath, [BIN, 'serve', 'cloud', '--data', cloud.dataDir, '--port', '0', '--config', join(root, 'config.json'),
        '--schema', `${schemaPrefix}_cloud`, '--requests-per-minute', '100000'], { env: process.env, stdio: ['pipe', 'pipe', 'pipe'] });
      try {
        second.stdin.end();
        const secondUrl = await new Promise<URL>((resolve, reject) => {
          let out = '';
          second.stdout.on('data', (chunk: Buffer) => {
            out += chunk.toString();
            const match = /^cloud (http:\S+) /m.exec(out);
            if (match) resolve(new URL(match[1]!));
          });
          second.once('exit', (code) => reject(new Error(`the second cloud exited ${code}`)));
        });
        const viaSecond = (doctor: DoctorClient) => doctor.withSession({ ...doctor.session, urls: { ...doctor.session.urls, cloud: secondUrl } });
        const before = (await patient.records()).length;
        const [uploaded, reads] = await Promise.all([
          gateway.upload(observations(FHIR_PATIENT, 40, 'scale')),
          Promise.all(Array.from({ length: 5 }, () => chen.read(patient.key.patientId, 'lab').then(() => new PatientClient({ ...patient.session, urls: { ...patient.session.urls, cloud: secondUrl } }, patient.key).records()))),
        ]);
        acknowledged += uploaded.stored;
        for (const seen of reads) assert.ok(seen.length === before || seen.length === before + 40, 'a read sees an upload whole or not at all');
        assert.equal((await new PatientClient({ ...patient.session, urls: { ...patient.session.urls, cloud: secondUrl } }, patient.key).records()).length, acknowledged);
        // Rotate riverside's signing key (through its key store, while it is stopped: there is no rotation route).
        await deployment.kill('riverside', 'SIGTERM');
        const riverside = await openDatabase({ url: url!, schema: `${schemaPrefix}_riverside` });
        try {
          const kek = loadKeyEncryptionKey({ file: join(deployment.services.get('riverside')!.dataDir, 'state', 'kek') });
          await (await SigningKeyRing.open(new SqlSigningKeyStore(riverside, 'riverside', kek), 600_000)).rotate();
        } finally {
          await riverside.close();
        }
        await deployment.restart('riverside');
        const fresh = await reader('lee', ['role:doctor', 'dept:cardiology']);
        const kid = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid as string;
        assert.notEqual(kid(fresh.session.token), kid(chen.session.token), 'signed with the new key');
        labRecords += 40;
        const count = labRecords;
        assert.equal((await fresh.read(patient.key.patientId, 'lab')).length, count, 'the first cloud accepts the new key without a restart');
        assert.equal((await viaSecond(fresh).read(patient.key.patientId, 'lab')).length, count, 'and so does the second');
        assert.equal((await viaSecond(chen).read(patient.key.patientId, 'lab')).length, count, 'a token of the retired key still verifies at both');
      } finally {
        second.kill('SIGTERM');
      }
    });

    test('each domain\'s keys are only in its own database; a copy of the cloud\'s database decrypts nothing', async () => {
      await deployment.stop();
      const open = async (name: string): Promise<Database> => engine.postgres
        ? openDatabase({ url: url!, schema: `${schemaPrefix}_${name.replaceAll('-', '_')}` })
        : openDatabase({ dataDir: join(deployment.services.get(name)!.dataDir, 'db') });
      const tables = async (db: Database) => new Set((await db.query<{ t: string }>(
        "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")).rows.map((r) => r.t));
      const count = async (db: Database, table: string) => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;

      const authority = await open('authority');
      let masterKey: Uint8Array;
      try {
        const held = await tables(authority);
        assert.ok(held.has('ta_setup'));
        const wrapped = (await authority.query<{ master_key: Uint8Array }>('SELECT master_key FROM ta_setup')).rows[0]!.master_key;
        assert.throws(() => abe.decodeMasterKey(wrapped), 'the master key is stored wrapped');
        // The positive control below is an attacker who also has the authority's KEK (its state directory).
        masterKey = await loadKeyEncryptionKey({ file: join(deployment.services.get('authority')!.dataDir, 'state', 'kek') }).unwrap(wrapped, 'ta_setup.master_key|1');
        assert.ok(![...held].some((t) => t.startsWith('cloud_') || t.startsWith('gateway_')), 'no cloud or gateway table at the authority');
        assert.equal(await count(authority, 'identity_users'), 0, 'no account at the authority');
        assert.equal(await count(authority, 'identity_signing_keys'), 0, 'no hospital signing key at the authority');
      } finally {
        await authority.close();
      }
      for (const hospital of HOSPITALS) {
        const db = await open(hospital);
        try {
          const held = await tables(db);
          assert.ok(!held.has('ta_setup') && ![...held].some((t) => t.startsWith('cloud_')), `${hospital} holds no authority or cloud table`);
          // Its ledger tables are its witness's and its gateway's: its own keys (note, chain, record signing) and the checkpoint it last cosigned, no log entries.
          assert.equal(await count(db, 'ledger_entries'), 0);
          assert.deepEqual((await db.query<{ name: string }>('SELECT name FROM ledger_keys ORDER BY name')).rows.map((r) => r.name), [`${hospital}.medshare/chain`, `${hospital}.medshare/records`, `${hospital}.medshare/witness`]);
          assert.ok((await count(db, 'ledger_witness_state')) >= 1, 'it cosigned checkpoints');
          assert.ok((await count(db, 'identity_signing_keys')) >= 1);
          const others = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM identity_users WHERE hospital <> $1', [hospital])).rows[0]!.n;
          assert.equal(others, 0, `${hospital} holds only its own accounts`);
        } finally {
          await db.close();
        }
      }

      // The attacker's copy: the PGlite directory, or a pg_dump of the cloud's schema restored nowhere but read whole.
      let values: Buffer[];
      if (engine.postgres) {
        const dump = execFileSync('pg_dump', ['--data-only', `--schema=${schemaPrefix}_cloud`, url!], { maxBuffer: 1 << 30 });
        values = copyValues(dump.toString('utf8'));
        const live = await open('cloud');
        try {
          assert.ok(!(await tables(live)).has('ta_setup') && ![...(await tables(live))].some((t) => t.startsWith('identity_') || t.startsWith('gateway_')));
        } finally {
          await live.close();
        }
      } else {
        const copy = join(root, 'cloud-copy');
        await cp(join(deployment.services.get('cloud')!.dataDir, 'db'), copy, { recursive: true });
        const db = await openDatabase({ dataDir: copy });
        try {
          const held = await tables(db);
          assert.ok(!held.has('ta_setup') && ![...held].some((t) => t.startsWith('identity_') || t.startsWith('gateway_')), `the cloud holds only its own tables: ${[...held].join(', ')}`);
          values = await everyValue(db);
        } finally {
          await db.close();
        }
      }
      const text = Buffer.concat(values).toString('latin1');
      for (const entry of BUNDLE.entry) assert.ok(!text.includes(`"${entry.resource.id}"`) && !text.includes(entry.resource.id), `FHIR id ${entry.resource.id}`);
      assert.ok(!text.includes('Total Cholesterol'), 'clinical text');
      const scan = await tryEveryKey(values, ATTACKER_ATTRIBUTES);
      assert.ok(scan.records >= acknowledged, `every record is in the copy (${scan.records})`);
      assert.ok(scan.candidates.scalars > 0, 'there were key-shaped values to try');
      assert.deepEqual({ ...scan.candidates, scalars: 0 }, { masterKeys: 0, userKeys: 0, patientKeys: 0, scalars: 0 });
      assert.equal(scan.decrypted, 0, 'nothing in the cloud\'s database decrypts any record');
      // Positive control: the same attack, on the keys and capsules and a sample of 30 records, with the authority's
      // master key added, reads records (so a 0 above is the database's doing, not a blind attack).
      let sampled = 0;
      const isRecord = (v: Buffer) => { try { pre.openRecordHeader(v); return true; } catch { return false; } };
      const sample = values.filter((v) => v.length > 100 && (!isRecord(v) || sampled++ < 30));
      const controlled = await tryEveryKey([...sample, Buffer.from(masterKey!)], ATTACKER_ATTRIBUTES);
      assert.equal(controlled.candidates.masterKeys, 1);
      assert.ok(controlled.records === 30 && controlled.decrypted > 0, `the attack works when the key is there (${controlled.decrypted} of ${controlled.records})`);
    });
  });
}

/** Every value of a `pg_dump --data-only` (COPY text format): bytea as its bytes, the rest as text. */
function copyValues(dump: string): Buffer[] {
  const values: Buffer[] = [];
  let inCopy = false;
  for (const line of dump.split('\n')) {
    if (!inCopy) {
      inCopy = /^COPY .* FROM stdin;$/.test(line);
      continue;
    }
    if (line === '\\.') {
      inCopy = false;
      continue;
    }
    for (const field of line.split('\t')) {
      if (field === '\\N') continue;
      values.push(field.startsWith('\\\\x') ? Buffer.from(field.slice(3), 'hex') : Buffer.from(field.replace(/\\(.)/g, (_, c: string) => ({ t: '\t', n: '\n', r: '\r', '\\': '\\' })[c] ?? c), 'utf8'));
    }
  }
  return values;
}
