import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { abe, PolicySyntaxError } from '@medshare/crypto';
import { base32Decode, DeviceKeys, openIssuedKey, totp, type IssuedKey, type TrustedAuthority } from '../src/index.ts';
import { DOCTOR, deviceLogin, postJson, register, startAuthority, startHospital, TestClock, type RunningHospital } from './harness.ts';

const clock = new TestClock();
let a: RunningHospital;
let secret: Uint8Array;
let taApp: FastifyInstance;
let taUrl: URL;
let publicKey: abe.PublicKey;

/** A device: its keys, and `jwk` its sealing key as a key request names it. */
async function deviceKeyPair(): Promise<DeviceKeys & { jwk: DeviceKeys['sealingPublicJwk']; privateKey: DeviceKeys['sealingPrivateKey'] }> {
  const keys = await DeviceKeys.generate(clock.now);
  return Object.assign(keys, { jwk: keys.sealingPublicJwk, privateKey: keys.sealingPrivateKey });
}

let authority: TrustedAuthority;

before(async () => {
  await abe.init();
  a = await startHospital('hospital-a', clock);
  secret = base32Decode((await register(a)).totpSecret);
  const ta = await startAuthority(a, clock);
  ({ authority, publicKey, app: taApp } = ta);
  taUrl = new URL(ta.base);
});
after(async () => {
  await a.close();
  await taApp.close();
});

/** A login on `device` (its keys sign the challenge), or without one. */
async function login(device?: DeviceKeys, audience = ['medshare-ta']): Promise<string> {
  clock.advance(30);
  const code = () => totp(secret, clock.now() / 1000);
  let result;
  if (device) {
    result = await deviceLogin(a, device, code, { audience });
  } else {
    const ticket = (await a.post('login/password', { username: DOCTOR.username, password: DOCTOR.password })).body.ticket;
    result = await a.post('login/totp', { ticket, code: code(), audience });
  }
  assert.equal(result.status, 200, JSON.stringify(result.body));
  return result.body.token;
}

/** A key request with a DPoP proof by `signer` (none without). */
const requestKey = async (token: string | undefined, body: unknown, signer?: DeviceKeys) => {
  const url = new URL('/ta/keys', taUrl);
  return postJson(url, body, token, signer && token ? await signer.dpop.proof('POST', url, { accessToken: token }) : undefined);
};

test('an authenticated user gets a key for vouched attributes, sealed to the device, which decrypts matching records', async () => {
  const device = await deviceKeyPair();
  const token = await login(device);
  const result = await requestKey(token, { attributes: ['role:doctor', 'dept:cardiology', 'level=3'], deviceKey: device.jwk }, device);
  assert.equal(result.status, 200, JSON.stringify(result.body));
  const issued = result.body as IssuedKey;
  assert.deepEqual(Object.keys(issued.box).sort(), ['ct', 'epk', 'iv', 'tag', 'v']);
  const userKey = openIssuedKey(device.privateKey, issued);
  assert.equal(abe.formatAttributes(userKey.attributes), 'role:doctor, dept:cardiology, level=3');
  const record = new TextEncoder().encode('{"resourceType":"Observation"}');
  const allowed = abe.encrypt(publicKey, 'role:doctor and dept:cardiology and level >= 2', record);
  assert.equal(Buffer.from(abe.decrypt(userKey, allowed)).toString(), Buffer.from(record).toString());
  const denied = abe.encrypt(publicKey, 'role:nurse', record);
  assert.throws(() => abe.decrypt(userKey, denied), /satisf|denied|policy/i);
});

test('the key never travels in clear: the response holds no decodable user key, and another device cannot open it', async () => {
  const device = await deviceKeyPair();
  const token = await login(device);
  const issued = (await requestKey(token, { attributes: ['role:doctor'], deviceKey: device.jwk }, device)).body as IssuedKey;
  const other = await deviceKeyPair();
  assert.throws(() => openIssuedKey(other.privateKey, issued), /authentication/);
  assert.throws(() => openIssuedKey(device.privateKey, { ...issued, subject: 'someone-else' }), /authentication/);
  const ct = Buffer.from(issued.box.ct, 'base64url');
  assert.throws(() => abe.decodeUserKey(ct));
});

test('attributes the hospital did not vouch for are refused', async () => {
  const device = await deviceKeyPair();
  for (const attributes of [['role:admin'], ['role:doctor', 'dept:oncology'], ['level=4'], ['hospital:hospital-b']]) {
    const token = await login(device);
    const result = await requestKey(token, { attributes, deviceKey: device.jwk }, device);
    assert.equal(result.status, 403, attributes.join());
    assert.match(result.body.detail, /is not vouched for by hospital-a/);
  }
});

test('no token, a token for another audience, an unbound token, another device key, or a reused token: refused', async () => {
  const device = await deviceKeyPair();
  assert.equal((await requestKey(undefined, { attributes: ['role:doctor'], deviceKey: device.jwk }, device)).status, 403);
  const unbound = await login();
  assert.match((await requestKey(unbound, { attributes: ['role:doctor'], deviceKey: device.jwk }, device)).body.detail, /not bound to a device key/);
  const token = await login(device);
  const thief = await deviceKeyPair();
  assert.match((await requestKey(token, { attributes: ['role:doctor'], deviceKey: thief.jwk }, device)).body.detail, /different device key/);
  assert.equal((await requestKey(token, { attributes: ['role:doctor'], deviceKey: device.jwk }, device)).status, 200);
  assert.match((await requestKey(token, { attributes: ['role:doctor'], deviceKey: device.jwk }, device)).body.detail, /already been used/);
  const cloudToken = await login(device, ['medshare-cloud']);
  assert.match((await requestKey(cloudToken, { attributes: ['role:doctor'], deviceKey: device.jwk }, device)).body.detail, /not for audience medshare-ta/);
});

test('a revoked session gets no key', async () => {
  const device = await deviceKeyPair();
  const token = await login(device);
  assert.equal((await a.post('logout', undefined, token)).status, 204);
  assert.match((await requestKey(token, { attributes: ['role:doctor'], deviceKey: device.jwk }, device)).body.detail, /revoked/);
});

test('malformed key requests are 400 problem+json', async () => {
  const device = await deviceKeyPair();
  const token = await login(device);
  const bad: unknown[] = [
    { attributes: [], deviceKey: device.jwk },
    { attributes: ['role:doctor'], deviceKey: { kty: 'EC' } },
    { attributes: ['role doctor ('], deviceKey: device.jwk },
  ];
  for (const body of bad) {
    const result = await requestKey(token, body, device);
    assert.equal(result.status, 400, JSON.stringify(body));
    assert.equal(result.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  }
});

test('the TA publishes its public parameters', async () => {
  const response = await fetch(new URL('/ta/public-key', taUrl));
  const body = (await response.json()) as { authorityId: string; publicKey: string };
  const decoded = abe.decodePublicKey(Buffer.from(body.publicKey, 'base64'));
  assert.equal(Buffer.from(decoded.authorityId).toString('hex'), body.authorityId);
});

test('warming hashes every copy of the attributes (an integer for every value) once; keys issued after it hash nothing', async () => {
  // hospital:zz-warm: 8 copies; grade: 32 bits × 2 settings × 8 copies.
  assert.equal(await authority.warm(['hospital:zz-warm', 'grade=4']), 8 + 64 * 8);
  assert.equal(await authority.warm(['hospital:zz-warm', 'grade=200']), 0);
  assert.equal(abe.warmAttributeHashes('grade=77, hospital:zz-warm'), 0, 'any value of grade is cached');
  await assert.rejects(authority.warm(['not an attribute']), PolicySyntaxError);
});
