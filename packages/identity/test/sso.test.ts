import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import {
  base32Decode,
  DeviceKeys,
  SessionPseudonyms,
  SigningKeyRing,
  TokenIssuer,
  TokenVerifier,
  totp,
  TrustList,
  MemorySessionStore,
  type AuthenticatedUser,
} from '../src/index.ts';
import { DOCTOR, deviceLogin, register, startHospital, TestClock, type RunningHospital } from './harness.ts';

const clock = new TestClock();
let a: RunningHospital;
let b: RunningHospital;
let secretA: Uint8Array;
let cloud: TokenVerifier;
let trust: TrustList;

before(async () => {
  a = await startHospital('hospital-a', clock);
  b = await startHospital('hospital-b', clock);
  secretA = base32Decode((await register(a)).totpSecret);
  await register(b, { ...DOCTOR, username: 'bob' });
  trust = new TrustList();
  trust.add(a.member());
  trust.add(b.member());
  cloud = new TokenVerifier('medshare-cloud', trust, { now: clock.now });
});
after(async () => {
  await a.close();
  await b.close();
});

let lastStep = 0;
/** Logs in at hospital A (waiting for a fresh TOTP step each time, as a user would). */
async function loginA(audience = ['medshare-cloud']): Promise<{ token: string; sessionId: string }> {
  clock.advance(30);
  const ticket = (await a.post('login/password', { username: DOCTOR.username, password: DOCTOR.password })).body.ticket;
  const step = Math.floor(clock.now() / 30000);
  assert.ok(step > lastStep);
  lastStep = step;
  const result = await a.post('login/totp', { ticket, code: totp(secretA, clock.now() / 1000), audience });
  assert.equal(result.status, 200, JSON.stringify(result.body));
  return result.body;
}

function parts(token: string): [any, any, string] {
  const [h, p, s] = token.split('.');
  return [JSON.parse(Buffer.from(h!, 'base64url').toString()), JSON.parse(Buffer.from(p!, 'base64url').toString()), s!];
}
const enc = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

test('a token issued by hospital A is accepted by the cloud through the federation trust list (JWKS over HTTP)', async () => {
  const { token } = await loginA();
  const verified = await cloud.verify(token);
  assert.equal(verified.issuer, 'https://idp.hospital-a.example');
  assert.equal(verified.hospital, 'hospital-a');
  assert.ok(verified.attributes.includes('role:doctor'));
  const [header] = parts(token);
  assert.equal(header.alg, 'EdDSA');
  assert.equal(header.typ, 'at+jwt');
});

test('tampered payload or signature is refused', async () => {
  const { token } = await loginA();
  const [header, payload, signature] = parts(token);
  const elevated = `${enc(header)}.${enc({ ...payload, attrs: [...payload.attrs, 'role:admin'] })}.${signature}`;
  await assert.rejects(cloud.verify(elevated), /signature is not valid/);
  // One bit of the signature's bytes (editing its last characters could touch only base64 padding bits).
  const bytes = Buffer.from(signature, 'base64url');
  bytes[10]! ^= 0x01;
  await assert.rejects(cloud.verify(`${token.slice(0, token.lastIndexOf('.'))}.${bytes.toString('base64url')}`), /signature is not valid/);
});

test('expired token is refused (after the 30 s skew)', async () => {
  const { token } = await loginA();
  clock.advance(300 + 31);
  await assert.rejects(cloud.verify(token), /expired/);
});

test('a token already verified (its signature remembered) is still refused once it expires or outlives its maximum lifetime', async () => {
  const { token } = await loginA();
  const first = await cloud.verify(token);
  first.attributes.push('role:admin');
  first.audience.push('elsewhere');
  const again = await cloud.verify(token);
  assert.ok(!again.attributes.includes('role:admin') && !again.audience.includes('elsewhere'), 'what a caller did to one result leaks into the next');
  clock.advance(300 + 31);
  await assert.rejects(cloud.verify(token), /expired/);
  const { token: second } = await loginA();
  const strict = new TokenVerifier('medshare-cloud', trust, { now: clock.now, maxLifetimeSeconds: 60 });
  await strict.verify(second);
  clock.advance(60 + 31);
  await assert.rejects(strict.verify(second), /expired/);
});

test('wrong audience is refused', async () => {
  const { token } = await loginA(['medshare-ta']);
  await assert.rejects(cloud.verify(token), /not for audience medshare-cloud/);
});

test('an issuer not on the trust list is refused, and removing a member stops its tokens', async () => {
  const { token } = await loginA();
  const onlyB = new TrustList();
  onlyB.add(b.member());
  await assert.rejects(new TokenVerifier('medshare-cloud', onlyB, { now: clock.now }).verify(token), /issuer is not trusted/);
  const local = new TrustList();
  local.add(a.member());
  const verifier = new TokenVerifier('medshare-cloud', local, { now: clock.now });
  await verifier.verify(token);
  local.remove(a.issuer);
  await assert.rejects(verifier.verify(token), /issuer is not trusted/);
});

test('a token signed by a key not in the issuer JWKS is refused (hospital B cannot speak for A)', async () => {
  const rogueKeys = await SigningKeyRing.create(60_000, clock.now);
  const rogue = new TokenIssuer({
    issuer: a.issuer,
    hospital: 'hospital-a',
    keys: rogueKeys,
    sessions: new MemorySessionStore(),
    pseudonyms: new SessionPseudonyms(randomBytes(32), a.issuer),
    now: clock.now,
    audiences: ['medshare-cloud'],
    clients: ['medshare-app'],
  });
  const user: AuthenticatedUser = {
    id: 'u1',
    username: 'x',
    attributes: ['role:doctor', 'hospital:hospital-a', 'uid:u1'],
    scopes: ['openid'],
    factor: 'totp',
    methods: ['pwd', 'otp'],
  };
  const forged = await rogue.startSession(user, { audience: ['medshare-cloud'] });
  await assert.rejects(cloud.verify(forged.token), /unknown key/);
});

test('alg none, HS256 with the public key as secret, and a non-JWT are refused', async () => {
  const { token } = await loginA();
  const [header, payload] = parts(token);
  const none = `${enc({ alg: 'none', typ: 'at+jwt' })}.${enc(payload)}.`;
  await assert.rejects(cloud.verify(none), /algorithm none is not allowed/);
  const jwk = a.service.keys.jwks().keys[0]!;
  const hsInput = `${enc({ ...header, alg: 'HS256' })}.${enc(payload)}`;
  const hs = `${hsInput}.${createHmac('sha256', JSON.stringify(jwk)).update(hsInput).digest('base64url')}`;
  await assert.rejects(cloud.verify(hs), /algorithm HS256 is not allowed/);
  await assert.rejects(cloud.verify('not-a-token'), /malformed/);
  await assert.rejects(cloud.verify('x'.repeat(10_000)), /too long/);
});

test('a member cannot vouch for another hospital or another uid', async () => {
  // A correctly signed token of hospital B whose attributes claim hospital A.
  const bKeys = b.service.keys;
  const now = Math.floor(clock.now() / 1000);
  const session = await b.service.issuer.startSession(
    { id: 'u2', username: 'bob', attributes: ['role:doctor', 'hospital:hospital-b', 'uid:u2'], scopes: ['openid'], factor: 'totp', methods: ['pwd', 'otp'] },
    { audience: ['medshare-cloud'] },
  );
  const claims = {
    sid: session.sessionId,
    hospital: 'hospital-b',
    attrs: ['role:doctor', 'hospital:hospital-a', 'uid:u2'],
    scope: 'openid',
    client_id: 'medshare-app',
    auth_time: now,
  };
  const lying = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: bKeys.current.kid })
    .setIssuer(b.issuer)
    .setSubject('u2')
    .setAudience('medshare-cloud')
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .setJti('j1')
    .sign(bKeys.current.privateKey);
  await assert.rejects(cloud.verify(lying), /cannot vouch for/);
});

test('key rotation: new tokens verify after the verifier refetches the JWKS; old tokens verify until they expire', async () => {
  const before = await loginA();
  await cloud.verify(before.token);
  const oldKid = parts(before.token)[0].kid;
  await new Promise((resolve) => setTimeout(resolve, 5_100)); // jose's JWKS refetch cooldown
  const newKid = await a.service.keys.rotate();
  assert.notEqual(newKid, oldKid);
  const after = await loginA();
  assert.equal(parts(after.token)[0].kid, newKid);
  await cloud.verify(after.token);
  await cloud.verify(before.token);
  assert.equal(a.service.keys.jwks().keys.length, 2);
  clock.advance(400);
  assert.equal(a.service.keys.jwks().keys.length, 1, 'the retired key leaves the JWKS after its retention');
});

test("a live key ring (a hospital's own tokens): a new key verifies at once, a retired one only within its retention", async () => {
  const ownClock = new TestClock();
  const keys = await SigningKeyRing.create(60_000, ownClock.now);
  const issuer = new TokenIssuer({
    issuer: 'urn:test:live',
    hospital: 'live',
    keys,
    sessions: new MemorySessionStore(),
    pseudonyms: new SessionPseudonyms(randomBytes(32), 'urn:test:live'),
    now: ownClock.now,
    audiences: ['medshare-cloud'],
    clients: ['medshare-app'],
  });
  const live = new TrustList();
  live.add({ issuer: 'urn:test:live', hospital: 'live', jwks: () => keys.jwks(), sessionStatus: async () => true });
  const verifier = new TokenVerifier('medshare-cloud', live, { now: ownClock.now });
  const user: AuthenticatedUser = {
    id: 'u1',
    username: 'x',
    attributes: ['role:doctor', 'hospital:live', 'uid:u1'],
    scopes: ['openid'],
    factor: 'totp',
    methods: ['pwd', 'otp'],
  };
  const issue = async () => (await issuer.startSession(user, { audience: ['medshare-cloud'] })).token;
  const old = await issue();
  await verifier.verify(old);
  await keys.rotate();
  await verifier.verify(await issue());
  await verifier.verify(old);
  ownClock.advance(61);
  await assert.rejects(verifier.verify(old), /unknown key/);
  await verifier.verify(await issue());
});

test("a device session refreshes with its refresh credential and a proof by its key, within the login's audiences; after logout it cannot", async () => {
  clock.advance(30);
  const device = await DeviceKeys.generate(clock.now);
  const login = await deviceLogin(a, device, () => totp(secretA, clock.now() / 1000), { audience: ['medshare-cloud', 'medshare-ta'] });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  const { sessionId, refreshToken } = login.body;
  const refresh = async (body: Record<string, unknown>, signer = device) => a.post('token', body, undefined, await signer.dpop.proof('POST', a.url('token')));
  const refreshed = await refresh({ refreshToken, audience: ['medshare-ta'] });
  assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
  assert.equal(refreshed.body.sessionId, sessionId);
  const ta = new TokenVerifier('medshare-ta', trust, { now: clock.now });
  const verified = await ta.verify(refreshed.body.token);
  assert.equal(verified.sessionId, sessionId);
  assert.equal(verified.proofKeyThumbprint, device.dpop.thumbprint, 'the refreshed token keeps the device binding');
  assert.equal(verified.sealingKeyThumbprint, device.sealingThumbprint);
  assert.equal((await refresh({ refreshToken, audience: ['medshare-ta'] })).status, 401, 'a refresh credential works once');
  const next = refreshed.body.refreshToken;
  assert.equal((await refresh({ refreshToken: next, audience: ['x'] })).status, 401, 'no audience beyond those of the login');
  assert.equal((await refresh({ refreshToken: next, scopes: ['system/*.cruds'] })).status, 400, 'no scope beyond those granted');
  assert.equal((await refresh({ refreshToken: next }, await DeviceKeys.generate(clock.now))).status, 401, 'another device key cannot refresh');
  assert.equal((await a.post('logout', undefined, refreshed.body.token)).status, 204);
  assert.equal((await refresh({ refreshToken: next })).status, 401);
});

test('revocation stops a token at every verifier at once', async () => {
  const { token } = await loginA();
  await cloud.verify(token);
  assert.equal((await a.post('logout', undefined, token)).status, 204);
  await assert.rejects(cloud.verify(token), /revoked/);
  const second = await loginA();
  await a.service.sessions.revokeAllForUser((await a.service.admin.trace((await cloud.verify(second.token)).subject)).userId);
  await assert.rejects(cloud.verify(second.token), /revoked/);
});
