/**
 * The hospital as an OpenID Connect provider, completed by an independent client library (openid-client 6, on
 * oauth4webapi): discovery, authorization code + PKCE S256, the id_token checked against the JWKS, DPoP at the
 * token endpoint by openid-client's own DPoP implementation. Then the attacks: a wrong verifier, a replayed code
 * (which also revokes the first redemption's tokens), a redirect_uri that differs, plain PKCE, no PKCE, an
 * unknown client, a code of another client, a device key the proof does not name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import * as oidc from 'openid-client';
import { generateKeyPair } from 'jose';
import { base32Decode, createMemoryHospital, DeviceKeys, hospitalIdentityPlugin, oidcPlugin, s256Challenge, TokenVerifier, totp } from '../src/index.ts';
import { ADMIN_TOKEN, FAST_SCRYPT, postJson, SERVICES } from './harness.ts';

const CLIENT = 'test-app';
const REDIRECT = 'http://127.0.0.1:1/callback';

async function start() {
  const service = await createMemoryHospital({
    hospital: 'st-marys',
    issuer: 'urn:medshare:idp:st-marys',
    adminToken: ADMIN_TOKEN,
    audiences: SERVICES,
    scrypt: FAST_SCRYPT,
    relyingParty: { id: 'localhost', name: 'St Mary', origins: ['http://localhost'] },
    oidcClients: [
      { clientId: CLIENT, name: 'Test application', redirectUris: [REDIRECT], audiences: ['medshare-cloud'] },
      { clientId: 'other-app', name: 'Other', redirectUris: [REDIRECT], audiences: ['x'] },
    ],
    fhirServers: ['/gateway/fhir'],
  });
  const app = Fastify({ logger: false });
  await app.register(hospitalIdentityPlugin, { ...service, prefix: '/identity' });
  await app.register(oidcPlugin, {
    hospital: 'st-marys',
    provider: service.oidc,
    accounts: service.accounts,
    proofs: service.proofs,
    scopesSupported: ['openid', 'profile', 'user/*.rs'],
    prefix: '/identity',
  });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  return { service, app, address, issuer: `${address}/identity` };
}

const hidden = (html: string, name: string) => new RegExp(`name="${name}" value="([^"]+)"`).exec(html)?.[1];

test('OpenID Connect provider against openid-client, and its attacks', async (t) => {
  const { service, app, address, issuer } = await start();
  t.after(() => app.close());
  let users = 0;
  /** A fresh user (each login uses its own TOTP step). */
  const user = async () => {
    const username = `user${++users}`;
    const password = 'a long enough passphrase';
    const enrolment = await postJson(
      new URL('/identity/users', address),
      { username, password, attributes: ['role:doctor', 'dept:cardiology'], scopes: ['user/*.rs'] },
      ADMIN_TOKEN,
    );
    assert.equal(enrolment.status, 201);
    return { username, password, totpSecret: enrolment.body.totpSecret as string };
  };
  const config = await oidc.discovery(new URL(issuer), CLIENT, { id_token_signed_response_alg: 'EdDSA' }, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });

  /** The browser's part: open the authorization URL, sign in with password and TOTP, return where she is sent. */
  async function signIn(url: URL, account?: { username: string; password: string; totpSecret: string }): Promise<URL> {
    const who = account ?? (await user());
    const page = await fetch(url, { redirect: 'manual' });
    assert.equal(page.status, 200, await page.clone().text());
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    const request = hidden(await page.text(), 'request')!;
    const form = (fields: Record<string, string>) => ({
      method: 'POST',
      redirect: 'manual' as const,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
    const second = await fetch(new URL('/identity/oidc/login', address), form({ request, username: who.username, password: who.password }));
    assert.equal(second.status, 200);
    const ticket = hidden(await second.text(), 'ticket')!;
    const done = await fetch(
      new URL('/identity/oidc/login/totp', address),
      form({ request, ticket, code: totp(base32Decode(who.totpSecret), Date.now() / 1000) }),
    );
    assert.equal(done.status, 303);
    return new URL(done.headers.get('location')!);
  }
  const authorization = (extra: Record<string, string> = {}) => {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid profile user/*.rs',
      code_challenge: s256Challenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      aud: `${address}/gateway/fhir`,
      ...extra,
    });
    return { url, verifier, state, nonce };
  };
  const verifier = new TokenVerifier('medshare-cloud', service.trust);

  await t.test('discovery, code + PKCE, id_token and access token', async () => {
    assert.equal(config.serverMetadata().issuer, issuer);
    const smart = (await (await fetch(`${issuer}/.well-known/smart-configuration`)).json()) as {
      capabilities: string[];
      code_challenge_methods_supported: string[];
    };
    assert.deepEqual(smart.code_challenge_methods_supported, ['S256']);
    assert.ok(smart.capabilities.includes('launch-standalone'));
    const a = authorization();
    const back = await signIn(a.url);
    assert.equal(back.searchParams.get('iss'), issuer);
    const tokens = await oidc.authorizationCodeGrant(config, back, { pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce });
    const claims = tokens.claims()!;
    assert.equal(claims.iss, issuer);
    assert.equal(claims.aud, CLIENT);
    assert.deepEqual(claims['amr'], ['pwd', 'otp']);
    assert.equal(claims['preferred_username'], `user${users}`);
    assert.equal(tokens.token_type, 'bearer');
    assert.equal(tokens.scope, 'openid profile user/*.rs');
    const access = await verifier.verify(tokens.access_token);
    // The ID token tells the client (the user's own app) who she is; the access token names only her session.
    assert.notEqual(access.subject, claims.sub);
    assert.equal((await service.admin.trace(access.subject)).userId, claims.sub);
    assert.equal(access.clientId, CLIENT);
  });

  await t.test("DPoP at the token endpoint (openid-client's proofs): the access token is bound to its key", async () => {
    const a = authorization();
    const keyPair = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const tokens = await oidc.authorizationCodeGrant(
      config,
      await signIn(a.url),
      { pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce },
      undefined,
      { DPoP: oidc.getDPoPHandle(config, keyPair) },
    );
    assert.equal(tokens.token_type, 'dpop');
    assert.ok((await verifier.verify(tokens.access_token)).proofKeyThumbprint);
  });

  await t.test('a wrong code_verifier is refused, and the code is used up', async () => {
    const a = authorization();
    const back = await signIn(a.url);
    await assert.rejects(
      oidc.authorizationCodeGrant(config, back, { pkceCodeVerifier: oidc.randomPKCECodeVerifier(), expectedState: a.state, expectedNonce: a.nonce }),
      (e: any) => e.error === 'invalid_grant',
    );
    await assert.rejects(
      oidc.authorizationCodeGrant(config, back, { pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce }),
      (e: any) => e.error === 'invalid_grant',
    );
  });

  await t.test('a replayed code is refused and the tokens of its first redemption are revoked', async () => {
    const a = authorization();
    const back = await signIn(a.url);
    const checks = { pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce };
    const first = await oidc.authorizationCodeGrant(config, back, checks);
    await verifier.verify(first.access_token);
    await assert.rejects(oidc.authorizationCodeGrant(config, back, checks), (e: any) => e.error === 'invalid_grant');
    await assert.rejects(verifier.verify(first.access_token), /revoked|not active|session/i);
  });

  const tokenForm = (fields: Record<string, string>, dpop?: string) =>
    fetch(`${issuer}/oidc/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(dpop ? { dpop } : {}) },
      body: new URLSearchParams(fields).toString(),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { error?: string; access_token?: string } }));

  await t.test('a redirect_uri that differs: no redirect at the authorization endpoint, invalid_grant at the token endpoint', async () => {
    const elsewhere = authorization({ redirect_uri: 'http://127.0.0.1:1/callback/../evil' });
    const refused = await fetch(elsewhere.url, { redirect: 'manual' });
    assert.equal(refused.status, 400);
    assert.equal(refused.headers.get('location'), null);
    const a = authorization();
    const code = (await signIn(a.url)).searchParams.get('code')!;
    const answer = await tokenForm({
      grant_type: 'authorization_code',
      code,
      client_id: CLIENT,
      redirect_uri: 'http://127.0.0.1:1/other',
      code_verifier: a.verifier,
    });
    assert.deepEqual([answer.status, answer.body.error], [400, 'invalid_grant']);
  });

  await t.test('plain PKCE and no PKCE are refused with a redirect carrying the error', async () => {
    for (const extra of [
      { code_challenge_method: 'plain', code_challenge: 'x'.repeat(43) },
      { code_challenge_method: '', code_challenge: '' },
    ]) {
      const url = authorization(extra).url;
      if (extra.code_challenge === '') {
        url.searchParams.delete('code_challenge');
        url.searchParams.delete('code_challenge_method');
      }
      const answer = await fetch(url, { redirect: 'manual' });
      assert.equal(answer.status, 303);
      const location = new URL(answer.headers.get('location')!);
      assert.equal(location.origin + location.pathname, REDIRECT);
      assert.equal(location.searchParams.get('error'), 'invalid_request');
      assert.equal(location.searchParams.get('iss'), issuer);
    }
  });

  await t.test('an unknown client, a code of another client, an EHR launch, a foreign aud', async () => {
    assert.equal((await fetch(authorization({ client_id: 'nobody' }).url, { redirect: 'manual' })).status, 400);
    for (const extra of [{ launch: 'xyz' }, { aud: 'https://evil.example/fhir' }] as Record<string, string>[]) {
      const answer = await fetch(authorization(extra).url, { redirect: 'manual' });
      assert.equal(new URL(answer.headers.get('location')!).searchParams.get('error'), 'invalid_request');
    }
    const a = authorization();
    const code = (await signIn(a.url)).searchParams.get('code')!;
    const answer = await tokenForm({ grant_type: 'authorization_code', code, client_id: 'other-app', redirect_uri: REDIRECT, code_verifier: a.verifier });
    assert.deepEqual([answer.status, answer.body.error], [400, 'invalid_grant']);
  });

  await t.test('a device key the DPoP proof does not name, or without a proof, is refused; one it names is bound', async () => {
    const device = await DeviceKeys.generate();
    const stranger = await DeviceKeys.generate();
    const url = `${issuer}/oidc/token`;
    for (const [key, proof] of [
      [stranger.sealingPublicJwk, await device.dpop.proof('POST', url, { claims: { sealing_jkt: device.sealingThumbprint } })],
      [device.sealingPublicJwk, undefined],
    ] as const) {
      const a = authorization();
      const code = (await signIn(a.url)).searchParams.get('code')!;
      const answer = await tokenForm(
        { grant_type: 'authorization_code', code, client_id: CLIENT, redirect_uri: REDIRECT, code_verifier: a.verifier, device_key: JSON.stringify(key) },
        proof,
      );
      assert.equal(answer.status, 400);
      assert.ok(['invalid_dpop_proof', 'invalid_request'].includes(answer.body.error!));
    }
    const a = authorization();
    const code = (await signIn(a.url)).searchParams.get('code')!;
    const proof = await device.dpop.proof('POST', url, { claims: { sealing_jkt: device.sealingThumbprint } });
    const answer = await tokenForm(
      {
        grant_type: 'authorization_code',
        code,
        client_id: CLIENT,
        redirect_uri: REDIRECT,
        code_verifier: a.verifier,
        device_key: JSON.stringify(device.sealingPublicJwk),
      },
      proof,
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const token = await verifier.verify(answer.body.access_token!);
    assert.equal(token.proofKeyThumbprint, device.dpop.thumbprint);
  });
});
