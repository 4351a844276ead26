/**
 * A large record read end to end (issue #21: ≥ 0.8× one-shot AES-GCM throughput at 16 MiB): one FHIR resource of
 * about MiB mebibytes (default 2: at 8 and 16 MiB the gateway's upload to the cloud failed with a 500 on the loaded
 * development machine, docs/benchmarks.md § Platform) uploaded through the hospital gateway, then read by a doctor through the cloud — token checks,
 * PGlite, conversion of the header, the binary record stream, the SDK's chunk-by-chunk decryption and JSON.parse —
 * alternated with one-shot AES-256-GCM of the same number of bytes, CPU time of this process (platform and doctor
 * both run in it), medians of rounds.
 *
 *   node --import tsx bench/large-read.ts [MiB=2] [rounds=5]        (BENCH_LOG=1: the services log every request)
 */
import { randomBytes } from 'node:crypto';
import { abe, pre } from '@medshare/crypto';
import { openDatabase, randomKeyEncryptionKey } from '@medshare/db';
import { createPlatform, GatewayClient, PatientClient, PlatformClient, roleScopes } from '@medshare/server';
import { cpuMs, ms, ratio } from './lib/measure.ts';
import { aesGcmOneShot } from './lib/primitives.ts';
import { printTable } from './lib/report.ts';

const MIB = Number(process.argv[2] ?? 2);
const ROUNDS = Number(process.argv[3] ?? 5);
const ADMIN = randomBytes(24).toString('base64url');
const PASSWORD = 'a long enough passphrase';
/** FHIR strings stay under 1 MB (the gateway refuses longer ones): the payload is spread over notes of 1000 kB. */
const NOTE_CHARS = 1_000_000;

await abe.init();
const db = await openDatabase();
const platform = await createPlatform({
  db, hospitals: ['st-marys', 'riverside'], adminTokens: { 'st-marys': ADMIN, riverside: ADMIN }, kek: randomKeyEncryptionKey(),
  scrypt: { logN: 12, r: 8, p: 1 }, conversionWorkers: 0, logger: process.env['BENCH_LOG'] === '1',
});
try {
  const client = new PlatformClient(platform.urls);
  const register = async (hospital: string, username: string, attributes: string[]) =>
    (await client.registerUser(hospital, ADMIN, { username, password: PASSWORD, attributes, scopes: roleScopes(attributes) })).totpSecret;
  const patient = new PatientClient(await client.login('st-marys', 'patient', PASSWORD, await register('st-marys', 'patient', ['role:patient'])),
    pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, ['lab']));
  await patient.register();
  const gateway = new GatewayClient(await client.login('st-marys', 'ehr', PASSWORD, await register('st-marys', 'ehr', ['role:gateway'])));
  await gateway.enrol('large-1', patient.key.patientId);
  const text = randomBytes((MIB * 1024 * 1024 * 3) / 4).toString('base64');
  const note = Array.from({ length: Math.ceil(text.length / NOTE_CHARS) }, (_, i) => ({ text: text.slice(i * NOTE_CHARS, (i + 1) * NOTE_CHARS) }));
  const resource = { resourceType: 'Observation', id: 'large-1', status: 'final', code: { text: 'large' }, subject: { reference: 'Patient/large-1' }, note };
  await gateway.upload({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource }] });
  await patient.delegate('lab', 'role:doctor', await client.abePublicKey());
  const attributes = ['role:doctor'];
  const doctor = await client.loginReader('riverside', 'doctor', PASSWORD, await register('riverside', 'doctor', attributes), attributes);
  const [record] = await patient.records('lab');
  const read = async () => {
    const [got] = await doctor.read(patient.key.patientId, 'lab', [record!.recordId]);
    if ((got as { note?: unknown[] }).note?.length !== note.length) throw new Error('the record read back differs');
  };
  const plaintextBytes = Buffer.byteLength(JSON.stringify(resource));
  const oneShot = aesGcmOneShot(randomBytes(plaintextBytes));
  await read(); // warm-up: JIT, the doctor's FAME result for the delegation, the cloud's precomputed key
  oneShot();
  const reads: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let t = cpuMs();
    oneShot();
    const reference = cpuMs() - t;
    t = cpuMs();
    await read();
    const spent = cpuMs() - t;
    reads.push(spent);
    ratios.push(spent / reference);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  printTable(`One ${(plaintextBytes / 2 ** 20).toFixed(1)} MiB record read end to end (PGlite in memory; CPU time, medians of ${ROUNDS} rounds)`,
    ['operation', 'ms', '÷ one-shot AES-256-GCM of the same bytes'], [['read: cloud and doctor, decrypted and parsed', ms(median(reads)), ratio(median(ratios))]]);
} finally {
  await platform.close();
  await db.close();
}
