/**
 * The attacks of issue 12, each over HTTP against a hospital identity service and a trusted authority, as an
 * attacker would try them: a stolen token turned into a key, a token alone changing factors, an attacker locking a
 * doctor out, one hospital's administrator acting at another, a disabled doctor keeping access.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { abe } from '@medshare/crypto';
import { base32Decode, DeviceKeys, DpopKey, DpopVerifier, MemoryNonceCache, totp } from '../src/index.ts';
import { ADMIN_TOKEN, DOCTOR, deviceLogin, postJson, register, startAuthority, startHospital, TestClock, type RunningHospital } from './harness.ts';

const clock = new TestClock();
let a: RunningHospital;
let b: RunningHospital;
let secret: Uint8Array;
let taApp: FastifyInstance;
let taUrl: URL;
const OTHER_ADMIN = 'admin-token-of-hospital-b-987654321';

before(async () => {
  await abe.init();
  a = await startHospital('hospital-a', clock);
  b = await startHospital('hospital-b', clock, {}, undefined, OTHER_ADMIN);
  secret = base32Decode((await register(a)).totpSecret);
  const ta = await startAuthority(a, clock);
  taApp = ta.app;
  taUrl = new URL('/ta/keys', ta.base);
});
after(async () => {
  await a.close();
  await b.close();
  await taApp.close();
});

const code = () => totp(secret, clock.now() / 1000);

/** The victim's login on her device (a fresh TOTP step each time). */
async function victimLogin(audience = ['medshare-cloud', 'medshare-ta', a.issuer]) {
  clock.advance(30);
  const device = await DeviceKeys.generate(clock.now);
  const result = await deviceLogin(a, device, code, { audience });
  assert.equal(result.status, 200, JSON.stringify(result.body));
  return { device, ...(result.body as { token: string; refreshToken: string; sessionId: string }) };
}

test("a stolen platform token cannot be re-issued for the TA and a thief's device key, nor used at /ta/keys", async () => {
  const victim = await victimLogin(['medshare-cloud']);
  const thief = await DeviceKeys.generate(clock.now);
  // The exact attack of the issue: the token at /token, asking for the TA audience and the thief's device key.
  const reissue = await a.post('token', { audience: ['medshare-ta'], deviceKey: thief.sealingPublicJwk }, victim.token);
  assert.equal(reissue.status, 400, 'an access token is not a refresh credential');
  const asRefresh = await a.post('token', { refreshToken: victim.token, audience: ['medshare-ta'] }, undefined, await thief.dpop.proof('POST', a.url('token')));
  assert.ok(asRefresh.status === 400 || asRefresh.status === 401, `an access token as refresh credential: ${asRefresh.status}`);
  // The victim's refresh credential too, stolen with the token: it needs a proof by the victim's device key.
  const stolenRefresh = await a.post('token', { refreshToken: victim.refreshToken }, undefined, await thief.dpop.proof('POST', a.url('token')));
  assert.equal(stolenRefresh.status, 401);
  assert.match(stolenRefresh.body.detail, /device key of the login/);
  // A token for the TA, stolen: without the device's DPoP key nothing is delivered, to the thief's key or the victim's.
  const taVictim = await victimLogin(['medshare-ta']);
  const body = { attributes: ['role:doctor'], deviceKey: thief.sealingPublicJwk };
  assert.equal((await postJson(taUrl, body, taVictim.token)).status, 403, 'a bearer token alone');
  const byThief = await postJson(taUrl, body, taVictim.token, await thief.dpop.proof('POST', taUrl, { accessToken: taVictim.token }));
  assert.equal(byThief.status, 403);
  assert.match(byThief.body.detail, /another key than the token is bound to/);
  const ownKey = { attributes: ['role:doctor'], deviceKey: taVictim.device.sealingPublicJwk };
  assert.equal((await postJson(taUrl, ownKey, taVictim.token, await thief.dpop.proof('POST', taUrl, { accessToken: taVictim.token }))).status, 403);
  // Even the victim's device cannot have the key sealed to another X25519 key than the one its login named.
  const resealed = await postJson(taUrl, body, taVictim.token, await taVictim.device.dpop.proof('POST', taUrl, { accessToken: taVictim.token }));
  assert.match(resealed.body.detail, /different device key/);
  // The victim's own device gets her key.
  assert.equal((await postJson(taUrl, ownKey, taVictim.token, await taVictim.device.dpop.proof('POST', taUrl, { accessToken: taVictim.token }))).status, 200);
});

test('a replayed or misdirected DPoP proof is refused', async () => {
  const victim = await victimLogin(['medshare-ta']);
  const body = { attributes: ['role:doctor'], deviceKey: victim.device.sealingPublicJwk };
  const otherUrl = new URL('/ta/other', taUrl);
  assert.match(
    (await postJson(taUrl, body, victim.token, await victim.device.dpop.proof('POST', otherUrl, { accessToken: victim.token }))).body.detail,
    /another request/,
  );
  const other = await victimLogin(['medshare-ta']);
  assert.match(
    (await postJson(taUrl, body, victim.token, await victim.device.dpop.proof('POST', taUrl, { accessToken: other.token }))).body.detail,
    /another access token/,
  );
  const proof = await victim.device.dpop.proof('POST', taUrl, { accessToken: victim.token });
  assert.equal((await postJson(taUrl, body, victim.token, proof)).status, 200);
  assert.match((await postJson(taUrl, body, victim.token, proof)).body.detail, /already been used/);
});

test('a login names only registered audiences and clients; the issuer is not an implicit audience', async () => {
  const { token } = await victimLogin(['medshare-cloud']);
  const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { aud: string[]; client_id: string; auth_time: number; acr: string };
  assert.deepEqual(payload.aud, ['medshare-cloud']);
  assert.equal(payload.client_id, 'medshare-app');
  assert.equal(typeof payload.auth_time, 'number');
  clock.advance(30);
  const unregistered = await deviceLogin(a, await DeviceKeys.generate(clock.now), code, { audience: ['https://attacker.example'] });
  assert.equal(unregistered.status, 401);
  assert.match(unregistered.body.detail, /not registered/);
  // Not for the hospital's own audience: its account endpoints refuse it.
  assert.equal((await a.post('recovery-codes', undefined, token)).status, 401);
});

test('an independent verifier (jose createRemoteJWKSet + jwtVerify) accepts the tokens', async () => {
  const { token } = await victimLogin(['medshare-cloud']);
  const jwks = createRemoteJWKSet(a.url('.well-known/jwks.json'));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer: a.issuer,
    audience: 'medshare-cloud',
    algorithms: ['EdDSA'],
    typ: 'at+jwt',
    currentDate: new Date(clock.now()),
    requiredClaims: ['sub', 'client_id', 'iat', 'exp', 'jti', 'auth_time'],
  });
  assert.equal(protectedHeader.alg, 'EdDSA');
  assert.equal(payload.iss, a.issuer);
  await assert.rejects(jwtVerify(token, jwks, { issuer: a.issuer, audience: a.issuer, currentDate: new Date(clock.now()) }), /aud/);
});

test('a token alone cannot change a factor; step-up needs a fresh login and a proof by its device key', async () => {
  const victim = await victimLogin();
  const stepUp = async (path: string, body?: unknown, signer = victim.device, token = victim.token) =>
    a.post(path, body, token, await signer.dpop.proof('POST', a.url(path), { accessToken: token }));
  for (const [path, body] of [
    ['recovery-codes'],
    ['webauthn/register/options'],
    ['totp/reset'],
    ['password', { password: 'another long passphrase' }],
  ] as const) {
    assert.equal((await a.post(path, body, victim.token)).status, 401, `${path}: a bearer token alone`);
    assert.equal((await stepUp(path, body, await DeviceKeys.generate(clock.now))).status, 401, `${path}: a proof by another key`);
  }
  assert.equal((await stepUp('recovery-codes')).status, 200, 'a login of a minute ago, with a proof by its key');
  clock.advance(6 * 60);
  // A refreshed token is fresh, but its login (auth_time) is six minutes old.
  const refreshed = await a.post('token', { refreshToken: victim.refreshToken }, undefined, await victim.device.dpop.proof('POST', a.url('token')));
  assert.equal(refreshed.status, 200);
  const stale = await stepUp('recovery-codes', undefined, victim.device, refreshed.body.token);
  assert.equal(stale.status, 401, 'a login six minutes old');
  assert.match(stale.body.detail, /within the last 5 minutes/);
  const fresh = await victimLogin();
  const reset = await a.post('totp/reset', undefined, fresh.token, await fresh.device.dpop.proof('POST', a.url('totp/reset'), { accessToken: fresh.token }));
  assert.equal(reset.status, 200);
  secret = base32Decode(reset.body.totpSecret);
  await victimLogin();
});

test('an attacker failing from her address does not lock the doctor out; Retry-After concerns her own address, in whole minutes', async () => {
  const attacker = '203.0.113.9';
  let limited: { status: number; headers: Headers } | undefined;
  for (let i = 0; i < 12 && !limited; i++) {
    const answer = await a.post('login/password', { username: DOCTOR.username, password: `wrong guess number ${i}` }, undefined, undefined, attacker);
    if (answer.status === 429) limited = answer;
    else assert.equal(answer.status, 401);
  }
  assert.ok(limited, 'the attacker is slowed down');
  assert.equal(Number(limited.headers.get('retry-after')) % 60, 0);
  // The attacker is slowed down even with the right password: her address must wait.
  assert.equal((await a.post('login/password', { username: DOCTOR.username, password: DOCTOR.password }, undefined, undefined, attacker)).status, 429);
  // The doctor, from her own address, gets in at once (a correct password and second factor).
  clock.advance(30);
  const first = await a.post('login/password', { username: DOCTOR.username, password: DOCTOR.password }, undefined, undefined, '198.51.100.7');
  assert.equal(first.status, 200);
  assert.equal(
    (await a.post('login/totp', { ticket: first.body.ticket, code: code(), audience: ['medshare-cloud'] }, undefined, undefined, '198.51.100.7')).status,
    200,
  );
  // Failing on, the attacker waits longer each time, until the administrator unlocks the account.
  assert.equal((await a.post('login/password', { username: DOCTOR.username, password: 'one more wrong guess' }, undefined, undefined, attacker)).status, 401);
  assert.equal((await a.post('login/password', { username: DOCTOR.username, password: DOCTOR.password }, undefined, undefined, attacker)).status, 429);
  assert.equal((await a.post(`admin/users/${DOCTOR.username}/unlock`, undefined, ADMIN_TOKEN)).status, 200);
  assert.equal((await a.post('login/password', { username: DOCTOR.username, password: DOCTOR.password }, undefined, undefined, attacker)).status, 200);
});

test("one hospital's administrator cannot act at another hospital", async () => {
  const forged = await b.post('users', { ...DOCTOR, username: 'eve', attributes: ['role:doctor', 'level=5'] }, ADMIN_TOKEN);
  assert.equal(forged.status, 401);
  assert.equal((await b.post(`admin/users/${DOCTOR.username}/disable`, undefined, ADMIN_TOKEN)).status, 401);
  assert.equal((await a.post(`admin/users/${DOCTOR.username}/disable`, undefined, OTHER_ADMIN)).status, 401);
  assert.equal((await b.post('users', { ...DOCTOR, username: 'eve' }, OTHER_ADMIN)).status, 201, 'its own administrator can');
});

test('a disabled doctor loses every session at once, gets no key, cannot log in or refresh; enabled, she can', async () => {
  const victim = await victimLogin();
  const body = { attributes: ['role:doctor'], deviceKey: victim.device.sealingPublicJwk };
  const disabled = await a.post(`admin/users/${DOCTOR.username}/disable`, undefined, ADMIN_TOKEN);
  assert.equal(disabled.status, 200);
  assert.ok(disabled.body.revokedSessions >= 1);
  const key = await postJson(taUrl, body, victim.token, await victim.device.dpop.proof('POST', taUrl, { accessToken: victim.token }));
  assert.equal(key.status, 403);
  assert.match(key.body.detail, /revoked/);
  assert.equal((await a.post('token', { refreshToken: victim.refreshToken }, undefined, await victim.device.dpop.proof('POST', a.url('token')))).status, 401);
  clock.advance(30);
  assert.equal((await deviceLogin(a, await DeviceKeys.generate(clock.now), code)).status, 401);
  assert.equal((await a.post(`admin/users/${DOCTOR.username}/enable`, undefined, ADMIN_TOKEN)).status, 200);
  await victimLogin();
});

test('changed attributes end her sessions; the next token carries the new ones', async () => {
  const victim = await victimLogin();
  const changed = await a.put(`admin/users/${DOCTOR.username}/attributes`, { attributes: ['role:doctor', 'dept:oncology'] }, ADMIN_TOKEN);
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  assert.ok(changed.body.attributes.includes('dept:oncology') && !changed.body.attributes.includes('dept:cardiology'));
  assert.ok(changed.body.attributes.includes('hospital:hospital-a'));
  const refused = await postJson(
    taUrl,
    { attributes: ['dept:cardiology'], deviceKey: victim.device.sealingPublicJwk },
    victim.token,
    await victim.device.dpop.proof('POST', taUrl, { accessToken: victim.token }),
  );
  assert.equal(refused.status, 403);
  const next = await victimLogin();
  const payload = JSON.parse(Buffer.from(next.token.split('.')[1]!, 'base64url').toString()) as { attrs: string[] };
  assert.ok(payload.attrs.includes('dept:oncology') && !payload.attrs.includes('dept:cardiology'));
});

test('a proof naming a key the verifier already imported, but signed by another key, is refused (the key cache keeps every signature check)', async () => {
  const verifier = new DpopVerifier(new MemoryNonceCache(), clock.now);
  const victim = await DpopKey.generate(clock.now);
  const url = 'https://cloud.test/cloud/patients/p/read';
  // The victim's key is imported (and remembered) by her first proof.
  assert.equal((await verifier.verify(await victim.proof('POST', url), { method: 'POST', url })).thumbprint, victim.thumbprint);
  const thief = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const forge = (jwk: object, alg = 'EdDSA') =>
    new SignJWT({ htm: 'POST', htu: url, jti: `forged-${Math.random()}` })
      .setProtectedHeader({ alg, typ: 'dpop+jwt', jwk })
      .setIssuedAt(Math.floor(clock.now() / 1000))
      .sign(thief.privateKey);
  await assert.rejects(verifier.verify(await forge(victim.publicJwk), { method: 'POST', url }), /DPoP proof is not valid/);
  await assert.rejects(verifier.verify(await forge(victim.publicJwk, 'Ed25519'), { method: 'POST', url }), /DPoP proof is not valid/);
  // Her key with a member added is another header: imported afresh, and still not the thief's.
  await assert.rejects(verifier.verify(await forge({ ...victim.publicJwk, use: 'sig' }), { method: 'POST', url }), /DPoP proof is not valid/);
  // The thief's own key verifies as the thief's, not as the victim's.
  const own = await exportJWK(thief.publicKey);
  const proof = await verifier.verify(await forge({ kty: own.kty, crv: own.crv, x: own.x }), { method: 'POST', url });
  assert.notEqual(proof.thumbprint, victim.thumbprint);
  await assert.rejects(
    verifier.verify(await forge({ kty: own.kty, crv: own.crv, x: own.x }), { method: 'POST', url, thumbprint: victim.thumbprint }),
    /another key/,
  );
  // The victim's later proofs verify with the remembered key.
  assert.equal((await verifier.verify(await victim.proof('POST', url), { method: 'POST', url })).thumbprint, victim.thumbprint);
});
