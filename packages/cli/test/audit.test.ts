import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { openDatabase } from '@medshare/db';
import { AuditLog, collectCosignatures, generateCheckpointKey, Witness, type AuditEventInput } from '@medshare/ledger';
import { runCli } from './run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'medshare-audit-'));
const dataDir = join(dir, 'data');
const logKey = generateCheckpointKey('medshare.test/audit');
const witnessKey = generateCheckpointKey('hospital-b.test/witness');
const psn = (label: string) => `psn:${createHash('sha256').update(label).digest('base64url').slice(0, 22)}`;
const alice = psn('alice');

function event(patient: string, doctor: string, type: AuditEventInput['type'] = 'record-access'): AuditEventInput {
  return {
    type,
    patient,
    agents: [{ who: psn(doctor), role: 'doctor' }],
    source: 'hospital-a',
    records: [{ hash: `sha256:${'ab'.repeat(32)}`, category: 'lab' }],
    ...(type === 'emergency-access' ? { emergencyReason: 'BTG' as const } : {}),
  };
}

before(async () => {
  const db = await openDatabase({ dataDir });
  const log = await AuditLog.open(db, logKey.signer);
  await log.append(event(alice, 'dr-1'));
  await log.append(event(psn('bob'), 'dr-2'));
  await log.append(event(alice, 'dr-3', 'emergency-access'));
  const witness = await Witness.open(db, witnessKey.signer, logKey.signer.verifier);
  await collectCosignatures(log, [witness]);
  await db.close();
});
after(() => rmSync(dir, { recursive: true, force: true }));

// --data pins the PGlite directory even when DATABASE_URL is set.
const cli = (args: string[]) => runCli(args);
const pinned = ['--log-key', logKey.signer.verifier.vkey, '--witness-key', witnessKey.signer.verifier.vkey];

test('audit verify recomputes the log and checks the cosigned checkpoint (exit 0)', async () => {
  const result = await cli(['audit', 'verify', '--data', dataDir, ...pinned, '--quorum', '1']);
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.ok, true);
  assert.equal(report.size, 3);
  assert.deepEqual(report.latestCosigners, ['hospital-b.test/witness']);
});

test('audit proof prints a bundle that check-proof verifies offline; a forged one fails with exit 4', async () => {
  const proof = await cli(['audit', 'proof', '--entry', '1', '--data', dataDir]);
  assert.equal(proof.code, 0, proof.stderr);
  const file = join(dir, 'proof.json');
  writeFileSync(file, proof.stdout);
  const ok = await cli(['audit', 'check-proof', file, ...pinned, '--quorum', '1']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /entry 1 \(record-access\) is in the log at checkpoint 3; cosigned by 1/);
  const forged = JSON.parse(proof.stdout);
  forged.entry = forged.entry.replace('hospital-a', 'hospital-z');
  writeFileSync(file, JSON.stringify(forged));
  const bad = await cli(['audit', 'check-proof', file, ...pinned]);
  assert.equal(bad.code, 4);
  assert.doesNotMatch(bad.stderr, /\n\s+at /);
});

test('audit log lists who accessed what for one patient, each with its proof checked', async () => {
  const result = await cli(['audit', 'log', '--patient', alice, '--data', dataDir, ...pinned]);
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split('\n');
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, /^#0 .* record-access by psn:\S+ \(doctor\) at hospital-a record:lab — proof ok at checkpoint 3$/);
  assert.match(lines[1]!, /^#2 .* emergency-access\[BTG\]/);
  assert.equal(lines[2], `2 entries for ${alice}`);
});

test('bad arguments are usage errors (exit 2) with one line', async () => {
  for (const args of [
    ['audit', 'proof', '--entry', 'x', '--data', dataDir],
    ['audit', 'log', '--patient', 'Alice Smith', '--data', dataDir],
    ['audit', 'verify', '--data', join(dir, 'missing')],
    ['audit', 'proof', '--entry', '99', '--data', dataDir],
  ]) {
    const result = await cli(args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
  }
});

test('after tampering, audit verify exits 4 and names the first bad index', async () => {
  const db = await openDatabase({ dataDir });
  await db.query(`UPDATE ledger_entries SET entry = replace(entry, '"outcome":"0"', '"outcome":"4"') WHERE idx = 1`);
  await db.close();
  const result = await cli(['audit', 'verify', '--data', dataDir, ...pinned]);
  assert.equal(result.code, 4);
  assert.match(result.stderr, /^medshare: ledger verification failed at entry 1: entry 1 was changed/);
  assert.equal(JSON.parse(result.stdout).firstBadIndex, 1);
});
