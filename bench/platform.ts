/**
 * Platform benchmark (issue #5): N records (default 10,000) of 4 KiB made from the Synthea data, uploaded through
 * the hospital gateway over HTTP, then 20 concurrent doctors reading single records through the cloud (token check,
 * SQL, proxy re-encryption, ledger and access log, HTTP), on PGlite and — when DATABASE_URL is set — PostgreSQL.
 * The records are uploaded once per engine; the platform is then restarted on the same data for each conversion
 * set-up (in the event loop, or N worker threads), with freshly logged-in doctors. The pairing and the
 * conversion are measured in the same run, so costs read as pairing-equivalents.
 *
 *   node --import tsx bench/platform.ts [records=10000] [seconds of reads=20] [worker counts=0,<cores - 1>,<cores>] [gateway encryption workers=0]
 *
 * (BENCH_SKIP_PGLITE=1: PostgreSQL only, for A/B runs and profiles of one engine.)
 *
 * The upload is reported as records/s and as CPU time per record of this process (all its threads), also in
 * pairing-equivalents against a block of pairings run between Bundles (less sensitive to a busy host than
 * records/s); UPLOAD_PROFILE=<directory> writes a CPU profile of the upload phase.
 *
 * The doctors run in a child process (bench/lib/read-clients.ts), so this process's CPU time is the server's
 * (event loop and conversion workers); but both share this machine's cores with each other and with PostgreSQL.
 * CPU time per read is reported for the server, the clients and the rest of the machine (PostgreSQL and anything
 * else running). Doctors fetch converted ciphertexts; decryption happens on a doctor's machine (bench/pre.ts).
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { abe, curve, pre } from '@medshare/crypto';
import { openDatabase, randomKeyEncryptionKey, type Database } from '@medshare/db';
import { createPlatform, DEFAULT_EMERGENCY_POLICY, GatewayClient, PatientClient, PlatformClient, roleScopes, type ServiceUrls } from '@medshare/server';
import { alternate, cpuMs, ms, ratio, type Measured } from './lib/measure.ts';
import type { ClientMessage, ReadResult, ReadTask } from './lib/read-clients.ts';
import { printTable } from './lib/report.ts';

const RECORDS = Number(process.argv[2] ?? 10_000);
const READ_SECONDS = Number(process.argv[3] ?? 20);
const WARMUP_SECONDS = 5;
const WORKER_COUNTS = process.argv[4]?.split(',').map(Number) ?? [...new Set([0, Math.max(1, availableParallelism() - 1), availableParallelism()])];
/** Worker threads during the upload, of the hospital (encryption and tagging) and of the cloud (tag checks); 0: their event loops do it. */
const ENCRYPTION_WORKERS = Number(process.argv[5] ?? 0);
const DOCTORS = 20;
const BATCH = 500;
const ADMIN = randomBytes(24).toString('base64url');
const PASSWORD = 'a long enough passphrase';
const SYNTHEA = new URL('../../shared/data/synthea/', import.meta.url);
const FIXTURE = new URL('../packages/cli/fixtures/synthea-sample.json', import.meta.url);

/** Serialised Synthea resources to cut 4 KiB records from. */
function syntheaText(): string {
  const files = existsSync(SYNTHEA)
    ? readdirSync(SYNTHEA)
        .filter((f) => f.endsWith('.json'))
        .map((f) => new URL(f, SYNTHEA))
    : [FIXTURE];
  return files.map((f) => JSON.stringify((JSON.parse(readFileSync(f, 'utf8').replace(/^\uFEFF/, '')) as { entry: unknown[] }).entry)).join('');
}

/** Record i: an Observation whose note carries Synthea text, 4 KiB in all. */
function makeRecord(i: number, text: string, fhirPatient: string): Record<string, unknown> {
  const shell = {
    resourceType: 'Observation',
    id: `bench-${i}`,
    status: 'final',
    code: { text: 'bench' },
    subject: { reference: `Patient/${fhirPatient}` },
    note: [{ text: '' }],
  };
  const room = 4096 - JSON.stringify(shell).length;
  const start = (i * 997) % Math.max(1, text.length - room);
  shell.note[0]!.text = text.slice(start, start + room).replace(/["\\]/g, ' ');
  return shell;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/** CPU milliseconds per pairing e(P, Q) over a block of 20 (this thread). */
function pairingBlock(): number {
  const start = cpuMs();
  for (let i = 0; i < 20; i++) curve.pairing(p, q);
  return (cpuMs() - start) / 20;
}

/** Busy milliseconds of every core of the machine so far (os.cpus: all processes, ours and PostgreSQL's included). */
const machineBusyMs = () => cpus().reduce((sum, { times: t }) => sum + t.user + t.nice + t.sys + t.irq, 0);

/**
 * Fresh doctors on a running platform, registered here; the reading process logs each in (password + TOTP on its
 * own device key, which signs every read's DPoP proof). Accounts persist in the database across read phases, so
 * each phase registers its own (`phase` in the username).
 */
async function registerDoctors(urls: ServiceUrls, phase: string): Promise<ReadTask['doctors']> {
  const client = new PlatformClient(urls);
  return Promise.all(
    Array.from({ length: DOCTORS }, async (_, d) => {
      const attributes = ['role:doctor', 'dept:cardiology'];
      const username = `doctor${d}-${phase}`;
      const { totpSecret } = await client.registerUser('riverside', `${ADMIN}-riverside`, {
        username,
        password: PASSWORD,
        attributes,
        scopes: roleScopes(attributes),
      });
      return { hospital: 'riverside', username, password: PASSWORD, totpSecret };
    }),
  );
}

/**
 * CPU milliseconds of one pairing in this process now (median of blocks): measured right before and right after each
 * read phase, so that a read's server CPU is read in pairings of the same minutes (the load of a shared host moves
 * both alike), not only of the cost table's at the start.
 */
const pairingNowMs = () => alternate('pairing', { pairing: () => curve.pairing(p, q) }, { rounds: 7 })['pairing']!.ms;

/** The read phase against one platform: the doctors in a child process, CPU time per read by whom. */
async function readPhase(urls: ServiceUrls, phase: string, patient: string, recordIds: string[]): Promise<string[]> {
  const doctors = await registerDoctors(urls, phase);
  const base = urls.cloud.href;
  const hospitalUrl = urls.hospitals['riverside']!.href;
  const child = fork(new URL('./lib/read-clients.ts', import.meta.url), { execArgv: ['--import', 'tsx'] });
  const message = async () => ((await once(child, 'message')) as [ClientMessage])[0];
  child.send({ base, hospitalUrl, patient, category: 'lab', doctors, recordIds, warmupSeconds: WARMUP_SECONDS, seconds: READ_SECONDS } satisfies ReadTask);
  const first = await message();
  if (first !== 'measuring') throw new Error(first.failure ?? 'the clients stopped before measuring');
  const pairingBefore = pairingNowMs();
  const serverCpu = process.cpuUsage();
  const machine = machineBusyMs();
  const result = (await message()) as ReadResult;
  const machineMs = machineBusyMs() - machine;
  const server = process.cpuUsage(serverCpu);
  const serverMs = (server.user + server.system) / 1000;
  const pairingMs = (pairingBefore + pairingNowMs()) / 2;
  if (result.failure !== undefined) throw new Error(result.failure);
  const reads = result.latencies.length;
  const latencies = result.latencies.sort((a, b) => a - b);
  const perRead = (x: number) => (x / reads).toFixed(2);
  return [
    String(reads),
    ms(percentile(latencies, 50)),
    ms(percentile(latencies, 99)),
    (reads / result.seconds).toFixed(0),
    perRead(serverMs),
    ratio(serverMs / reads / pairingMs),
    ms(pairingMs),
    perRead(result.cpuMs),
    perRead(Math.max(0, machineMs - serverMs - result.cpuMs)),
  ];
}

/**
 * With UPLOAD_PROFILE=<directory>, a V8 CPU profile of the upload phase alone (this process's main thread: the
 * gateway, the cloud and the databases' JavaScript; not the encryption workers), one file per engine, for
 * Chrome DevTools or `node --cpu-prof`-style tooling. Returns the function that stops and writes it.
 */
async function startUploadProfile(): Promise<((label: string) => Promise<void>) | undefined> {
  const directory = process.env['UPLOAD_PROFILE'];
  if (directory === undefined) return undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async (label) => {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(directory, { recursive: true });
    writeFileSync(join(directory, `upload-${label.split(' ')[0]!.toLowerCase()}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}

/** One key-encryption key for every platform of the run (they reopen the same databases). */
const BENCH_KEK = randomKeyEncryptionKey();

const platformOptions = (db: Database, conversionWorkers: number) => ({
  db,
  hospitals: ['st-marys', 'riverside'],
  adminTokens: { 'st-marys': ADMIN, riverside: `${ADMIN}-riverside` },
  kek: BENCH_KEK,
  scrypt: { logN: 12, r: 8, p: 1 },
  limits: { clientFreeFailures: 1000 },
  requestsPerMinute: 1_000_000,
  conversionWorkers,
  encryptionWorkers: ENCRYPTION_WORKERS,
});

/** Uploads the records once, then measures reads with each conversion set-up on a platform restarted on the same data. */
async function run(label: string, db: Database): Promise<{ upload: string[]; reads: string[][] }> {
  // The upload runs with E workers on both sides: the gateway's encryption and tagging, the cloud's tag checks.
  const platform = await createPlatform(platformOptions(db, ENCRYPTION_WORKERS));
  let patientId: string;
  let ids: string[];
  let uploadRate: number;
  let uploadCosts: string[];
  try {
    const client = new PlatformClient(platform.urls);
    const login = async (hospital: string, username: string, attributes: string[]) => {
      const { totpSecret } = await client.registerUser(hospital, hospital === 'riverside' ? `${ADMIN}-riverside` : ADMIN, {
        username,
        password: PASSWORD,
        attributes,
        scopes: roleScopes(attributes),
      });
      return client.login(hospital, username, PASSWORD, totpSecret);
    };
    const patient = new PatientClient(
      await login('st-marys', 'patient', ['role:patient']),
      pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, ['lab', 'clinical']),
    );
    await patient.register();
    const gateway = new GatewayClient(await login('st-marys', 'ehr', ['role:gateway']));
    const fhirPatient = `bench-${randomBytes(4).toString('hex')}`;
    await gateway.enrol(fhirPatient, patient.key.patientId);
    const text = syntheaText();

    const profiler = await startUploadProfile();
    // A block of pairings before each Bundle and after the last, outside the timed upload: the reference the upload's
    // CPU time is divided by, taken under the same load.
    const pairingMs: number[] = [pairingBlock()];
    let uploadMs = 0;
    let processMs = 0;
    let machineMs = 0;
    for (let from = 0; from < RECORDS; from += BATCH) {
      const entry = Array.from({ length: Math.min(BATCH, RECORDS - from) }, (_, j) => ({ resource: makeRecord(from + j, text, fhirPatient) }));
      const [wall, cpu, machine] = [performance.now(), cpuMs(), machineBusyMs()];
      await gateway.upload({ resourceType: 'Bundle', type: 'transaction', entry });
      uploadMs += performance.now() - wall;
      processMs += cpuMs() - cpu;
      machineMs += machineBusyMs() - machine;
      pairingMs.push(pairingBlock());
    }
    uploadRate = RECORDS / (uploadMs / 1000);
    await profiler?.(label);
    const pairing = pairingMs.sort((a, b) => a - b)[Math.floor(pairingMs.length / 2)]!;
    uploadCosts = [(processMs / RECORDS).toFixed(2), (processMs / RECORDS / pairing).toFixed(2), (Math.max(0, machineMs - processMs) / RECORDS).toFixed(2)];
    await patient.delegate('lab', '(role:doctor and dept:cardiology) or role:emergency', await client.abePublicKey());
    patientId = patient.key.patientId;
    ids = (await patient.records('lab')).map((r) => r.recordId);
  } finally {
    await platform.close();
  }
  const reads: string[][] = [];
  for (const workers of WORKER_COUNTS) {
    const reading = await createPlatform(platformOptions(db, workers));
    try {
      reads.push([
        label,
        workers === 0 ? 'in the event loop' : `${workers} worker thread${workers > 1 ? 's' : ''}`,
        ...(await readPhase(reading.urls, `w${workers}`, patientId, ids)),
      ]);
    } finally {
      await reading.close();
    }
  }
  return { upload: [label, String(RECORDS), uploadRate.toFixed(0), ...uploadCosts], reads };
}

await abe.init();
const ta = abe.setup();
const patientKey = pre.generatePatientKey('psn:bench-conversion-0001', ['lab']);
const ciphertext = pre.encrypt(pre.publicKeys(patientKey), 'lab', 'r', randomBytes(4096));
const rk = pre.delegate(patientKey, 'lab', ta.publicKey, '(role:doctor and dept:cardiology) or role:emergency');
const capsule = pre.emergencyCapsule(ta.publicKey, DEFAULT_EMERGENCY_POLICY);
const fast = pre.precompute(rk);
const header = pre.openRecordHeader(ciphertext);
const p = curve.g1Mul(curve.g1Generator(), curve.randomFr());
const q = curve.g2Mul(curve.g2Generator(), curve.randomFr());
const rk1 = rk.scope.kind === 'category' ? rk.scope.rk1 : curve.g2Generator();
const lines = new curve.PrecomputedG2(rk1);
const bundle = pre.publicKeys(patientKey);
const costOps: Array<[string, () => unknown]> = [
  ['pairing with precomputed G2 lines', () => lines.pairing(p)],
  ['cloud conversion of one 4 KiB record, key precomputed as the cloud holds it (pre.convert)', () => pre.convert(fast, ciphertext)],
  ['  of which the header conversion alone (pre.convertHeader)', () => pre.convertHeader(fast, header)],
  ['cloud conversion without precomputation', () => pre.convert(rk, ciphertext)],
  ["precomputing rk1's lines (once per cached key)", () => new curve.PrecomputedG2(rk1).destroy()],
  ['gateway encryption of one 4 KiB record (pre.encrypt)', () => pre.encrypt(bundle, 'lab', 'r', randomBytes(4096))],
  ['  with its platform emergency grant (pre.encryptWithEmergencyGrant)', () => pre.encryptWithEmergencyGrant(bundle, 'lab', 'r', randomBytes(4096), capsule)],
];
const measured = alternate('pairing', { pairing: () => curve.pairing(p, q), ...Object.fromEntries(costOps) });
const costs: Array<[string, Measured]> = [['pairing e(P,Q)', measured['pairing']!], ...costOps.map(([name]): [string, Measured] => [name, measured[name]!])];
lines.destroy();
pre.release(fast);
printTable(
  'Costs measured in this run (CPU time, alternated with a pairing, medians)',
  ['operation', 'ms', 'pairing-equivalents'],
  costs.map(([name, m]) => [name, ms(m.ms), ratio(m.ratio)]),
);

const uploads: string[][] = [];
const reads: string[][] = [];
const record = (result: { upload: string[]; reads: string[][] }) => {
  uploads.push(result.upload);
  reads.push(...result.reads);
};
if (process.env['BENCH_SKIP_PGLITE'] !== '1') {
  const pglite = await openDatabase();
  record(await run('PGlite (in memory)', pglite));
  await pglite.close();
}
const url = process.env['DATABASE_URL'];
if (url) {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const postgres = await openDatabase({ url, schema });
  try {
    record(await run('PostgreSQL 127.0.0.1', postgres));
  } finally {
    await postgres.query(`DROP SCHEMA ${schema} CASCADE`);
    await postgres.close();
  }
}
printTable(
  `Upload through the gateway (transaction Bundles of 500, ${ENCRYPTION_WORKERS} encryption workers)`,
  ['engine', 'records', 'upload records/s', 'platform process CPU ms/record', 'pairing-eq/record (pairings between Bundles)', 'rest of machine CPU ms/record'],
  uploads,
);
printTable(
  `${DOCTORS} concurrent doctors (another process) reading single records for ${READ_SECONDS} s`,
  [
    'engine',
    'conversion',
    'reads',
    'read p50 ms',
    'read p99 ms',
    'reads/s',
    'server CPU ms/read',
    'server CPU pairing-eq/read',
    'pairing ms (around the phase)',
    'clients CPU ms/read',
    'rest of machine CPU ms/read',
  ],
  reads,
);
