/**
 * `medshare demo` — the MedShare story end to end on real cryptography, in one process: a trusted authority,
 * two hospitals, a patient, a cloud that stores and converts ciphertexts, doctors who read or are refused,
 * revocation, emergency access and the patient's access log. (The HTTP services and database arrive with
 * the platform; this runs the same cryptographic flow they will.)
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { abe, pre, AccessDeniedError } from '@medshare/crypto';

const FIXTURE = fileURLToPath(new URL('../../fixtures/synthea-sample.json', import.meta.url));
const LAB_POLICY = '(role:doctor and dept:cardiology) or role:emergency';

/** FHIR resource type → record category (the platform makes this configurable). */
const CATEGORY_OF: Record<string, string> = {
  Observation: 'lab',
  DiagnosticReport: 'lab',
  ImagingStudy: 'imaging',
  DocumentReference: 'notes',
  MedicationRequest: 'medication',
  Immunization: 'medication',
};
const CATEGORIES = ['lab', 'imaging', 'notes', 'medication', 'clinical'];

interface FhirResource {
  resourceType: string;
  id: string;
  code?: { coding?: Array<{ display?: string }> };
  valueQuantity?: { value?: number; unit?: string };
  name?: Array<{ given?: string[]; family?: string }>;
}

interface StoredRecord {
  recordId: string;
  category: string;
  ciphertext: Uint8Array;
}

interface AccessEvent {
  actor: string;
  action: string;
  category: string;
  outcome: string;
  reason?: string;
}

/** The semi-trusted cloud: ciphertexts, re-encryption keys, and an append-only access log. */
class Cloud {
  readonly records: StoredRecord[] = [];
  readonly delegations = new Map<string, pre.ReEncryptionKey>();
  readonly log: AccessEvent[] = [];

  /** Converts every record of `category` with the delegation `name`; refuses if it was revoked. */
  read(name: string, category: string): Uint8Array[] {
    const rk = this.delegations.get(name);
    if (!rk) throw new AccessDeniedError(`no active delegation '${name}' (revoked or never granted)`);
    return this.records.filter((r) => r.category === category).map((r) => pre.convert(rk, r.ciphertext));
  }
}

export async function runDemo(bundlePath: string, write: (line: string) => void): Promise<void> {
  const started = performance.now();
  const summary: string[][] = [];
  const step = async (n: number, actor: string, title: string, body: () => Promise<string> | string) => {
    const t = performance.now();
    let outcome: string;
    try {
      outcome = await body();
    } catch (error) {
      if (!(error instanceof AccessDeniedError)) throw error;
      outcome = `refused: ${error.message}`;
    }
    const elapsed = performance.now() - t;
    write(`${String(n).padStart(2)}. ${title}\n    → ${outcome}`);
    summary.push([String(n), actor, outcome.length > 64 ? `${outcome.slice(0, 61)}...` : outcome, `${elapsed.toFixed(0)} ms`]);
  };

  write('MedShare demo: cross-hospital sharing of one patient\'s records through a semi-trusted cloud.');
  write('Everything below is real cryptography (FAME CP-ABE and proxy re-encryption on BLS12-381, AES-256-GCM).\n');
  await abe.init();
  const bundle = JSON.parse((await readFile(bundlePath, 'utf8')).replace(/^\uFEFF/, '')) as { entry?: Array<{ resource: FhirResource }> };
  const resources = (bundle.entry ?? []).map((e) => e.resource);
  const person = resources.find((r) => r.resourceType === 'Patient');
  const cloud = new Cloud();
  let ta!: ReturnType<typeof abe.setup>;
  let patient!: pre.PatientSecretKey;

  await step(1, 'trusted authority', 'The trusted authority sets up CP-ABE (FAME on BLS12-381)', () => {
    ta = abe.setup();
    return `authority ${Buffer.from(ta.publicKey.authorityId).toString('hex').slice(0, 16)}…`;
  });
  await step(2, 'patient', `${person?.name?.[0]?.given?.[0]?.replace(/\d+$/, '') ?? 'The patient'} enrols at St Mary's: one key pair per record category`, () => {
    patient = pre.generatePatientKey('patient-7f3a9c', CATEGORIES);
    return `pseudonym ${patient.patientId}, categories ${CATEGORIES.join(', ')}; signed public keys published`;
  });
  await step(3, "St Mary's", `St Mary's encrypts her ${resources.length} FHIR resources under her category keys and uploads them`, () => {
    const keys = pre.decodePublicKeys(pre.encodePublicKeys(patient), pre.publicKeys(patient).signingKey);
    for (const r of resources) {
      const category = CATEGORY_OF[r.resourceType] ?? 'clinical';
      cloud.records.push({ recordId: r.id, category, ciphertext: pre.encrypt(keys, category, r.id, new TextEncoder().encode(JSON.stringify(r))) });
    }
    const stored = Buffer.concat(cloud.records.map((r) => r.ciphertext)).toString('latin1');
    const leaked = resources.filter((r) => stored.includes(JSON.stringify(r).slice(0, 40)) || (person?.name?.[0]?.family && stored.includes(person.name[0].family)));
    const byCategory = CATEGORIES.map((t) => `${t} ${cloud.records.filter((r) => r.category === t).length}`).join(', ');
    return `${cloud.records.length} ciphertexts (${byCategory}); plaintext found in the cloud's store: ${leaked.length === 0 ? 'none' : leaked.length}`;
  });
  await step(4, 'patient', `The patient delegates 'lab' to ${LAB_POLICY}, and pre-approves emergency access`, () => {
    cloud.delegations.set('lab', pre.delegate(patient, 'lab', ta.publicKey, LAB_POLICY));
    cloud.delegations.set('emergency-lab', pre.delegate(patient, 'lab', ta.publicKey, 'role:emergency'));
    return 'the cloud holds two re-encryption keys and learns nothing from them';
  });
  const readLab = (who: string, attributes: string, delegation: string, reason?: string) => {
    const reader = pre.createReader(abe.keygen(ta.masterKey, attributes));
    try {
      const records = cloud.read(delegation, 'lab').map((ct) => JSON.parse(new TextDecoder().decode(reader.decrypt(ct))) as FhirResource);
      cloud.log.push({ actor: who, action: reason ? 'emergency read' : 'read', category: 'lab', outcome: `${records.length} records`, reason });
      const sample = records.find((r) => r.valueQuantity);
      return `read ${records.length} lab records, e.g. ${sample?.code?.coding?.[0]?.display} ${sample?.valueQuantity?.value} ${sample?.valueQuantity?.unit ?? ''}`.trim();
    } catch (error) {
      cloud.log.push({ actor: who, action: reason ? 'emergency read' : 'read', category: 'lab', outcome: 'refused', reason });
      throw error;
    }
  };
  await step(5, 'Dr Chen, cardiology, Riverside', 'Dr Chen (cardiology, Riverside Hospital) reads her lab results', () =>
    readLab('Dr Chen (Riverside, cardiology)', 'role:doctor, dept:cardiology, hospital:riverside, uid:chen', 'lab'),
  );
  await step(6, 'Dr Patel, dermatology, Riverside', 'Dr Patel (dermatology, Riverside Hospital) tries the same', () =>
    readLab('Dr Patel (Riverside, dermatology)', 'role:doctor, dept:dermatology, hospital:riverside, uid:patel', 'lab'),
  );
  await step(7, 'patient', "The patient revokes the 'lab' delegation: the cloud deletes the key", () => {
    cloud.delegations.delete('lab');
    cloud.log.push({ actor: 'patient', action: 'revoke', category: 'lab', outcome: 'delegation deleted' });
    return 'revoked';
  });
  await step(8, 'Dr Chen, cardiology, Riverside', 'Dr Chen reads again', () => readLab('Dr Chen (Riverside, cardiology)', 'role:doctor, dept:cardiology, hospital:riverside, uid:chen', 'lab'));
  await step(9, 'Dr Okafor, emergency', 'Emergency: Dr Okafor breaks the glass with a stated reason', () =>
    readLab('Dr Okafor (emergency)', 'role:emergency, hospital:riverside, uid:okafor', 'emergency-lab', 'unconscious on arrival, suspected myocardial infarction'),
  );
  await step(10, 'patient', "The patient reads her access log", () => `${cloud.log.length} entries (below)`);

  write('\nAccess log (what the patient sees):');
  write(table(['actor', 'action', 'category', 'outcome', 'reason'], cloud.log.map((e) => [e.actor, e.action, e.category, e.outcome, e.reason ?? ''])));
  write('\nSummary:');
  write(table(['step', 'actor', 'outcome', 'time'], summary));
  write(`\nDone in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
}

/** A plain-text table. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the end-to-end sharing story on a sample Synthea patient and exit')
    .option('--bundle <file>', 'a FHIR transaction Bundle to use instead of the shipped sample')
    .action(async (o: { bundle?: string }) => {
      await runDemo(o.bundle ?? FIXTURE, (line) => process.stdout.write(`${line}\n`));
    });
}
