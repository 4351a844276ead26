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
import { createPrivateKey, randomBytes, randomInt } from 'node:crypto';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { abe, curve, MedShareError, pre, threshold } from '@medshare/crypto';
import { loadKeyEncryptionKey, openDatabase, type Database } from '@medshare/db';
import { base32Decode, open as openBox, SigningKeyRing, SqlSigningKeyStore, totp } from '@medshare/identity';
import { AnchorClient, parseCheckpoint, parseNote } from '@medshare/ledger';
import {
  consortiumFromJson,
  errorFromProblem,
  evaluateQuery,
  everyValue,
  GatewayClient,
  HttpProblemError,
  LEDGER_KEY_NAME,
  parseQuery,
  PatientClient,
  PlatformClient,
  roleScopes,
  StatsClient,
  StatsHospital,
  tryEveryKey,
  type DoctorClient,
  type Release,
  type StatsResource,
} from '@medshare/server';
import { signPayload } from '../../server/src/stats/consortium.ts';
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
    resourceType: 'Bundle',
    type: 'transaction',
    entry: Array.from({ length: n }, (_, i) => ({
      resource: {
        resourceType: 'Observation',
        id: `${tag}-${i}`,
        status: 'final',
        code: { text: 'heart rate' },
        subject: { reference: `Patient/${fhirPatient}` },
        valueQuantity: { value: i },
      },
    })),
  };
}

/** The statistics query of the deployment (each hospital's agent evaluates it on its own bundles). */
const STATS_QUERY = {
  querySet: 'dep-stats',
  asOf: '2026-01-01',
  where: [{ resourceType: 'Observation', codes: ['http://loinc.org|4548-4'], value: { min: 7 } }],
  groupBy: ['gender'],
  epsilon: 0.5,
};

/** `n` random patients, some with an HbA1c ≥ 7, as one FHIR bundle's resources. */
function randomCohort(tag: string, n: number): StatsResource[] {
  return Array.from({ length: n }, (_, i) => {
    const id = `${tag}-${i}`;
    return [
      { resourceType: 'Patient', id, birthDate: `19${40 + randomInt(50)}-03-0${1 + randomInt(9)}`, gender: ['female', 'male', 'other'][randomInt(3)] },
      {
        resourceType: 'Observation',
        subject: { reference: `urn:uuid:${id}` },
        code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
        effectiveDateTime: '2024-01-01',
        valueQuantity: { value: 5 + randomInt(60) / 10 },
      },
    ];
  }).flat();
}

/** Polls `check` until it gives a value. */
async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch((error: unknown) => {
      if (error instanceof assert.AssertionError) throw error;
      return undefined;
    });
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Resolves to the outcome of `work`, whatever it is (the kill tests accept success or a typed failure). */
const settle = <T>(work: Promise<T>) =>
  work.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

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
    const reader = async (username: string, attributes: string[]) =>
      client.loginReader('riverside', username, PASSWORD, await enrol('riverside', username, attributes), attributes);
    /** Fresh tokens for the same sessions (tokens live 5 minutes; a slow machine takes longer than that for the file). */
    const refresh = async () => {
      patient = new PatientClient(await client.refresh(patient.session), patient.key);
      gateway = new GatewayClient(await client.refresh(gateway.session));
      [chen, patel, okafor] = (await Promise.all([chen, patel, okafor].map(async (d) => d.withSession(await client.refresh(d.session))))) as [
        DoctorClient,
        DoctorClient,
        DoctorClient,
      ];
    };

    /** The consortium chain (a ganache JSON-RPC node process) the cloud process anchors its ledger on. */
    let chain: GanacheNode;
    let anchorContract: AnchorClient;
    /** Each hospital's own records for statistics (its agent reads its own directory only). */
    const cohorts: Record<string, StatsResource[]> = { 'st-marys': randomCohort('sm', 60), riverside: randomCohort('rv', 50) };
    /** The query the cheating test leaves unreleased (the database-copy test attacks its contributions). */
    let cheatedQuery = '';

    before(async () => {
      root = await mkdtemp(join(tmpdir(), 'medshare-deployment-'));
      chain = await startGanache();
      anchorContract = await AnchorClient.deploy(chain.wallet(0));
      // The cloud's anchorer account key reaches it only through its environment, as in production.
      const ledgerEnv = { LEDGER_RPC_URL: chain.url, LEDGER_ANCHOR_ADDRESS: await anchorContract.address(), LEDGER_PRIVATE_KEY: chain.wallet(1).privateKey };
      const agentArgs = async (hospital: string) => {
        const dir = join(root, `${hospital}-ehr`);
        await mkdir(dir);
        await writeFile(
          join(dir, 'export.json'),
          JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: cohorts[hospital]!.map((resource) => ({ resource })) }),
        );
        // St Mary's decrypts at once; Riverside's administrator approves each release.
        return [
          '--stats-data',
          dir,
          '--stats-budget',
          'dep-stats=1',
          '--stats-poll-ms',
          '200',
          '--stats-approve',
          hospital === 'riverside' ? 'manual' : 'auto',
        ];
      };
      deployment = await startLocalDeployment({
        root,
        hospitals: HOSPITALS,
        adminTokens: ADMINS,
        args: ['--requests-per-minute', '100000'],
        cloudArgs: ['--anchor-interval', '1', '--stats-threshold', '2', '--stats-budget', 'dep-stats=1'],
        hospitalArgs: Object.fromEntries(await Promise.all(HOSPITALS.map(async (h) => [h, await agentArgs(h)] as const))),
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
      patient = new PatientClient(
        await client.login('st-marys', 'antonia', PASSWORD, patientSecret),
        pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, CATEGORIES),
      );
      await patient.register();
      gateway = new GatewayClient(await client.login('st-marys', 'ehr', PASSWORD, await enrol('st-marys', 'ehr', ['role:gateway'])));
      [chen, patel, okafor] = await Promise.all([
        reader('chen', ['role:doctor', 'dept:cardiology']),
        reader('patel', ['role:doctor', 'dept:dermatology']),
        reader('okafor', ['role:emergency']),
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
      assert.deepEqual(
        log.map((e) => e.action),
        ['upload', 'grant', 'grant', 'read', 'read', 'revoke', 'read', 'emergency read', 'emergency read (platform policy)'],
      );
      assert.deepEqual(
        log.map((e) => e.hospital),
        ['st-marys', 'st-marys', 'st-marys', 'riverside', 'riverside', 'st-marys', 'riverside', 'riverside', 'riverside'],
      );
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
      const published = await Promise.all(
        HOSPITALS.map(
          async (h) => (await (await fetch(new URL(`/witness/${h}/key`, deployment.urls.hospitals[h]))).json()) as { key: string; chainAddress: string },
        ),
      );
      await anchorContract.configureLog(
        LEDGER_KEY_NAME,
        chain.wallet(1).address,
        published.map((p) => p.chainAddress),
        2,
      );
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
        fetch(new URL(path, deployment.urls.cloud)).then(
          async (upstream) => {
            response
              .writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' })
              .end(Buffer.from(await upstream.arrayBuffer()));
          },
          () => response.writeHead(502).end(),
        );
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
        assert.match(
          caught.stderr,
          new RegExp(`at entry ${sizeOf(earlier)}: the log was cut back: the chain anchored ${anchored!.size} entries, ${sizeOf(earlier)} are served`),
        );
        assert.equal(caught.stderr.trim().split('\n').length, 1, 'one line');
      } finally {
        await new Promise((resolve) => rollingBack.close(resolve));
      }
    });

    test("statistics through the hospitals' agents: a key generated between the processes, `medshare stats query` released, fewer than t decrypt nothing, a cheating agent named", async () => {
      const cloud = deployment.urls.cloud;
      await curve.initCurve();
      // The agents of the two hospital processes generate the key over the cloud's board (no process holds both shares).
      const consortium = await until('the key generation', async () => consortiumFromJson(await (await fetch(new URL('/stats/consortium', cloud))).json()));
      const board = (await (await fetch(new URL('/stats/dkg', cloud))).json()) as { messages: { phase: string; body: { shares?: Record<string, unknown> } }[] };
      assert.equal(board.messages.length, 12, 'six phases, one message each per member');
      const riversideUrl = deployment.urls.hospitals['riverside']!;
      const researcherSecret = await enrol('riverside', 'researcher', ['role:researcher']);
      // `medshare stats query` runs while the agents work: password and one-time code on its stdin.
      let exited: { code: number | null; out: string; err: string } | undefined;
      const cli = new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const child = spawn(
          process.execPath,
          [
            BIN,
            'stats',
            'query',
            '--url',
            cloud.href,
            '--hospital-url',
            riversideUrl.href,
            '--hospital',
            'riverside',
            '--username',
            'researcher',
            '--query',
            JSON.stringify(STATS_QUERY),
            '--json',
          ],
          { stdio: ['pipe', 'pipe', 'pipe'] },
        );
        let out = '';
        let err = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        child.on('close', (code) => resolve((exited = { code, out, err })));
        child.stdin.end(`${PASSWORD}\n${totp(base32Decode(researcherSecret), Date.now() / 1000)}\n`);
      });
      // The test's own researcher, at St Mary's (a one-time code is accepted once; Riverside is stopped below).
      const researcher = new StatsClient(await client.login('st-marys', 'researcher', PASSWORD, await enrol('st-marys', 'researcher', ['role:researcher'])));
      // Both contributed and St Mary's decrypted; Riverside (policy manual) has not: 1 of t = 2, nothing is released.
      const queryId = await until("the contributions and st-marys's partial", async () => {
        assert.equal(exited, undefined, `medshare stats query exited early: ${exited?.err}`);
        const { queries } = (await (await fetch(new URL('/stats/queries', cloud))).json()) as {
          queries: { queryId: string; contributors: string[]; partials: string[] }[];
        };
        return queries.find((q) => q.contributors.length === 2 && q.partials.includes('st-marys'))?.queryId;
      });
      await assert.rejects(
        researcher.release(queryId),
        (e: MedShareError) => e.code === 'ACCESS_DENIED' && /1 valid partial decryptions, 2 needed/.test(e.message),
      );
      const approved = await fetch(new URL(`/stats-agent/queries/${queryId}/approve`, riversideUrl), {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMINS['riverside']}` },
      });
      assert.equal(approved.status, 201);
      const ran = await cli;
      assert.equal(ran.code, 0, ran.err);
      const release = JSON.parse(ran.out) as Release;
      assert.equal(release.queryId, queryId);
      assert.deepEqual(release.decryptedBy, ['st-marys', 'riverside']);
      // The plaintext oracle: the query evaluated on the two hospitals' pooled records; the release carries the noise.
      const truth = evaluateQuery(parseQuery(STATS_QUERY), [...cohorts['st-marys']!, ...cohorts['riverside']!]);
      release.cells.forEach((cell, k) => {
        if (cell.count === null) assert.ok(truth[k]! < 10 + 12 * release.noise.countStdDev, `suppressed cell ${k} (${truth[k]})`);
        else assert.ok(Math.abs(cell.count - truth[k]!) <= 12 * release.noise.countStdDev, `cell ${k}: ${cell.count} vs ${truth[k]}`);
      });

      // Riverside's operator cheats: its own service stopped, it decrypts with its own share and key, alters the partial
      // and posts it signed. The proof fails and the cloud names Riverside.
      const { queryId: cheated } = await researcher.submit(STATS_QUERY);
      cheatedQuery = cheated;
      await until('both contributions', async () => ((await researcher.status(cheated)).contributors.length === 2 ? true : undefined));
      await deployment.kill('riverside', 'SIGTERM');
      const dir = deployment.services.get('riverside')!.dataDir;
      const kek = loadKeyEncryptionKey({ file: join(dir, 'state', 'kek') });
      const db = engine.postgres ? await openDatabase({ url: url!, schema: `${schemaPrefix}_riverside` }) : await openDatabase({ dataDir: join(dir, 'db') });
      try {
        const row = (
          await db.query<{ signing_key: Uint8Array; consortium: string }>("SELECT signing_key, consortium FROM stats_agent_keys WHERE hospital = 'riverside'")
        ).rows[0]!;
        const own = consortiumFromJson(JSON.parse(row.consortium));
        assert.equal(threshold.keyFingerprint(own.publicKey), threshold.keyFingerprint(consortium.publicKey));
        const agent = await StatsHospital.open(db, kek, 'riverside', own);
        const ticket = (await (await fetch(new URL(`/stats/queries/${cheated}/ticket`, cloud))).json()) as { queryId: string; query: unknown };
        const { contributions } = (await (await fetch(new URL(`/stats/queries/${cheated}/contributions`, cloud))).json()) as {
          contributions: { hospital: string; ciphertext: string; signature: string }[];
        };
        const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));
        const honest = await agent.decrypt(
          ticket,
          contributions.map((c) => ({ hospital: c.hospital, ciphertext: bytes(c.ciphertext), signature: bytes(c.signature) })),
        );
        const p = threshold.decodePartial(honest.partial);
        const forged = threshold.encodePartial({ ...p, d: p.d.map((d, k) => (k === 0 ? curve.g1Add(d, curve.g1Generator()) : d)) });
        const signingKey = await kek.unwrap(new Uint8Array(row.signing_key), 'stats_agent_keys/signing_key/riverside');
        const { queryHash } = await researcher.status(cheated);
        const posted = await fetch(new URL(`/stats/queries/${cheated}/partials`, cloud), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            hospital: 'riverside',
            partial: Buffer.from(forged).toString('base64'),
            signature: Buffer.from(signPayload('partial', signingKey, cheated, queryHash, 'riverside', forged)).toString('base64'),
          }),
        });
        assert.equal(posted.status, 201);
      } finally {
        await db.close();
      }
      await until("st-marys's partial", async () => ((await researcher.status(cheated)).partials.includes('st-marys') ? true : undefined));
      await assert.rejects(
        researcher.release(cheated),
        (e: MedShareError) => e.code === 'ACCESS_DENIED' && /1 valid partial decryptions, 2 needed; rejected \(proof failed\): riverside/.test(e.message),
      );
      await deployment.restart('riverside');
    });

    test('the cloud killed (SIGKILL) in the middle of an upload: none of it or all of it, nothing acknowledged lost', { skip: killTest }, async () => {
      await refresh();
      const big = observations(FHIR_PATIENT, 60, 'cloud-kill');
      // One request to the gateway, not GatewayClient.upload: while the cloud is down the SDK would retry the gateway's
      // 503 twice, each after its Retry-After (5 s), re-encrypting the upload to be refused the same way.
      const uploadUrl = new URL('/gateway/upload', deployment.urls.hospitals['st-marys']);
      const uploading = (async () => {
        const response = await fetch(uploadUrl, {
          method: 'POST',
          headers: {
            authorization: `DPoP ${gateway.session.token}`,
            dpop: await gateway.session.device.dpop.proof('POST', uploadUrl, { accessToken: gateway.session.token }),
            'content-type': 'application/fhir+json',
          },
          body: JSON.stringify(big),
        });
        const text = await response.text();
        // The outcome GatewayClient.upload would give: its result, or the typed error of the problem answer.
        return response.ok
          ? { ok: true as const, value: JSON.parse(text) as { stored: number } }
          : { ok: false as const, error: errorFromProblem(response.status, text) };
      })();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await deployment.kill('cloud');
      try {
        const outcome = await uploading;
        if (outcome.ok) acknowledged += outcome.value.stored;
        else assert.ok(outcome.error.code === 'UNAVAILABLE', `a typed 503, not ${String(outcome.error)}`);
        // While the cloud is down, the gateway answers 503 problem+json with Retry-After at once.
        const enrolUrl = new URL('/gateway/patients', deployment.urls.hospitals['st-marys']);
        const proof = await gateway.session.device.dpop.proof('POST', enrolUrl, { accessToken: gateway.session.token });
        const down = await fetch(enrolUrl, {
          method: 'POST',
          headers: { authorization: `DPoP ${gateway.session.token}`, dpop: proof, 'content-type': 'application/json' },
          body: JSON.stringify({ fhirId: 'someone', patient: patient.key.patientId }),
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

    test("a hospital killed in the middle of an upload, and a reader's hospital killed: 503 upstream, then service resumes", { skip: killTest }, async () => {
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

    test(
      'two cloud processes on one PostgreSQL schema serve uploads and reads at once; a hospital key rotation is seen by both',
      { skip: !engine.postgres && "PGlite is one process's database" },
      async () => {
        await refresh();
        // A second `serve cloud` on the first one's schema and data directory (its KEK file): stateless apart from the database.
        const cloud = deployment.services.get('cloud')!;
        const second = spawn(
          process.execPath,
          [
            BIN,
            'serve',
            'cloud',
            '--data',
            cloud.dataDir,
            '--port',
            '0',
            '--config',
            join(root, 'config.json'),
            '--schema',
            `${schemaPrefix}_cloud`,
            '--requests-per-minute',
            '100000',
          ],
          { env: process.env, stdio: ['pipe', 'pipe', 'pipe'] },
        );
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
            Promise.all(
              Array.from({ length: 5 }, () =>
                chen
                  .read(patient.key.patientId, 'lab')
                  .then(() => new PatientClient({ ...patient.session, urls: { ...patient.session.urls, cloud: secondUrl } }, patient.key).records()),
              ),
            ),
          ]);
          acknowledged += uploaded.stored;
          for (const seen of reads) assert.ok(seen.length === before || seen.length === before + 40, 'a read sees an upload whole or not at all');
          assert.equal(
            (await new PatientClient({ ...patient.session, urls: { ...patient.session.urls, cloud: secondUrl } }, patient.key).records()).length,
            acknowledged,
          );
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
      },
    );

    test("each domain's keys are only in its own database; a copy of the cloud's database decrypts nothing", async () => {
      await deployment.stop();
      const open = async (name: string): Promise<Database> =>
        engine.postgres
          ? openDatabase({ url: url!, schema: `${schemaPrefix}_${name.replaceAll('-', '_')}` })
          : openDatabase({ dataDir: join(deployment.services.get(name)!.dataDir, 'db') });
      const tables = async (db: Database) =>
        new Set(
          (
            await db.query<{ t: string }>(
              "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
          ).rows.map((r) => r.t),
        );
      const count = async (db: Database, table: string) => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;

      const authority = await open('authority');
      let masterKey: Uint8Array;
      try {
        const held = await tables(authority);
        assert.ok(held.has('ta_setup'));
        const wrapped = (await authority.query<{ master_key: Uint8Array }>('SELECT master_key FROM ta_setup')).rows[0]!.master_key;
        assert.throws(() => abe.decodeMasterKey(wrapped), 'the master key is stored wrapped');
        // The positive control below is an attacker who also has the authority's KEK (its state directory).
        masterKey = await loadKeyEncryptionKey({ file: join(deployment.services.get('authority')!.dataDir, 'state', 'kek') }).unwrap(
          wrapped,
          'ta_setup.master_key|1',
        );
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
          assert.deepEqual(
            (await db.query<{ name: string }>('SELECT name FROM ledger_keys ORDER BY name')).rows.map((r) => r.name),
            [`${hospital}.medshare/chain`, `${hospital}.medshare/records`, `${hospital}.medshare/witness`],
          );
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
          assert.ok(
            !held.has('ta_setup') && ![...held].some((t) => t.startsWith('identity_') || t.startsWith('gateway_')),
            `the cloud holds only its own tables: ${[...held].join(', ')}`,
          );
          values = await everyValue(db);
        } finally {
          await db.close();
        }
      }
      const text = Buffer.concat(values).toString('latin1');
      for (const entry of BUNDLE.entry)
        assert.ok(!text.includes(`"${entry.resource.id}"`) && !text.includes(entry.resource.id), `FHIR id ${entry.resource.id}`);
      assert.ok(!text.includes('Total Cholesterol'), 'clinical text');
      const scan = await tryEveryKey(values, ATTACKER_ATTRIBUTES);
      assert.ok(scan.records >= acknowledged, `every record is in the copy (${scan.records})`);
      assert.ok(scan.candidates.scalars > 0, 'there were key-shaped values to try');
      assert.deepEqual({ ...scan.candidates, scalars: 0 }, { masterKeys: 0, userKeys: 0, patientKeys: 0, scalars: 0 });
      assert.equal(scan.decrypted, 0, "nothing in the cloud's database decrypts any record");
      // Statistics: the copy of the cloud's database plus Riverside's whole database and KEK do not decrypt St Mary's
      // contribution: Riverside's one share is below t = 2, no value in the cloud's copy is St Mary's share, and the
      // key generation's shares sealed to St Mary's on the board do not open with Riverside's key.
      {
        const riverside = await open('riverside');
        const cloudCopy = engine.postgres ? await open('cloud') : await openDatabase({ dataDir: join(root, 'cloud-copy') });
        try {
          await curve.initCurve();
          const kek = loadKeyEncryptionKey({ file: join(deployment.services.get('riverside')!.dataDir, 'state', 'kek') });
          const keys = (
            await riverside.query<{ box_key: Uint8Array; consortium: string }>("SELECT box_key, consortium FROM stats_agent_keys WHERE hospital = 'riverside'")
          ).rows[0]!;
          const { publicKey } = consortiumFromJson(JSON.parse(keys.consortium));
          const wrappedShare = (await riverside.query<{ share: Uint8Array }>("SELECT share FROM stats_hospital_keys WHERE hospital = 'riverside'")).rows[0]!
            .share;
          const share = threshold.decodeKeyShare(await kek.unwrap(new Uint8Array(wrappedShare), 'stats_hospital_keys/share/riverside'));
          const contribution = (
            await cloudCopy.query<{ ciphertext: Uint8Array }>("SELECT ciphertext FROM stats_contributions WHERE query_id = $1 AND hospital = 'st-marys'", [
              cheatedQuery,
            ])
          ).rows[0]!;
          const ct = threshold.decodeCiphertext(new Uint8Array(contribution.ciphertext));
          const partial = threshold.partialDecrypt(share, publicKey.verificationKeys[1]!, ct);
          assert.throws(
            () => threshold.combine(publicKey, ct, [partial]),
            (e: MedShareError) => e.code === 'ACCESS_DENIED',
            'one share decrypts nothing',
          );
          const stMarysKey = publicKey.verificationKeys[0]!;
          let tried = 0;
          for (const v of values.filter((x) => x.length === 32)) {
            let x: ReturnType<typeof curve.frFromBytes>;
            try {
              x = curve.frFromBytes(new Uint8Array(v));
            } catch {
              continue;
            }
            tried++;
            assert.ok(!curve.g1Mul(curve.g1Generator(), x).isEqual(stMarysKey), "a value in the cloud's copy is St Mary's share");
          }
          assert.ok(tried > 0, 'there were scalars to try');
          const boxKey = createPrivateKey({
            key: Buffer.from(await kek.unwrap(new Uint8Array(keys.box_key), 'stats_agent_keys/box_key/riverside')),
            format: 'der',
            type: 'pkcs8',
          });
          const deals = (await cloudCopy.query<{ message: string }>("SELECT message FROM stats_dkg_messages WHERE phase = 'deal'")).rows.map(
            (r) => JSON.parse(r.message) as { ceremony: string; sender: string; body: { shares: Record<string, unknown> } },
          );
          assert.equal(deals.length, 2);
          for (const d of deals) {
            assert.throws(
              () => openBox(boxKey, d.body.shares['1'] as never, `medshare/stats/dkg/v1/share\0${d.ceremony}\0${d.sender === 'st-marys' ? 1 : 2}\0${1}`),
              (e: MedShareError) => e.code === 'INTEGRITY' || e.code === 'MALFORMED',
            );
          }
        } finally {
          await riverside.close();
          await cloudCopy.close();
        }
      }
      // Positive control: the same attack, on the keys and capsules and a sample of 30 records, with the authority's
      // master key added, reads records (so a 0 above is the database's doing, not a blind attack).
      let sampled = 0;
      const isRecord = (v: Buffer) => {
        try {
          pre.openRecordHeader(v);
          return true;
        } catch {
          return false;
        }
      };
      const sample = values.filter((v) => v.length > 100 && (!isRecord(v) || sampled++ < 30));
      const controlled = await tryEveryKey([...sample, Buffer.from(masterKey!)], ATTACKER_ATTRIBUTES);
      assert.equal(controlled.candidates.masterKeys, 1);
      assert.ok(
        controlled.records === 30 && controlled.decrypted > 0,
        `the attack works when the key is there (${controlled.decrypted} of ${controlled.records})`,
      );
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
      values.push(
        field.startsWith('\\\\x')
          ? Buffer.from(field.slice(3), 'hex')
          : Buffer.from(
              field.replace(/\\(.)/g, (_, c: string) => ({ t: '\t', n: '\n', r: '\r', '\\': '\\' })[c] ?? c),
              'utf8',
            ),
      );
    }
  }
  return values;
}
