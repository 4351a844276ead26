/**
 * Platform benchmark (issue #5): N records (default 10,000) of 4 KiB made from the Synthea data, uploaded through
 * the hospital gateway over HTTP, then 20 concurrent doctors reading single records through the cloud (SQL fetch +
 * proxy re-encryption + HTTP), on PGlite and — when DATABASE_URL is set — PostgreSQL. The pairing and the
 * conversion are measured in the same run, so the conversion's cost is reported in pairing-equivalents.
 *
 *   node --import tsx bench/platform.ts [records] [seconds of reads]
 *
 * Everything runs in one process on this machine: the server (one Node event loop) and the clients share the
 * two cores. Doctors fetch converted ciphertexts; decryption happens on a doctor's own machine and is in
 * bench/pre.ts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { abe, pre } from '@medshare/crypto';
import { openDatabase, type Database } from '@medshare/db';
import { createPlatform, GatewayClient, PatientClient, PlatformClient } from '@medshare/server';
import { ms, ratio, timeIt } from './lib/measure.ts';
import { measurePrimitives } from './lib/primitives.ts';
import { printTable } from './lib/report.ts';

const RECORDS = Number(process.argv[2] ?? 10_000);
const READ_SECONDS = Number(process.argv[3] ?? 20);
const DOCTORS = 20;
const BATCH = 500;
const ADMIN = randomBytes(24).toString('base64url');
const PASSWORD = 'a long enough passphrase';
const SYNTHEA = new URL('../../shared/data/synthea/', import.meta.url);
const FIXTURE = new URL('../packages/cli/fixtures/synthea-sample.json', import.meta.url);

/** Serialised Synthea resources to cut 4 KiB records from. */
function syntheaText(): string {
  const files = existsSync(SYNTHEA) ? readdirSync(SYNTHEA).filter((f) => f.endsWith('.json')).map((f) => new URL(f, SYNTHEA)) : [FIXTURE];
  return files.map((f) => JSON.stringify((JSON.parse(readFileSync(f, 'utf8').replace(/^\uFEFF/, '')) as { entry: unknown[] }).entry)).join('');
}

/** Record i: an Observation whose note carries Synthea text, 4 KiB in all. */
function makeRecord(i: number, text: string, fhirPatient: string): Record<string, unknown> {
  const shell = { resourceType: 'Observation', id: `bench-${i}`, status: 'final', subject: { reference: `Patient/${fhirPatient}` }, note: [{ text: '' }] };
  const room = 4096 - JSON.stringify(shell).length;
  const start = (i * 997) % Math.max(1, text.length - room);
  shell.note[0]!.text = text.slice(start, start + room).replace(/["\\]/g, ' ');
  return shell;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function run(label: string, db: Database): Promise<string[]> {
  const platform = await createPlatform({ db, hospitals: ['st-marys', 'riverside'], adminToken: ADMIN, scrypt: { logN: 12, r: 8, p: 1 }, limits: { clientAttemptsPerWindow: 1000 }, requestsPerMinute: 1_000_000 });
  try {
    const base = await platform.app.listen({ host: '127.0.0.1', port: 0 });
    const client = new PlatformClient(base);
    const login = async (hospital: string, username: string, attributes: string[]) => {
      const { totpSecret } = await client.registerUser(hospital, ADMIN, { username, password: PASSWORD, attributes, scopes: [] });
      return { totpSecret, session: () => client.login(hospital, username, PASSWORD, totpSecret) };
    };
    const patient = new PatientClient(await (await login('st-marys', 'patient', ['role:patient'])).session(), pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, ['lab', 'clinical']));
    await patient.register();
    const gateway = new GatewayClient(await (await login('st-marys', 'ehr', ['role:gateway'])).session());
    const fhirPatient = `bench-${randomBytes(4).toString('hex')}`;
    await gateway.enrol(fhirPatient, patient.key.patientId);
    const text = syntheaText();

    const uploadStart = performance.now();
    for (let from = 0; from < RECORDS; from += BATCH) {
      const entry = Array.from({ length: Math.min(BATCH, RECORDS - from) }, (_, j) => ({ resource: makeRecord(from + j, text, fhirPatient) }));
      await gateway.upload({ resourceType: 'Bundle', type: 'transaction', entry });
    }
    const uploadSeconds = (performance.now() - uploadStart) / 1000;
    await patient.delegate('lab', '(role:doctor and dept:cardiology) or role:emergency', await client.abePublicKey());
    const ids = (await patient.records('lab')).map((r) => r.recordId);

    const doctors = await Promise.all(Array.from({ length: DOCTORS }, async (_, d) => {
      const { totpSecret } = await login('riverside', `doctor${d}`, ['role:doctor', 'dept:cardiology']);
      return client.loginReader('riverside', `doctor${d}`, PASSWORD, totpSecret, ['role:doctor', 'dept:cardiology']);
    }));
    const latencies: number[] = [];
    const readStart = performance.now();
    const until = readStart + READ_SECONDS * 1000;
    await Promise.all(doctors.map(async (doctor) => {
      while (performance.now() < until) {
        const id = ids[Math.floor(Math.random() * ids.length)]!;
        const t = performance.now();
        const response = await fetch(new URL(`/cloud/patients/${patient.key.patientId}/read`, base), {
          method: 'POST', headers: { authorization: `Bearer ${doctor.session.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ category: 'lab', recordIds: [id] }),
        });
        if (response.status !== 200) throw new Error(`read failed: ${response.status}`);
        await response.arrayBuffer();
        latencies.push(performance.now() - t);
      }
    }));
    const readSeconds = (performance.now() - readStart) / 1000;
    latencies.sort((a, b) => a - b);
    return [label, String(RECORDS), (RECORDS / uploadSeconds).toFixed(0), String(latencies.length), ms(percentile(latencies, 50)), ms(percentile(latencies, 99)), (latencies.length / readSeconds).toFixed(0)];
  } finally {
    await platform.close();
  }
}

await abe.init();
const primitives = measurePrimitives();
const ta = abe.setup();
const patientKey = pre.generatePatientKey('psn:bench-conversion-0001', ['lab']);
const ciphertext = pre.encrypt(pre.publicKeys(patientKey), 'lab', 'r', randomBytes(4096));
const rk = pre.delegate(patientKey, 'lab', ta.publicKey, '(role:doctor and dept:cardiology) or role:emergency');
const convertMs = timeIt(() => pre.convert(rk, ciphertext));
const header = pre.openRecordHeader(ciphertext);
const convertHeaderMs = timeIt(() => pre.convertHeader(rk, header));
const encryptMs = timeIt(() => pre.encrypt(pre.publicKeys(patientKey), 'lab', 'r', randomBytes(4096)));
printTable('Costs measured in this run', ['operation', 'ms', 'pairing-equivalents'], [
  ['pairing e(P,Q)', ms(primitives.pairing), '1.00'],
  ['cloud conversion of one 4 KiB record (pre.convert)', ms(convertMs), ratio(convertMs / primitives.pairing)],
  ['  of which the header conversion alone (pre.convertHeader)', ms(convertHeaderMs), ratio(convertHeaderMs / primitives.pairing)],
  ['gateway encryption of one 4 KiB record (pre.encrypt)', ms(encryptMs), ratio(encryptMs / primitives.pairing)],
]);

const rows: string[][] = [];
const pglite = await openDatabase();
rows.push(await run('PGlite (in memory)', pglite));
await pglite.close();
const url = process.env['DATABASE_URL'];
if (url) {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const postgres = await openDatabase({ url, schema });
  try {
    rows.push(await run('PostgreSQL 127.0.0.1', postgres));
  } finally {
    await postgres.query(`DROP SCHEMA ${schema} CASCADE`);
    await postgres.close();
  }
}
printTable(`Platform over HTTP: upload, then ${DOCTORS} concurrent doctors reading single records for ${READ_SECONDS} s`,
  ['engine', 'records', 'upload records/s', 'reads', 'read p50 ms', 'read p99 ms', 'reads/s'], rows);
