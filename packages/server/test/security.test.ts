/**
 * Refusals and hostile input over real HTTP: every endpoint refuses missing, invalid, foreign, wrong-audience,
 * expired, revoked and insufficient tokens; malformed FHIR, oversized bodies, wrong content types, injection
 * strings and path traversal are clear 4xx problems that change nothing; and nothing the cloud stores or logs
 * contains plaintext.
 */
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { abe } from '@medshare/crypto';
import { openTestDatabases, randomKeyEncryptionKey, type TestDatabase } from '@medshare/db';
import { cloudContents, createPlatform, PlatformClient } from '../src/index.ts';
import { ADMIN, ADMINS, FAST_SCRYPT, LAB_POLICY, routeUrl, sampleBundle, sharedDatabases, startCast, type Cast } from './harness.ts';

/** Errors are problem+json, except on FHIR routes, where they are OperationOutcomes in application/fhir+json. */
const errorMedia = (path: string) => (path.startsWith('/gateway/fhir') ? /^application\/fhir\+json/ : /^application\/problem\+json/);
const databases: TestDatabase[] = await openTestDatabases();
// The cloud gets a database of its own, so that what it holds can be scanned table by table.
const cloudDatabases: TestDatabase[] = await openTestDatabases();
after(async () => {
  for (const { db } of [...databases, ...cloudDatabases]) await db.close();
});

let offsetMs = 0;
/** One KEK for every platform opened on the same database (as a KEK file would be). */
const kek = randomKeyEncryptionKey();
const now = () => Date.now() + offsetMs;

for (const { label, db } of databases) {
  const cloudDb = cloudDatabases.find((d) => d.label === label)!.db;
  describe(`security on ${label}`, () => {
    let cast: Cast;
    const logLines: string[] = [];
    const bundle = sampleBundle();
    let patient: string;

    const request = async (method: string, path: string, options: { token?: string; body?: string | Buffer; type?: string } = {}) => {
      const headers: Record<string, string> = {};
      if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
      if (options.body !== undefined) headers['content-type'] = options.type ?? 'application/json';
      const response = await fetch(cast.urlFor(path), { method, headers, body: options.body });
      const text = await response.text();
      return { status: response.status, type: response.headers.get('content-type') ?? '', body: text ? JSON.parse(text) : undefined };
    };
    // Every authenticated endpoint, with a body it would accept.
    const endpoints = () => [
      ['PUT', `/cloud/patients/${patient}`, JSON.stringify({ publicKeys: 'AAAA' })],
      ['GET', `/cloud/patients/${patient}/records?category=lab`, undefined],
      ['POST', `/cloud/patients/${patient}/read`, JSON.stringify({ category: 'lab' })],
      ['POST', `/cloud/patients/${patient}/emergency-read`, JSON.stringify({ category: 'lab', reason: 'test' })],
      ['POST', `/cloud/patients/${patient}/delegations`, JSON.stringify({ reencryptionKey: 'AAAA' })],
      ['GET', `/cloud/patients/${patient}/delegations`, undefined],
      ['GET', `/cloud/patients/${patient}/repeated-attribute-policies`, undefined],
      ['DELETE', `/cloud/patients/${patient}/delegations/${'0'.repeat(32)}`, undefined],
      ['GET', `/cloud/patients/${patient}/access-log`, undefined],
      ['GET', `/cloud/patients/${patient}/platform-emergency`, undefined],
      ['PUT', `/cloud/patients/${patient}/platform-emergency`, JSON.stringify({ allowed: false })],
      ['GET', `/cloud/patients/${patient}/public-keys`, undefined],
      ['POST', `/cloud/patients/${patient}/uploads`, JSON.stringify({ records: [{ recordId: 'r1', category: 'lab', ciphertext: 'AAAA' }], capsules: [] })],
      ['POST', '/gateway/patients', JSON.stringify({ fhirId: 'x', patient })],
      ['POST', '/gateway/fhir', JSON.stringify(bundle)],
      ['POST', '/gateway/upload', JSON.stringify(bundle)],
      ['GET', '/gateway/fhir/Patient/x/records?category=lab', undefined],
    ] as const;

    before(async () => {
      const stream = new PassThrough();
      stream.on('data', (chunk: Buffer) => logLines.push(chunk.toString('utf8')));
      cast = await startCast(db, { now, logger: { stream }, kek, databases: { ...sharedDatabases(db, ['st-marys', 'riverside']), cloud: cloudDb } });
      patient = cast.patient.key.patientId;
      await cast.patient.register();
      await cast.gateway.enrol(bundle.entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id, patient);
      await cast.gateway.upload(bundle);
      await cast.patient.delegate('lab', LAB_POLICY, await cast.client.abePublicKey());
      await cast.chen.read(patient, 'lab');
    });
    after(async () => cast.platform.close());

    test('missing, malformed, wrong-audience and foreign tokens are 401 problems on every endpoint', async () => {
      const taOnly = await (async () => {
        const { totpSecret } = await cast.client.registerUser('riverside', ADMINS['riverside']!, { username: 'ta-only', password: 'a long enough passphrase', attributes: ['role:doctor'], scopes: [] });
        const { ticket } = (await request('POST', '/identity/riverside/login/password', { body: JSON.stringify({ username: 'ta-only', password: 'a long enough passphrase' }) })).body;
        const { totp, base32Decode } = await import('@medshare/identity');
        const code = totp(base32Decode(totpSecret), Date.now() / 1000);
        return (await request('POST', '/identity/riverside/login/totp', { body: JSON.stringify({ ticket, code, audience: ['medshare-ta'] }) })).body.token as string;
      })();
      // Another platform with the same hospital names and issuers, but its own signing keys.
      const foreignDb = (await openTestDatabases())[0]!.db;
      const foreign = await createPlatform({ db: foreignDb, hospitals: ['st-marys', 'riverside'], adminTokens: ADMINS, kek: randomKeyEncryptionKey(), scrypt: FAST_SCRYPT });
      const foreignClient = new PlatformClient(foreign.urls);
      const { totpSecret } = await foreignClient.registerUser('st-marys', ADMIN, { username: 'mallory', password: 'a long enough passphrase', attributes: ['role:patient'], scopes: [] });
      const foreignToken = (await foreignClient.login('st-marys', 'mallory', 'a long enough passphrase', totpSecret)).token;
      await foreign.close();
      await foreignDb.close();
      for (const [method, path, body] of endpoints()) {
        for (const [what, token] of [['no token', undefined], ['garbage', 'not.a.jwt'], ['TA-only audience', taOnly], ['foreign signer', foreignToken]] as const) {
          const answer = await request(method, path, { token, body });
          assert.equal(answer.status, 401, `${what}: ${method} ${path}`);
          assert.match(answer.type, errorMedia(path));
        }
      }
    });

    test('a token without the SMART scope is refused (403) even when the delegation would let it decrypt', async () => {
      const login = async (username: string, scopes: string[]) => {
        const attributes = ['role:doctor', 'dept:cardiology'];
        const { totpSecret } = await cast.client.registerUser('riverside', ADMINS['riverside']!, { username, password: 'a long enough passphrase', attributes, scopes });
        return cast.client.loginReader('riverside', username, 'a long enough passphrase', totpSecret, attributes);
      };
      // The case: a cardiologist whose token grants only user/Patient.r read the lab records.
      const patientOnly = await login('scoped-patient-only', ['user/Patient.r', 'openid']);
      await assert.rejects(patientOnly.read(patient, 'lab'), (error: Error & { status?: number }) => error.status === 403 && /SMART scope to read lab/.test(error.message));
      await assert.rejects(patientOnly.search(patient, 'lab'), (error: Error & { status?: number }) => error.status === 403);
      // At her own hospital's gateway (another hospital's gateway does not take Riverside's tokens at all: 401).
      const viaGateway = await fetch(routeUrl(cast.urls, '/gateway/fhir/Patient/x/records?category=lab', 'riverside'), { headers: { authorization: `Bearer ${patientOnly.session.token}` } });
      assert.equal(viaGateway.status, 403);
      const elsewhere = await request('GET', `/gateway/fhir/Patient/x/records?category=lab`, { token: patientOnly.session.token });
      assert.equal(elsewhere.status, 401, "St Mary's gateway trusts only St Mary's tokens");
      // A patient/ scope is the patient's own, not a doctor's.
      await assert.rejects((await login('scoped-patient-context', ['patient/*.rs'])).read(patient, 'lab'), (error: Error & { status?: number }) => error.status === 403);
      // SMART v2 granular: Observation with category=laboratory reads lab; v1 read syntax too.
      const lab = bundle.entry.filter((e) => ['Observation', 'DiagnosticReport'].includes(e.resource.resourceType)).length;
      assert.equal((await (await login('scoped-v2-lab', ['user/Observation.rs?category=laboratory'])).read(patient, 'lab')).length, lab);
      assert.equal((await (await login('scoped-v1', ['user/Observation.read'])).read(patient, 'lab')).length, lab);
      const imagingOnly = await login('scoped-v2-imaging', ['user/Observation.rs?category=imaging']);
      await assert.rejects(imagingOnly.read(patient, 'lab'), (error: Error & { status?: number }) => error.status === 403);
    });

    test('insufficient roles are 403 problems', async () => {
      const chen = cast.chen.session.token;
      for (const [method, path, body] of endpoints()) {
        if (path.includes('/read') && !path.includes('emergency')) continue; // Chen may read (her delegation)
        if (path.startsWith('/cloud/patients') && method === 'GET' && path.includes('records')) continue; // and search
        const answer = await request(method, path, { token: chen, body });
        // A gateway trusts only its own hospital's tokens: Riverside's Dr Chen is unknown at St Mary's gateway.
        if (path.startsWith('/gateway/')) assert.equal(answer.status, 401, `${method} ${path}`);
        else assert.equal(answer.status, 403, `${method} ${path}`);
      }
      const patientToken = cast.patient.session.token;
      assert.equal((await request('POST', '/gateway/fhir', { token: patientToken, body: JSON.stringify(bundle) })).status, 403);
      assert.equal((await request('POST', '/gateway/patients', { token: patientToken, body: JSON.stringify({ fhirId: 'x', patient }) })).status, 403);
      assert.equal((await request('POST', `/cloud/patients/${patient}/emergency-read`, { token: patientToken, body: JSON.stringify({ category: 'lab', reason: 'x' }) })).status, 403);
    });

    test('malformed FHIR, oversized bodies and wrong content types are refused and store nothing', async () => {
      const gw = cast.gateway.session.token;
      const before = (await cast.patient.records()).length;
      const patientEntry = bundle.entry.find((e) => e.resource.resourceType === 'Patient')!;
      const cases: Array<[string, string | Buffer, string, number]> = [
        ['not JSON', '{"resourceType": "Bundle",', 'application/fhir+json', 400],
        ['an array', '[]', 'application/json', 400],
        ['no resourceType', JSON.stringify({ id: 'a' }), 'application/fhir+json', 400],
        ['bad resourceType', JSON.stringify({ resourceType: 'Observation<script>', id: 'a' }), 'application/fhir+json', 400],
        ['bad id', JSON.stringify({ resourceType: 'Observation', id: '../../etc/passwd', subject: { reference: `Patient/${patientEntry.resource.id}` } }), 'application/fhir+json', 400],
        ['searchset Bundle', JSON.stringify({ ...bundle, type: 'searchset' }), 'application/fhir+json', 400],
        ['empty Bundle', JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [] }), 'application/fhir+json', 400],
        ['nested Bundle', JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Bundle', id: 'b' } }] }), 'application/fhir+json', 400],
        ['one bad entry among good ones', JSON.stringify({ ...bundle, entry: [...bundle.entry, { resource: { resourceType: 'Observation' } }] }), 'application/fhir+json', 400],
        ['two patients', JSON.stringify({ ...bundle, entry: [...bundle.entry, { resource: { resourceType: 'Patient', id: 'other' } }] }), 'application/fhir+json', 400],
        ['unenrolled patient', JSON.stringify({ resourceType: 'Patient', id: 'nobody' }), 'application/fhir+json', 404],
        ['too many entries', JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry: Array.from({ length: 20_001 }, (_, i) => ({ resource: { resourceType: 'Basic', id: `b${i}` } })) }), 'application/fhir+json', 413],
        ['over 32 MiB', Buffer.alloc(33 * 1024 * 1024, 0x20), 'application/fhir+json', 413],
        ['text/plain', JSON.stringify(bundle), 'text/plain', 415],
        ['XML', '<Bundle xmlns="http://hl7.org/fhir"/>', 'application/fhir+xml', 415],
      ];
      for (const [what, body, type, status] of cases) {
        const answer = await request('POST', '/gateway/upload', { token: gw, body, type });
        assert.equal(answer.status, status, what);
        assert.match(answer.type, errorMedia('/gateway/upload'), what);
      }
      const bigCloudBody = JSON.stringify({ reencryptionKey: 'A'.repeat(300 * 1024) });
      assert.equal((await request('POST', `/cloud/patients/${patient}/delegations`, { token: cast.patient.session.token, body: bigCloudBody })).status, 413);
      assert.equal((await request('POST', `/cloud/patients/${patient}/delegations`, { token: cast.patient.session.token, body: JSON.stringify({ reencryptionKey: 'AAAA' }) })).status, 400);
      assert.equal((await cast.patient.records()).length, before);
    });

    test('unknown fields in a body or query are 400 problems naming the field, not silently dropped', async () => {
      const answers = [
        await request('POST', `/cloud/patients/${patient}/read`, { token: cast.chen.session.token, body: JSON.stringify({ category: 'lab', asRole: 'admin' }) }),
        await request('GET', `/cloud/patients/${patient}/records?category=lab&asRole=admin`, { token: cast.patient.session.token }),
        await request('PUT', `/cloud/patients/${patient}/platform-emergency`, { token: cast.patient.session.token, body: JSON.stringify({ allowed: true, policy: 'role:any' }) }),
      ];
      for (const [i, answer] of answers.entries()) {
        assert.equal(answer.status, 400);
        assert.match(answer.type, /^application\/problem\+json/);
        assert.match(answer.body.detail, i === 2 ? /must NOT have additional properties: 'policy'/ : /must NOT have additional properties: 'asRole'/);
      }
    });

    test('injection strings and path traversal in every parameter are 400/404 problems and change nothing', async () => {
      const token = cast.patient.session.token;
      const chen = cast.chen.session.token;
      const hostile = ["'; DROP TABLE cloud_records; --", "lab' OR '1'='1", '../../etc/passwd', '..%2F..%2Fetc', '%00', 'psn:aaaaaaaaaaaaaaaa/../../x', '$(id)', '<script>alert(1)</script>', 'a'.repeat(1000)];
      for (const value of hostile) {
        const enc = encodeURIComponent(value);
        const answers = [
          await request('GET', `/cloud/patients/${enc}/records`, { token }),
          await request('GET', `/cloud/patients/${patient}/records?category=${enc}`, { token }),
          await request('POST', `/cloud/patients/${patient}/read`, { token: chen, body: JSON.stringify({ category: value }) }),
          await request('POST', `/cloud/patients/${patient}/read`, { token: chen, body: JSON.stringify({ category: 'lab', recordIds: [value] }) }),
          await request('DELETE', `/cloud/patients/${patient}/delegations/${enc}`, { token }),
          await request('GET', `/cloud/patients/${enc}/platform-emergency`, { token }),
          await request('PUT', `/cloud/patients/${patient}/platform-emergency`, { token, body: JSON.stringify({ allowed: value }) }),
          await request('GET', `/gateway/fhir/Patient/${enc}/records?category=lab`, { token: chen }),
          await request('POST', '/gateway/patients', { token: cast.gateway.session.token, body: JSON.stringify({ fhirId: value, patient }) }),
          await request('POST', '/gateway/patients', { token: cast.gateway.session.token, body: JSON.stringify({ fhirId: 'x', patient: value }) }),
        ];
        answers.forEach((answer, i) => {
          assert.ok([400, 404].includes(answer.status), `${JSON.stringify(value).slice(0, 40)} #${i}: ${answer.status}`);
          assert.match(answer.type, errorMedia(i === 7 ? '/gateway/fhir' : '/cloud'), `${JSON.stringify(value).slice(0, 40)} #${i}: ${answer.status}`);
        });
      }
      assert.equal((await cast.chen.read(patient, 'lab')).length, bundle.entry.filter((e) => ['Observation', 'DiagnosticReport'].includes(e.resource.resourceType)).length);
    });

    test('requests beyond the per-address rate limit are 429 problems with Retry-After', async () => {
      const limited = await createPlatform({ db, hospitals: ['st-marys'], adminTokens: ADMINS, kek: cast.kek, scrypt: FAST_SCRYPT, requestsPerMinute: 5 });
      try {
        const base = limited.urls.cloud;
        const statuses: number[] = [];
        let last: Response | undefined;
        for (let i = 0; i < 7; i++) {
          last = await fetch(new URL(`/cloud/patients/${patient}/records`, base));
          statuses.push(last.status);
        }
        assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429]);
        assert.match(last!.headers.get('content-type') ?? '', /^application\/problem\+json/);
        assert.ok(Number(last!.headers.get('retry-after')) > 0);
      } finally {
        await limited.close();
      }
    });

    test('expired and revoked tokens are refused', async () => {
      const chen = cast.chen.session.token;
      assert.equal((await request('GET', `/cloud/patients/${patient}/records?category=lab`, { token: chen })).status, 200);
      offsetMs = 10 * 60 * 1000;
      try {
        const answer = await request('GET', `/cloud/patients/${patient}/records?category=lab`, { token: chen });
        assert.equal(answer.status, 401);
        assert.match(answer.body.detail, /expired|exp/);
      } finally {
        offsetMs = 0;
      }
      const patientToken = cast.patient.session.token;
      assert.equal((await request('POST', '/identity/st-marys/logout', { token: patientToken })).status, 204);
      assert.equal((await request('GET', `/cloud/patients/${patient}/access-log`, { token: patientToken })).status, 401);
    });

    test('nothing the cloud stores or logs contains plaintext, identifiers or secrets', async () => {
      await cast.platform.ledger.flush();
      const stored = (await cloudContents(cloudDb)).toString('latin1');
      const logs = logLines.join('');
      assert.ok(stored.length > 10_000 && logs.length > 1_000, 'there is something to scan');
      const person = bundle.entry.find((e) => e.resource.resourceType === 'Patient')!.resource as unknown as { name: Array<{ family: string; given: string[] }> };
      const needles = [person.name[0]!.family, person.name[0]!.given[0]!, 'Total Cholesterol', 'mg/dL', '"Observation"', '"DiagnosticReport"', ...bundle.entry.map((e) => e.resource.id)];
      // The hospitals' identity secrets are in their own databases; cloudContents reads every table of the cloud's.
      // (wrapped by the platform's key-encryption key: unwrapped here to know what to look for).
      const keyRows = (await db.query<{ hospital: string; kid: string; private_key_wrapped: Uint8Array }>('SELECT hospital, kid, private_key_wrapped FROM identity_signing_keys')).rows;
      const signingKeys = await Promise.all(keyRows.map(async (r) => {
        const jwk = await cast.kek.unwrap(r.private_key_wrapped, `identity_signing_keys.private_key_wrapped|${r.hospital}|${r.kid}`);
        return (JSON.parse(Buffer.from(jwk).toString('utf8')) as { d: string }).d;
      }));
      const userRows = (await db.query<{ hospital: string; id: string; totp_secret_wrapped: Uint8Array; password_hash: string }>(
        'SELECT hospital, id, totp_secret_wrapped, password_hash FROM identity_users',
      )).rows;
      const accounts = await Promise.all(userRows.map(async (r) => ({
        totp_secret: Buffer.from(await cast.kek.unwrap(r.totp_secret_wrapped, `identity_users.totp_secret_wrapped|${r.hospital}|${r.id}`)).toString('utf8'),
        password_hash: r.password_hash,
      })));
      assert.ok(signingKeys.length >= 2 && accounts.length >= 5);
      needles.push(...signingKeys, ...accounts.flatMap((a) => [a.totp_secret, a.password_hash]));
      for (const text of [stored, logs]) {
        for (const needle of needles) assert.ok(!text.includes(needle), `found ${needle}`);
        for (const token of [cast.chen.session.token, cast.patient.session.token, cast.gateway.session.token]) assert.ok(!text.includes(token.split('.')[2]!), 'a token');
        assert.ok(!text.includes(Buffer.from(cast.patient.key.masterSecret).toString('latin1')), 'the patient secret');
        assert.ok(!text.includes(Buffer.from(cast.patient.key.masterSecret).toString('hex')), 'the patient secret (hex)');
        assert.ok(!text.includes(ADMIN), 'the administrator token');
      }
      assert.ok(abe.satisfies('role:doctor, dept:cardiology', LAB_POLICY));
    });
  });
}
