import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PatientClient, PlatformClient, type ServiceUrls } from '@medshare/server';
import { pre } from '@medshare/crypto';
import { runCli } from './run-cli.ts';

const BIN = fileURLToPath(new URL('../bin/medshare.js', import.meta.url));
const ADMIN = 'serve-test-admin-token-0123456789';

test('medshare serve (all) runs every service on its own port and PGlite, keeps data across restarts, and stops on SIGTERM', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'medshare-serve-'));
  const env = { ...process.env, DATABASE_URL: '' };
  const running = new Set<ReturnType<typeof spawn>>();
  const start = () =>
    new Promise<{ stop: () => Promise<number | null>; urls: ServiceUrls }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [BIN, 'serve', '--data', join(dir, 'data'), '--state', join(dir, 'state'), '--port', '0', '--hospital', 'st-marys'],
        { env, stdio: ['pipe', 'pipe', 'pipe'] },
      );
      running.add(child);
      child.once('close', () => running.delete(child));
      let out = '';
      let err = '';
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const url = (service: string) => new URL(new RegExp(`^${service} (http://127\\.0\\.0\\.1:\\d+/) \\((.+)\\)$`, 'm').exec(out)![1]!);
        if (/^st-marys http/m.test(out)) {
          const urls = { authority: url('authority'), cloud: url('cloud'), hospitals: { 'st-marys': url('st-marys') } };
          assert.equal(new Set([urls.authority.port, urls.cloud.port, urls.hospitals['st-marys'].port]).size, 3, 'one port per service');
          assert.match(out, /^cloud .*\(PGlite in .*data\/cloud\/db\)$/m, 'its own database');
          resolve({
            urls,
            stop: () =>
              new Promise((done) => {
                child.once('close', done);
                child.kill('SIGTERM');
              }),
          });
        }
      });
      child.once('close', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
      child.stdin.end(`${ADMIN}\n`);
    });
  try {
    const first = await start();
    const client = new PlatformClient(first.urls);
    const openapi = (await (await fetch(new URL('/openapi.json', first.urls.cloud))).json()) as { openapi: string; paths: Record<string, unknown> };
    assert.match(openapi.openapi, /^3\./);
    assert.ok('/cloud/patients/{patient}/read' in openapi.paths);
    const { totpSecret } = await client.registerUser('st-marys', ADMIN, {
      username: 'p',
      password: 'a long enough passphrase',
      attributes: ['role:patient'],
      scopes: [],
    });
    const patient = new PatientClient(
      await client.login('st-marys', 'p', 'a long enough passphrase', totpSecret),
      pre.generatePatientKey('psn:serve-test-patient-0001'),
    );
    await patient.register();
    const authority = (await client.abePublicKey()).authorityId;
    assert.equal(await first.stop(), 0);
    const second = await start();
    assert.deepEqual((await new PlatformClient(second.urls).abePublicKey()).authorityId, authority, 'the TA setup persists');
    assert.equal(await second.stop(), 0);
  } finally {
    for (const child of running) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

test('medshare serve refuses a malformed emergency policy with one line, before starting anything', async () => {
  const r = await runCli(['serve', '--port', '0', '--emergency-policy', 'role:emergency and ('], { stdin: `${ADMIN}\n` });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^medshare: .*position \d+.*\n$/);
});

test('medshare serve refuses an origin outside its relying-party id, and one administrator token for two hospitals', async () => {
  const outside = await runCli(['serve', '--port', '0', '--hospital', 'st-marys', '--rp-id', 'a.example', '--origin', 'https://b.example'], {
    stdin: `${ADMIN}\n`,
  });
  assert.equal(outside.code, 2);
  assert.match(outside.stderr, /^medshare: origin https:\/\/b\.example is not within relying-party id a\.example\n$/);
  const shared = await runCli(['serve', '--port', '0', '--hospital', 'st-marys', 'riverside'], { stdin: `${ADMIN}\n${ADMIN}\n` });
  assert.equal(shared.code, 2);
  assert.match(shared.stderr, /^medshare: each hospital needs its own administrator token\n$/);
});
