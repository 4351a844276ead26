/** `medshare audit verify|proof|log --url` against the public ledger routes of a running server, with no database access. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import Fastify from 'fastify';
import { openTestDatabases } from '@medshare/db';
import { AuditLog, generateCheckpointKey, ledgerRoutesPlugin, Witness, type AuditEventInput } from '@medshare/ledger';
import { runCli } from './run-cli.ts';

const psn = (label: string) => `psn:${createHash('sha256').update(label).digest('base64url').slice(0, 22)}`;
const alice = psn('alice');
const event = (patient: string, doctor: string): AuditEventInput => ({
  type: 'record-access',
  patient,
  agents: [{ who: psn(doctor), role: 'doctor' }],
  source: 'hospital-a',
  records: [{ hash: `sha256:${'ab'.repeat(32)}`, category: 'lab' }],
});

const { db } = (await openTestDatabases())[0]!;
const logKey = generateCheckpointKey('medshare.test/audit', 'ed25519');
const witnessKeys = ['st-marys', 'riverside'].map((h) => generateCheckpointKey(`${h}.test/witness`));
const witnesses = await Promise.all(witnessKeys.map((k) => Witness.open(db, k.signer, logKey.signer.verifier)));
const log = await AuditLog.open(db, logKey.signer, { cosigners: witnesses });
for (let i = 0; i < 12; i++) await log.append(event(i % 3 === 0 ? alice : psn(`p${i}`), `dr-${i}`));
await log.flush();
const app = Fastify();
await app.register(ledgerRoutesPlugin, { log, logKey: logKey.signer.verifier, witnessKeys: witnesses.map((w) => w.verifier), prefix: '/ledger' });
const url = `${await app.listen({ host: '127.0.0.1', port: 0 })}/ledger`;
after(async () => {
  await app.close();
  await db.close();
});
const pinned = ['--url', url, '--log-key', logKey.signer.verifier.vkey, ...witnessKeys.flatMap((k) => ['--witness-key', k.signer.verifier.vkey])];

test('audit verify --url recomputes the served log against the witnessed checkpoint (quorum: a majority by default)', async () => {
  const result = await runCli(['audit', 'verify', ...pinned]);
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.size, 12);
  assert.equal(report.latestCosigners.length, 2);
});

test('audit proof --url and audit log --url print bundles the CLI checks with the pinned keys', async () => {
  const proof = await runCli(['audit', 'proof', '--entry', '4', '--url', url]);
  assert.equal(proof.code, 0, proof.stderr);
  assert.equal(JSON.parse(proof.stdout).index, 4);
  const logged = await runCli(['audit', 'log', '--patient', alice, ...pinned]);
  assert.equal(logged.code, 0, logged.stderr);
  assert.match(logged.stdout, /4 entries for psn:/);
});

test('an entry edited in the database under the running server: verify --url fails (exit 4) naming it, and the server halts', async () => {
  await db.query(`UPDATE ledger_entries SET entry = replace(entry, '"outcome":"0"', '"outcome":"4"') WHERE idx = 7`);
  const result = await runCli(['audit', 'verify', ...pinned]);
  assert.equal(result.code, 4);
  assert.match(result.stderr, /at entry 7/);
  assert.equal((await fetch(`${url}/health`)).status, 503);
  const unpinned = await runCli(['audit', 'verify', '--url', 'not a url']);
  assert.equal(unpinned.code, 2);
});
