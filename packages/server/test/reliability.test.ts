/**
 * Reliability: every Synthea bundle of ../shared/data goes through the gateway whole; 20 concurrent uploaders and
 * readers lose nothing; a process killed in the middle of an upload leaves no partial record (child process).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pre } from '@medshare/crypto';
import { openDatabase, openTestDatabases, type TestDatabase } from '@medshare/db';
import { GatewayClient, PatientClient, verifyRecord, writerKeys, type FhirResource } from '../src/index.ts';
import { CATEGORIES, LAB_POLICY, startCast, type Cast } from './harness.ts';

/** ../shared beside the repository root (CI), or MEDSHARE_SHARED_DIR (a worktree elsewhere). */
const SYNTHEA = join(process.env['MEDSHARE_SHARED_DIR'] ?? fileURLToPath(new URL('../../../../shared', import.meta.url)), 'data', 'synthea');
const CHILD = fileURLToPath(new URL('./fixtures/upload-child.ts', import.meta.url));
const databases: TestDatabase[] = await openTestDatabases();
after(async () => {
  for (const { db } of databases) await db.close();
});

for (const [position, { label, db }] of databases.entries()) {
  describe(`reliability on ${label}`, () => {
    let cast: Cast;
    before(async () => {
      // No platform emergency grants: they would double the pairings of ~5,000 encryptions, and nothing here reads under them.
      cast = await startCast(db, { emergencyPolicy: null });
    });
    after(async () => cast.platform.close());

    test('20 concurrent uploaders and 20 concurrent readers lose nothing', async () => {
      await cast.patient.register();
      const fhirPatient = `concurrent-${randomBytes(4).toString('hex')}`;
      await cast.gateway.enrol(fhirPatient, cast.patient.key.patientId);
      const observation = (i: number, j: number) => ({
        resourceType: 'Observation',
        id: `obs-${i}-${j}`,
        status: 'final',
        code: { text: 'test' },
        subject: { reference: `Patient/${fhirPatient}` },
        valueQuantity: { value: i * 100 + j },
      });
      const uploads = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          cast.gateway.upload({ resourceType: 'Bundle', type: 'transaction', entry: Array.from({ length: 2 }, (_, j) => ({ resource: observation(i, j) })) }),
        ),
      );
      assert.deepEqual(
        uploads.map((u) => u.stored),
        Array(20).fill(2),
      );
      await cast.patient.delegate('lab', LAB_POLICY, await cast.client.abePublicKey());
      const reads = await Promise.all(Array.from({ length: 20 }, () => cast.chen.read(cast.patient.key.patientId, 'lab')));
      for (const records of reads) {
        assert.equal(records.length, 40);
        assert.equal(new Set(records.map((r) => r.id)).size, 40);
      }
      const log = await cast.patient.accessLog();
      assert.equal(log.filter((e) => e.action === 'read' && e.outcome === '40 records').length, 20, 'every read is logged');
    });

    // ~5,000 resources to validate, encrypt and decrypt (170 s CPU for this file on a loaded machine): the first engine only (the SQL is the same).
    const skipSynthea = !existsSync(SYNTHEA) ? 'no ../shared/data/synthea' : position > 0 ? 'run on PGlite only (time)' : false;
    test(
      "every Synthea patient bundle of the shared data set is uploaded whole, a retry adds nothing, and every resource decrypts to what was sent, signed by St Mary's",
      { skip: skipSynthea },
      async () => {
        const files = readdirSync(SYNTHEA)
          .filter((f) => f.endsWith('.json'))
          .sort();
        assert.ok(files.length > 0);
        let trusted: ReturnType<typeof writerKeys> | undefined;
        const stMarysKey = async () =>
          (trusted ??= writerKeys([
            (await (await fetch(new URL('/gateway/record-key', cast.urls.hospitals['st-marys']))).json()) as { hospital: string; key: string },
          ]));
        for (const [i, file] of files.entries()) {
          const bundle = JSON.parse(readFileSync(join(SYNTHEA, file), 'utf8').replace(/^\uFEFF/, '')) as {
            entry: Array<{ fullUrl: string; resource: { resourceType: string; id: string; meta?: object } }>;
          };
          // Fresh sessions per bundle: tokens live 5 minutes, and the whole set takes longer on a busy machine.
          const gateway = new GatewayClient(await cast.registerAndLogin('st-marys', `synthea-ehr-${i}`, ['role:gateway']));
          if (!bundle.entry.some((e) => e.resource.resourceType === 'Patient')) {
            // Synthea's hospital and practitioner directories are not patient records: refused as a whole, clearly.
            await assert.rejects(gateway.upload(bundle), /exactly one patient/);
            continue;
          }
          const patient = new PatientClient(
            await cast.registerAndLogin('st-marys', `synthea-${i}`, ['role:patient']),
            pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, CATEGORIES),
          );
          await patient.register();
          await gateway.enrol(bundle.entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id, patient.key.patientId);
          const result = await gateway.upload(bundle);
          assert.equal(result.stored, bundle.entry.length, file);
          if (i === 0) assert.equal((await gateway.upload(bundle)).stored, 0, 'retry');
          assert.equal((await patient.records()).length, bundle.entry.length, file);
          // The patient decrypts every stored ciphertext with her own key: each is the resource sent, with the transaction's
          // urn:uuid references resolved to Type/id (FHIR's rule) and the gateway's meta (version, time, source hospital).
          const ids = new Map(bundle.entry.map((e) => [e.fullUrl, `${e.resource.resourceType}/${e.resource.id}`]));
          const resolve = (value: unknown): unknown =>
            Array.isArray(value)
              ? value.map(resolve)
              : typeof value === 'object' && value !== null
                ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === 'reference' && typeof v === 'string' ? (ids.get(v) ?? v) : resolve(v)]))
                : value;
          const sent = new Map(bundle.entry.map((e) => [`${e.resource.resourceType}/${e.resource.id}`, e.resource]));
          const stored = (
            await db.query<{ ciphertext: Uint8Array; category: string }>('SELECT ciphertext, category FROM cloud_records WHERE patient = $1', [
              patient.key.patientId,
            ])
          ).rows;
          assert.equal(stored.length, bundle.entry.length, file);
          for (const { ciphertext, category } of stored) {
            // Each version carries St Mary's signature (over her pseudonym and the category), checked with the key St Mary's publishes.
            const decrypted = JSON.parse(new TextDecoder().decode(pre.decrypt(patient.key, ciphertext))) as FhirResource;
            const provenance = verifyRecord(await stMarysKey(), decrypted, { patient: patient.key.patientId, category });
            assert.equal(provenance.status, 'verified', `${file}: ${decrypted.resourceType}/${decrypted.id}`);
            const { meta: verifiedMeta, ...content } = (provenance as { resource: FhirResource }).resource;
            const meta = verifiedMeta as Record<string, unknown>;
            const original = sent.get(`${content.resourceType}/${content.id}`)!;
            const { meta: sentMeta, ...sentContent } = original;
            assert.deepEqual(content, resolve(sentContent), `${file}: ${content.resourceType}/${content.id}`);
            assert.deepEqual(
              { ...meta, versionId: undefined, lastUpdated: undefined, source: undefined, tag: undefined },
              { ...sentMeta, versionId: undefined, lastUpdated: undefined, source: undefined, tag: undefined },
            );
            assert.equal(meta.source, 'urn:medshare:hospital:st-marys');
            sent.delete(`${content.resourceType}/${content.id}`);
          }
          assert.equal(sent.size, 0, `${file}: every resource came back`);
        }
      },
    );
  });
}

describe('a process killed in the middle of an upload', () => {
  const runChild = (args: string[]) =>
    new Promise<{ out: string; code: number | null; signal: string | null }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        // Killed 300 ms into a transaction that takes several seconds.
        if (out.includes('ready')) setTimeout(() => child.kill('SIGKILL'), 300);
      });
      child.on('close', (code, signal) => resolve({ out, code, signal }));
    });

  test('leaves no partial record (PGlite data directory)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'medshare-crash-'));
    try {
      const { out, signal } = await runChild([dir]);
      assert.equal(signal, 'SIGKILL');
      assert.ok(out.includes('ready') && !out.includes('done'), 'killed during the upload');
      const db = await openDatabase({ dataDir: dir });
      try {
        assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM cloud_records')).rows[0]!.n, 0);
        assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM cloud_patients')).rows[0]!.n, 1, 'what was committed before survives');
      } finally {
        await db.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('leaves no partial record (PostgreSQL)', { skip: !process.env['DATABASE_URL'] && 'DATABASE_URL is not set' }, async () => {
    const schema = `crash_${randomBytes(4).toString('hex')}`;
    const url = process.env['DATABASE_URL']!;
    const { out, signal } = await runChild([url, schema]);
    assert.equal(signal, 'SIGKILL');
    assert.ok(out.includes('ready') && !out.includes('done'), 'killed during the upload');
    const db = await openDatabase({ url, schema });
    try {
      assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM cloud_records')).rows[0]!.n, 0);
      assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM cloud_patients')).rows[0]!.n, 1);
    } finally {
      await db.query(`DROP SCHEMA ${schema} CASCADE`);
      await db.close();
    }
  });
});
