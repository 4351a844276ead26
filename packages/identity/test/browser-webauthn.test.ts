/**
 * WebAuthn end to end in a real browser: Debian's Chromium driven by playwright-core, with the DevTools virtual
 * authenticator (CDP WebAuthn.addVirtualAuthenticator: CTAP2, resident keys, user verification). The page is served
 * from 127.0.0.1 under the configured relying party (id `localhost`, origin `http://localhost:<port>`, which the
 * browser resolves to 127.0.0.1). Registration (after a step-up), login with a passkey (WebAuthn as the first and
 * second factor) and with password + WebAuthn are accepted; a registration ceremony for a service configured with
 * another origin, and a replayed assertion, are refused.
 *
 * Skipped, saying so, only when /usr/bin/chromium is absent outside CI (`scripts/install-chromium.sh` installs it);
 * in CI its absence fails.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { base32Decode, createMemoryHospital, DeviceKeys, hospitalIdentityPlugin, totp } from '../src/index.ts';
import { ADMIN_TOKEN, DOCTOR, FAST_SCRYPT, postJson, SERVICES } from './harness.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = !existsSync(CHROMIUM) && !process.env['CI'] ? `${CHROMIUM} is not installed (bash scripts/install-chromium.sh installs it)` : false;

/** A free port on 127.0.0.1 (the relying party's origin must be known before the service is built). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test(
  'WebAuthn in Chromium: register, passkey login, password + WebAuthn login; another origin and a replayed assertion are refused',
  { skip, timeout: 120_000 },
  async () => {
    const port = await freePort();
    const origin = `http://localhost:${port}`;
    const hospital = (prefix: string, origins: string[]) =>
      createMemoryHospital({
        hospital: `hospital-${prefix}`,
        issuer: `${origin}/${prefix}`,
        adminToken: ADMIN_TOKEN,
        audiences: SERVICES,
        scrypt: FAST_SCRYPT,
        relyingParty: { id: 'localhost', name: `MedShare ${prefix}`, origins },
      });
    const right = await hospital('right', [origin]);
    const wrong = await hospital('wrong', ['http://localhost:1']);
    const app = Fastify({ logger: false });
    app.get('/', async (_request, reply) => reply.type('text/html').send('<!doctype html><title>MedShare WebAuthn test</title>'));
    await app.register(hospitalIdentityPlugin, { ...right, prefix: '/right' });
    await app.register(hospitalIdentityPlugin, { ...wrong, prefix: '/wrong' });
    await app.listen({ host: '127.0.0.1', port });
    const userDataDir = await mkdtemp(join(tmpdir(), 'medshare-chromium-'));
    let context: BrowserContext | undefined;
    try {
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--no-first-run',
        ],
      });
      const page = context.pages()[0] ?? (await context.newPage());
      await page.goto(`${origin}/`);
      const cdp = await context.newCDPSession(page);
      await cdp.send('WebAuthn.enable');
      await cdp.send('WebAuthn.addVirtualAuthenticator', {
        options: {
          protocol: 'ctap2',
          transport: 'internal',
          hasResidentKey: true,
          hasUserVerification: true,
          isUserVerified: true,
          automaticPresenceSimulation: true,
        },
      });
      const url = (prefix: string, path: string) => new URL(`/${prefix}/${path}`, origin.replace('localhost', '127.0.0.1'));
      const call = (prefix: string, path: string, body?: unknown, token?: string, dpop?: string) => postJson(url(prefix, path), body, token, dpop);

      /** A TOTP login on a device at `prefix`, for its own audience too (enrolment is a step-up). */
      async function enrolAndLogin(prefix: string) {
        const enrolment = await call(prefix, 'users', DOCTOR, ADMIN_TOKEN);
        assert.equal(enrolment.status, 201);
        const device = await DeviceKeys.generate();
        const first = await call(prefix, 'login/password', { username: DOCTOR.username, password: DOCTOR.password });
        const code = totp(base32Decode(enrolment.body.totpSecret), Date.now() / 1000);
        const body = { ticket: first.body.ticket, code, audience: ['medshare-cloud', `${origin}/${prefix}`], deviceKey: device.sealingPublicJwk };
        const login = await call(prefix, 'login/totp', body, undefined, await device.loginProof(url(prefix, 'login/totp'), first.body.challenge));
        assert.equal(login.status, 200, JSON.stringify(login.body));
        const stepUp = async (path: string, payload?: unknown) =>
          call(prefix, path, payload, login.body.token, await device.dpop.proof('POST', url(prefix, path), { accessToken: login.body.token }));
        return { device, stepUp };
      }
      // The page's own WebAuthn JSON API (expressions as text: this project type-checks without the DOM library).
      const create = (p: Page, options: unknown) =>
        p.evaluate(
          `navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(${JSON.stringify(options)}) }).then((c) => c.toJSON())`,
        );
      const get = (p: Page, options: unknown) =>
        p.evaluate(
          `navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(${JSON.stringify(options)}) }).then((c) => c.toJSON())`,
        );

      // Registration, after a step-up.
      const { stepUp } = await enrolAndLogin('right');
      const creation = await stepUp('webauthn/register/options');
      assert.equal(creation.status, 200);
      const registered = await stepUp('webauthn/register', { response: await create(page, creation.body) });
      assert.equal(registered.status, 200, JSON.stringify(registered.body));

      // Passkey login: no password; the device's DPoP key signs the challenge as at any login.
      const device = await DeviceKeys.generate();
      const start = await call('right', 'login/passkey/options');
      const assertion = await get(page, start.body.options);
      const passkeyBody = (ticket: string, response: unknown) => ({ ticket, response, audience: ['medshare-cloud'], deviceKey: device.sealingPublicJwk });
      const proof = async (challenge: string) => device.loginProof(url('right', 'login/passkey'), challenge);
      const passkey = await call('right', 'login/passkey', passkeyBody(start.body.ticket, assertion), undefined, await proof(start.body.challenge));
      assert.equal(passkey.status, 200, JSON.stringify(passkey.body));
      assert.equal(passkey.body.factor, 'passkey');
      const { payload } = await jwtVerify(passkey.body.token, createRemoteJWKSet(url('right', '.well-known/jwks.json')), {
        issuer: `${origin}/right`,
        audience: 'medshare-cloud',
      });
      assert.deepEqual(payload.amr, ['hwk', 'user']);

      // The same assertion again: with its ticket (used up), and with a fresh ticket (another challenge).
      assert.equal((await call('right', 'login/passkey', passkeyBody(start.body.ticket, assertion), undefined, await proof(start.body.challenge))).status, 401);
      const again = await call('right', 'login/passkey/options');
      const replayed = await call('right', 'login/passkey', passkeyBody(again.body.ticket, assertion), undefined, await proof(again.body.challenge));
      assert.equal(replayed.status, 401, 'a replayed assertion');

      // Password + WebAuthn as the second factor.
      const first = await call('right', 'login/password', { username: DOCTOR.username, password: DOCTOR.password });
      assert.ok(first.body.factors.includes('webauthn'));
      const options = await call('right', 'login/webauthn/options', { ticket: first.body.ticket });
      const second = await call('right', 'login/webauthn', {
        ticket: first.body.ticket,
        response: await get(page, options.body),
        audience: ['medshare-cloud'],
      });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      assert.equal(second.body.factor, 'webauthn');

      // A service configured for another origin refuses what this page's authenticator signs for this origin.
      const other = await enrolAndLogin('wrong');
      const wrongCreation = await other.stepUp('webauthn/register/options');
      const refused = await other.stepUp('webauthn/register', { response: await create(page, wrongCreation.body) });
      assert.equal(refused.status, 401);
      assert.equal(refused.body.detail, 'WebAuthn registration could not be verified');
    } finally {
      await context?.close();
      await app.close();
      await rm(userDataDir, { recursive: true, force: true });
    }
  },
);
