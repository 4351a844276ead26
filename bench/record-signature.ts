/**
 * Record signatures (packages/server/src/record-signature.ts): what a gateway's signature and a reader's check add to
 * a record, against the record's own encryption under the patient's key (pre.encrypt, the reference) — CPU time
 * alternated, medians of rounds (bench/lib/measure.ts) — over the resources of the first Synthea bundle of the shared
 * data set (or the repository's sample bundle).
 *
 *   MEDSHARE_SHARED_DIR=/work/shared node --import tsx bench/record-signature.ts
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { abe, pre } from '@medshare/crypto';
import { generateCheckpointKey } from '@medshare/ledger';
import { versioned } from '../packages/server/src/gateway/fhir-versions.ts';
import type { FhirResource } from '../packages/server/src/gateway/fhir.ts';
import { recordKeyName, signRecord, verifyRecord, writerKeys } from '../packages/server/src/record-signature.ts';
import { alternate } from './lib/measure.ts';
import { printTable } from './lib/report.ts';

await abe.init();
const synthea = join(process.env['MEDSHARE_SHARED_DIR'] ?? fileURLToPath(new URL('../../shared', import.meta.url)), 'data', 'synthea');
const file = existsSync(synthea)
  ? join(
      synthea,
      readdirSync(synthea)
        .filter((f) => f.endsWith('.json'))
        .sort()[0]!,
    )
  : fileURLToPath(new URL('../packages/cli/fixtures/synthea-sample.json', import.meta.url));
const bundle = JSON.parse(readFileSync(file, 'utf8').replace(/^\uFEFF/, '')) as { entry: Array<{ resource: FhirResource }> };
const resources = bundle.entry.map((e) => versioned(e.resource, 'st-marys', 1, '2026-12-01T00:00:00.000Z'));
const { signer } = generateCheckpointKey(recordKeyName('st-marys'), 'ed25519');
const trusted = writerKeys([{ hospital: 'st-marys', key: signer.verifier.vkey }]);
const patient = pre.generatePatientKey('psn:AAAAAAAAAAAAAAAAAAAAAA', ['clinical']);
const keys = pre.decodePublicKeys(pre.encodePublicKeys(patient));
const context = { patient: patient.patientId, category: 'clinical' };
const utf8 = new TextEncoder();
// What the reader decrypts: the signed JSON parsed back.
const signed = resources.map((r) => JSON.parse(JSON.stringify(signRecord(signer, r, context))) as FhirResource);
let i = 0;
let j = 0;
let k = 0;
const measured = alternate(
  'encrypt (pre.encrypt)',
  {
    'encrypt (pre.encrypt)': () => pre.encrypt(keys, 'clinical', 'r', utf8.encode(JSON.stringify(resources[i++ % resources.length]!))),
    'sign (gateway)': () => signRecord(signer, resources[j++ % resources.length]!, context),
    'verify (reader)': () => {
      if (verifyRecord(trusted, signed[k++ % signed.length]!, context).status !== 'verified') throw new Error('a genuine signature failed');
    },
  },
  { rounds: 9 },
);
printTable(
  `Record signatures over ${resources.length} resources of ${file.split('/').at(-1)} (CPU time alternated with pre.encrypt)`,
  ['operation', 'ms per record', '× encrypt'],
  Object.entries(measured).map(([name, m]) => [name, m.ms.toFixed(3), m.ratio.toFixed(3)]),
);
