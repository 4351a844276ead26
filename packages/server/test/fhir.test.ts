/**
 * The FHIR R4 gateway and the reader's FHIR view, driven by fhir-kit-client (a real FHIR client) over HTTP on
 * 127.0.0.1: capability, create, read, update (new version), history, delete, transaction, batch, validation,
 * content negotiation — and the attacks on who writes into a patient's record. One platform (PGlite) for the file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'fhir-kit-client';
import { pre } from '@medshare/crypto';
import { openTestDatabases } from '@medshare/db';
import { generateCheckpointKey, LedgerClient, parseVerifierKey } from '@medshare/ledger';
import {
  type Session,
  HttpProblemError,
  hospitalTag,
  sha256Name,
  PatientClient,
  PROVENANCE_SYSTEM,
  PSEUDONYM_SYSTEM,
  recordKeyName,
  SIGNATURE_EXTENSION,
  signRecord,
  startFhirView,
  taggedRecordId,
  type FhirView,
  UNSIGNED_TAG,
  VERIFIED_SYSTEM,
} from '../src/index.ts';
import { CATEGORIES, sampleBundle, sessionFetch, sessionHeaders, startCast, type Cast } from './harness.ts';

const { db } = (await openTestDatabases())[0]!;
type Outcome = { resourceType: string; issue: Array<{ code: string; diagnostics?: string; expression?: string[] }> };
type Resource = {
  resourceType: string;
  id: string;
  meta?: { versionId?: string; lastUpdated?: string; source?: string; tag?: Array<{ system: string; code: string }> };
  [k: string]: unknown;
};

/** The tag the reader's view sets on a version whose signature verified under `hospital`'s key. */
const verified = (hospital: string) => ({ system: VERIFIED_SYSTEM, code: hospital, display: 'signature verified' });

/** The status and OperationOutcome of a failed fhir-kit-client call. */
async function failure(call: Promise<unknown>): Promise<{ status: number; outcome: Outcome }> {
  try {
    await call;
  } catch (error) {
    const { status, data } = (error as { response: { status: number; data: unknown } }).response;
    return { status, outcome: (typeof data === 'string' ? JSON.parse(data) : data) as Outcome };
  }
  throw new Error('the call succeeded');
}

describe('FHIR R4 gateway and reader view (fhir-kit-client)', () => {
  let cast: Cast;
  let gateway: Client;
  let view: FhirView;
  let reader: Client;
  let patient: PatientClient;
  const stMarys = () => cast.urls.hospitals['st-marys']!;
  /** fhir-kit-client's per-request hook: the session's token as `Authorization: DPoP` with a fresh proof for this request. */
  const dpopSigner = (session: Session) => async (url: string, init: RequestInit) => {
    const headers = init.headers as Headers;
    for (const [name, value] of Object.entries(await sessionHeaders(session, init.method ?? 'GET', new URL(url)))) headers.set(name, value);
  };
  /** A ciphertext upload straight to the cloud's gateway route with a hospital gateway's token (skipping any gateway's checks). */
  const uploadToCloud = async (session: Session, records: Array<{ recordId: string; category: string; ciphertext: Uint8Array }>) => {
    const body = { records: records.map((r) => ({ ...r, ciphertext: Buffer.from(r.ciphertext).toString('base64') })), capsules: [] };
    const answer = await sessionFetch(session, new URL(`/cloud/patients/${patient.key.patientId}/uploads`, cast.urls.cloud), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: answer.status, body: (await answer.json()) as { stored?: number; detail?: string } };
  };
  const fhirPatient = `pat-${randomBytes(4).toString('hex')}`;
  const observation = (value: number, extra: Record<string, unknown> = {}) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
    subject: { reference: `Patient/${fhirPatient}` },
    valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
    ...extra,
  });

  before(async () => {
    cast = await startCast(db, { identifierKey: randomBytes(32) });
    patient = new PatientClient(cast.patient.session, pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, CATEGORIES));
    await patient.register();
    await cast.gateway.enrol(fhirPatient, patient.key.patientId);
    const abePublicKey = await cast.client.abePublicKey();
    for (const category of CATEGORIES) await patient.delegate(category, '(role:doctor and dept:cardiology)', abePublicKey);
    // Trailing slash on purpose: fhir-kit-client posts transactions to the base as given.
    gateway = new Client({ baseUrl: new URL('/gateway/fhir/', stMarys()).href, requestSigner: dpopSigner(cast.gateway.session) });
    view = await startFhirView(cast.chen);
    reader = new Client({ baseUrl: view.baseUrl(patient.key.patientId) });
  });
  after(async () => {
    await view?.close();
    await cast.platform.close();
    await db.close();
  });

  test('capability: both endpoints answer a FHIR 4.0.1 CapabilityStatement in application/fhir+json', async () => {
    const written = (await gateway.capabilityStatement()) as unknown as {
      fhirVersion: string;
      rest: Array<{ resource: Array<{ interaction: Array<{ code: string }> }>; interaction: Array<{ code: string }> }>;
    };
    assert.equal(written.fhirVersion, '4.0.1');
    assert.deepEqual(
      written.rest[0]!.resource[0]!.interaction.map((i) => i.code),
      ['create', 'update', 'delete'],
    );
    assert.deepEqual(
      written.rest[0]!.interaction.map((i) => i.code),
      ['transaction', 'batch'],
    );
    assert.equal((written.rest[0]!.resource[0] as unknown as { conditionalCreate?: boolean }).conditionalCreate, true);
    const read = (await reader.capabilityStatement()) as unknown as typeof written;
    assert.deepEqual(
      read.rest[0]!.resource[0]!.interaction.map((i) => i.code),
      ['read', 'vread', 'history-instance', 'search-type'],
    );
    assert.deepEqual(
      (read.rest[0]!.resource[0] as unknown as { operation: Array<{ name: string }> }).operation.map((o) => o.name),
      ['everything'],
    );
    const raw = await fetch(new URL('/gateway/fhir/metadata', stMarys()));
    assert.match(raw.headers.get('content-type')!, /^application\/fhir\+json/);
  });

  test("SMART discovery at the FHIR base: the identity service's smart-configuration, and oauth-uris in the CapabilityStatement, naming endpoints that answer", async () => {
    // Both documents are read before the client has a token: anonymous (the write routes still need one: 401 above).
    const atBase = await fetch(new URL('/gateway/fhir/.well-known/smart-configuration', stMarys()));
    assert.equal(atBase.status, 200);
    assert.equal((await fetch(new URL('/gateway/fhir/metadata', stMarys()))).status, 200);
    assert.match(atBase.headers.get('content-type')!, /^application\/json/);
    const discovered = (await atBase.json()) as { issuer: string; authorization_endpoint: string; token_endpoint: string; capabilities: string[] };
    const atIssuer = await (await fetch(new URL('/identity/st-marys/.well-known/smart-configuration', stMarys()))).json();
    assert.deepEqual(discovered, atIssuer);
    assert.equal(discovered.issuer, new URL('/identity/st-marys', stMarys()).href);
    const openid = (await (await fetch(new URL('/identity/st-marys/.well-known/openid-configuration', stMarys()))).json()) as {
      authorization_endpoint: string;
      token_endpoint: string;
    };
    assert.equal(discovered.authorization_endpoint, openid.authorization_endpoint);
    assert.equal(discovered.token_endpoint, openid.token_endpoint);
    const capability = (await gateway.capabilityStatement()) as unknown as {
      rest: Array<{
        security: {
          service: Array<{ coding: Array<{ code: string }> }>;
          extension: Array<{ url: string; extension: Array<{ url: string; valueUri: string }> }>;
        };
      }>;
    };
    const security = capability.rest[0]!.security;
    assert.equal(security.service[0]!.coding[0]!.code, 'SMART-on-FHIR');
    const uris = Object.fromEntries(
      security.extension
        .find((e) => e.url === 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris')!
        .extension.map((e) => [e.url, e.valueUri]),
    );
    assert.deepEqual(uris, { authorize: discovered.authorization_endpoint, token: discovered.token_endpoint });
    // What a SMART client library does with the base (fhir-kit-client races both documents).
    const smart = await gateway.smartAuthMetadata();
    assert.equal(smart.authorizeUrl?.toString(), discovered.authorization_endpoint);
    assert.equal(smart.tokenUrl?.toString(), discovered.token_endpoint);
    // The URLs are the identity service's real endpoints: a token request without a form is an OAuth error, not a 404.
    const token = await fetch(discovered.token_endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(token.status, 400);
    assert.equal(((await token.json()) as { error: string }).error, 'invalid_request');
  });

  test('content negotiation: XML is 415/406, every error is an OperationOutcome, the gateway serves no decrypted read', async () => {
    // Marks the cases sent as the gateway's session (its token with a fresh DPoP proof each).
    const token = { 'x-as-gateway': '1' };
    const cases: Array<[string, RequestInit & { path: string }, number]> = [
      [
        'XML body',
        {
          path: 'Observation',
          method: 'POST',
          headers: { ...token, 'content-type': 'application/fhir+xml' },
          body: '<Observation xmlns="http://hl7.org/fhir"/>',
        },
        415,
      ],
      ['_format=xml', { path: 'metadata?_format=xml', method: 'GET' }, 406],
      ['Accept XML', { path: 'metadata', method: 'GET', headers: { accept: 'application/fhir+xml' } }, 406],
      ['unknown route', { path: 'Observation/x/$everything/y', method: 'POST', headers: token }, 404],
      ['no token', { path: 'Observation', method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify(observation(1)) }, 401],
      ['read at the gateway', { path: 'Observation/x', method: 'GET', headers: token }, 405],
      ['not JSON', { path: 'Observation', method: 'POST', headers: { ...token, 'content-type': 'application/fhir+json' }, body: '{"resourceType":' }, 400],
    ];
    for (const [what, { path, ...init }, status] of cases) {
      const url = new URL(`/gateway/fhir/${path}`, stMarys());
      const { 'x-as-gateway': asGateway, ...headers } = (init.headers ?? {}) as Record<string, string>;
      const request = { method: init.method, headers, body: init.body as string | undefined };
      const answer = asGateway === undefined ? await fetch(url, request) : await sessionFetch(cast.gateway.session, url, request);
      assert.equal(answer.status, status, what);
      assert.match(answer.headers.get('content-type')!, /^application\/fhir\+json/, what);
      const outcome = (await answer.json()) as Outcome;
      assert.equal(outcome.resourceType, 'OperationOutcome', what);
      assert.ok(outcome.issue[0]!.diagnostics, what);
    }
  });

  let created: Resource;
  test('create without an id: 201, a server-assigned id, version 1, Location and ETag; the reader reads it decrypted with its provenance', async () => {
    const response = await sessionFetch(cast.gateway.session, new URL('/gateway/fhir/Observation', stMarys()), {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json' },
      body: JSON.stringify(observation(72)),
    });
    assert.equal(response.status, 201);
    created = (await response.json()) as Resource;
    assert.match(created.id, /^[0-9a-f-]{36}$/);
    assert.equal(created.meta!.versionId, '1');
    assert.equal(response.headers.get('etag'), 'W/"1"');
    assert.match(response.headers.get('location')!, new RegExp(`/gateway/fhir/Observation/${created.id}/_history/1$`));
    const read = (await reader.read({ resourceType: 'Observation', id: created.id })) as Resource;
    assert.deepEqual(read, { ...created, meta: { ...created.meta, tag: [...created.meta!.tag!, verified('st-marys')] } });
    assert.equal(read.meta!.source, 'urn:medshare:hospital:st-marys');
    assert.deepEqual(read.meta!.tag, [{ system: PROVENANCE_SYSTEM, code: 'st-marys' }, verified('st-marys')]);
  });

  test('update is a new version (the amended value is what the doctor reads); an identical retry stays that version; history and vread show both', async () => {
    const amended = { ...observation(80, { status: 'amended' }), id: created.id };
    const v2 = (await gateway.update({ resourceType: 'Observation', id: created.id, body: amended })) as Resource;
    assert.equal(v2.meta!.versionId, '2');
    const retry = (await gateway.update({ resourceType: 'Observation', id: created.id, body: { ...amended, meta: v2.meta } })) as Resource;
    assert.equal(retry.meta!.versionId, '2', 'a retry with the same content is not a new version');
    const read = (await reader.read({ resourceType: 'Observation', id: created.id })) as Resource & { valueQuantity: { value: number } };
    assert.equal(read.status, 'amended');
    assert.equal(read.valueQuantity.value, 80);
    const history = (await reader.history({ resourceType: 'Observation', id: created.id })) as unknown as {
      type: string;
      entry: Array<{ resource: Resource; request: { method: string } }>;
    };
    assert.equal(history.type, 'history');
    assert.deepEqual(
      history.entry.map((e) => [e.resource.meta!.versionId, e.request.method]),
      [
        ['2', 'PUT'],
        ['1', 'POST'],
      ],
    );
    const v1 = (await reader.vread({ resourceType: 'Observation', id: created.id, version: '1' })) as Resource & { valueQuantity: { value: number } };
    assert.equal(v1.valueQuantity.value, 72);
    // Each version is a record of its own, and the ledger's record-create entries name both (checked against its keys).
    const stored = (
      await db.query<{ ciphertext: Uint8Array }>('SELECT ciphertext FROM cloud_records WHERE patient = $1 AND category = $2', [patient.key.patientId, 'lab'])
    ).rows;
    assert.equal(stored.length, 2);
    const ledger = new LedgerClient(new URL('/ledger', cast.urls.cloud).href);
    const keys = await ledger.keys();
    const proven = await patient.provenAccessLog({ log: parseVerifierKey(keys.log), witnesses: keys.witnesses.map(parseVerifierKey) });
    const recorded = new Set(
      proven
        .filter((e) => e.action === 'upload')
        .flatMap((e) => e.proof!.event.entity.filter((x) => x.type.code === 'record').map((x) => x.what.identifier.value)),
    );
    for (const { ciphertext } of stored) assert.ok(recorded.has(sha256Name(ciphertext)), 'every version is in the ledger');
  });

  test('delete is a tombstone the reader sees: read is 410, history ends in a DELETE, search no longer finds it', async () => {
    await gateway.delete({ resourceType: 'Observation', id: created.id });
    const gone = await failure(reader.read({ resourceType: 'Observation', id: created.id }));
    assert.equal(gone.status, 410);
    assert.equal(gone.outcome.issue[0]!.code, 'deleted');
    const history = (await reader.history({ resourceType: 'Observation', id: created.id })) as unknown as { entry: Array<{ request: { method: string } }> };
    assert.deepEqual(
      history.entry.map((e) => e.request.method),
      ['DELETE', 'PUT', 'POST'],
    );
    await gateway.delete({ resourceType: 'Observation', id: created.id });
    assert.equal((await patient.records('lab')).length, 3, 'deleting a deleted resource stores nothing');
    const found = (await reader.search({ resourceType: 'Observation', searchParams: { _id: created.id } })) as unknown as { total: number };
    assert.equal(found.total, 0);
  });

  test('conditional update: If-Match of a stale version is 412 and stores nothing; the current version succeeds; a malformed If-Match is 400', async () => {
    const id = `ifm-${randomBytes(4).toString('hex')}`;
    const v1 = (await gateway.update({ resourceType: 'Observation', id, body: { ...observation(50), id } })) as Resource;
    assert.equal(v1.meta!.versionId, '1');
    const v2 = (await gateway.update({
      resourceType: 'Observation',
      id,
      body: { ...observation(51), id },
      options: { headers: { 'If-Match': 'W/"1"' } },
    })) as Resource;
    assert.equal(v2.meta!.versionId, '2');
    const records = (await patient.records('lab')).length;
    // A second writer still holding version 1 (lost update): refused, and her amended value does not replace 51.
    const stale = await failure(
      gateway.update({ resourceType: 'Observation', id, body: { ...observation(99), id }, options: { headers: { 'If-Match': 'W/"1"' } } }),
    );
    assert.equal(stale.status, 412);
    assert.equal(stale.outcome.resourceType, 'OperationOutcome');
    assert.match(stale.outcome.issue[0]!.diagnostics!, /If-Match names version 1 but the current version is 2/);
    const missing = await failure(
      gateway.update({
        resourceType: 'Observation',
        id: `${id}-none`,
        body: { ...observation(1), id: `${id}-none` },
        options: { headers: { 'If-Match': 'W/"1"' } },
      }),
    );
    assert.equal(missing.status, 412, 'If-Match on a resource that does not exist');
    for (const header of ['1', 'W/1', '*', 'W/"1", W/"2"', 'W/"0"', 'W/"x"', 'W/"99999999999999999999"']) {
      const malformed = await failure(
        gateway.update({ resourceType: 'Observation', id, body: { ...observation(98), id }, options: { headers: { 'If-Match': header } } }),
      );
      assert.equal(malformed.status, 400, header);
      assert.match(malformed.outcome.issue[0]!.diagnostics!, /If-Match/, header);
    }
    assert.equal((await patient.records('lab')).length, records, 'nothing stored');
    const read = (await reader.read({ resourceType: 'Observation', id })) as Resource & { valueQuantity: { value: number } };
    assert.equal(read.meta!.versionId, '2');
    assert.equal(read.valueQuantity.value, 51);
  });

  test('conditional create (If-None-Exist): 0 matches create, 1 answers 200 with its Location and ETag and stores nothing, 2 are 412; other criteria are 400', async () => {
    const system = `urn:lab-orders:${randomBytes(3).toString('hex')}`;
    const post = (body: unknown, criteria?: string) =>
      sessionFetch(cast.gateway.session, new URL('/gateway/fhir/Observation', stMarys()), {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json', ...(criteria === undefined ? {} : { 'if-none-exist': criteria }) },
        body: JSON.stringify(body),
      });
    const first = await post(observation(70, { identifier: [{ system, value: 'A-1' }] }), `identifier=${system}|A-1`);
    assert.equal(first.status, 201);
    const stored = (await first.json()) as Resource;
    const records = (await patient.records('lab')).length;
    const again = await post(observation(71, { identifier: [{ system, value: 'A-1' }] }), `identifier=${encodeURIComponent(system)}|A-1`);
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('etag'), 'W/"1"');
    assert.match(again.headers.get('location')!, new RegExp(`/Observation/${stored.id}/_history/1$`));
    assert.equal(((await again.json()) as Outcome).resourceType, 'OperationOutcome');
    const byId = await post(observation(72), `_id=${stored.id}`);
    assert.equal(byId.status, 200, '_id matches the existing resource');
    assert.equal((await patient.records('lab')).length, records, 'a matched conditional create stores nothing');
    const read = (await reader.read({ resourceType: 'Observation', id: stored.id })) as Resource & { valueQuantity: { value: number } };
    assert.equal(read.valueQuantity.value, 70, 'the existing resource is unchanged');
    // Two resources carry the identifier: the criteria are ambiguous.
    await gateway.create({ resourceType: 'Observation', body: observation(73, { identifier: [{ system, value: 'A-1' }] }) as unknown as Resource });
    const ambiguous = await post(observation(74, { identifier: [{ system, value: 'A-1' }] }), `identifier=${system}|A-1`);
    assert.equal(ambiguous.status, 412);
    assert.match(((await ambiguous.json()) as Outcome).issue[0]!.diagnostics!, /matches 2 Observation resources/);
    for (const [criteria, message] of [
      ['code=8867-4', /'code' is not supported/],
      ['identifier=A-1', /needs system\|value/],
      ['', /needs identifier/],
    ] as const) {
      const refused = await post(observation(75), criteria);
      assert.equal(refused.status, 400, criteria);
      assert.match(((await refused.json()) as Outcome).issue[0]!.diagnostics!, message, criteria);
    }
    // In a transaction: the matched entry is 200 with the existing resource's location, and references to its fullUrl point there.
    const orderUrl = `urn:uuid:${crypto.randomUUID()}`;
    const response = (await gateway.transaction({
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: orderUrl,
            resource: observation(76, { identifier: [{ system, value: 'B-2' }] }),
            request: { method: 'POST', url: 'Observation', ifNoneExist: `identifier=${system}|B-2` },
          },
          { resource: observation(77, { hasMember: [{ reference: orderUrl }] }), request: { method: 'POST', url: 'Observation' } },
        ],
      },
    })) as unknown as { entry: Array<{ response: { status: string; location: string } }> };
    assert.deepEqual(
      response.entry.map((e) => e.response.status),
      ['201 Created', '201 Created'],
    );
    const member = response.entry[0]!.response.location.split('/')[1]!;
    const repeat = (await gateway.transaction({
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: `urn:uuid:${crypto.randomUUID()}`,
            resource: observation(78, { identifier: [{ system, value: 'B-2' }] }),
            request: { method: 'POST', url: 'Observation', ifNoneExist: `identifier=${system}|B-2` },
          },
        ],
      },
    })) as unknown as { entry: Array<{ response: { status: string; location: string } }> };
    assert.equal(repeat.entry[0]!.response.status, '200 OK');
    assert.equal(repeat.entry[0]!.response.location, `Observation/${member}/_history/1`);
    // A reference to a matched entry's fullUrl names the existing resource.
    const linked = (await gateway.transaction({
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000002',
            resource: observation(80, { identifier: [{ system, value: 'B-2' }] }),
            request: { method: 'POST', url: 'Observation', ifNoneExist: `identifier=${system}|B-2` },
          },
          {
            resource: observation(81, { hasMember: [{ reference: 'urn:uuid:00000000-0000-4000-8000-000000000002' }] }),
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      },
    })) as unknown as { entry: Array<{ response: { status: string; location: string } }> };
    const panel = (await reader.read({ resourceType: 'Observation', id: linked.entry[1]!.response.location.split('/')[1]! })) as Resource & {
      hasMember: Array<{ reference: string }>;
    };
    assert.deepEqual(panel.hasMember, [{ reference: `Observation/${member}` }]);
    // Deleted resources do not match: the conditional create creates again.
    await gateway.delete({ resourceType: 'Observation', id: member });
    assert.equal((await post(observation(82, { identifier: [{ system, value: 'B-2' }] }), `identifier=${system}|B-2`)).status, 201);
  });

  test('transaction: urn:uuid and conditional references resolve to Type/id, a transaction-response Bundle carries Location and ETag per entry', async () => {
    const condition = `urn:uuid:${crypto.randomUUID()}`;
    const response = (await gateway.transaction({
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: condition,
            resource: { resourceType: 'Condition', subject: { reference: `Patient/${fhirPatient}` }, code: { text: 'Atrial fibrillation' } },
            request: { method: 'POST', url: 'Condition' },
          },
          {
            resource: {
              resourceType: 'Encounter',
              id: 'enc-1',
              status: 'finished',
              class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
              subject: { reference: `Patient/${fhirPatient}` },
              identifier: [{ system: 'urn:mrn-visits', value: 'V-17' }],
            },
            request: { method: 'PUT', url: 'Encounter/enc-1' },
          },
          {
            resource: {
              ...observation(91),
              hasMember: undefined,
              encounter: { reference: 'Encounter?identifier=urn:mrn-visits|V-17' },
              focus: [{ reference: condition }],
            },
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      },
    })) as unknown as { type: string; entry: Array<{ response: { status: string; location: string; etag: string } }> };
    assert.equal(response.type, 'transaction-response');
    assert.deepEqual(
      response.entry.map((e) => e.response.status),
      ['201 Created', '201 Created', '201 Created'],
    );
    assert.ok(response.entry.every((e) => /^[A-Za-z]+\/[A-Za-z0-9.-]+\/_history\/1$/.test(e.response.location) && e.response.etag === 'W/"1"'));
    const conditionId = response.entry[0]!.response.location.split('/')[1]!;
    assert.equal(conditionId, condition.slice('urn:uuid:'.length), 'a create with a urn:uuid fullUrl gets that UUID as id');
    const observationId = response.entry[2]!.response.location.split('/')[1]!;
    const read = (await reader.read({ resourceType: 'Observation', id: observationId })) as Resource & {
      encounter: { reference: string };
      focus: Array<{ reference: string }>;
    };
    assert.equal(read.encounter.reference, 'Encounter/enc-1');
    assert.equal(read.focus[0]!.reference, `Condition/${conditionId}`);
    const search = (await reader.search({ resourceType: 'Condition', searchParams: { patient: fhirPatient } })) as unknown as { total: number };
    assert.equal(search.total, 1);
  });

  test('validation before encryption: invalid resources are 400 OperationOutcomes naming the element; a transaction with one invalid entry stores nothing', async () => {
    const before = (await patient.records()).length;
    const cases: Array<[string, unknown, RegExp]> = [
      ['status banana', observation(1, { status: 'banana' }), /Observation\.status/],
      ['string quantity', observation(1, { valueQuantity: { value: '12' } }), /Observation\.value/],
      ['unknown element', observation(1, { colour: 'red' }), /colour/],
    ];
    for (const [what, body, element] of cases) {
      const { status, outcome } = await failure(gateway.create({ resourceType: 'Observation', body: body as Resource }));
      assert.equal(status, 400, what);
      assert.match(JSON.stringify(outcome.issue.map((i) => [i.expression, i.diagnostics])), element, what);
    }
    const banana = await failure(gateway.create({ resourceType: 'Banana', body: { resourceType: 'Banana' } as unknown as Resource }));
    assert.equal(banana.status, 400);
    const transaction = await failure(
      gateway.transaction({
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { resource: observation(60), request: { method: 'POST', url: 'Observation' } },
            { resource: observation(61, { status: 'banana' }), request: { method: 'POST', url: 'Observation' } },
          ],
        },
      }),
    );
    assert.equal(transaction.status, 400);
    assert.match(JSON.stringify(transaction.outcome), /Bundle\.entry\[1\]/);
    assert.equal((await patient.records()).length, before, 'nothing stored');
  });

  test('batch: each entry on its own; the batch-response has 201 for the good entry and a 400 OperationOutcome for the bad one', async () => {
    const response = (await gateway.batch({
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { resource: observation(65), request: { method: 'POST', url: 'Observation' } },
          { resource: observation(66, { status: 'banana' }), request: { method: 'POST', url: 'Observation' } },
          { request: { method: 'PATCH', url: 'Observation/x' } },
        ],
      },
    })) as unknown as { type: string; entry: Array<{ response: { status: string; outcome?: Outcome } }> };
    assert.equal(response.type, 'batch-response');
    assert.deepEqual(
      response.entry.map((e) => e.response.status.slice(0, 3)),
      ['201', '400', '400'],
    );
    assert.match(response.entry[1]!.response.outcome!.issue[0]!.expression![0]!, /Observation\.status/);
  });

  test("a 2 MiB resource is accepted (the body limit is the documented 32 MiB, not 1 MiB; each string stays under FHIR's 1 MB)", async () => {
    // Attachments, not note text: note words go into the searchable index, which is not what this measures.
    const data = Buffer.alloc(500 * 1024, 7).toString('base64');
    const document = {
      resourceType: 'DocumentReference',
      status: 'current',
      subject: { reference: `Patient/${fhirPatient}` },
      content: Array.from({ length: 3 }, () => ({ attachment: { contentType: 'application/pdf', data } })),
    };
    const stored = (await gateway.create({ resourceType: 'DocumentReference', body: document as unknown as Resource })) as Resource;
    assert.equal(stored.meta!.versionId, '1');
  });

  test('the Synthea sample goes in as a transaction and every resource reads back identical through the reader view', async () => {
    const sample = sampleBundle() as unknown as { entry: Array<{ fullUrl: string; resource: Resource; request: { method: string; url: string } }> };
    const other = new PatientClient(cast.patient.session, pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, CATEGORIES));
    await other.register();
    const person = sample.entry.find((e) => e.resource.resourceType === 'Patient')!.resource;
    await cast.gateway.enrol(person.id, other.key.patientId);
    const abePublicKey = await cast.client.abePublicKey();
    for (const category of CATEGORIES) await other.delegate(category, 'role:doctor', abePublicKey);
    const response = (await gateway.transaction({ body: sample as unknown as Resource })) as unknown as { entry: Array<{ response: { status: string } }> };
    assert.ok(response.entry.every((e) => e.response.status === '201 Created'));
    const retry = (await gateway.transaction({ body: sample as unknown as Resource })) as unknown as { entry: Array<{ response: { status: string } }> };
    assert.ok(
      retry.entry.every((e) => e.response.status === '200 OK'),
      'a retried transaction creates nothing',
    );
    const otherReader = new Client({ baseUrl: view.baseUrl(other.key.patientId) });
    const ids = new Map(sample.entry.map((e) => [e.fullUrl, `${e.resource.resourceType}/${e.resource.id}`]));
    const rewrite = (value: unknown): unknown =>
      Array.isArray(value)
        ? value.map(rewrite)
        : typeof value === 'object' && value !== null
          ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === 'reference' && typeof v === 'string' ? (ids.get(v) ?? v) : rewrite(v)]))
          : value;
    for (const { resource } of sample.entry) {
      const read = (await otherReader.read({ resourceType: resource.resourceType, id: resource.id })) as Resource;
      const provenance = {
        versionId: '1',
        lastUpdated: read.meta!.lastUpdated,
        source: 'urn:medshare:hospital:st-marys',
        tag: [{ system: PROVENANCE_SYSTEM, code: 'st-marys' }, verified('st-marys')],
      };
      assert.deepEqual(read, { ...(rewrite(resource) as Resource), meta: { ...resource.meta, ...provenance } }, `${resource.resourceType}/${resource.id}`);
    }
  });

  test('a patient key without clinical: the error names the category and the command that adds it', async () => {
    const old = new PatientClient(
      cast.patient.session,
      pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, ['lab', 'imaging', 'notes', 'medication']),
    );
    await old.register();
    await cast.gateway.enrol('old-key-patient', old.key.patientId);
    const { status, outcome } = await failure(
      gateway.update({ resourceType: 'Patient', id: 'old-key-patient', body: { resourceType: 'Patient', id: 'old-key-patient' } }),
    );
    assert.equal(status, 400);
    assert.match(
      outcome.issue[0]!.diagnostics!,
      /no key for category 'clinical' \(Patient\).*medshare keys add-category --key patient\.key --category clinical/,
    );
    await old.addCategory('clinical');
    assert.equal(
      ((await gateway.update({ resourceType: 'Patient', id: 'old-key-patient', body: { resourceType: 'Patient', id: 'old-key-patient' } })) as Resource).meta!
        .versionId,
      '1',
    );
  });

  test("cross-hospital lookup by business identifier: a Riverside doctor finds her pseudonym by St Mary's MRN once she consents; the cloud holds only keyed digests", async () => {
    const mrn = `MRN-${randomBytes(4).toString('hex')}`;
    await gateway.update({
      resourceType: 'Patient',
      id: fhirPatient,
      body: { resourceType: 'Patient', id: fhirPatient, identifier: [{ system: 'urn:oid:st-marys-mrn', value: mrn }], gender: 'female' },
    });
    const doctorAtRiverside = new Client({
      baseUrl: new URL('/gateway/fhir', cast.urls.hospitals['riverside']).href,
      requestSigner: dpopSigner(cast.chen.session),
    });
    const lookup = () =>
      doctorAtRiverside.search({ resourceType: 'Patient', searchParams: { identifier: `urn:oid:st-marys-mrn|${mrn}` } }) as unknown as Promise<{
        total: number;
        entry: Array<{ resource: { identifier: Array<{ system: string; value: string }> } }>;
      }>;
    assert.equal((await lookup()).total, 0, 'not findable without her consent');
    await patient.setFindable(true);
    const found = await lookup();
    assert.equal(found.total, 1);
    assert.deepEqual(found.entry[0]!.resource.identifier, [{ system: PSEUDONYM_SYSTEM, value: patient.key.patientId }]);
    assert.ok((await patient.accessLog()).some((e) => e.action === 'lookup by identifier' && e.hospital === 'riverside'));
    // The cloud's database: no identifier in clear, and no digest it could recompute from a guess without the key.
    const digests = (await db.query<{ digest: string }>('SELECT digest FROM cloud_identifier_index WHERE patient = $1', [patient.key.patientId])).rows.map(
      (r) => r.digest,
    );
    assert.equal(digests.length, 1);
    const guesses = [mrn, `urn:oid:st-marys-mrn|${mrn}`, `medshare/identifier/v1\nurn:oid:st-marys-mrn\n${mrn}`];
    for (const guess of guesses) {
      assert.ok(!digests.includes(createHash('sha256').update(guess).digest('base64url')), guess);
    }
    const dump =
      JSON.stringify((await db.query('SELECT * FROM cloud_identifier_index')).rows) +
      JSON.stringify((await db.query('SELECT patient, category, source FROM cloud_records')).rows);
    assert.ok(!dump.includes(mrn));
    await patient.setFindable(false);
    assert.equal((await lookup()).total, 0, 'withdrawn');
    const bare = await failure(doctorAtRiverside.search({ resourceType: 'Patient', searchParams: { identifier: mrn } }));
    assert.equal(bare.status, 400);
  });

  test('Patient compartment and $everything: what the reader may read about her, by her rights (fhir-kit-client compartmentSearch, operation)', async () => {
    type Searchset = { type: string; entry?: Array<{ resource: Resource; search: { mode: string } }> };
    const ids = (bundle: Searchset) =>
      (bundle.entry ?? [])
        .filter((e) => e.search.mode === 'match')
        .map((e) => `${e.resource.resourceType}/${e.resource.id}`)
        .sort();
    const compartment = (await reader.compartmentSearch({
      resourceType: 'Observation',
      compartment: { resourceType: 'Patient', id: fhirPatient },
    })) as unknown as Searchset;
    assert.equal(compartment.type, 'searchset');
    const bySearch = (await reader.search({ resourceType: 'Observation', searchParams: { patient: fhirPatient } })) as unknown as Searchset;
    assert.ok(ids(compartment).length > 3);
    assert.deepEqual(ids(compartment), ids(bySearch));
    const none = (await reader.compartmentSearch({
      resourceType: 'Observation',
      compartment: { resourceType: 'Patient', id: 'someone-else' },
    })) as unknown as Searchset;
    assert.deepEqual(ids(none), []);
    const everything = (await reader.operation({ name: '$everything', resourceType: 'Patient', id: fhirPatient, method: 'GET' })) as unknown as Searchset;
    const expected: string[] = [];
    for (const type of ['Patient', 'Observation', 'Condition', 'Encounter', 'DocumentReference']) {
      expected.push(...ids((await reader.search({ resourceType: type, searchParams: { patient: fhirPatient } })) as unknown as Searchset));
    }
    assert.ok(expected.includes(`Patient/${fhirPatient}`));
    assert.deepEqual(ids(everything), expected.sort());
    // Patel (dermatology) was given nothing, then her lab records only: $everything follows her rights.
    const patelView = await startFhirView(cast.patel);
    try {
      const patel = new Client({ baseUrl: patelView.baseUrl(patient.key.patientId) });
      const everythingOf = async () =>
        ids((await patel.operation({ name: '$everything', resourceType: 'Patient', id: fhirPatient, method: 'GET' })) as unknown as Searchset);
      assert.deepEqual(await everythingOf(), []);
      await patient.delegate('lab', '(role:doctor and dept:dermatology)', await cast.client.abePublicKey());
      const lab = await everythingOf();
      assert.deepEqual(
        lab,
        expected.filter((id) => id.startsWith('Observation/')),
      );
    } finally {
      await patelView.close();
    }
  });

  describe('attacks on who writes into her record', () => {
    test('forged cross-hospital write: Riverside enrols her pseudonym and writes "no known allergies" — refused at the gateway and at the cloud', async () => {
      const riverside = await cast.registerAndLogin('riverside', `ehr-${randomBytes(3).toString('hex')}`, ['role:gateway']);
      const enrol = await sessionFetch(riverside, new URL('/gateway/patients', cast.urls.hospitals['riverside']), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ fhirId: 'forged-1', patient: patient.key.patientId }),
      });
      assert.equal(enrol.status, 403);
      assert.match(((await enrol.json()) as unknown as { detail: string }).detail, /has not allowed riverside to write/);
      // A Riverside that skips its own gateway and uploads a ciphertext straight to the cloud is refused there.
      const keys = pre.decodePublicKeys(pre.encodePublicKeys(patient.key));
      const forged = {
        resourceType: 'AllergyIntolerance',
        id: 'nka',
        code: { text: 'No known allergies' },
        patient: { reference: `Patient/${fhirPatient}` },
        meta: { source: 'urn:medshare:hospital:st-marys' },
      };
      const recordId = `${hospitalTag('riverside')}${'A'.repeat(22)}`;
      const refused = await uploadToCloud(riverside, [
        { recordId, category: 'clinical', ciphertext: pre.encrypt(keys, 'clinical', recordId, new TextEncoder().encode(JSON.stringify(forged))) },
      ]);
      assert.equal(refused.status, 403);
      assert.match(refused.body.detail!, /has not allowed riverside to write/);
      const found = (await reader.search({ resourceType: 'AllergyIntolerance', searchParams: { patient: fhirPatient } })) as unknown as { total: number };
      assert.equal(found.total, 0);
    });

    test("a hospital she allowed cannot pass its record off as another hospital's: foreign record-id tags are refused, a mislabelled meta.source is left out by the reader", async () => {
      assert.deepEqual(await patient.allowWriter('riverside'), ['riverside', 'st-marys']);
      const riverside = await cast.registerAndLogin('riverside', `ehr-${randomBytes(3).toString('hex')}`, ['role:gateway']);
      const keys = pre.decodePublicKeys(pre.encodePublicKeys(patient.key));
      const forged = {
        resourceType: 'AllergyIntolerance',
        id: 'nka',
        code: { text: 'No known allergies' },
        patient: { reference: `Patient/${fhirPatient}` },
        meta: { versionId: '1', lastUpdated: new Date().toISOString(), source: 'urn:medshare:hospital:st-marys' },
      };
      const plaintext = new TextEncoder().encode(JSON.stringify(forged));
      const stMarysId = `${hospitalTag('st-marys')}${'B'.repeat(22)}`;
      const foreignTag = await uploadToCloud(riverside, [
        { recordId: stMarysId, category: 'clinical', ciphertext: pre.encrypt(keys, 'clinical', stMarysId, plaintext) },
      ]);
      assert.equal(foreignTag.status, 403);
      assert.match(foreignTag.body.detail!, /does not carry the tag of riverside/);
      const ownId = `${hospitalTag('riverside')}${'C'.repeat(22)}`;
      assert.equal(
        (await uploadToCloud(riverside, [{ recordId: ownId, category: 'clinical', ciphertext: pre.encrypt(keys, 'clinical', ownId, plaintext) }])).body.stored,
        1,
      );
      const found = (await reader.search({ resourceType: 'AllergyIntolerance', searchParams: { patient: fhirPatient } })) as unknown as {
        total: number;
        entry: Array<{ resource: Outcome; search: { mode: string } }>;
      };
      assert.equal(found.total, 0);
      assert.equal(found.entry[0]!.search.mode, 'outcome');
      assert.match(
        found.entry[0]!.resource.issue[0]!.diagnostics!,
        new RegExp(`left out: meta.source does not name the hospital of the record id \\(${ownId}\\)`),
      );
      // She withdraws Riverside's permission: its next upload is refused.
      assert.deepEqual(await patient.removeWriter('riverside'), ['st-marys']);
      const after = await uploadToCloud(riverside, [
        {
          recordId: `${hospitalTag('riverside')}${'D'.repeat(22)}`,
          category: 'clinical',
          ciphertext: pre.encrypt(keys, 'clinical', `${hospitalTag('riverside')}${'D'.repeat(22)}`, plaintext),
        },
      ]);
      assert.equal(after.status, 403);
      await assert.rejects(patient.removeWriter('riverside'), (e: HttpProblemError) => e.status === 404);
    });

    describe("a hostile cloud (it holds her public keys and writes its own database) cannot pass a record off as a hospital's", () => {
      const keys = () => pre.decodePublicKeys(pre.encodePublicKeys(patient.key));
      /** What the cloud can do alone: encrypt any plaintext under her key and store it under any hospital's record-id tag. */
      const cloudStores = async (hospital: string, category: string, resource: unknown) => {
        const recordId = taggedRecordId(hospital, [randomBytes(8).toString('hex')]);
        const ciphertext = pre.encrypt(keys(), category, recordId, new TextEncoder().encode(JSON.stringify(resource)));
        await db.query(
          'INSERT INTO cloud_records (record_id, patient, category, source, size, ciphertext, ciphertext_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)',
          [recordId, patient.key.patientId, category, hospital, ciphertext.length, ciphertext, sha256Name(ciphertext)],
        );
        return recordId;
      };
      const allergy = (id: string, hospital: string) => ({
        resourceType: 'AllergyIntolerance',
        id,
        code: { text: 'No known allergies' },
        patient: { reference: `Patient/${fhirPatient}` },
        meta: {
          versionId: '1',
          lastUpdated: new Date().toISOString(),
          source: `urn:medshare:hospital:${hospital}`,
          tag: [{ system: PROVENANCE_SYSTEM, code: hospital }],
        },
      });
      /** What the reader's view serves of an AllergyIntolerance, and the reasons it gives for what it left out. */
      const served = async (id: string, client = reader) => {
        const bundle = (await client.search({ resourceType: 'AllergyIntolerance', searchParams: { _id: id } })) as unknown as {
          entry?: Array<{ resource: Resource & Outcome; search: { mode: string } }>;
        };
        const entries = bundle.entry ?? [];
        return {
          matches: entries.filter((e) => e.search.mode === 'match').map((e) => e.resource),
          warnings: entries.filter((e) => e.search.mode === 'outcome').flatMap((e) => e.resource.issue.map((i) => i.diagnostics!)),
        };
      };

      test("forged record under St Mary's tag: unsigned is left out, a signature by a key the cloud made is refused; reads are 404", async () => {
        const unsignedId = await cloudStores('st-marys', 'clinical', allergy('cloud-nka-1', 'st-marys'));
        const unsigned = await served('cloud-nka-1');
        assert.deepEqual(unsigned.matches, []);
        assert.ok(
          unsigned.warnings.some((w) => w.includes('unsigned') && w.includes(unsignedId)),
          unsigned.warnings.join('; '),
        );
        assert.equal((await failure(reader.read({ resourceType: 'AllergyIntolerance', id: 'cloud-nka-1' }))).status, 404);
        const { signer } = generateCheckpointKey(recordKeyName('st-marys'), 'ed25519');
        const forgedId = await cloudStores(
          'st-marys',
          'clinical',
          signRecord(signer, allergy('cloud-nka-2', 'st-marys'), { patient: patient.key.patientId, category: 'clinical' }),
        );
        const forged = await served('cloud-nka-2');
        assert.deepEqual(forged.matches, []);
        assert.ok(
          forged.warnings.some((w) => w.includes("does not verify under st-marys's key") && w.includes(forgedId)),
          forged.warnings.join('; '),
        );
      });

      test("relabelling a genuine St Mary's record as Riverside's, or moving it to another category, is refused", async () => {
        const genuine = (await gateway.create({
          resourceType: 'AllergyIntolerance',
          body: {
            resourceType: 'AllergyIntolerance',
            code: { text: 'Penicillin' },
            patient: { reference: `Patient/${fhirPatient}` },
            clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
          } as unknown as Resource,
        })) as Resource;
        const signed = (await cast.chen.readRecords(patient.key.patientId, 'clinical')).map((r) => r.resource).find((r) => r.id === genuine.id)!;
        assert.ok(JSON.stringify(signed.meta).includes(SIGNATURE_EXTENSION), 'the gateway signed it inside the ciphertext');
        assert.equal((await served(genuine.id)).matches.length, 1, 'the genuine record is served');
        const relabelled = {
          ...signed,
          meta: { ...(signed.meta as object), source: 'urn:medshare:hospital:riverside', tag: [{ system: PROVENANCE_SYSTEM, code: 'riverside' }] },
        };
        await cloudStores('riverside', 'clinical', relabelled);
        const movedId = await cloudStores('st-marys', 'lab', signed);
        const seen = await served(genuine.id);
        assert.equal(seen.matches.length, 1, 'only the genuine version');
        assert.equal(seen.matches[0]!.meta!.source, 'urn:medshare:hospital:st-marys');
        assert.deepEqual(seen.matches[0]!.meta!.tag!.at(-1), verified('st-marys'));
        assert.ok(
          seen.warnings.some((w) => w.includes("does not verify under riverside's key")),
          seen.warnings.join('; '),
        );
        // The genuine version copied under her `lab` key (the category the signature does not name): $everything reads
        // every category, and refuses it there.
        const everything = (await reader.operation({ name: '$everything', resourceType: 'Patient', id: fhirPatient, method: 'GET' })) as unknown as {
          entry: Array<{ resource: Resource & Outcome; search: { mode: string } }>;
        };
        assert.equal(everything.entry.filter((e) => e.search.mode === 'match' && e.resource.id === genuine.id).length, 1);
        const warnings = everything.entry.filter((e) => e.search.mode === 'outcome').flatMap((e) => e.resource.issue.map((i) => i.diagnostics!));
        assert.ok(
          warnings.some((w) => w.includes("does not verify under st-marys's key") && w.includes(movedId)),
          warnings.join('; '),
        );
      });

      test("a record signed by a hospital outside the reader's federation is refused; an unsigned (pre-signature) record is served marked only when the view is told to", async () => {
        const { signer } = generateCheckpointKey(recordKeyName('rogue'), 'ed25519');
        const rogueId = await cloudStores(
          'rogue',
          'clinical',
          signRecord(signer, allergy('rogue-1', 'rogue'), { patient: patient.key.patientId, category: 'clinical' }),
        );
        const rogue = await served('rogue-1');
        assert.deepEqual(rogue.matches, []);
        assert.ok(
          rogue.warnings.some((w) => w.includes("rogue is not in your hospital's federation") && w.includes(rogueId)),
          rogue.warnings.join('; '),
        );
        // Her hospital's list is what counts: Riverside lists St Mary's and itself, whatever the cloud says — St Mary's
        // key as St Mary's itself published it, pinned in Riverside's database on first sight.
        const listed = await cast.chen.writerKeys();
        assert.deepEqual([...listed.keys()].sort(), ['riverside', 'st-marys']);
        const published = (await (await fetch(new URL('/gateway/record-key', stMarys()))).json()) as { hospital: string; key: string };
        assert.deepEqual(published, { hospital: 'st-marys', key: listed.get('st-marys')!.vkey });
        const pinned = (await db.query<{ value: string }>("SELECT value FROM federation_pins WHERE name = 'records/st-marys'")).rows;
        assert.deepEqual(
          pinned.map((r) => r.value),
          [published.key],
        );
        await cloudStores('st-marys', 'clinical', allergy('legacy-1', 'st-marys'));
        const lenient = await startFhirView(cast.chen, { unsigned: 'mark' });
        try {
          const marked = await served('legacy-1', new Client({ baseUrl: lenient.baseUrl(patient.key.patientId) }));
          assert.equal(marked.matches.length, 1);
          assert.deepEqual(marked.matches[0]!.meta!.tag!.at(-1), UNSIGNED_TAG);
        } finally {
          await lenient.close();
        }
        assert.deepEqual((await served('legacy-1')).matches, [], 'the default view leaves it out');
      });
    });
  });
});
