import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { base32Decode, DeviceKeys, totp } from '../src/index.ts';
import { DOCTOR, deviceLogin, register, startHospital, TestClock, type RunningHospital } from './harness.ts';
import { SoftwareAuthenticator } from './software-authenticator.ts';

const clock = new TestClock();
let hospital: RunningHospital;
let secret: Uint8Array;

before(async () => {
  hospital = await startHospital('hospital-a', clock);
  secret = base32Decode((await register(hospital)).totpSecret);
});
after(() => hospital.close());

/** A fresh login on a device (enrolment is a factor change: step-up). */
async function totpLogin(): Promise<{ token: string; device: DeviceKeys }> {
  clock.advance(30);
  const device = await DeviceKeys.generate(clock.now);
  const result = await deviceLogin(hospital, device, () => totp(secret, clock.now() / 1000));
  assert.equal(result.status, 200, JSON.stringify(result.body));
  return { token: result.body.token, device };
}

/** A step-up request: the token with a proof by its device key. */
async function stepUp(login: { token: string; device: DeviceKeys }, path: string, body?: unknown) {
  return hospital.post(path, body, login.token, await login.device.dpop.proof('POST', hospital.url(path), { accessToken: login.token }));
}

async function enrol(authenticator: SoftwareAuthenticator): Promise<{ status: number; body: any }> {
  const login = await totpLogin();
  const options = await stepUp(login, 'webauthn/register/options');
  assert.equal(options.status, 200);
  assert.equal(options.body.authenticatorSelection.userVerification, 'required');
  return stepUp(login, 'webauthn/register', { response: authenticator.create(options.body) });
}

async function assertionStep(): Promise<{ ticket: string; options: any; factors: string[] }> {
  const first = await hospital.post('login/password', { username: DOCTOR.username, password: DOCTOR.password });
  const options = await hospital.post('login/webauthn/options', { ticket: first.body.ticket });
  return { ticket: first.body.ticket, options: options.body, factors: first.body.factors };
}

test('enrol a platform authenticator, then log in with password + WebAuthn', async () => {
  const authenticator = new SoftwareAuthenticator(hospital.origin);
  const enrolled = await enrol(authenticator);
  assert.equal(enrolled.status, 200, JSON.stringify(enrolled.body));
  assert.equal(enrolled.body.credentialId, authenticator.credentialId.toString('base64url'));
  const { ticket, options, factors } = await assertionStep();
  assert.deepEqual(factors, ['totp', 'recovery', 'webauthn']);
  const result = await hospital.post('login/webauthn', { ticket, response: authenticator.get(options), audience: ['medshare-cloud'] });
  assert.equal(result.status, 200, JSON.stringify(result.body));
  assert.equal(result.body.factor, 'webauthn');
  const verified = await hospital.service.logoutVerifier.verify(result.body.token);
  assert.ok(verified.audience.includes('medshare-cloud'));
});

test('a tampered assertion, a replayed assertion or another origin is refused', async () => {
  const authenticator = new SoftwareAuthenticator(hospital.origin);
  assert.equal((await enrol(authenticator)).status, 200);
  let step = await assertionStep();
  const tampered = await hospital.post('login/webauthn', { ticket: step.ticket, response: authenticator.get(step.options, true), audience: ['x'] });
  assert.equal(tampered.status, 401);
  assert.equal(tampered.body.detail, 'invalid WebAuthn assertion');
  step = await assertionStep();
  const good = authenticator.get(step.options);
  assert.equal((await hospital.post('login/webauthn', { ticket: step.ticket, response: good, audience: ['x'] })).status, 200);
  const next = await assertionStep();
  assert.equal((await hospital.post('login/webauthn', { ticket: next.ticket, response: good, audience: ['x'] })).status, 401, 'old challenge');
  const phishing = new SoftwareAuthenticator('https://hospital-a.example.evil');
  const step2 = await assertionStep();
  assert.equal((await hospital.post('login/webauthn', { ticket: step2.ticket, response: phishing.get(step2.options), audience: ['x'] })).status, 401);
});

test('an authenticator without user verification cannot enrol', async () => {
  const result = await enrol(new SoftwareAuthenticator(hospital.origin, false));
  assert.equal(result.status, 401);
  assert.equal(result.body.detail, 'WebAuthn registration could not be verified');
});

test('WebAuthn enrolment needs a step-up token and a pending challenge', async () => {
  assert.equal((await hospital.post('webauthn/register/options', undefined)).status, 401);
  const login = await totpLogin();
  const authenticator = new SoftwareAuthenticator(hospital.origin);
  const fake = authenticator.create({
    challenge: 'AAAA',
    rp: { id: 'hospital-a.example', name: 'x' },
    user: { id: 'AAAA', name: 'x', displayName: 'x' },
    pubKeyCredParams: [],
  });
  assert.equal((await stepUp(login, 'webauthn/register', { response: fake })).body.detail, 'no pending WebAuthn registration');
});
