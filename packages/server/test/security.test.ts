/**
 * Refusals and hostile input over real HTTP: every endpoint refuses missing, invalid, foreign, wrong-audience,
 * expired, revoked and insufficient tokens, and a stolen token without its device key's DPoP proof (RFC 9449); malformed FHIR, oversized bodies, wrong content types, injection
 * strings and path traversal are clear 4xx problems that change nothing; and nothing the cloud stores or logs
 * contains plaintext.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { abe, UnavailableError } from '@medshare/crypto';
import { DpopKey } from '@medshare/identity';
import { openDatabase, openTestDatabases, randomKeyEncryptionKey, type TestDatabase } from '@medshare/db';
import { cloudContents, createPlatform, PlatformClient, remoteSessionCheck, type Session } from '../src/index.ts';
import { ADMIN, ADMINS, FAST_SCRYPT, LAB_POLICY, routeUrl, sampleBundle, sessionHeaders, sharedDatabases, startCast, type Cast } from './harness.ts';

/** Errors are problem+json, except on FHIR routes, where they are OperationOutcomes in application/fhir+json. */
/** A problem's `detail`, or an OperationOutcome's first diagnostics (FHIR routes) as `detail`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON body of either shape
const withDetail = (body: any): any => (body.resourceType === 'OperationOutcome' ? { ...body, detail: body.issue?.[0]?.diagnostics } : body);
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

    /** `as`: the session's token with a fresh DPoP proof; `token`: a bare bearer token (what a thief holds). */
    const request = async (method: string, path: string, options: { as?: Session; token?: string; body?: string | Buffer; type?: string } = {}) => {
      const headers: Record<string, string> = options.as === undefined ? {} : await sessionHeaders(options.as, method, cast.urlFor(path));
      if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
      if (options.body !== undefined) headers['content-type'] = options.type ?? 'application/json';
      const response = await fetch(cast.urlFor(path), { method, headers, body: options.body });
      const text = await response.text();
      return { status: response.status, type: response.headers.get('content-type') ?? '', body: text ? withDetail(JSON.parse(text)) : undefined };
    };
    // Every authenticated endpoint, with a body it would accept.
    const endpoints = () =>
      [
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
        ['GET', '/gateway/writer-keys', undefined],
      ] as const;

    before(async () => {
      const stream = new PassThrough();
      stream.on('data', (chunk: Buffer) => logLines.push(chunk.toString('utf8')));
      cast = await startCast(db, {
        now,
        logger: { stream },
        kek,
        requestsPerMinute: 10_000,
        databases: { ...sharedDatabases(db, ['st-marys', 'riverside']), cloud: cloudDb },
      });
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
        const { totpSecret } = await cast.client.registerUser('riverside', ADMINS['riverside']!, {
          username: 'ta-only',
          password: 'a long enough passphrase',
          attributes: ['role:doctor'],
          scopes: [],
        });
        const { ticket } = (
          await request('POST', '/identity/riverside/login/password', { body: JSON.stringify({ username: 'ta-only', password: 'a long enough passphrase' }) })
        ).body;
        const { totp, base32Decode } = await import('@medshare/identity');
        const code = totp(base32Decode(totpSecret), Date.now() / 1000);
        return (await request('POST', '/identity/riverside/login/totp', { body: JSON.stringify({ ticket, code, audience: ['medshare-ta'] }) })).body
          .token as string;
      })();
      // Another platform with the same hospital names and issuers, but its own signing keys.
      // PGlite in memory (openTestDatabases would also open, and leave behind, a PostgreSQL schema this test never uses).
      const foreignDb = await openDatabase();
      const foreign = await createPlatform({
        db: foreignDb,
        hospitals: ['st-marys', 'riverside'],
        adminTokens: ADMINS,
        kek: randomKeyEncryptionKey(),
        scrypt: FAST_SCRYPT,
      });
      const foreignClient = new PlatformClient(foreign.urls);
      const { totpSecret } = await foreignClient.registerUser('st-marys', ADMIN, {
        username: 'mallory',
        password: 'a long enough passphrase',
        attributes: ['role:patient'],
        scopes: [],
      });
      const foreignSession = await foreignClient.login('st-marys', 'mallory', 'a long enough passphrase', totpSecret);
      await foreign.close();
      await foreignDb.close();
      for (const [method, path, body] of endpoints()) {
        for (const [what, token] of [
          ['no token', undefined],
          ['garbage', 'not.a.jwt'],
          ['TA-only audience', taOnly],
        ] as const) {
          const answer = await request(method, path, { token, body });
          assert.equal(answer.status, 401, `${what}: ${method} ${path}`);
          assert.match(answer.type, errorMedia(path));
        }
        // With a valid proof of its own key: the signature is what fails.
        const answer = await request(method, path, { as: foreignSession, body });
        assert.equal(answer.status, 401, `foreign signer: ${method} ${path}`);
        assert.match(answer.body.detail, /signature|unknown key/, `foreign signer: ${method} ${path}`);
      }
    });

    test('a stolen access token is refused at the cloud and the gateway without the device key, with a replayed proof, or with a proof for another request', async () => {
      // The victims: Dr Chen at the cloud, a St Mary's doctor at St Mary's gateway (which takes only its own hospital's tokens).
      const stMarysDoctor = await cast.registerAndLogin('st-marys', 'stolen-token-victim', ['role:doctor']);
      const thief = await DpopKey.generate();
      const send = (method: string, path: string, headers: Record<string, string>, body?: string) =>
        fetch(cast.urlFor(path), { method, headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body });
      const refusal = async (response: Response, pattern: RegExp, what: string) => {
        const problem = withDetail(await response.json()) as { detail: string };
        assert.equal(response.status, 401, `${what}: ${problem.detail}`);
        assert.match(problem.detail, pattern, what);
        assert.match(response.headers.get('www-authenticate') ?? '', /^DPoP /, what);
      };
      for (const [method, path, body] of endpoints()) {
        const url = cast.urlFor(path);
        const where = `${method} ${path}`;
        const victim = path.startsWith('/gateway/') ? stMarysDoctor : cast.chen.session;
        const stolen = victim.token;
        await refusal(await send(method, path, { authorization: `Bearer ${stolen}` }, body), /DPoP/, `the token alone as Bearer: ${where}`);
        await refusal(await send(method, path, { authorization: `DPoP ${stolen}` }, body), /proof of the device key is required/, `no proof: ${where}`);
        const thiefProof = await thief.proof(method, url, { accessToken: stolen });
        await refusal(
          await send(method, path, { authorization: `DPoP ${stolen}`, dpop: thiefProof }, body),
          /another key/,
          `a proof by the thief's key: ${where}`,
        );
        // The victim's own proofs, captured on the wire: for another URL, another method, another token, or used once already.
        const otherUrl = await victim.device.dpop.proof(method, new URL('/cloud/patients/elsewhere/access-log', cast.base), { accessToken: stolen });
        await refusal(
          await send(method, path, { authorization: `DPoP ${stolen}`, dpop: otherUrl }, body),
          /another request/,
          `a proof for another URL: ${where}`,
        );
        const otherMethod = await victim.device.dpop.proof(method === 'GET' ? 'DELETE' : 'GET', url, { accessToken: stolen });
        await refusal(
          await send(method, path, { authorization: `DPoP ${stolen}`, dpop: otherMethod }, body),
          /another request/,
          `a proof for another method: ${where}`,
        );
        const otherToken = await victim.device.dpop.proof(method, url, { accessToken: cast.patient.session.token });
        await refusal(
          await send(method, path, { authorization: `DPoP ${stolen}`, dpop: otherToken }, body),
          /another access token/,
          `a proof for another token: ${where}`,
        );
        const headers = await sessionHeaders(victim, method, url);
        const first = await send(method, path, headers, body);
        assert.notEqual(first.status, 401, `the victim's own request: ${where}`);
        await first.arrayBuffer();
        await refusal(await send(method, path, headers, body), /already been used/, `a replayed proof: ${where}`);
        await refusal(
          await send(method, path, { ...headers, authorization: `Bearer ${stolen}` }, body),
          /Authorization: DPoP/,
          `the token as Bearer with a proof: ${where}`,
        );
      }
    });

    test("at the cloud a proof by the token's issuing hospital (its gateway calling for its user) is accepted, one by another hospital is not", async () => {
      const keyOf = (name: string) => cast.platform.services.hospitals.find((h) => h.name === name)!.identity.keys.proofKey();
      const url = cast.urlFor(`/cloud/patients/${patient}/records?category=lab`);
      const chen = cast.chen.session.token; // a Riverside token
      const withProof = async (key: Awaited<ReturnType<typeof keyOf>>) =>
        fetch(url, { headers: { authorization: `DPoP ${chen}`, dpop: await key.proof('GET', url, { accessToken: chen }) } });
      const foreign = await withProof(await keyOf('st-marys'));
      assert.equal(foreign.status, 401);
      assert.match(((await foreign.json()) as { detail: string }).detail, /another key/);
      assert.equal((await withProof(await keyOf('riverside'))).status, 200);
      // A hospital gateway itself accepts only its users' own device keys.
      const gatewayUrl = cast.urlFor('/gateway/fhir/Patient/x/records?category=lab');
      const stMarys = cast.gateway.session.token;
      const atGateway = await fetch(gatewayUrl, {
        headers: { authorization: `DPoP ${stMarys}`, dpop: await (await keyOf('st-marys')).proof('GET', gatewayUrl, { accessToken: stMarys }) },
      });
      assert.equal(atGateway.status, 401);
    });

    test('a token never bound to a device key (login without a DPoP proof) is refused on every endpoint', async () => {
      const { totpSecret } = await cast.client.registerUser('riverside', ADMINS['riverside']!, {
        username: 'unbound',
        password: 'a long enough passphrase',
        attributes: ['role:doctor'],
        scopes: ['user/*.rs'],
      });
      const { ticket } = (
        await request('POST', '/identity/riverside/login/password', { body: JSON.stringify({ username: 'unbound', password: 'a long enough passphrase' }) })
      ).body;
      const { totp, base32Decode } = await import('@medshare/identity');
      const code = totp(base32Decode(totpSecret), Date.now() / 1000);
      const unbound = (await request('POST', '/identity/riverside/login/totp', { body: JSON.stringify({ ticket, code, audience: ['medshare-platform'] }) }))
        .body.token as string;
      // And one of St Mary's, for St Mary's gateway.
      const stMarys = await cast.client.registerUser('st-marys', ADMIN, {
        username: 'unbound',
        password: 'a long enough passphrase',
        attributes: ['role:doctor'],
        scopes: ['user/*.rs'],
      });
      const second = (
        await request('POST', '/identity/st-marys/login/password', { body: JSON.stringify({ username: 'unbound', password: 'a long enough passphrase' }) })
      ).body;
      const stMarysCode = totp(base32Decode(stMarys.totpSecret), Date.now() / 1000);
      const unboundAtStMarys = (
        await request('POST', '/identity/st-marys/login/totp', {
          body: JSON.stringify({ ticket: second.ticket, code: stMarysCode, audience: ['medshare-platform'] }),
        })
      ).body.token as string;
      for (const [method, path, body] of endpoints()) {
        const answer = await request(method, path, { token: path.startsWith('/gateway/') ? unboundAtStMarys : unbound, body });
        assert.equal(answer.status, 401, `${method} ${path}`);
        assert.match(answer.body.detail, /not bound to a device key/);
      }
    });

    test('a stale DPoP proof is refused', async () => {
      const session = await cast.registerAndLogin('riverside', 'stale-proof', ['role:doctor']);
      const path = `/cloud/patients/${patient}/records?category=lab`;
      const headers = await sessionHeaders(session, 'GET', new URL(path, cast.base));
      offsetMs = 90_000;
      try {
        const answer = await fetch(new URL(path, cast.base), { headers });
        assert.equal(answer.status, 401);
        assert.match(((await answer.json()) as { detail: string }).detail, /not fresh|not valid/);
      } finally {
        offsetMs = 0;
      }
    });

    test('a read-only token is refused on upload (403), and a write scope for other resource types does not do', async () => {
      const login = async (username: string, scopes: string[]) => {
        const { totpSecret } = await cast.client.registerUser('st-marys', ADMIN, {
          username,
          password: 'a long enough passphrase',
          attributes: ['role:gateway'],
          scopes,
        });
        return cast.client.login('st-marys', username, 'a long enough passphrase', totpSecret);
      };
      const before = (await cast.patient.records()).length;
      for (const [what, scopes] of [
        ['read-only v1', ['system/*.read']],
        ['read-only v2', ['user/*.rs']],
        ['Patient only', ['system/Patient.write']],
        ['lab writes only', ['system/*.c?category=laboratory']],
        ['patient context', ['patient/*.write']],
        ['no scope', []],
      ] as const) {
        const answer = await request('POST', '/gateway/fhir', {
          as: await login(`gw-${what.toLowerCase().replaceAll(' ', '-')}`, [...scopes]),
          body: JSON.stringify(bundle),
          type: 'application/fhir+json',
        });
        assert.equal(answer.status, 403, what);
        assert.match(answer.body.detail, /SMART scope to write/, what);
      }
      assert.equal((await cast.patient.records()).length, before, 'nothing stored');
      // A v2 create scope on every type it holds uploads (the same bundle again: accepted, nothing new to store).
      const types = [...new Set(bundle.entry.map((e) => e.resource.resourceType))];
      const writer = await login(
        'gw-v2-create',
        types.map((t) => `system/${t}.c`),
      );
      const answer = await request('POST', '/gateway/upload', { as: writer, body: JSON.stringify(bundle), type: 'application/fhir+json' });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.received, bundle.entry.length);
    });

    test('a token without the SMART scope is refused (403) even when the delegation would let it decrypt', async () => {
      const login = async (username: string, scopes: string[]) => {
        const attributes = ['role:doctor', 'dept:cardiology'];
        const { totpSecret } = await cast.client.registerUser('riverside', ADMINS['riverside']!, {
          username,
          password: 'a long enough passphrase',
          attributes,
          scopes,
        });
        return cast.client.loginReader('riverside', username, 'a long enough passphrase', totpSecret, attributes);
      };
      // The issue's case: a cardiologist whose token grants only user/Patient.r read the lab records.
      const patientOnly = await login('scoped-patient-only', ['user/Patient.r', 'openid']);
      await assert.rejects(
        patientOnly.read(patient, 'lab'),
        (error: Error & { status?: number }) => error.status === 403 && /SMART scope to read lab/.test(error.message),
      );
      await assert.rejects(patientOnly.search(patient, 'lab'), (error: Error & { status?: number }) => error.status === 403);
      // At her own hospital's gateway (another hospital's gateway does not take Riverside's tokens at all: 401).
      const riversideGateway = routeUrl(cast.urls, '/gateway/fhir/Patient/x/records?category=lab', 'riverside');
      const viaGateway = await fetch(riversideGateway, { headers: await sessionHeaders(patientOnly.session, 'GET', riversideGateway) });
      assert.equal(viaGateway.status, 403);
      const elsewhere = await request('GET', `/gateway/fhir/Patient/x/records?category=lab`, { token: patientOnly.session.token });
      assert.equal(elsewhere.status, 401, "St Mary's gateway trusts only St Mary's tokens");
      // A patient/ scope is the patient's own, not a doctor's.
      await assert.rejects(
        (await login('scoped-patient-context', ['patient/*.rs'])).read(patient, 'lab'),
        (error: Error & { status?: number }) => error.status === 403,
      );
      // SMART v2 granular: Observation with category=laboratory reads lab; v1 read syntax too.
      const lab = bundle.entry.filter((e) => ['Observation', 'DiagnosticReport'].includes(e.resource.resourceType)).length;
      assert.equal((await (await login('scoped-v2-lab', ['user/Observation.rs?category=laboratory'])).read(patient, 'lab')).length, lab);
      assert.equal((await (await login('scoped-v1', ['user/Observation.read'])).read(patient, 'lab')).length, lab);
      const imagingOnly = await login('scoped-v2-imaging', ['user/Observation.rs?category=imaging']);
      await assert.rejects(imagingOnly.read(patient, 'lab'), (error: Error & { status?: number }) => error.status === 403);
    });

    test('insufficient roles are 403 problems', async () => {
      const chen = cast.chen.session;
      for (const [method, path, body] of endpoints()) {
        if (path.includes('/read') && !path.includes('emergency')) continue; // Chen may read (her delegation)
        if (path.startsWith('/cloud/patients') && method === 'GET' && path.includes('records')) continue; // and search
        const answer = await request(method, path, { as: chen, body });
        // A gateway trusts only its own hospital's tokens: Riverside's Dr Chen is unknown at St Mary's gateway.
        if (path.startsWith('/gateway/')) assert.equal(answer.status, 401, `${method} ${path}`);
        else assert.equal(answer.status, 403, `${method} ${path}`);
      }
      const patientSession = cast.patient.session;
      assert.equal((await request('POST', '/gateway/fhir', { as: patientSession, body: JSON.stringify(bundle) })).status, 403);
      assert.equal((await request('POST', '/gateway/patients', { as: patientSession, body: JSON.stringify({ fhirId: 'x', patient }) })).status, 403);
      assert.equal(
        (await request('POST', `/cloud/patients/${patient}/emergency-read`, { as: patientSession, body: JSON.stringify({ category: 'lab', reason: 'x' }) }))
          .status,
        403,
      );
    });

    test('malformed FHIR, oversized bodies and wrong content types are refused and store nothing', async () => {
      const gw = cast.gateway.session;
      const before = (await cast.patient.records()).length;
      const patientEntry = bundle.entry.find((e) => e.resource.resourceType === 'Patient')!;
      const cases: Array<[string, string | Buffer, string, number]> = [
        ['not JSON', '{"resourceType": "Bundle",', 'application/fhir+json', 400],
        ['an array', '[]', 'application/json', 400],
        ['no resourceType', JSON.stringify({ id: 'a' }), 'application/fhir+json', 400],
        ['bad resourceType', JSON.stringify({ resourceType: 'Observation<script>', id: 'a' }), 'application/fhir+json', 400],
        [
          'bad id',
          JSON.stringify({ resourceType: 'Observation', id: '../../etc/passwd', subject: { reference: `Patient/${patientEntry.resource.id}` } }),
          'application/fhir+json',
          400,
        ],
        ['searchset Bundle', JSON.stringify({ ...bundle, type: 'searchset' }), 'application/fhir+json', 400],
        ['empty Bundle', JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [] }), 'application/fhir+json', 400],
        [
          'nested Bundle',
          JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Bundle', id: 'b' } }] }),
          'application/fhir+json',
          400,
        ],
        [
          'one bad entry among good ones',
          JSON.stringify({ ...bundle, entry: [...bundle.entry, { resource: { resourceType: 'Observation' } }] }),
          'application/fhir+json',
          400,
        ],
        [
          'two patients',
          JSON.stringify({ ...bundle, entry: [...bundle.entry, { resource: { resourceType: 'Patient', id: 'other' } }] }),
          'application/fhir+json',
          400,
        ],
        ['unenrolled patient', JSON.stringify({ resourceType: 'Patient', id: 'nobody' }), 'application/fhir+json', 404],
        [
          'too many entries',
          JSON.stringify({
            resourceType: 'Bundle',
            type: 'batch',
            entry: Array.from({ length: 20_001 }, (_, i) => ({ resource: { resourceType: 'Basic', id: `b${i}` } })),
          }),
          'application/fhir+json',
          413,
        ],
        ['over 32 MiB', Buffer.alloc(33 * 1024 * 1024, 0x20), 'application/fhir+json', 413],
        ['text/plain', JSON.stringify(bundle), 'text/plain', 415],
        ['XML', '<Bundle xmlns="http://hl7.org/fhir"/>', 'application/fhir+xml', 415],
      ];
      for (const [what, body, type, status] of cases) {
        const answer = await request('POST', '/gateway/upload', { as: gw, body, type });
        assert.equal(answer.status, status, what);
        assert.match(answer.type, errorMedia('/gateway/upload'), what);
      }
      const bigCloudBody = JSON.stringify({ reencryptionKey: 'A'.repeat(300 * 1024) });
      assert.equal((await request('POST', `/cloud/patients/${patient}/delegations`, { as: cast.patient.session, body: bigCloudBody })).status, 413);
      assert.equal(
        (await request('POST', `/cloud/patients/${patient}/delegations`, { as: cast.patient.session, body: JSON.stringify({ reencryptionKey: 'AAAA' }) }))
          .status,
        400,
      );
      assert.equal((await cast.patient.records()).length, before);
    });

    test('unknown fields in a body or query are 400 problems naming the field, not silently dropped', async () => {
      const answers = [
        await request('POST', `/cloud/patients/${patient}/read`, { as: cast.chen.session, body: JSON.stringify({ category: 'lab', asRole: 'admin' }) }),
        await request('GET', `/cloud/patients/${patient}/records?category=lab&asRole=admin`, { as: cast.patient.session }),
        await request('PUT', `/cloud/patients/${patient}/platform-emergency`, {
          as: cast.patient.session,
          body: JSON.stringify({ allowed: true, policy: 'role:any' }),
        }),
      ];
      for (const [i, answer] of answers.entries()) {
        assert.equal(answer.status, 400);
        assert.match(answer.type, /^application\/problem\+json/);
        assert.match(answer.body.detail, i === 2 ? /must NOT have additional properties: 'policy'/ : /must NOT have additional properties: 'asRole'/);
      }
    });

    test('injection strings and path traversal in every parameter are 400/404 problems and change nothing', async () => {
      const own = cast.patient.session;
      const chen = cast.chen.session;
      // St Mary's gateway takes only St Mary's tokens.
      const stMarysDoctor = await cast.registerAndLogin('st-marys', 'injection-doctor', ['role:doctor']);
      const hostile = [
        "'; DROP TABLE cloud_records; --",
        "lab' OR '1'='1",
        '../../etc/passwd',
        '..%2F..%2Fetc',
        '%00',
        'psn:aaaaaaaaaaaaaaaa/../../x',
        '$(id)',
        '<script>alert(1)</script>',
        'a'.repeat(1000),
      ];
      for (const value of hostile) {
        const enc = encodeURIComponent(value);
        const answers = [
          await request('GET', `/cloud/patients/${enc}/records`, { as: own }),
          await request('GET', `/cloud/patients/${patient}/records?category=${enc}`, { as: own }),
          await request('POST', `/cloud/patients/${patient}/read`, { as: chen, body: JSON.stringify({ category: value }) }),
          await request('POST', `/cloud/patients/${patient}/read`, { as: chen, body: JSON.stringify({ category: 'lab', recordIds: [value] }) }),
          await request('DELETE', `/cloud/patients/${patient}/delegations/${enc}`, { as: own }),
          await request('GET', `/cloud/patients/${enc}/platform-emergency`, { as: own }),
          await request('PUT', `/cloud/patients/${patient}/platform-emergency`, { as: own, body: JSON.stringify({ allowed: value }) }),
          await request('GET', `/gateway/fhir/Patient/${enc}/records?category=lab`, { as: stMarysDoctor }),
          await request('POST', '/gateway/patients', { as: cast.gateway.session, body: JSON.stringify({ fhirId: value, patient }) }),
          await request('POST', '/gateway/patients', { as: cast.gateway.session, body: JSON.stringify({ fhirId: 'x', patient: value }) }),
        ];
        answers.forEach((answer, i) => {
          assert.ok([400, 404].includes(answer.status), `${JSON.stringify(value).slice(0, 40)} #${i}: ${answer.status}`);
          assert.match(answer.type, errorMedia(i === 7 ? '/gateway/fhir' : '/cloud'), `${JSON.stringify(value).slice(0, 40)} #${i}: ${answer.status}`);
        });
      }
      assert.equal(
        (await cast.chen.read(patient, 'lab')).length,
        bundle.entry.filter((e) => ['Observation', 'DiagnosticReport'].includes(e.resource.resourceType)).length,
      );
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
        // The routes relying parties call for every token they verify are not limited (the cloud is one address for all its users).
        const hospital = limited.urls.hospitals['st-marys']!;
        for (let i = 0; i < 7; i++) {
          const status = await fetch(new URL('/identity/st-marys/sso/session-status', hospital), {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ sessions: ['x'] }),
          });
          assert.equal(status.status, 200);
        }
      } finally {
        await limited.close();
      }
    });

    test('behind a trusted proxy a proof names the public URL and throttling counts each client; without trust the forwarded headers are ignored', async () => {
      const path = `/cloud/patients/${patient}/records?category=lab`;
      const publicUrl = new URL(path, 'https://medshare.example');
      const forwarded = (client: string) => ({ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'medshare.example', 'x-forwarded-for': client });
      // The test platform trusts no proxy: a proof for the public URL is for another request than the one it sees.
      const untrusted = await fetch(new URL(path, cast.base), {
        headers: { ...forwarded('10.0.0.9'), ...(await sessionHeaders(cast.chen.session, 'GET', publicUrl)) },
      });
      assert.equal(untrusted.status, 401);
      assert.match(((await untrusted.json()) as { detail: string }).detail, /another request/);
      const proxied = await createPlatform({
        databases: { ...sharedDatabases(db, ['st-marys', 'riverside']), cloud: cloudDb },
        hospitals: ['st-marys', 'riverside'],
        adminTokens: ADMINS,
        kek: cast.kek,
        scrypt: FAST_SCRYPT,
        trustProxy: ['127.0.0.1'],
        requestsPerMinute: 4,
      });
      try {
        const base = proxied.urls.cloud;
        const viaProxy = await fetch(new URL(path, base), {
          headers: { ...forwarded('10.0.0.9'), ...(await sessionHeaders(cast.chen.session, 'GET', publicUrl)) },
        });
        assert.equal(viaProxy.status, 200, `the proof for the public URL is accepted behind the trusted proxy: ${await viaProxy.text()}`);
        const statuses = async (client: string, n: number) => {
          const seen: number[] = [];
          for (let i = 0; i < n; i++) seen.push((await fetch(new URL(path, base), { headers: forwarded(client) })).status);
          return seen;
        };
        assert.deepEqual(await statuses('10.0.0.1', 5), [401, 401, 401, 401, 429], 'one client over its budget');
        assert.deepEqual(await statuses('10.0.0.2', 1), [401], 'another client behind the same proxy keeps its own');
      } finally {
        await proxied.close();
      }
    });

    test("one hospital's administrator token registers and administers nobody at another hospital", async () => {
      const stMarys = ADMINS['st-marys']!;
      const body = JSON.stringify({ username: 'level5', password: 'a long enough passphrase', attributes: ['role:doctor', 'level=5'], scopes: ['user/*.rs'] });
      assert.ok([401, 403].includes((await request('POST', '/identity/riverside/users', { token: stMarys, body })).status), 'register at Riverside');
      for (const action of ['disable', 'revoke-sessions', 'unlock']) {
        assert.ok([401, 403].includes((await request('POST', `/identity/riverside/admin/users/chen/${action}`, { token: stMarys })).status), action);
      }
      const attributes = await request('PUT', '/identity/riverside/admin/users/chen/attributes', {
        token: stMarys,
        body: JSON.stringify({ attributes: ['role:doctor', 'dept:cardiology', 'level=5'] }),
      });
      assert.ok([401, 403].includes(attributes.status), 'attributes');
      assert.equal(
        (await cast.chen.read(patient, 'lab')).length,
        bundle.entry.filter((e) => ['Observation', 'DiagnosticReport'].includes(e.resource.resourceType)).length,
        'Chen is untouched',
      );
      assert.equal((await request('POST', '/identity/riverside/users', { token: ADMINS['riverside']!, body })).status, 201, "Riverside's own token does");
    });

    test('expired and revoked tokens are refused', async () => {
      const chen = cast.chen.session;
      assert.equal((await request('GET', `/cloud/patients/${patient}/records?category=lab`, { as: chen })).status, 200);
      offsetMs = 10 * 60 * 1000;
      try {
        const answer = await request('GET', `/cloud/patients/${patient}/records?category=lab`, { as: chen });
        assert.equal(answer.status, 401);
        assert.match(answer.body.detail, /expired|exp/);
      } finally {
        offsetMs = 0;
      }
      assert.equal((await request('POST', '/identity/st-marys/logout', { token: cast.patient.session.token })).status, 204);
      assert.equal((await request('GET', `/cloud/patients/${patient}/access-log`, { as: cast.patient.session })).status, 401);
    });

    test('batched session checks: a session revoked amid a burst of reads is refused on its very next request, the others keep reading', async () => {
      // The cloud asks the issuer about many sessions in one request (remoteSessionCheck); no answer may outlive a revocation.
      const victim = await cast.registerAndLogin('st-marys', 'burst-victim', ['role:doctor']);
      const bystander = await cast.registerAndLogin('st-marys', 'burst-bystander', ['role:doctor']);
      const burst = (sessions: Session[]) =>
        Promise.all(sessions.flatMap((s) => Array.from({ length: 6 }, () => request('GET', `/cloud/patients/${patient}/writers`, { as: s }))));
      // A non-owner is refused with 403 after its token and session checked out; 401 would mean the session check failed.
      assert.deepEqual([...new Set((await burst([victim, bystander])).map((a) => a.status))], [403]);
      const during = burst([bystander, victim, bystander]);
      assert.equal((await request('POST', '/identity/st-marys/logout', { token: victim.token })).status, 204);
      await during;
      const [victimNext, bystanderNext] = await Promise.all([
        request('GET', `/cloud/patients/${patient}/writers`, { as: victim }),
        request('GET', `/cloud/patients/${patient}/writers`, { as: bystander }),
      ]);
      assert.equal(victimNext.status, 401);
      assert.match(victimNext.body.detail, /revoked/);
      assert.equal(bystanderNext.status, 403);
      // The issuer's batch route refuses hostile bodies with 400 and answers nothing for sessions it does not hold.
      const statusUrl = cast.urlFor('/identity/st-marys/sso/session-status');
      const post = (body: unknown) => fetch(statusUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      for (const hostile of [
        {},
        { sessions: [] },
        { sessions: ['x'.repeat(129)] },
        { sessions: Array(257).fill('a') },
        { sessions: [{}] },
        { sessions: ['a'], extra: 1 },
      ]) {
        assert.equal((await post(hostile)).status, 400, JSON.stringify(hostile).slice(0, 60));
      }
      assert.deepEqual(await (await post({ sessions: ["' OR 1=1 --", 'no-such-session'] })).json(), { active: [false, false] });
    });

    test('batched session checks fail closed: an unreachable issuer is UnavailableError for every waiting check, a miscounted answer revokes them all', async () => {
      const unreachable = remoteSessionCheck(new URL('http://127.0.0.1:1/identity/x/'), 2_000);
      const waiting = await Promise.allSettled(['a', 'b', 'c'].map((sid) => unreachable(sid)));
      assert.ok(
        waiting.every((r) => r.status === 'rejected' && r.reason instanceof UnavailableError),
        JSON.stringify(waiting),
      );
      // A hostile or broken issuer: two answers for one session, a string for a boolean, an object, not JSON.
      const answers = ['{"active":[true,true]}', '{"active":["yes"]}', '{"active":{"0":true}}', 'true'];
      const issuer = createServer((request, response) => {
        request.resume();
        request.on('end', () => response.setHeader('content-type', 'application/json').end(answers.shift()));
      });
      await new Promise<void>((resolve) => issuer.listen(0, '127.0.0.1', resolve));
      try {
        const check = remoteSessionCheck(new URL(`http://127.0.0.1:${(issuer.address() as AddressInfo).port}/`));
        for (let round = 0; round < 2; round++) assert.deepEqual(await Promise.all([check('s1'), check('s2')]), [false, false]);
        assert.equal(answers.length, 0, 'each round was two requests (one check on its way, the other waiting for it)');
      } finally {
        issuer.close();
      }
    });

    test('nothing the cloud stores or logs contains plaintext, identifiers or secrets', async () => {
      await cast.platform.ledger.flush();
      const stored = (await cloudContents(cloudDb)).toString('latin1');
      const logs = logLines.join('');
      assert.ok(stored.length > 10_000 && logs.length > 1_000, 'there is something to scan');
      const person = bundle.entry.find((e) => e.resource.resourceType === 'Patient')!.resource as unknown as {
        name: Array<{ family: string; given: string[] }>;
      };
      const needles = [
        person.name[0]!.family,
        person.name[0]!.given[0]!,
        'Total Cholesterol',
        'mg/dL',
        '"Observation"',
        '"DiagnosticReport"',
        ...bundle.entry.map((e) => e.resource.id),
      ];
      // The hospitals' identity secrets are in their own databases; cloudContents reads every table of the cloud's.
      // (wrapped by the platform's key-encryption key: unwrapped here to know what to look for).
      const keyRows = (
        await db.query<{ hospital: string; kid: string; private_key_wrapped: Uint8Array }>(
          'SELECT hospital, kid, private_key_wrapped FROM identity_signing_keys',
        )
      ).rows;
      const signingKeys = await Promise.all(
        keyRows.map(async (r) => {
          const jwk = await cast.kek.unwrap(r.private_key_wrapped, `identity_signing_keys.private_key_wrapped|${r.hospital}|${r.kid}`);
          return (JSON.parse(Buffer.from(jwk).toString('utf8')) as { d: string }).d;
        }),
      );
      const userRows = (
        await db.query<{ hospital: string; id: string; totp_secret_wrapped: Uint8Array; password_hash: string }>(
          'SELECT hospital, id, totp_secret_wrapped, password_hash FROM identity_users',
        )
      ).rows;
      const accounts = await Promise.all(
        userRows.map(async (r) => ({
          totp_secret: Buffer.from(await cast.kek.unwrap(r.totp_secret_wrapped, `identity_users.totp_secret_wrapped|${r.hospital}|${r.id}`)).toString('utf8'),
          password_hash: r.password_hash,
        })),
      );
      assert.ok(signingKeys.length >= 2 && accounts.length >= 5);
      needles.push(...signingKeys, ...accounts.flatMap((a) => [a.totp_secret, a.password_hash]));
      for (const text of [stored, logs]) {
        for (const needle of needles) assert.ok(!text.includes(needle), `found ${needle}`);
        for (const token of [cast.chen.session.token, cast.patient.session.token, cast.gateway.session.token])
          assert.ok(!text.includes(token.split('.')[2]!), 'a token');
        assert.ok(!text.includes(Buffer.from(cast.patient.key.masterSecret).toString('latin1')), 'the patient secret');
        assert.ok(!text.includes(Buffer.from(cast.patient.key.masterSecret).toString('hex')), 'the patient secret (hex)');
        assert.ok(!text.includes(ADMIN), 'the administrator token');
      }
      assert.ok(abe.satisfies('role:doctor, dept:cardiology', LAB_POLICY));
    });
  });
}
