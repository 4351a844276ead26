/**
 * `medshare demo` — the MedShare story end to end across separate processes on 127.0.0.1: the trusted authority,
 * the cloud and two hospitals (identity service and FHIR gateway each) run as four `medshare serve` processes,
 * each with its own embedded PGlite database and key-encryption key in a temporary directory, and every actor
 * uses the typed SDK over HTTP with MFA login and SSO tokens. Upload, delegation, a read, a refusal, revocation,
 * emergency access and the access log; then a copy of the cloud's database is attacked with every key-shaped value
 * it holds.
 */
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { MedShareError, pre } from '@medshare/crypto';
import { openDatabase } from '@medshare/db';
import { agentPseudonym, everyValue, GatewayClient, issuerOf, PatientClient, PlatformClient, tryEveryKey, type DoctorClient, type FhirResource } from '@medshare/server';
import { HOLDINGS, startLocalDeployment } from '../deployment.ts';

const FIXTURE = fileURLToPath(new URL('../../fixtures/synthea-sample.json', import.meta.url));
const LAB_POLICY = '(role:doctor and dept:cardiology) or role:emergency';
const CATEGORIES = ['lab', 'imaging', 'notes', 'medication', 'clinical'];
const HOSPITALS = ['st-marys', 'riverside'];
/** What an attacker holding the TA's master key would make a key for: every attribute the story's policies name. */
const ATTACKER_ATTRIBUTES = 'role:doctor, dept:cardiology, role:emergency';

interface DemoResource extends FhirResource {
  code?: { coding?: Array<{ display?: string }> };
  valueQuantity?: { value?: number; unit?: string };
  medicationCodeableConcept?: { coding?: Array<{ display?: string }> };
  name?: Array<{ given?: string[]; family?: string }>;
}

/** Runs the story; `write` receives the narrative line by line. */
export async function runDemo(bundlePath: string, write: (line: string) => void): Promise<void> {
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
      if (!(error instanceof MedShareError && error.code === 'ACCESS_DENIED')) throw error;
      outcome = `refused: ${error.message}`;
    }
    const elapsed = performance.now() - t;
    write(`${String(n).padStart(2)}. ${title}\n    → ${outcome}`);
    summary.push([String(n), actor, outcome.length > 64 ? `${outcome.slice(0, 61)}...` : outcome, `${elapsed.toFixed(0)} ms`]);
  };

  write('MedShare demo: cross-hospital sharing of one patient\'s records through a semi-trusted cloud.');
  write('Real HTTP services on 127.0.0.1, one process per trust domain, each with its own embedded PostgreSQL (PGlite) and keys,');
  write('MFA logins and SSO tokens, real cryptography (FAME CP-ABE and proxy re-encryption on BLS12-381, AES-256-GCM).\n');
  const root = await mkdtemp(join(tmpdir(), 'medshare-demo-'));
  const adminToken = randomBytes(24).toString('base64url');
  let deployment: Awaited<ReturnType<typeof startLocalDeployment>> | undefined;
  try {
    deployment = await startLocalDeployment({ root, hospitals: HOSPITALS, adminToken });
    const running = deployment;
    write(table(['process', 'pid', 'URL', 'holds'], [...running.services.values()].map((s) => [
      s.kind === 'hospital' ? `hospital ${s.name}` : s.name, String(s.child.pid), s.url.href, HOLDINGS[s.kind],
    ])));
    write('');
    const client = new PlatformClient(running.urls);
    const names = new Map<string, string>();
    const enrol = async (hospital: string, username: string, attributes: string[], display: string) => {
      const password = randomBytes(18).toString('base64url');
      const enrolment = await client.registerUser(hospital, adminToken, { username, password, attributes, scopes: ['patient/*.rs'] });
      names.set(agentPseudonym(issuerOf(hospital), enrolment.userId), display);
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

    await step(1, 'trusted authority', `The platform starts as ${running.services.size} processes: trusted authority (FAME CP-ABE setup), cloud, ${HOSPITALS.join(' and ')} (identity, gateway)`, async () => {
      const abeKey = await client.abePublicKey();
      chen = await reader('chen', ['role:doctor', 'dept:cardiology'], 'Dr Chen (Riverside, cardiology)');
      patel = await reader('patel', ['role:doctor', 'dept:dermatology'], 'Dr Patel (Riverside, dermatology)');
      okafor = await reader('okafor', ['role:emergency'], 'Dr Okafor (emergency)');
      return `authority ${Buffer.from(abeKey.authorityId).toString('hex').slice(0, 16)}…; three Riverside clinicians logged in (password + TOTP) and hold CP-ABE keys sealed to their devices`;
    });
    await step(2, 'patient', `${person?.name?.[0]?.given?.[0]?.replace(/\d+$/, '') ?? 'The patient'} enrols at St Mary's: one key pair per record category`, async () => {
      const { password, totpSecret } = await enrol('st-marys', 'patient', ['role:patient'], 'patient');
      const session = await client.login('st-marys', 'patient', password, totpSecret);
      patient = new PatientClient(session, pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, CATEGORIES));
      await patient.register();
      return `pseudonym ${patient.key.patientId}, categories ${CATEGORIES.join(', ')}; signed public keys published to the cloud`;
    });
    await step(3, "St Mary's", `St Mary's gateway encrypts her ${resources.length} FHIR resources under her category keys and uploads them`, async () => {
      const { password, totpSecret } = await enrol('st-marys', 'ehr', ['role:gateway'], "St Mary's EHR");
      const gateway = new GatewayClient(await client.login('st-marys', 'ehr', password, totpSecret));
      await gateway.enrol(person?.id ?? '', patient.key.patientId);
      const result = await gateway.upload(bundle);
      const retry = await gateway.upload(bundle);
      const byCategory = CATEGORIES.map((c) => `${c} ${result.byCategory[c] ?? 0}`).join(', ');
      return `${result.stored} ciphertexts sent to the cloud over HTTP (${byCategory}); a retry stored ${retry.stored}`;
    });
    await step(4, 'patient', `The patient delegates 'lab' to ${LAB_POLICY}, and pre-approves emergency access`, async () => {
      const abeKey = await client.abePublicKey();
      labDelegation = (await patient.delegate('lab', LAB_POLICY, abeKey)).delegationId;
      await patient.delegate('lab', 'role:emergency', abeKey, { emergency: true });
      return 'the cloud holds two re-encryption keys and learns nothing from them';
    });
    const readLab = async (doctor: DoctorClient, reason?: string) => {
      const records = (reason ? await doctor.emergencyRead(patient.key.patientId, 'lab', reason) : await doctor.read(patient.key.patientId, 'lab')) as DemoResource[];
      const sample = records.find((r) => r.valueQuantity);
      return `read ${records.length} lab records, e.g. ${sample?.code?.coding?.[0]?.display} ${sample?.valueQuantity?.value} ${sample?.valueQuantity?.unit ?? ''}`.trim();
    };
    await step(5, 'Dr Chen, cardiology, Riverside', 'Dr Chen (cardiology, Riverside Hospital) reads her lab results', () => readLab(chen));
    await step(6, 'Dr Patel, dermatology, Riverside', 'Dr Patel (dermatology, Riverside Hospital) tries the same', () => readLab(patel));
    await step(7, 'patient', "The patient revokes the 'lab' delegation: the cloud deletes the key", async () => {
      await patient.revoke(labDelegation);
      return 'revoked';
    });
    await step(8, 'Dr Chen, cardiology, Riverside', 'Dr Chen reads again', () => readLab(chen));
    await step(9, 'Dr Okafor, emergency', "Emergency: Dr Okafor breaks the glass with a stated reason, under the patient's pre-approved emergency delegation", () =>
      readLab(okafor, 'unconscious on arrival, suspected myocardial infarction'),
    );
    await step(10, 'Dr Okafor, emergency', "Emergency on 'medication', which the patient never delegated: the platform's emergency policy", async () => {
      const records = (await okafor.emergencyRead(patient.key.patientId, 'medication', 'anaphylaxis, needs current medication list')) as DemoResource[];
      const sample = records.find((r) => r.medicationCodeableConcept)?.medicationCodeableConcept?.coding?.[0]?.display;
      const example = sample === undefined ? '' : `, e.g. ${sample.length > 40 ? `${sample.slice(0, 39)}…` : sample}`;
      return `read ${records.length} medication records${example} (St Mary's granted them to the policy at upload)`;
    });
    const log = await patient.accessLog();
    const consent = await patient.platformEmergency();
    await step(11, 'patient', 'The patient reads her access log and her platform emergency setting', async () =>
      `${log.length} entries (below), each also in the audit ledger; platform emergency policy '${consent.policy}' covers ${consent.grantedRecords} records, and she may opt out`);

    await running.stop();
    await step(12, 'attacker', "Someone copies the cloud's database (its data directory) and attacks the copy with everything in it", async () => {
      const copy = join(root, 'cloud-copy');
      await cp(join(running.services.get('cloud')!.dataDir, 'db'), copy, { recursive: true });
      const db = await openDatabase({ dataDir: copy });
      try {
        const values = await everyValue(db);
        const stored = Buffer.concat(values).toString('latin1');
        const family = person?.name?.[0]?.family;
        const leaked = resources.filter((r) => stored.includes(JSON.stringify(r).slice(0, 40)) || stored.includes(r.id) || (family !== undefined && stored.includes(family)));
        const scan = await tryEveryKey(values, ATTACKER_ATTRIBUTES);
        const { masterKeys, userKeys, patientKeys, scalars } = scan.candidates;
        return `plaintext or FHIR ids found: ${leaked.length === 0 ? 'none' : leaked.length}; key-shaped values: ${masterKeys} ABE master keys, ${userKeys} ABE user keys, `
          + `${patientKeys} patient keys, ${scalars} 32-byte scalars; records decrypted with them: ${scan.decrypted} of ${scan.records} (${scan.attempts} attempts)`;
      } finally {
        await db.close();
      }
    });

    write('\nAccess log (what the patient sees):');
    write(table(['actor', 'action', 'category', 'outcome', 'reason'], log.map((e) => [names.get(e.actor) ?? e.actor, e.action, e.category, e.outcome, e.reason ?? ''])));
    write('\nSummary:');
    write(table(['step', 'actor', 'outcome', 'time'], summary));
    write(`\nDone in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
  } finally {
    await deployment?.stop();
    await rm(root, { recursive: true, force: true });
  }
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
    .action(async (o: { bundle?: string }) => {
      await runDemo(o.bundle ?? FIXTURE, (line) => process.stdout.write(`${line}\n`));
    });
}
