/**
 * PostgreSQL restarted under load. The platform runs on a private PostgreSQL cluster made for this test (so that
 * restarting it disturbs no other client of the machine's server), while gateways upload continuously; the
 * cluster is stopped for a few seconds and started again. The process survives (no unhandled 'error' event from
 * the pool), requests during the outage are 503 problem+json with Retry-After, service resumes by itself within
 * seconds, and every upload that was acknowledged is in the database afterwards. Runs where DATABASE_URL is set
 * (CI installs Debian's PostgreSQL, whose pg_createcluster/pg_ctlcluster this uses).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { existsSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MedShareError } from '@medshare/crypto';
import { openDatabase } from '@medshare/db';
import { sessionFetch, startCast } from './harness.ts';

const tools = existsSync('/usr/bin/pg_createcluster') && existsSync('/usr/lib/postgresql');
const skip = !process.env['DATABASE_URL'] ? 'DATABASE_URL is not set' : !tools ? 'pg_createcluster is not installed' : false;

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

test('PostgreSQL restarted under load: 503 while it is down, back by itself, nothing acknowledged lost', { skip }, async () => {
  const version = readdirSync('/usr/lib/postgresql')
    .sort((a, b) => Number(a) - Number(b))
    .at(-1)!;
  const cluster = `medshare_${randomBytes(4).toString('hex')}`;
  const port = await freePort();
  const ctl = (action: string) => execFileSync('pg_ctlcluster', [version, cluster, action], { stdio: 'ignore' });
  execFileSync('pg_createcluster', [version, cluster, '-p', String(port), '--', '--auth-host=trust', '--auth-local=trust'], { stdio: 'ignore' });
  try {
    ctl('start');
    const db = await openDatabase({ url: `postgres://postgres@127.0.0.1:${port}/postgres` });
    const cast = await startCast(db);
    try {
      await cast.patient.register();
      const fhirPatient = `restart-${randomBytes(4).toString('hex')}`;
      await cast.gateway.enrol(fhirPatient, cast.patient.key.patientId);
      // Each acknowledged upload and its value: a retry with the same content must store nothing.
      const acknowledged = new Map<string, number>();
      let n = 0;
      let running = true;
      const uploader = async () => {
        while (running) {
          const value = n++;
          const id = `obs-${value}`;
          try {
            await cast.gateway.upload({
              resourceType: 'Observation',
              id,
              status: 'final',
              code: { text: 'heart rate' },
              subject: { reference: `Patient/${fhirPatient}` },
              valueQuantity: { value },
            });
            acknowledged.set(id, value);
          } catch (error) {
            // The SDK retries an upload over a short outage; a longer one surfaces as a typed outage, nothing else.
            assert.ok(error instanceof MedShareError && error.code === 'UNAVAILABLE', `a typed outage, not ${String(error)}`);
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
      };
      const load = Promise.all([uploader(), uploader(), uploader()]);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      ctl('stop');
      try {
        // While it is down: a 503 problem with Retry-After, answered promptly.
        const answer = await sessionFetch(cast.patient.session, cast.urlFor(`/cloud/patients/${cast.patient.key.patientId}/records`));
        assert.equal(answer.status, 503);
        assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
        assert.ok(Number(answer.headers.get('retry-after')) > 0);
        await new Promise((resolve) => setTimeout(resolve, 3000));
      } finally {
        ctl('start');
      }
      const back = Date.now();
      for (;;) {
        const answer = await sessionFetch(cast.patient.session, cast.urlFor(`/cloud/patients/${cast.patient.key.patientId}/records`));
        if (answer.status === 200) break;
        assert.ok(Date.now() - back < 20_000, `service resumes by itself (still ${answer.status})`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
      running = false;
      await load;
      assert.ok(acknowledged.size > 0);
      // Every acknowledged upload is stored (its record id is a hash of hospital, pseudonym and FHIR id).
      const stored = await cast.patient.records();
      assert.ok(stored.length >= acknowledged.size, `${stored.length} stored, ${acknowledged.size} acknowledged`);
      const retry = await Promise.all(
        [...acknowledged].map(([id, value]) =>
          cast.gateway.upload({
            resourceType: 'Observation',
            id,
            status: 'final',
            code: { text: 'heart rate' },
            subject: { reference: `Patient/${fhirPatient}` },
            valueQuantity: { value },
          }),
        ),
      );
      assert.equal(
        retry.reduce((sum, r) => sum + r.stored, 0),
        0,
        'no acknowledged record was missing',
      );
    } finally {
      await cast.platform.close();
      await db.close();
    }
  } finally {
    spawnSync('pg_dropcluster', ['--stop', version, cluster], { stdio: 'ignore' });
  }
});
