/**
 * The identity stores' behaviour, one suite run against the in-memory stores and the SQL stores on PGlite and
 * (when DATABASE_URL is set) PostgreSQL: the same answers, atomic consumption under concurrency (two logins
 * racing for one TOTP step or one recovery code), signing keys that survive a reopen; and for SQL, rows scoped
 * by hospital and expired rows swept.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalJWKSet, jwtVerify, SignJWT } from 'jose';
import { openTestDatabases, randomKeyEncryptionKey, type Database } from '@medshare/db';
import {
  AccountService,
  AttemptLimiter,
  base32Decode,
  MemoryAttemptStore,
  MemoryNonceCache,
  MemorySessionStore,
  MemorySigningKeyStore,
  MemoryTicketStore,
  MemoryUserStore,
  migrateIdentity,
  SigningKeyRing,
  SqlAttemptStore,
  SqlNonceCache,
  SqlSessionStore,
  SqlSigningKeyStore,
  SqlTicketStore,
  SqlUserStore,
  totp,
  type AttemptStore,
  type LoginTicket,
  type NonceCache,
  type SessionStore,
  type SigningKeyStore,
  type StoredSigningKey,
  type TicketStore,
  type UserRecord,
  type UserStore,
} from '../src/index.ts';
import { DOCTOR, FAST_SCRYPT } from './harness.ts';

interface Stores {
  users: UserStore;
  sessions: SessionStore;
  tickets: TicketStore<LoginTicket>;
  nonces: NonceCache;
  attempts: AttemptStore;
  keys: SigningKeyStore;
}

interface Backend {
  label: string;
  db?: Database;
  /** Stores of one hospital; SQL stores of the same hospital share rows, memory stores are fresh each call. */
  open(hospital: string, now: () => number): Stores;
}

const databases = await openTestDatabases();
const kek = randomKeyEncryptionKey();
/** The fields of a session that these tests do not look at. */
const SESSION = { authTime: 1_700_000_000, methods: ['pwd', 'otp'], clientId: 'medshare-app', audiences: ['medshare-cloud'] };
after(async () => {
  for (const { db } of databases) await db.close();
});

const backends: Backend[] = [
  {
    label: 'memory',
    open: (_hospital, now) => ({
      users: new MemoryUserStore(),
      sessions: new MemorySessionStore(now),
      tickets: new MemoryTicketStore<LoginTicket>(),
      nonces: new MemoryNonceCache(),
      attempts: new MemoryAttemptStore(100_000, now),
      keys: new MemorySigningKeyStore(),
    }),
  },
  ...databases.map(({ label, db }) => ({
    label,
    db,
    open: (hospital: string, now: () => number): Stores => ({
      users: new SqlUserStore(db, hospital, kek),
      sessions: new SqlSessionStore(db, hospital, now),
      tickets: new SqlTicketStore<LoginTicket>(db, `${hospital}/login`),
      nonces: new SqlNonceCache(db, `${hospital}/nonces`),
      attempts: new SqlAttemptStore(db, hospital, now),
      keys: new SqlSigningKeyStore(db, hospital, kek),
    }),
  })),
];

/** A hospital name no other test uses (SQL tests share one database per engine). */
const freshHospital = () => `h-${randomBytes(6).toString('hex')}`;

function user(username: string): UserRecord {
  return {
    id: randomUUID(),
    username,
    attributes: ['role:doctor', 'level=3'],
    scopes: ['openid'],
    passwordHash: 'scrypt$hash',
    totpSecret: 'JBSWY3DPEHPK3PXP',
    lastTotpStep: -1,
    recoveryDigests: ['d1', 'd2'],
    webauthnUserId: randomBytes(16).toString('base64url'),
    credentials: [],
    disabled: false,
  };
}

function ticket(userId: string, expiresAtMs: number): LoginTicket {
  return { userId, username: 'alice', attemptsLeft: 3, expiresAtMs };
}

function signingKey(kid: string): StoredSigningKey {
  return { kid, privateJwk: { kty: 'OKP', crv: 'Ed25519', x: kid, d: `secret-${kid}` }, publicJwk: { kty: 'OKP', crv: 'Ed25519', x: kid, kid } };
}

/** How many of the settled calls succeeded. */
const successes = (results: PromiseSettledResult<unknown>[]) => results.filter((r) => r.status === 'fulfilled').length;
const trues = (results: boolean[]) => results.filter((r) => r).length;

for (const backend of backends) {
  describe(`identity stores: ${backend.label}`, () => {
    before(async () => {
      if (backend.db) await migrateIdentity(backend.db);
    });
    const open = (now: () => number = Date.now) => backend.open(freshHospital(), now);

    test('users: create, find by name and id, a taken username, copies that do not write through', async () => {
      const { users } = open();
      const alice = user('alice');
      assert.equal(await users.create(alice), true);
      assert.equal(await users.create({ ...user('alice') }), false, 'the username is taken');
      const found = await users.findByUsername('alice');
      assert.deepEqual(found, alice);
      assert.deepEqual(await users.findById(alice.id), alice);
      assert.equal(await users.findByUsername('bob'), undefined);
      assert.equal(await users.findById(randomUUID()), undefined);
      found!.recoveryDigests.pop();
      assert.deepEqual((await users.findById(alice.id))!.recoveryDigests, ['d1', 'd2']);
    });

    test('users: update applies the change and returns its result; a throwing change changes nothing', async () => {
      const { users } = open();
      const alice = user('alice');
      await users.create(alice);
      const credential = { id: 'cred-1', publicKey: 'pk', counter: 0, transports: ['usb'] };
      const result = await users.update(alice.id, (u) => {
        u.lastTotpStep = 42;
        u.recoveryDigests.splice(0, 1);
        u.credentials.push(credential);
        u.totpSecret = undefined;
        return 'done';
      });
      assert.equal(result, 'done');
      const stored = (await users.findById(alice.id))!;
      assert.equal(stored.lastTotpStep, 42);
      assert.deepEqual(stored.recoveryDigests, ['d2']);
      assert.deepEqual(stored.credentials, [credential]);
      assert.equal(stored.totpSecret, undefined);
      await assert.rejects(
        users.update(alice.id, (u) => {
          u.lastTotpStep = 99;
          throw new Error('refused');
        }),
        /refused/,
      );
      assert.equal((await users.findById(alice.id))!.lastTotpStep, 42);
      assert.equal(await users.update(randomUUID(), () => 'never'), undefined);
    });

    test('users: concurrent updates lose nothing and consume a value once', async () => {
      const { users } = open();
      const alice = user('alice');
      await users.create({ ...alice, credentials: [{ id: 'c', publicKey: 'pk', counter: 0, transports: [] }] });
      await Promise.all(Array.from({ length: 20 }, () => users.update(alice.id, (u) => u.credentials[0]!.counter++)));
      assert.equal((await users.findById(alice.id))!.credentials[0]!.counter, 20, 'no lost update');
      const consumed = await Promise.all(
        Array.from({ length: 20 }, () =>
          users.update(alice.id, (u) => {
            if (u.lastTotpStep >= 7) return false;
            u.lastTotpStep = 7;
            return true;
          }),
        ),
      );
      assert.equal(trues(consumed as boolean[]), 1, 'one time step, accepted once');
    });

    test('two logins racing with the same TOTP code, or the same recovery code: exactly one succeeds', async () => {
      const stores = open();
      const accounts = new AccountService({
        hospital: 'race',
        users: stores.users,
        tickets: stores.tickets,
        passkeyChallenges: new MemoryTicketStore<string>(),
        limiter: new AttemptLimiter(stores.attempts, { clientFreeFailures: 1000, accountFreeFailures: 100 }),
        relyingParty: { id: 'race.example', name: 'race', origins: ['https://race.example'] },
        scrypt: FAST_SCRYPT,
      });
      const enrolment = await accounts.register({ ...DOCTOR });
      const tickets = async (n: number) => Promise.all(Array.from({ length: n }, () => accounts.startLogin(DOCTOR.username, DOCTOR.password, '127.0.0.1')));
      const code = totp(base32Decode(enrolment.totpSecret), Date.now() / 1000);
      const byTotp = await Promise.allSettled((await tickets(4)).map(({ ticket }) => accounts.finishWithTotp(ticket, code, '127.0.0.1')));
      assert.equal(successes(byTotp), 1, 'one TOTP step logs in once');
      const recovery = enrolment.recoveryCodes[0]!;
      const byRecovery = await Promise.allSettled((await tickets(4)).map(({ ticket }) => accounts.finishWithRecoveryCode(ticket, recovery, '127.0.0.1')));
      assert.equal(successes(byRecovery), 1, 'one recovery code logs in once');
      const left = (await stores.users.findByUsername(DOCTOR.username))!.recoveryDigests.length;
      assert.equal(left, enrolment.recoveryCodes.length - 1);
    });

    test('tickets: peek keeps, take consumes once, put replaces, expired ones are gone', async () => {
      const { tickets } = open();
      const t0 = 1_000_000;
      await tickets.put('t1', ticket('u1', t0 + 300), t0 + 300, t0);
      assert.deepEqual(await tickets.peek('t1', t0), ticket('u1', t0 + 300));
      assert.deepEqual(await tickets.peek('t1', t0 + 1), ticket('u1', t0 + 300), 'peek does not consume');
      await tickets.put('t1', { ...ticket('u1', t0 + 300), attemptsLeft: 2 }, t0 + 300, t0);
      assert.equal((await tickets.take('t1', t0 + 2))!.attemptsLeft, 2);
      assert.equal(await tickets.take('t1', t0 + 3), undefined, 'single use');
      await tickets.put('t2', ticket('u2', t0 + 300), t0 + 300, t0);
      assert.equal(await tickets.peek('t2', t0 + 300), undefined, 'expired at its expiry time');
      assert.equal(await tickets.take('t2', t0 + 300), undefined);
      assert.equal(await tickets.take('never', t0), undefined);
    });

    test('tickets: concurrent takes of one ticket, exactly one gets it', async () => {
      const { tickets } = open();
      await tickets.put('t', ticket('u', Date.now() + 60_000), Date.now() + 60_000, Date.now());
      const taken = await Promise.all(Array.from({ length: 10 }, () => tickets.take('t', Date.now())));
      assert.equal(taken.filter((t) => t !== undefined).length, 1);
    });

    test('nonces: a nonce is accepted once until it expires, once under concurrency too', async () => {
      const { nonces } = open();
      const t0 = 5_000_000;
      assert.equal(await nonces.add('n1', t0 + 100, t0), true);
      assert.equal(await nonces.add('n1', t0 + 100, t0 + 50), false, 'replay');
      assert.equal(await nonces.add('n1', t0 + 300, t0 + 100), true, 'expired: accepted again');
      assert.equal(await nonces.add('n1', t0 + 300, t0 + 200), false);
      const racing = await Promise.all(Array.from({ length: 10 }, () => nonces.add('n2', t0 + 100, t0)));
      assert.equal(trues(racing), 1);
      // One burst (the SQL cache inserts it as one statement): fresh nonces and an expired one (n2) accepted, live ones
      // (n3, n1) and a repeat within the burst refused, each caller told about its own.
      assert.equal(await nonces.add('n3', t0 + 150, t0 + 100), true);
      const burst = await Promise.all([
        nonces.add('fresh-a', t0 + 400, t0 + 120),
        nonces.add('n2', t0 + 400, t0 + 120),
        nonces.add('fresh-b', t0 + 400, t0 + 120),
        nonces.add('fresh-a', t0 + 400, t0 + 120),
        nonces.add('n3', t0 + 400, t0 + 120),
        nonces.add('n1', t0 + 400, t0 + 120),
      ]);
      assert.deepEqual(burst, [true, true, true, false, false, false]);
      const later = await Promise.all([nonces.add('n3', t0 + 600, t0 + 200), nonces.add('fresh-b', t0 + 600, t0 + 200), nonces.add('n2', t0 + 600, t0 + 200)]);
      assert.deepEqual(later, [true, false, false], 'n3 had expired by then; fresh-b and the n2 of the burst had not');
    });

    test('sessions: create, get, revoke, revoke all of a user', async () => {
      const { sessions } = open();
      const expiresAtMs = Date.now() + 3_600_000;
      for (const [id, userId] of [
        ['s1', 'u1'],
        ['s2', 'u1'],
        ['s3', 'u1'],
        ['s4', 'u2'],
      ] as const)
        await sessions.create({ id, userId, expiresAtMs, revoked: false, ...SESSION });
      assert.deepEqual(await sessions.get('s1'), { id: 's1', userId: 'u1', expiresAtMs, revoked: false, ...SESSION });
      assert.equal(await sessions.get('nope'), undefined);
      await sessions.revoke('s1');
      await sessions.revoke('nope');
      assert.equal((await sessions.get('s1'))!.revoked, true);
      assert.equal(await sessions.revokeAllForUser('u1'), 2, 'the two sessions still active');
      assert.equal((await sessions.get('s3'))!.revoked, true);
      assert.equal((await sessions.get('s4'))!.revoked, false);
      assert.equal(await sessions.revokeAllForUser('u1'), 0);
    });

    test('attempts: a fresh record is zero, changes persist, concurrent changes lose nothing', async () => {
      const { attempts } = open();
      assert.deepEqual(await attempts.update('account:a', (r) => ({ ...r })), { failures: 0, lockedUntilMs: 0, lastFailureMs: 0 });
      await attempts.update('account:a', (r) => {
        r.failures = 3;
        r.lockedUntilMs = 123;
        r.lastFailureMs = 456;
      });
      assert.deepEqual(await attempts.update('account:a', (r) => ({ ...r })), { failures: 3, lockedUntilMs: 123, lastFailureMs: 456 });
      await Promise.all(Array.from({ length: 20 }, () => attempts.update('client:x', (r) => r.failures++)));
      assert.equal(await attempts.update('client:x', (r) => r.failures), 20);
      await attempts.update('pair:a|1', (r) => r.failures++);
      await attempts.update('pair:a|2', (r) => r.failures++);
      await attempts.update('pair:b|1', (r) => r.failures++);
      await attempts.removeAll('pair:a|');
      assert.equal(await attempts.update('pair:a|1', (r) => r.failures), 0, 'forgotten by prefix');
      assert.equal(await attempts.update('pair:b|1', (r) => r.failures), 1, 'another prefix kept');
      await attempts.remove('pair:b|1');
      assert.equal(await attempts.update('pair:b|1', (r) => r.failures), 0);
    });

    test('signing keys: the first key stays, rotation retires the current key and forgets old ones', async () => {
      const { keys } = open();
      const [a, b, c, d] = ['ka', 'kb', 'kc', 'kd'].map(signingKey) as [StoredSigningKey, StoredSigningKey, StoredSigningKey, StoredSigningKey];
      assert.deepEqual(await keys.initialise(a), [a]);
      assert.deepEqual(await keys.initialise(b), [a], 'a second start keeps the existing key');
      assert.deepEqual(await keys.rotate(c, 1000, 0), [{ ...a, retiredAtMs: 1000 }, c]);
      assert.deepEqual(await keys.rotate(d, 2000, 500), [{ ...a, retiredAtMs: 1000 }, { ...c, retiredAtMs: 2000 }, d]);
      assert.deepEqual(await keys.rotate(b, 3000, 2000), [{ ...d, retiredAtMs: 3000 }, b], 'keys retired at or before 2000 are forgotten');
    });

    test('a key ring reopened on the same store signs with the same key and still verifies after a rotation', async () => {
      const store = open().keys;
      const ring = await SigningKeyRing.open(store, 60_000);
      const sign = (r: SigningKeyRing) => new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'EdDSA', kid: r.current.kid }).sign(r.current.privateKey);
      const before = await sign(ring);
      const reopened = await SigningKeyRing.open(store, 60_000);
      assert.equal(reopened.current.kid, ring.current.kid);
      await jwtVerify(before, createLocalJWKSet(reopened.jwks()));
      const fresh = await reopened.rotate();
      const third = await SigningKeyRing.open(store, 60_000);
      assert.equal(third.current.kid, fresh, 'rotation continues from the stored ring');
      assert.equal(third.jwks().keys.length, 2);
      await jwtVerify(before, createLocalJWKSet(third.jwks()));
      await jwtVerify(await sign(third), createLocalJWKSet(third.jwks()));
      assert.ok(
        third.jwks().keys.every((k) => k.d === undefined),
        'the JWKS publishes no private part',
      );
    });
  });
}

for (const { label, db } of databases) {
  describe(`identity SQL stores on ${label}: scoping and sweeping`, () => {
    before(() => migrateIdentity(db));
    const count = async (table: string, column: string, value: string) =>
      (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${column} = $1`, [value])).rows[0]!.n;

    test('two hospitals in one database see only their own rows', async () => {
      const [a, b] = [freshHospital(), freshHospital()];
      const [usersA, usersB] = [new SqlUserStore(db, a, kek), new SqlUserStore(db, b, kek)];
      const alice = user('alice');
      assert.equal(await usersA.create(alice), true);
      assert.equal(await usersB.create(user('alice')), true, 'the same username at another hospital');
      assert.notEqual((await usersB.findByUsername('alice'))!.id, alice.id);
      assert.equal(await usersB.findById(alice.id), undefined);
      assert.equal(await usersB.update(alice.id, () => true), undefined);
      const [sessionsA, sessionsB] = [new SqlSessionStore(db, a), new SqlSessionStore(db, b)];
      await sessionsA.create({ id: 's', userId: alice.id, expiresAtMs: Date.now() + 60_000, revoked: false, ...SESSION });
      assert.equal(await sessionsB.get('s'), undefined);
      await sessionsB.revoke('s');
      assert.equal(await sessionsB.revokeAllForUser(alice.id), 0);
      assert.equal((await sessionsA.get('s'))!.revoked, false);
      const [ticketsA, ticketsB] = [new SqlTicketStore<string>(db, `${a}/login`), new SqlTicketStore<string>(db, `${b}/login`)];
      await ticketsA.put('t', 'for a', Date.now() + 60_000, Date.now());
      assert.equal(await ticketsB.take('t', Date.now()), undefined);
      assert.equal(await ticketsA.take('t', Date.now()), 'for a');
      const ringA = await SigningKeyRing.open(new SqlSigningKeyStore(db, a, kek), 60_000);
      const ringB = await SigningKeyRing.open(new SqlSigningKeyStore(db, b, kek), 60_000);
      assert.notEqual(ringA.current.kid, ringB.current.kid);
    });

    test('expired tickets, nonces and sessions and idle attempt records are swept as rows are added', async () => {
      const hospital = freshHospital();
      const t0 = 10_000_000;
      let nowMs = t0;
      const tickets = new SqlTicketStore<string>(db, `${hospital}/login`);
      const nonces = new SqlNonceCache(db, `${hospital}/nonces`);
      const sessions = new SqlSessionStore(db, hospital, () => nowMs);
      const attempts = new SqlAttemptStore(db, hospital, () => nowMs, 60_000);
      for (let i = 0; i < 100; i++) {
        await tickets.put(`old-${i}`, 'x', t0 + 10, t0);
        await nonces.add(`old-${i}`, t0 + 10, t0);
        await sessions.create({ id: `old-${i}`, userId: 'u', expiresAtMs: t0 + 10, revoked: i % 2 === 0, ...SESSION });
        await attempts.update(`client:old-${i}`, (r) => r.failures++);
      }
      await attempts.update('account:locked', (r) => {
        r.lockedUntilMs = t0 + 3_600_000;
      });
      nowMs = t0 + 120_000;
      for (let i = 0; i < 4; i++) {
        await tickets.put(`new-${i}`, 'x', nowMs + 10, nowMs);
        await nonces.add(`new-${i}`, nowMs + 10, nowMs);
        await sessions.create({ id: `new-${i}`, userId: 'u', expiresAtMs: nowMs + 10, revoked: false, ...SESSION });
        await attempts.update(`client:new-${i}`, (r) => r.failures++);
      }
      await nonces.idle();
      assert.equal(await count('identity_tickets', 'scope', `${hospital}/login`), 4);
      assert.equal(await count('identity_nonces', 'scope', `${hospital}/nonces`), 4);
      assert.equal(await count('identity_sessions', 'hospital', hospital), 4);
      assert.equal(await count('identity_attempts', 'hospital', hospital), 5, 'the locked record is kept');
      assert.equal(await attempts.update('account:locked', (r) => r.lockedUntilMs), t0 + 3_600_000);
    });

    test('nonces are swept in batches, not by a DELETE per insertion, and the sweep still keeps up with them', async () => {
      const scope = `${freshHospital()}/nonces`;
      let deletes = 0;
      const counting = {
        query: (sql: string, params?: unknown[]) => ((deletes += sql.startsWith('DELETE') ? 1 : 0), db.query(sql, params)),
      } as unknown as Database;
      const nonces = new SqlNonceCache(counting, scope);
      const t0 = 20_000_000;
      for (let i = 0; i < 600; i++) assert.equal(await nonces.add(`a-${i}`, t0 + 10, t0), true);
      assert.equal(deletes, 2, 'one sweep at the first insertion, one after 512 more in the same second');
      assert.equal(await nonces.add('a-1', t0 + 10, t0), false, 'a replay is still refused');
      // A second later every one of the 600 has expired: the next insertion sweeps them all (twice the batch size).
      assert.equal(await nonces.add('b-0', t0 + 2000, t0 + 1000), true);
      await nonces.idle();
      assert.equal(await count('identity_nonces', 'scope', scope), 1);
    });

    test('a nonce sweep the database refuses does not reject the batch, and is retried', async () => {
      const scope = `${freshHospital()}/nonces`;
      const tag = randomBytes(6).toString('hex');
      const expired = async (nowMs: number) =>
        (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM identity_nonces WHERE scope = $1 AND expires_at_ms <= $2', [scope, nowMs])).rows[0]!.n;
      const errors: unknown[] = [];
      const nonces = new SqlNonceCache(db, scope, 'identity_nonces', (error) => errors.push(error));
      const t0 = 30_000_000;
      const old = Array.from({ length: 600 }, (_, i) => `old-${tag}-${i}`);
      assert.deepEqual(await Promise.all(old.map((n) => nonces.add(n, t0 + 10, t0))), Array(600).fill(true));
      await nonces.idle();
      assert.equal(errors.length, 0);

      // From now on the database refuses to delete any row of this scope, and its error quotes the row's nonce.
      await db.query(`CREATE FUNCTION refuse_${tag}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'refusing to delete nonce %', OLD.nonce; END $$`);
      await db.query(
        `CREATE TRIGGER refuse_${tag} BEFORE DELETE ON identity_nonces FOR EACH ROW WHEN (OLD.scope = '${scope}') EXECUTE FUNCTION refuse_${tag}()`,
      );
      // 600 fresh insertions (more than NONCE_SWEEP_EVERY) after the old ones expired: a sweep is due, and fails.
      const t1 = t0 + 20;
      const fresh = Array.from({ length: 600 }, (_, i) => `new-${tag}-${i}`);
      assert.deepEqual(await Promise.all(fresh.map((n) => nonces.add(n, t1 + 60_000, t1))), Array(600).fill(true), 'every fresh nonce is fresh');
      await nonces.idle();
      assert.equal(errors.length, 1, 'the refused sweep is reported once');
      assert.ok(errors[0] instanceof Error);
      assert.match(errors[0].message, /refusing to delete nonce old-/, 'with the database error');
      assert.equal(await expired(t1), 600, 'nothing was deleted');
      assert.equal(await nonces.add(fresh[7]!, t1 + 60_000, t1), false, 'a replay is still refused');
      // Not retried before a second has passed, however many insertions come.
      const more = Array.from({ length: 600 }, (_, i) => `more-${tag}-${i}`);
      assert.deepEqual(await Promise.all(more.map((n) => nonces.add(n, t1 + 60_000, t1 + 500))), Array(600).fill(true));
      await nonces.idle();
      assert.equal(errors.length, 1, 'no retry within the second');

      // The default report: a NonceSweepWarning that quotes no nonce, although the database's error does.
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => void warnings.push(warning);
      process.on('warning', onWarning);
      try {
        const warned = new SqlNonceCache(db, scope);
        assert.equal(await warned.add(`w-${tag}`, t1 + 60_000, t1), true);
        await warned.idle();
        await new Promise((resolve) => setImmediate(resolve));
      } finally {
        process.off('warning', onWarning);
      }
      assert.equal(warnings.length, 1);
      assert.equal(warnings[0]!.name, 'NonceSweepWarning');
      assert.match(warnings[0]!.message, /sweep .* failed.*retried/);
      for (const nonce of [...old, ...fresh, ...more, `w-${tag}`]) assert.ok(!warnings[0]!.message.includes(nonce), 'no nonce in the warning');
      assert.doesNotMatch(warnings[0]!.message, new RegExp(tag));

      // Once the database lets it, the next due sweep (a second after the failure) deletes the expired rows.
      await db.query(`DROP TRIGGER refuse_${tag} ON identity_nonces`);
      await db.query(`DROP FUNCTION refuse_${tag}()`);
      const t2 = t1 + 1000;
      assert.equal(await nonces.add(`late-${tag}`, t2 + 60_000, t2), true);
      await nonces.idle();
      assert.equal(errors.length, 1, 'the retry succeeded');
      assert.equal(await expired(t2), 0, 'the expired rows are gone');
      assert.equal(await count('identity_nonces', 'scope', scope), 600 + 600 + 1 + 1, 'the live ones are kept');
    });
  });
}
