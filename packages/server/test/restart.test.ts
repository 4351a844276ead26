/**
 * A platform stopped and started again on the same data (a PGlite data directory; the same PostgreSQL schema when
 * DATABASE_URL is set) keeps its hospitals' identity state: the user and her TOTP enrolment (a code already used
 * stays used), her session (a token issued before the restart still verifies at the cloud and can be refreshed),
 * a logged-out session stays revoked, a lockout stays, and the trusted authority still refuses a token it has
 * already issued a key for.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pre } from '@medshare/crypto';
import { openDatabase, randomKeyEncryptionKey, type Database } from '@medshare/db';
import { base32Decode, DeviceKeys, totp } from '@medshare/identity';
import { createPlatform, PatientClient, PLATFORM_AUDIENCE, TA_AUDIENCE, type Platform, type ServiceUrls } from '../src/index.ts';
import { ADMIN, FAST_SCRYPT, routeUrl } from './harness.ts';

const PASSWORD = 'a long enough passphrase';
const HOSPITAL = 'st-marys';
let offsetMs = 0;
/** The service's key-encryption key, kept across restarts as a KEK file or MEDSHARE_KEK would be. */
const kek = randomKeyEncryptionKey();
const now = () => Date.now() + offsetMs;

interface Target {
  label: string;
  skip: string | false;
  open(): Promise<Database>;
  cleanup(): Promise<void>;
}

const dataDir = await mkdtemp(join(tmpdir(), 'medshare-restart-'));
const url = process.env['DATABASE_URL'];
const schema = `restart_${randomBytes(4).toString('hex')}`;
const targets: Target[] = [
  { label: 'a PGlite data directory', skip: false, open: () => openDatabase({ dataDir }), cleanup: () => rm(dataDir, { recursive: true, force: true }) },
  {
    label: 'one PostgreSQL schema',
    skip: !url && 'DATABASE_URL is not set',
    open: () => openDatabase({ url: url!, schema }),
    cleanup: async () => {
      const db = await openDatabase({ url: url! });
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await db.close();
    },
  },
];

/** The platform on `db`, listening on 127.0.0.1. */
async function start(db: Database): Promise<{ platform: Platform; base: ServiceUrls }> {
  const platform = await createPlatform({
    db,
    hospitals: [HOSPITAL],
    adminTokens: { [HOSPITAL]: ADMIN },
    kek,
    scrypt: FAST_SCRYPT,
    limits: { accountFreeFailures: 2, baseDelaySeconds: 600 },
    now,
  });
  return { platform, base: platform.urls };
}

async function call(base: ServiceUrls, method: string, path: string, body?: unknown, token?: string, dpop?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token !== undefined) headers.authorization = `${dpop ? 'DPoP' : 'Bearer'} ${token}`;
  if (dpop !== undefined) headers.dpop = dpop;
  const response = await fetch(routeUrl(base, path, HOSPITAL), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** Password + TOTP at the platform's clock (on `device` when given); `code` defaults to the current one. */
async function login(base: ServiceUrls, username: string, secret: string, device?: DeviceKeys, code = totp(base32Decode(secret), now() / 1000)) {
  const first = await call(base, 'POST', `/identity/${HOSPITAL}/login/password`, { username, password: PASSWORD });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const path = `/identity/${HOSPITAL}/login/totp`;
  const body = { ticket: first.body.ticket, code, audience: [PLATFORM_AUDIENCE, TA_AUDIENCE], ...(device ? { deviceKey: device.sealingPublicJwk } : {}) };
  return {
    code,
    ...(await call(base, 'POST', path, body, undefined, device && (await device.loginProof(routeUrl(base, path, HOSPITAL), first.body.challenge)))),
  };
}

/** A refresh signed by `device`. */
async function refresh(base: ServiceUrls, device: DeviceKeys, refreshToken: string) {
  const path = `/identity/${HOSPITAL}/token`;
  return call(base, 'POST', path, { refreshToken, audience: [PLATFORM_AUDIENCE] }, undefined, await device.dpop.proof('POST', routeUrl(base, path, HOSPITAL)));
}

/** A key request signed by `device`. */
async function requestKey(base: ServiceUrls, device: DeviceKeys, token: string) {
  return call(
    base,
    'POST',
    '/ta/keys',
    { attributes: ['role:patient'], deviceKey: device.sealingPublicJwk },
    token,
    await device.dpop.proof('POST', routeUrl(base, '/ta/keys'), { accessToken: token }),
  );
}

for (const target of targets) {
  describe(`a platform restarted on ${target.label}`, { skip: target.skip }, () => {
    test("keeps users, TOTP enrolments, sessions, signing keys, revocations, lockouts and the TA's used tokens", async () => {
      try {
        // First life.
        let db = await target.open();
        let { platform, base } = await start(db);
        const enrolment = await call(
          base,
          'POST',
          `/identity/${HOSPITAL}/users`,
          { username: 'antonia', password: PASSWORD, attributes: ['role:patient'], scopes: ['patient/*.rs'] },
          ADMIN,
        );
        assert.equal(enrolment.status, 201);
        const secret: string = enrolment.body.totpSecret;
        const device = await DeviceKeys.generate(now);
        const kept = await login(base, 'antonia', secret, device);
        assert.equal(kept.status, 200);
        assert.equal((await requestKey(base, device, kept.body.token)).status, 200);
        const key = pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, ['lab']);
        const session = { urls: base, hospital: HOSPITAL, token: kept.body.token, refreshToken: kept.body.refreshToken, device };
        await new PatientClient(session, key).register();
        const recordsPath = `/cloud/patients/${key.patientId}/records`;
        const usedProof = await device.dpop.proof('GET', routeUrl(base, recordsPath, HOSPITAL), { accessToken: kept.body.token });
        assert.equal((await call(base, 'GET', recordsPath, undefined, kept.body.token, usedProof)).status, 200);
        offsetMs += 30_000;
        const revoked = await login(base, 'antonia', secret, device);
        assert.equal(revoked.status, 200);
        assert.equal((await call(base, 'POST', `/identity/${HOSPITAL}/logout`, undefined, revoked.body.token)).status, 204);
        for (let i = 0; i < 3; i++)
          assert.equal((await call(base, 'POST', `/identity/${HOSPITAL}/login/password`, { username: 'ghost', password: 'wrong passphrase!!' })).status, 401);
        const jwks = (await call(base, 'GET', `/identity/${HOSPITAL}/.well-known/jwks.json`)).body;
        await platform.close();
        await db.close();

        // Second life, on the same data.
        db = await target.open();
        ({ platform, base } = await start(db));
        try {
          assert.deepEqual((await call(base, 'GET', `/identity/${HOSPITAL}/.well-known/jwks.json`)).body, jwks, 'the same signing key');
          const refreshed = await refresh(base, device, kept.body.refreshToken);
          assert.equal(refreshed.status, 200, 'a session from before the restart refreshes');
          assert.equal(refreshed.body.sessionId, kept.body.sessionId);
          assert.deepEqual(await new PatientClient({ ...session, urls: base }, key).records(), [], 'the cloud accepts its token');
          const revokedProof = await device.dpop.proof('GET', routeUrl(base, recordsPath, HOSPITAL), { accessToken: revoked.body.token });
          assert.equal((await call(base, 'GET', recordsPath, undefined, revoked.body.token, revokedProof)).status, 401, 'the logged-out session stays revoked');
          assert.equal((await refresh(base, device, revoked.body.refreshToken)).status, 401);
          const ta = await requestKey(base, device, kept.body.token);
          assert.equal(ta.status, 403);
          assert.match(ta.body.detail, /already been used/);
          assert.equal((await login(base, 'antonia', secret, undefined, revoked.code)).status, 401, 'a TOTP step used before the restart stays used');
          offsetMs += 30_000;
          assert.equal((await login(base, 'antonia', secret)).status, 200, 'her enrolment still logs her in');
          assert.equal(
            (await call(base, 'POST', `/identity/${HOSPITAL}/login/password`, { username: 'ghost', password: 'wrong passphrase!!' })).status,
            429,
            'still locked',
          );
        } finally {
          await platform.close();
          await db.close();
        }
      } finally {
        await target.cleanup();
      }
    });
  });
}
