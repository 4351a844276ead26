/**
 * Every service over HTTPS with a self-signed certificate for 127.0.0.1 (made here with openssl): the URLs between
 * services are https, the hospital's gateway reaches the cloud over TLS, the cloud fetches the hospital's JWKS and
 * checks sessions over TLS, and a plain-HTTP request to a TLS port gets no answer.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { base32Decode, DeviceKeys, totp } from '@medshare/identity';
import { PLATFORM_AUDIENCE } from '../src/index.ts';

const CHILD = fileURLToPath(new URL('./fixtures/tls-child.ts', import.meta.url));
const ADMIN = 'tls-test-admin-token-0123456789';
const PASSWORD = 'a long enough passphrase';
const openssl = spawnSync('openssl', ['version']).status === 0;

test('services over HTTPS with a self-signed certificate on 127.0.0.1', { skip: !openssl && 'openssl is not installed' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'medshare-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  const ca = await readFile(cert);
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, cert, key, ADMIN], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: cert },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  try {
    const urls = await new Promise<{ authority: string; cloud: string; hospital: string }>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!));
      });
      child.once('exit', (code) => reject(new Error(`child exited ${code}: ${err}`)));
    });
    for (const url of Object.values(urls)) assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
    /** `as`: a token and the device key it is bound to (a DPoP proof is made), else `token` goes as a bearer token (the admin's). */
    const call = async (base: string, method: string, path: string, body?: unknown, token?: string, as?: { device: DeviceKeys; dpop?: string }) => {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (token !== undefined) headers.authorization = `${as ? 'DPoP' : 'Bearer'} ${token}`;
      if (as) headers.dpop = as.dpop ?? (await as.device.dpop.proof(method, new URL(path, base), token === undefined ? {} : { accessToken: token }));
      return new Promise<{ status: number; body: any }>((resolve, reject) => {
        const req = httpsRequest(new URL(path, base), { method, headers, ca }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
        });
        req.on('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });
    };
    assert.equal((await call(urls.authority, 'GET', '/ta/public-key')).status, 200);
    /** A login on a fresh device key, which signs the login challenge (the token is bound to it). */
    const user = async (username: string, attributes: string[]) => {
      const { totpSecret } = (await call(urls.hospital, 'POST', '/identity/st-marys/users', { username, password: PASSWORD, attributes, scopes: [] }, ADMIN))
        .body;
      const { ticket, challenge } = (await call(urls.hospital, 'POST', '/identity/st-marys/login/password', { username, password: PASSWORD })).body;
      const code = totp(base32Decode(totpSecret), Date.now() / 1000);
      const device = await DeviceKeys.generate();
      const path = '/identity/st-marys/login/totp';
      const dpop = await device.loginProof(new URL(path, urls.hospital), challenge);
      const token = (await call(urls.hospital, 'POST', path, { ticket, code, audience: [PLATFORM_AUDIENCE] }, undefined, { device, dpop })).body
        .token as string;
      return { token, device };
    };
    const gateway = await user('ehr', ['role:gateway']);
    // The gateway asks the cloud (https) for the patient's keys; the cloud verifies the token at the hospital (https).
    const enrol = await call(urls.hospital, 'POST', '/gateway/patients', { fhirId: 'p1', patient: 'psn:tls-test-patient-000001' }, gateway.token, gateway);
    assert.equal(enrol.status, 404, JSON.stringify(enrol.body));
    assert.match(enrol.body.detail, /no such patient/);
    const patient = await user('antonia', ['role:patient']);
    assert.equal(
      (await call(urls.cloud, 'GET', '/cloud/patients/psn:tls-test-patient-000001/access-log', undefined, patient.token, patient)).status,
      403,
      'the cloud verified the token over TLS',
    );
    // Plain HTTP to a TLS port: no HTTP answer.
    const plain = await new Promise<string>((resolve) => {
      const req = httpRequest(new URL('/ta/public-key', urls.authority.replace('https:', 'http:')), (res) => resolve(`status ${res.statusCode}`));
      req.on('error', (error) => resolve(error.message));
      req.end();
    });
    assert.doesNotMatch(plain, /status 200/);
  } finally {
    child.stdin.end();
    await new Promise((resolve) => {
      child.once('exit', resolve);
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    });
    await rm(dir, { recursive: true, force: true });
  }
});
