/**
 * A large record read end to end (issue #21: ≥ 0.8× one-shot AES-GCM throughput at 16 MiB), with the platform and the
 * reader in separate processes. A child process runs the platform (PGlite in memory, or PostgreSQL with
 * DATABASE_URL) and uploads one FHIR resource of about MiB mebibytes through the hospital gateway; this process logs
 * the doctor in and reads the record with the SDK's `readStream`: token checks, the header's conversion, the payload
 * streamed from its chunk rows to the response, decrypted here chunk by chunk as it arrives.
 *
 * Metric: throughput end to end = plaintext bytes ÷ wall time from the read's start to its last plaintext byte,
 * against one-shot AES-256-GCM of the same number of bytes in this process (alternated with the reads, round by
 * round). The ratio "÷ one-shot" is read wall time ÷ one-shot wall time (≤ 1.25 is ≥ 0.8× the throughput). CPU time
 * of each process per read is reported beside it, also as a ratio to the one-shot's CPU time. Medians of rounds.
 *
 *   node --import tsx bench/large-read.ts [MiB=2] [rounds=5]
 *   (BENCH_LOG=1: the services log every request; BENCH_PROFILE_DIR=dir: the platform process writes a CPU profile there)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { cpuMs, ms, ratio } from './lib/measure.ts';
import { aesGcmOneShot } from './lib/primitives.ts';
import { printTable } from './lib/report.ts';

const PASSWORD = 'a long enough passphrase';
/** FHIR strings stay under 1 MB (the gateway refuses longer ones): the payload is spread over notes of 1000 kB. */
const NOTE_CHARS = 1_000_000;

/** What the platform process tells the reader once the record is stored. */
interface Ready {
  urls: { authority: string; cloud: string; hospitals: Record<string, string> };
  patientId: string;
  recordId: string;
  doctorTotp: string;
}

/** The platform's process: start, upload, then answer CPU-time questions until told to stop. */
async function serve(mib: number): Promise<void> {
  const { abe, pre } = await import('@medshare/crypto');
  const { openDatabase, randomKeyEncryptionKey } = await import('@medshare/db');
  const { createPlatform, GatewayClient, PatientClient, PlatformClient, roleScopes } = await import('@medshare/server');
  const ADMIN = randomBytes(24).toString('base64url');
  await abe.init();
  // On PostgreSQL, a schema of its own, dropped at the end.
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const db = await openDatabase(process.env['DATABASE_URL'] ? { url: process.env['DATABASE_URL'], schema } : {});
  const platform = await createPlatform({
    db,
    hospitals: ['st-marys', 'riverside'],
    adminTokens: { 'st-marys': ADMIN, riverside: ADMIN },
    kek: randomKeyEncryptionKey(),
    scrypt: { logN: 12, r: 8, p: 1 },
    conversionWorkers: 0,
    logger: process.env['BENCH_LOG'] === '1',
  });
  const client = new PlatformClient(platform.urls);
  const register = async (hospital: string, username: string, attributes: string[]) =>
    (await client.registerUser(hospital, ADMIN, { username, password: PASSWORD, attributes, scopes: roleScopes(attributes) })).totpSecret;
  const patient = new PatientClient(
    await client.login('st-marys', 'patient', PASSWORD, await register('st-marys', 'patient', ['role:patient'])),
    pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, ['lab']),
  );
  await patient.register();
  const gateway = new GatewayClient(await client.login('st-marys', 'ehr', PASSWORD, await register('st-marys', 'ehr', ['role:gateway'])));
  await gateway.enrol('large-1', patient.key.patientId);
  const text = randomBytes((mib * 1024 * 1024 * 3) / 4).toString('base64');
  const note = Array.from({ length: Math.ceil(text.length / NOTE_CHARS) }, (_, i) => ({ text: text.slice(i * NOTE_CHARS, (i + 1) * NOTE_CHARS) }));
  const resource = { resourceType: 'Observation', id: 'large-1', status: 'final', code: { text: 'large' }, subject: { reference: 'Patient/large-1' }, note };
  await gateway.upload({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource }] });
  await patient.delegate('lab', 'role:doctor', await client.abePublicKey());
  const [record] = await patient.records('lab');
  const href = (url: URL) => url.href;
  const ready: Ready = {
    urls: {
      authority: href(platform.urls.authority),
      cloud: href(platform.urls.cloud),
      hospitals: Object.fromEntries(Object.entries(platform.urls.hospitals).map(([h, u]) => [h, href(u)])),
    },
    patientId: patient.key.patientId,
    recordId: record!.recordId,
    doctorTotp: await register('riverside', 'doctor', ['role:doctor']),
  };
  process.send!({ ready });
  process.on('message', async (message: string) => {
    if (message === 'cpu') process.send!({ cpu: cpuMs() });
    if (message === 'stop') {
      await platform.close();
      if (db.engine === 'postgres') await db.query(`DROP SCHEMA ${schema} CASCADE`);
      await db.close();
      process.disconnect();
    }
  });
}

/** The reader's process: log in, then alternate reads and one-shot AES-GCM. */
async function read(mib: number, rounds: number): Promise<void> {
  const { PlatformClient } = await import('@medshare/server');
  const server: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve', String(mib)], {
    execArgv: ['--import', 'tsx', ...(process.env['BENCH_PROFILE_DIR'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_PROFILE_DIR']}`] : [])],
  });
  const next = <T>(key: string) =>
    new Promise<T>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`the platform process exited (${code})`));
      const onMessage = (message: Record<string, unknown>) => {
        if (!(key in message)) return;
        server.off('message', onMessage).off('exit', onExit);
        resolve(message[key] as T);
      };
      server.on('message', onMessage).once('exit', onExit);
    });
  const serverCpu = async () => {
    const answer = next<number>('cpu');
    server.send('cpu');
    return answer;
  };
  try {
    const ready = await next<Ready>('ready');
    const urls = {
      authority: new URL(ready.urls.authority),
      cloud: new URL(ready.urls.cloud),
      hospitals: Object.fromEntries(Object.entries(ready.urls.hospitals).map(([h, u]) => [h, new URL(u)])),
    };
    const doctor = await new PlatformClient(urls).loginReader('riverside', 'doctor', PASSWORD, ready.doctorTotp, ['role:doctor']);
    const readOnce = async () => {
      let bytes = 0;
      for await (const piece of doctor.readStream(ready.patientId, 'lab', ready.recordId)) bytes += piece.length;
      return bytes;
    };
    // Warm-up: JIT, the doctor's FAME result for the delegation, the cloud's precomputed key. The plaintext is the
    // resource as the gateway stored it (with its meta).
    const plaintextBytes = await readOnce();
    const oneShot = aesGcmOneShot(randomBytes(plaintextBytes));
    oneShot();
    const samples: Array<{ wall: number; client: number; server: number; refWall: number; refCpu: number }> = [];
    for (let round = 0; round < rounds; round++) {
      let wall = performance.now();
      let cpu = cpuMs();
      oneShot();
      const refCpu = cpuMs() - cpu;
      const refWall = performance.now() - wall;
      const serverBefore = await serverCpu();
      wall = performance.now();
      cpu = cpuMs();
      if ((await readOnce()) !== plaintextBytes) throw new Error('the record read back differs in length');
      const readWall = performance.now() - wall;
      const client = cpuMs() - cpu;
      samples.push({ wall: readWall, client, server: (await serverCpu()) - serverBefore, refWall, refCpu });
    }
    const median = (pick: (s: (typeof samples)[number]) => number) => samples.map(pick).sort((a, b) => a - b)[Math.floor(samples.length / 2)]!;
    const mibs = (bytes: number, t: number) => (bytes / 2 ** 20 / (t / 1000)).toFixed(0);
    printTable(
      `One ${(plaintextBytes / 2 ** 20).toFixed(1)} MiB record read end to end, platform and reader in separate processes (${process.env['DATABASE_URL'] ? 'PostgreSQL' : 'PGlite in memory'}; medians of ${rounds} rounds)`,
      ['measure', 'read', 'one-shot AES-256-GCM, same bytes', 'read ÷ one-shot'],
      [
        ['wall time to the last plaintext byte, ms', ms(median((s) => s.wall)), ms(median((s) => s.refWall)), ratio(median((s) => s.wall / s.refWall))],
        [
          'throughput, MiB/s',
          mibs(
            plaintextBytes,
            median((s) => s.wall),
          ),
          mibs(
            plaintextBytes,
            median((s) => s.refWall),
          ),
          ratio(median((s) => s.refWall / s.wall)),
        ],
        ['CPU time of the reader process, ms', ms(median((s) => s.client)), ms(median((s) => s.refCpu)), ratio(median((s) => s.client / s.refCpu))],
        ['CPU time of the platform process, ms', ms(median((s) => s.server)), ms(median((s) => s.refCpu)), ratio(median((s) => s.server / s.refCpu))],
      ],
    );
  } finally {
    server.send('stop');
  }
}

if (process.argv[2] === '--serve') await serve(Number(process.argv[3]));
else await read(Number(process.argv[2] ?? 2), Number(process.argv[3] ?? 5));
