import { test, after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { openTestDatabases } from '@medshare/db';
import { base32Decode, DeviceKeys, totp } from '../src/index.ts';
import { ADMIN_TOKEN, DOCTOR, register, startHospital, TestClock, type RunningHospital } from './harness.ts';

// The same behaviour on in-memory stores and on SQL stores (PGlite, and PostgreSQL when DATABASE_URL is set).
const databases = await openTestDatabases();
after(async () => {
  for (const { db } of databases) await db.close();
});

for (const { label, db } of [{ label: 'memory', db: undefined }, ...databases]) {
  describe(`login on ${label} stores`, () => {
    const clock = new TestClock();
    let hospital: RunningHospital;
    let enrolment: Awaited<ReturnType<typeof register>>;

    before(async () => {
      hospital = await startHospital('hospital-a', clock, { accountFreeFailures: 5, baseDelaySeconds: 60, clientFreeFailures: 1000 }, db);
      enrolment = await register(hospital);
    });
    after(() => hospital.close());

    const code = (offsetSeconds = 0) => totp(base32Decode(enrolment.totpSecret), clock.now() / 1000 + offsetSeconds);

    async function passwordStep(username = DOCTOR.username, password = DOCTOR.password) {
      return hospital.post('login/password', { username, password });
    }

    async function newUser(username: string) {
      const user = { ...DOCTOR, username };
      return { user, enrolment: await register(hospital, user) };
    }

    test('registration needs the administrator credential; a taken username is a 409', async () => {
      assert.equal((await hospital.post('users', { ...DOCTOR, username: 'mallory' })).status, 401);
      assert.equal((await hospital.post('users', { ...DOCTOR, username: 'mallory' }, 'wrong-admin-token')).status, 401);
      const again = await hospital.post('users', DOCTOR, ADMIN_TOKEN);
      assert.equal(again.status, 409);
      assert.equal(again.headers.get('content-type'), 'application/problem+json; charset=utf-8');
      const weak = await hospital.post('users', { ...DOCTOR, username: 'bob', password: 'short' }, ADMIN_TOKEN);
      assert.equal(weak.status, 400);
      const badScope = await hospital.post('users', { ...DOCTOR, username: 'bob', scopes: ['everything'] }, ADMIN_TOKEN);
      assert.equal(badScope.status, 400);
      const forged = await hospital.post('users', { ...DOCTOR, username: 'bob', attributes: ['role:doctor', 'hospital:other'] }, ADMIN_TOKEN);
      assert.equal(forged.status, 400, 'only the hospital itself sets the hospital and uid attributes');
      assert.match(forged.body.detail, /attribute hospital is set by the hospital/);
      assert.equal(enrolment.recoveryCodes.length, 10);
    });

    test('password + TOTP gives a token whose claims carry the vouched attributes and scopes', async () => {
      const first = await passwordStep();
      assert.equal(first.status, 200);
      assert.deepEqual(first.body.factors, ['totp', 'recovery']);
      const second = await hospital.post('login/totp', {
        ticket: first.body.ticket,
        code: code(),
        audience: ['medshare-cloud'],
        scopes: ['user/Observation.rs'],
      });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      const verified = await hospital.service.logoutVerifier.verify(second.body.token);
      assert.match(verified.subject, /^psn:[A-Za-z0-9_-]{16,86}$/, "the subject is the session's pseudonym");
      assert.equal((await hospital.service.admin.trace(verified.subject)).userId, enrolment.userId, 'which the hospital traces to her');
      assert.equal(verified.hospital, 'hospital-a');
      assert.deepEqual(verified.scopes, ['user/Observation.rs']);
      assert.deepEqual(verified.attributes, [
        'role:doctor',
        'dept:cardiology',
        'level=3',
        'hospital:hospital-a',
        `uid:${verified.subject.slice('psn:'.length)}`,
      ]);
      assert.deepEqual(verified.audience, ['medshare-cloud'], 'the audience asked for, not the issuer besides');
      assert.equal(verified.clientId, 'medshare-app');
      assert.deepEqual(verified.methods, ['pwd', 'otp']);
    });

    test('no user enumeration: unknown user and wrong password get the same status and message', async () => {
      const wrong = await passwordStep(DOCTOR.username, 'not the right passphrase');
      const unknown = await passwordStep('nobody-here', 'not the right passphrase');
      assert.equal(wrong.status, 401);
      assert.equal(unknown.status, 401);
      assert.deepEqual(wrong.body, unknown.body);
      assert.equal(wrong.body.detail, 'invalid username or password');
    });

    test('wrong code, expired code and reused code are refused', async () => {
      const { user, enrolment: e } = await newUser('carol');
      const secret = base32Decode(e.totpSecret);
      const start = (await passwordStep(user.username, user.password)).body.ticket;
      const wrong = await hospital.post('login/totp', { ticket: start, code: '000000', audience: ['x'] });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.detail, 'invalid code');
      const expired = await hospital.post('login/totp', { ticket: start, code: totp(secret, clock.now() / 1000 - 90), audience: ['x'] });
      assert.equal(expired.status, 401, 'a code three steps old is refused');
      const good = totp(secret, clock.now() / 1000);
      assert.equal((await hospital.post('login/totp', { ticket: start, code: good, audience: ['x'] })).status, 200);
      const again = (await passwordStep(user.username, user.password)).body.ticket;
      const reused = await hospital.post('login/totp', { ticket: again, code: good, audience: ['x'] });
      assert.equal(reused.status, 401, 'the same time step is accepted only once');
    });

    test('logins with codes of adjacent time steps succeed only in step order: an earlier step is refused once a later one was accepted', async () => {
      // RFC 6238 §5.2 by a high-water mark: concurrent logins of one account with the codes of steps s and s+1 pass
      // or fail by which arrives first, so a caller (or a test) that needs both must send them in step order.
      const { user, enrolment: e } = await newUser('grace');
      const secret = base32Decode(e.totpSecret);
      const [later, earlier] = [totp(secret, clock.now() / 1000 + 30), totp(secret, clock.now() / 1000)];
      const first = (await passwordStep(user.username, user.password)).body.ticket;
      assert.equal((await hospital.post('login/totp', { ticket: first, code: later, audience: ['x'] })).status, 200);
      const second = (await passwordStep(user.username, user.password)).body.ticket;
      const refused = await hospital.post('login/totp', { ticket: second, code: earlier, audience: ['x'] });
      assert.equal(refused.status, 401, 'the earlier step after the later one');
      assert.equal(refused.body.detail, 'invalid code');
      // In step order both pass (two steps later: s+2 is the current step, s+3 the next).
      clock.advance(60);
      for (const offset of [0, 30]) {
        const ticket = (await passwordStep(user.username, user.password)).body.ticket;
        const ok = await hospital.post('login/totp', { ticket, code: totp(secret, clock.now() / 1000 + offset), audience: ['x'] });
        assert.equal(ok.status, 200, `step +${offset / 30} in order`);
      }
    });

    test('a ticket allows three wrong codes, is single-use and expires', async () => {
      const { user, enrolment: e } = await newUser('dave');
      const ticket = (await passwordStep(user.username, user.password)).body.ticket;
      for (let i = 0; i < 3; i++) assert.equal((await hospital.post('login/totp', { ticket, code: '000000', audience: ['x'] })).status, 401);
      const late = await hospital.post('login/totp', { ticket, code: totp(base32Decode(e.totpSecret), clock.now() / 1000), audience: ['x'] });
      assert.equal(late.body.detail, 'invalid or expired login ticket');
      const fresh = (await passwordStep(user.username, user.password)).body.ticket;
      clock.advance(301);
      const expired = await hospital.post('login/totp', { ticket: fresh, code: totp(base32Decode(e.totpSecret), clock.now() / 1000), audience: ['x'] });
      assert.equal(expired.body.detail, 'invalid or expired login ticket');
    });

    test('recovery codes log in once each', async () => {
      const { user, enrolment: e } = await newUser('erin');
      const ticket = (await passwordStep(user.username, user.password)).body.ticket;
      const ok = await hospital.post('login/recovery', { ticket, code: e.recoveryCodes[0], audience: ['x'] });
      assert.equal(ok.status, 200);
      assert.equal(ok.body.factor, 'recovery');
      const ticket2 = (await passwordStep(user.username, user.password)).body.ticket;
      assert.equal((await hospital.post('login/recovery', { ticket: ticket2, code: e.recoveryCodes[0], audience: ['x'] })).status, 401);
    });

    test('a logged-in user can replace the recovery codes; the old ones stop working', async () => {
      const { user, enrolment: e } = await newUser('henry');
      const first = (await passwordStep(user.username, user.password)).body;
      const device = await DeviceKeys.generate(clock.now);
      const proof = await device.loginProof(hospital.url('login/recovery'), first.challenge);
      const login = await hospital.post('login/recovery', { ticket: first.ticket, code: e.recoveryCodes[0], audience: [hospital.issuer] }, undefined, proof);
      const { token } = login.body;
      const fresh = await hospital.post(
        'recovery-codes',
        undefined,
        token,
        await device.dpop.proof('POST', hospital.url('recovery-codes'), { accessToken: token }),
      );
      assert.equal(fresh.status, 200);
      assert.equal(fresh.body.recoveryCodes.length, 10);
      const t1 = (await passwordStep(user.username, user.password)).body.ticket;
      assert.equal((await hospital.post('login/recovery', { ticket: t1, code: e.recoveryCodes[1], audience: ['x'] })).status, 401);
      const t2 = (await passwordStep(user.username, user.password)).body.ticket;
      assert.equal((await hospital.post('login/recovery', { ticket: t2, code: fresh.body.recoveryCodes[0], audience: ['x'] })).status, 200);
      assert.equal((await hospital.post('recovery-codes', undefined)).status, 401);
    });

    test('after five failures an address waits, for existing and unknown accounts alike; it lifts with time', async () => {
      const { user } = await newUser('frank');
      for (const name of [user.username, 'ghost-user']) {
        // Five failures are free; the sixth makes this address wait before its next attempt on this account.
        for (let i = 0; i < 6; i++) assert.equal((await passwordStep(name, 'wrong passphrase!!')).status, 401);
        const locked = await passwordStep(name, name === user.username ? user.password : 'anything at all');
        assert.equal(locked.status, 429);
        assert.equal(locked.headers.get('retry-after'), '60');
      }
      clock.advance(61);
      assert.equal((await passwordStep(user.username, user.password)).status, 200);
    });

    test('failures from one address across accounts (password spraying) make that address wait', async () => {
      const limited = await startHospital('hospital-rl', clock, { clientFreeFailures: 3 }, db);
      try {
        for (let i = 0; i < 4; i++) assert.equal((await limited.post('login/password', { username: `u${i}`, password: 'whatever passphrase' })).status, 401);
        const over = await limited.post('login/password', { username: 'u9', password: 'whatever passphrase' });
        assert.equal(over.status, 429);
        assert.equal(over.body.type, 'urn:medshare:problem:rate-limited');
      } finally {
        await limited.close();
      }
    });

    test('malformed requests are 400 problem+json, not crashes', async () => {
      const cases: unknown[] = [{}, { username: { name: 'a' }, password: 'x' }, { username: 'a' }, { username: 'x'.repeat(300), password: 'y' }];
      for (const body of cases) {
        const result = await hospital.post('login/password', body);
        assert.equal(result.status, 400, JSON.stringify(body));
        assert.equal(result.body.status, 400);
      }
      const raw = await fetch(new URL('login/password', hospital.base), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
      assert.equal(raw.status, 400);
      assert.equal(raw.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    });

    test('logout revokes the session at once', async () => {
      const ticket = (await passwordStep()).body.ticket;
      clock.advance(30);
      const { token } = (await hospital.post('login/totp', { ticket, code: code(), audience: ['x'] })).body;
      await hospital.service.logoutVerifier.verify(token);
      assert.equal((await hospital.post('logout', undefined, token)).status, 204, 'a token of any of its audiences logs out');
      await assert.rejects(hospital.service.logoutVerifier.verify(token), /revoked/);
    });
  });
}
