/**
 * `medshare demo` — the MedShare story end to end across separate processes on 127.0.0.1, one per trust domain:
 * `medshare serve authority`, `serve cloud` and `serve hospital` for St Mary's and Riverside (deployment.ts), each
 * with its own embedded PGlite and key-encryption key in a temporary directory; every actor uses the typed SDK over
 * HTTP with MFA login and SSO tokens. Upload, delegation, a read, a refusal, revocation, emergency access, the access
 * log, one cross-hospital statistics query under threshold homomorphic encryption, and at the end the attack the
 * design is for: a copy of the cloud's database, every key-shaped value in it tried against every record.
 */
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { MedShareError, pre } from '@medshare/crypto';
import { openDatabase } from '@medshare/db';
import { patientKeyBackup } from '@medshare/portal';
import {
  everyValue,
  GatewayClient,
  PatientClient,
  PlatformClient,
  roleScopes,
  StatsClient,
  tryEveryKey,
  type DoctorClient,
  type FhirResource,
  type StatsResource,
} from '@medshare/server';
import { HOLDINGS, startLocalDeployment } from '../deployment.ts';

const FIXTURE = fileURLToPath(new URL('../../fixtures/synthea-sample.json', import.meta.url));
const LAB_POLICY = '(role:doctor and dept:cardiology) or role:emergency';
const CATEGORIES = ['lab', 'imaging', 'notes', 'medication', 'clinical'];
const HOSPITALS = ['st-marys', 'riverside'];

interface DemoResource extends FhirResource {
  code?: { coding?: Array<{ system?: string; code?: string; display?: string }> };
  valueQuantity?: { value?: number; unit?: string };
  medicationCodeableConcept?: { coding?: Array<{ display?: string }> };
  name?: Array<{ given?: string[]; family?: string }>;
}

/**
 * Runs the story; `write` receives the narrative line by line. It ends with each hospital's portal URL and the demo's
 * accounts; `untilStopped`, when given, keeps the four services running (for the portal) until it resolves.
 */
export async function runDemo(bundlePath: string, write: (line: string) => void, untilStopped?: Promise<void>): Promise<void> {
  const started = performance.now();
  const bundle = JSON.parse((await readFile(bundlePath, 'utf8')).replace(/^\uFEFF/, '')) as { entry?: Array<{ resource: DemoResource }> };
  const resources = (bundle.entry ?? []).map((e) => e.resource);
  const person = resources.find((r) => r.resourceType === 'Patient');
  const summary: string[][] = [];
  const step = async (n: number, actor: string, title: string, body: () => Promise<string>) => {
    const t = performance.now();
    let outcome: string;
    try {
      outcome = await body();
    } catch (error) {
      if (!(error instanceof MedShareError && (error.code === 'ACCESS_DENIED' || error.code === 'LIMIT'))) throw error;
      outcome = `refused: ${error.message}`;
    }
    const elapsed = performance.now() - t;
    write(`${String(n).padStart(2)}. ${title}\n    → ${outcome}`);
    summary.push([String(n), actor, outcome.length > 64 ? `${outcome.slice(0, 61)}...` : outcome, `${elapsed.toFixed(0)} ms`]);
  };

  write("MedShare demo: cross-hospital sharing of one patient's records through a semi-trusted cloud.");
  write('Real HTTP services on 127.0.0.1, one process per trust domain, each with its own embedded PostgreSQL (PGlite) and');
  write('key-encryption key in a temporary directory; MFA logins and SSO tokens; real cryptography (FAME CP-ABE and proxy');
  write('re-encryption on BLS12-381, AES-256-GCM).\n');
  const root = await mkdtemp(join(tmpdir(), 'medshare-demo-'));
  const adminTokens = Object.fromEntries(HOSPITALS.map((hospital) => [hospital, randomBytes(24).toString('base64url')]));
  // Each hospital's statistics agent runs in its own process on its own records (a synthetic cohort exported as a
  // bundle); the agents generate the consortium's threshold key among themselves (2 of 2 decrypt) over the cloud.
  const hospitalArgs: Record<string, string[]> = {};
  for (const [i, hospital] of HOSPITALS.entries()) {
    const dir = join(root, `${hospital}-ehr`);
    await mkdir(dir);
    await writeFile(
      join(dir, 'cohort.json'),
      JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: demoCohort(hospital, 300 + 100 * i).map((resource) => ({ resource })) }),
    );
    hospitalArgs[hospital] = ['--stats-data', dir, '--stats-budget', `${STATS_QUERY.querySet}=1`, '--stats-poll-ms', '200'];
  }
  write('Starting authority, cloud, st-marys and riverside (medshare serve …) …');
  const deployment = await startLocalDeployment({
    root,
    hospitals: HOSPITALS,
    adminTokens,
    cloudArgs: ['--stats-threshold', '2', '--stats-budget', `${STATS_QUERY.querySet}=1`],
    hospitalArgs,
  });
  try {
    const { urls } = deployment;
    const base = urls.cloud;
    const client = new PlatformClient(urls);
    write(
      table(
        ['process', 'pid', 'url', 'holds'],
        [...deployment.services.values()].map((s) => [
          s.kind === 'hospital' ? `hospital ${s.name}` : s.name,
          String(s.child.pid),
          s.url.href,
          HOLDINGS[s.kind],
        ]),
      ),
    );
    write('');
    const names = new Map<string, string>();
    const accounts: string[][] = [];
    const enrol = async (hospital: string, username: string, attributes: string[], display: string) => {
      const password = randomBytes(18).toString('base64url');
      // SMART scopes: the patient reads her own records, the EHR system uploads, staff read as users.
      const enrolment = await client.registerUser(hospital, adminTokens[hospital]!, { username, password, attributes, scopes: roleScopes(attributes) });
      names.set(`${hospital}|${enrolment.userId}`, display);
      accounts.push([hospital, username, password, enrolment.totpSecret, attributes.join(' ')]);
      return { password, totpSecret: enrolment.totpSecret };
    };
    const reader = async (username: string, attributes: string[], display: string): Promise<DoctorClient> => {
      const { password, totpSecret } = await enrol('riverside', username, attributes, display);
      return client.loginReader('riverside', username, password, totpSecret, attributes);
    };
    let patient!: PatientClient;
    let chen!: DoctorClient;
    let patel!: DoctorClient;
    let okafor!: DoctorClient;
    let labDelegation = '';
    let researcher!: StatsClient;
    let released: string[][] = [];

    await step(
      1,
      'trusted authority',
      `The platform starts on 127.0.0.1: trusted authority (FAME CP-ABE setup) on :${urls.authority.port}, cloud on :${urls.cloud.port}, ${HOSPITALS.map((h) => `${h} (identity, gateway, witness) on :${urls.hospitals[h]!.port}`).join(', ')}`,
      async () => {
        const abeKey = await client.abePublicKey();
        chen = await reader('chen', ['role:doctor', 'dept:cardiology'], 'Dr Chen (Riverside, cardiology)');
        patel = await reader('patel', ['role:doctor', 'dept:dermatology'], 'Dr Patel (Riverside, dermatology)');
        okafor = await reader('okafor', ['role:emergency'], 'Dr Okafor (emergency)');
        return `authority ${Buffer.from(abeKey.authorityId).toString('hex').slice(0, 16)}…; three Riverside clinicians logged in (password + TOTP) and hold CP-ABE keys sealed to their devices`;
      },
    );
    await step(
      2,
      'patient',
      `${person?.name?.[0]?.given?.[0]?.replace(/\d+$/, '') ?? 'The patient'} enrols at St Mary's: one key pair per record category`,
      async () => {
        const { password, totpSecret } = await enrol('st-marys', 'patient', ['role:patient'], 'patient');
        const session = await client.login('st-marys', 'patient', password, totpSecret);
        patient = new PatientClient(session, pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, CATEGORIES));
        await patient.register();
        return `pseudonym ${patient.key.patientId}, categories ${CATEGORIES.join(', ')}; signed public keys published to the cloud`;
      },
    );
    await step(3, "St Mary's", `St Mary's gateway encrypts her ${resources.length} FHIR resources under her category keys and uploads them`, async () => {
      const { password, totpSecret } = await enrol('st-marys', 'ehr', ['role:gateway'], "St Mary's EHR");
      const gateway = new GatewayClient(await client.login('st-marys', 'ehr', password, totpSecret));
      await gateway.enrol(person?.id ?? '', patient.key.patientId);
      const result = await gateway.upload(bundle);
      const retry = await gateway.upload(bundle);
      const byCategory = CATEGORIES.map((c) => `${c} ${result.byCategory[c] ?? 0}`).join(', ');
      const pending = result.receipts.filter((r) => r.status === 'pending').length;
      const receipts = `${result.receipts.length - pending} ledger receipts cosigned by both hospitals' witnesses${pending > 0 ? ` (${pending} pending)` : ''}`;
      return `${result.stored} ciphertexts (${byCategory}), ${receipts}; a retry stored ${retry.stored}`;
    });
    await step(4, 'patient', `The patient delegates 'lab' to ${LAB_POLICY}, and pre-approves emergency access`, async () => {
      const abeKey = await client.abePublicKey();
      labDelegation = (await patient.delegate('lab', LAB_POLICY, abeKey)).delegationId;
      await patient.delegate('lab', 'role:emergency', abeKey, { emergency: true });
      return 'the cloud holds two re-encryption keys and learns nothing from them';
    });
    const readLab = async (doctor: DoctorClient, reason?: string) => {
      const records = (
        reason ? await doctor.emergencyRead(patient.key.patientId, 'lab', reason) : await doctor.read(patient.key.patientId, 'lab')
      ) as DemoResource[];
      const sample = records.find((r) => r.valueQuantity);
      return `read ${records.length} lab records, e.g. ${sample?.code?.coding?.[0]?.display} ${sample?.valueQuantity?.value} ${sample?.valueQuantity?.unit ?? ''}`.trim();
    };
    await step(
      5,
      'Dr Chen, cardiology, Riverside',
      'Dr Chen (cardiology, Riverside Hospital) reads her lab results, then searches them on the encrypted index',
      async () => {
        const read = await readLab(chen);
        const coding = resources
          .filter((r) => r.resourceType === 'Observation')
          .map((r) => (r as DemoResource).code?.coding?.[0])
          .find((c) => c?.system === 'http://loinc.org' && c.code !== undefined);
        if (coding === undefined) return read;
        const { bundle: found } = await chen.searchFhir(patient.key.patientId, 'Observation', `code=${coding.system}|${coding.code}`);
        return `${read}; code=${coding.system}|${coding.code} (${coding.display}) found ${String(found.total)} without the cloud learning the code`;
      },
    );
    await step(6, 'Dr Patel, dermatology, Riverside', 'Dr Patel (dermatology, Riverside Hospital) tries the same', () => readLab(patel));
    await step(7, 'patient', "The patient revokes the 'lab' delegation: the cloud deletes the key", async () => {
      await patient.revoke(labDelegation);
      return 'revoked';
    });
    await step(8, 'Dr Chen, cardiology, Riverside', 'Dr Chen reads again', () => readLab(chen));
    await step(
      9,
      'Dr Okafor, emergency',
      "Emergency: Dr Okafor breaks the glass with a stated reason, under the patient's pre-approved emergency delegation",
      () => readLab(okafor, 'unconscious on arrival, suspected myocardial infarction'),
    );
    await step(10, 'Dr Okafor, emergency', "Emergency on 'medication', which the patient never delegated: the platform's emergency policy", async () => {
      const records = (await okafor.emergencyRead(patient.key.patientId, 'medication', 'anaphylaxis, needs current medication list')) as DemoResource[];
      const sample = records.find((r) => r.medicationCodeableConcept)?.medicationCodeableConcept?.coding?.[0]?.display;
      const example = sample === undefined ? '' : `, e.g. ${sample.length > 40 ? `${sample.slice(0, 39)}…` : sample}`;
      return `read ${records.length} medication records${example} (St Mary's granted them to the policy at upload)`;
    });
    const log = await patient.accessLog();
    const consent = await patient.platformEmergency();
    await step(
      11,
      'patient',
      'The patient reads her access log and her platform emergency setting',
      async () =>
        `${log.length} entries (below), each also in the audit ledger; platform emergency policy '${consent.policy}' covers ${consent.grantedRecords} records, and she may opt out`,
    );

    await step(
      12,
      'researcher',
      `Cross-hospital statistics: patients over 45 with diabetes and an HbA1c ≥ 7 %, by age band, across ${HOSPITALS.join(' and ')}`,
      async () => {
        const { password, totpSecret } = await enrol('riverside', 'researcher', ['role:researcher'], 'a Riverside researcher');
        researcher = new StatsClient(await client.login('riverside', 'researcher', password, totpSecret));
        // The hospitals' agents (in their own processes) have made the key by now, or finish while this waits.
        const release = await researcher.run(STATS_QUERY, { pollMs: 200 });
        released = release.cells.map((c) => [c.group['ageBand']!, c.count === null ? `suppressed (< ${release.suppressedBelow})` : String(c.count)]);
        return `the hospitals' agents made the threshold key among themselves (distributed key generation over the cloud); each counted its own patients in its own process, added its share of discrete Laplace noise (σ ≈ ${release.noise.countStdDev.toFixed(1)}), encrypted and proved every cell in range; the cloud checked the proofs and added the ciphertexts; ${release.decryptedBy.join(' and ')} decrypted only the total, with proofs; ε ${release.budget.spent} of ${release.budget.budget} spent`;
      },
    );
    await step(13, 'researcher', "The same query again: the query set's privacy budget does not cover it", async () => {
      await researcher.submit(STATS_QUERY);
      return 'accepted (it should not have been)';
    });
    await step(
      14,
      'an attacker',
      "Someone copies the cloud's database (its PGlite directory) and tries every key-shaped value in it against every record",
      async () => {
        await deployment.stop();
        const copy = join(root, 'cloud-copy');
        await cp(join(deployment.services.get('cloud')!.dataDir, 'db'), copy, { recursive: true });
        const db = await openDatabase({ dataDir: copy });
        try {
          const values = await everyValue(db);
          const text = Buffer.concat(values).toString('latin1');
          const family = person?.name?.[0]?.family;
          const leaked = resources.filter(
            (r) => text.includes(JSON.stringify(r).slice(0, 40)) || text.includes(r.id ?? '\u0000') || (family !== undefined && text.includes(family)),
          );
          const scan = await tryEveryKey(values, 'role:doctor, dept:cardiology, role:emergency');
          const c = scan.candidates;
          return `plaintext or FHIR ids found: ${leaked.length === 0 ? 'none' : leaked.length}; key-shaped values: ${c.masterKeys} ABE master keys, ${c.userKeys} ABE user keys, ${c.patientKeys} patient keys, ${c.scalars} 32-byte scalars; records decrypted with them: ${scan.decrypted} of ${scan.records}`;
        } finally {
          await db.close();
        }
      },
    );
    write('\nAccess log (what the patient sees):');
    // Actors are session pseudonyms: the demo, every hospital's administrator at once, traces them to names.
    const display = async (actor: string) => {
      for (const hospital of Object.keys(adminTokens)) {
        const traced = await client.traceAgent(hospital, adminTokens[hospital]!, actor).catch(() => undefined);
        if (traced !== undefined) return names.get(`${hospital}|${traced.userId}`) ?? actor;
      }
      return actor;
    };
    write(
      table(
        ['actor', 'action', 'category', 'outcome', 'reason'],
        await Promise.all(log.map(async (e) => [await display(e.actor), e.action, e.category, e.outcome, e.reason ?? ''])),
      ),
    );
    write("\nCross-hospital statistics (noisy totals; no hospital, and not the cloud, saw another hospital's counts):");
    write(table(['age band', 'patients'], released));
    write('\nSummary:');
    write(table(['step', 'actor', 'outcome', 'time'], summary));
    write(`\nDone in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
    write('\nThe web portal (docs/portal.md), signed in with a password and the TOTP secret in an authenticator app:');
    write(
      table(
        ['hospital', 'portal'],
        HOSPITALS.map((hospital) => [hospital, new URL('/portal/', urls.hospitals[hospital]!).href]),
      ),
    );
    write(table(['hospital', 'username', 'password', 'TOTP secret (base32)', 'attributes'], accounts));
    write(
      table(
        ['hospital', "administrator credential (the portal's Administer screen)"],
        HOSPITALS.map((hospital) => [hospital, adminTokens[hospital]!]),
      ),
    );
    if (untilStopped === undefined) {
      write('These services stop now; `npx medshare demo --serve` keeps them running for the portal until Ctrl-C.');
    } else {
      // Step 14 stopped the services to copy the cloud's database: the same processes' data, started again.
      await Promise.all([...deployment.services.keys()].map((name) => deployment.restart(name)));
      // Her keys were made in this process: a backup in the portal's format lets her restore them in a browser.
      const passphrase = randomBytes(15).toString('base64url');
      const backupFile = join(root, 'patient-key-backup.json');
      await writeFile(backupFile, patientKeyBackup(patient.key.patientId, pre.encodePatientKey(patient.key), passphrase), { mode: 0o600 });
      write(`The patient's keys: "Restore from backup" with ${backupFile} and the passphrase ${passphrase} (the file is deleted when the demo stops).`);
      write('Serving until Ctrl-C (SIGINT) or SIGTERM.');
      await untilStopped;
    }
  } finally {
    await deployment.stop();
    await rm(root, { recursive: true, force: true });
  }
}

/** The demo's statistics query (docs/platform.md § Statistics). */
const STATS_QUERY = {
  querySet: 'demo-diabetes',
  asOf: '2026-01-01',
  where: [
    { resourceType: 'Condition', codes: ['http://snomed.info/sct|44054006'] },
    { resourceType: 'Observation', codes: ['http://loinc.org|4548-4'], value: { min: 7 }, date: { from: '2020-01-01', to: '2025-12-31' } },
  ],
  age: { min: 45 },
  groupBy: ['ageBand'],
  epsilon: 0.6,
};

/**
 * A synthetic cohort for one hospital's statistics (the demo ships one real-shaped patient, too few to count):
 * FHIR Patient, Condition (type 2 diabetes, SNOMED 44054006) and Observation (HbA1c, LOINC 4548-4) resources from
 * a seeded generator, so the demo's totals are reproducible before noise. Demo data only, not a random source.
 */
function demoCohort(hospital: string, size: number): StatsResource[] {
  let seed = [...hospital].reduce((a, c) => (a * 31 + c.charCodeAt(0)) >>> 0, 7);
  const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const out: StatsResource[] = [];
  for (let i = 0; i < size; i++) {
    const id = `${hospital}-${i}`;
    const subject = { reference: `urn:uuid:${id}` };
    out.push({
      resourceType: 'Patient',
      id,
      birthDate: `${1935 + Math.floor(next() * 70)}-0${1 + Math.floor(next() * 9)}-15`,
      gender: next() < 0.5 ? 'female' : 'male',
    });
    if (next() < 0.35)
      out.push({ resourceType: 'Condition', subject, code: { coding: [{ system: 'http://snomed.info/sct', code: '44054006' }] }, onsetDateTime: '2016-04-01' });
    out.push({
      resourceType: 'Observation',
      subject,
      code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
      effectiveDateTime: '2024-02-10',
      valueQuantity: { value: Math.round((5 + next() * 5) * 10) / 10 },
    });
  }
  return out;
}

/** A plain-text table. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Registers `medshare demo`. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the end-to-end sharing story through the HTTP services on a sample Synthea patient and exit')
    .option('--bundle <file>', 'a FHIR transaction Bundle to use instead of the shipped sample')
    .option('--serve', 'keep the services running after the story, for the portal, until SIGINT or SIGTERM')
    .action(async (o: { bundle?: string; serve?: boolean }) => {
      const untilStopped =
        o.serve === true
          ? new Promise<void>((resolve) => {
              process.once('SIGINT', resolve);
              process.once('SIGTERM', resolve);
            })
          : undefined;
      await runDemo(o.bundle ?? FIXTURE, (line) => process.stdout.write(`${line}\n`), untilStopped);
    });
}
