/**
 * The hospital gateway's HTTP API (Fastify), in the hospital's own service. Callers are the hospital's own systems
 * (a token of role `gateway`) and staff, with tokens of that hospital; it reaches the cloud through `CloudApi` with
 * the caller's own token. Every route needs the token DPoP-bound and a proof for the request (identity's
 * dpop/verify.ts, checked before the body is read). Bodies are at most 32 MiB (a whole Synthea patient is 0.5-3.2 MB).
 *
 *   POST /patients                        { fhirId, patient }   enrol a FHIR patient under her pseudonym (she must
 *                                                               have allowed this hospital to write: cloud writers)
 *   POST /upload                          a resource or Bundle → encrypted and uploaded atomically; MedShare's summary
 *                                         (what the SDK's GatewayClient.upload reads)
 *   GET  /receipts?status=&patient=&from= the hospital's upload receipts: { index, patient, status (complete | pending),
 *                                         treeSize, problem? } (receipts.ts)
 *   POST /receipts/complete               complete pending receipts now → { completed, pending }
 *   GET  /record-key                      this gateway's record-signing key { hospital, key } (public: peers pin it)
 *   GET  /writer-keys                     { keys: [{ hospital, key }] }: the record keys of this hospital's federation
 *                                         list, which its readers' SDKs verify record signatures with
 *   POST /research-exports?profile=       a resource or Bundle of one consenting patient → { profile, released, digest,
 *                                         ledgerIndex }: de-identified with the hospital's keys, recorded on the
 *                                         ledger first (research-export.ts); 403 when she has not consented
 *   /fhir/...                             the FHIR R4 write API (fhir-rest.ts conventions, OperationOutcome errors):
 *     GET    /fhir/metadata                           CapabilityStatement (rest.security: SMART oauth-uris)
 *     GET    /fhir/.well-known/smart-configuration    SMART discovery: the hospital identity service's
 *     POST   /fhir  (or /fhir/)                       transaction or batch Bundle → transaction-/batch-response
 *     POST   /fhir/:type                              create (server-assigned id); with If-None-Exist
 *                                                     (identifier=system|value, _id) conditional: 0 matches create,
 *                                                     1 answers 200 with its Location/ETag, more are 412
 *     PUT    /fhir/:type/:id                          update: a new version when the content changed
 *                                                     (If-Match: W/"n" → 412 unless n is the current version)
 *     DELETE /fhir/:type/:id                          delete: a tombstone version
 *     GET    /fhir/Patient?identifier=system|value    cross-hospital lookup (identifier-index.ts): a searchset of Patient
 *                                                     stubs carrying the pseudonyms of consenting patients
 *     GET    /fhir/Patient/:id/records?category=      converted records for the caller, as a searchset of Binary
 *                                                     (a SMART scope to read and search that category, scopes.ts)
 * Reads of resources are not served here: the gateway holds no reader's key. A reader's SDK serves them, decrypted
 * on her device, as a FHIR view (sdk/fhir-view.ts); GET /fhir/:type/:id answers 405 saying so.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MalformedInputError } from '@medshare/crypto';
import { PUBLIC_ROUTE, senderConstrained, smartConfiguration, type SenderConstrainedVerifier } from '@medshare/identity';
import { authenticate, requireRole, useProblems } from '../http.ts';
import { requireRecordScope } from '../scopes.ts';
import { FHIR_ID, type CategoryMapping } from './fhir.ts';
import { createOperation, deleteOperation, parseIfMatch, parseWrite, updateOperation } from './fhir-bundle.ts';
import type { CloudApi } from './cloud-api.ts';
import { capabilityStatement, FhirHttpError, outcomeOf, PLAIN_JSON_ROUTE, useFhirJson } from './fhir-rest.ts';
import type { GatewayService, WriteOutcome } from './service.ts';
import type { ResearchExporter } from './research-export.ts';
import type { ReceiptBook } from './receipts.ts';

export interface GatewayPluginOptions {
  readonly gateway: GatewayService;
  readonly cloud: CloudApi;
  /** Checks the caller's DPoP-bound token (of the gateway's own hospital: its systems and staff) and proof. */
  readonly verifier: SenderConstrainedVerifier;
  /** Resource type → category, for SMART scopes. */
  readonly categories: CategoryMapping;
  /** Research release (de-identified FHIR for consenting patients). */
  readonly exporter: ResearchExporter;
  /** The hospital's upload receipts (listed, and pending ones completed on demand). */
  readonly receipts: ReceiptBook;
  /** Record signatures (record-signature.ts): this gateway's own key, and the keys its readers trust. */
  readonly writers: {
    readonly hospital: string;
    /** Its record-signing key (signed-note vkey), published for the other hospitals to pin. */
    readonly key: string;
    /** The federation's record keys as this hospital's own configuration knows them. */
    readonly trusted: () => Promise<ReadonlyArray<{ hospital: string; key: string }>>;
  };
  /** The hospital's identity service, the SMART authorization server of this FHIR base. */
  readonly identity: {
    /** Its issuer URL as the request's client reaches it. */
    readonly issuerOf: (request: FastifyRequest) => string;
    /** The scopes its discovery lists. */
    readonly scopesSupported: readonly string[];
  };
}

export const GATEWAY_BODY_LIMIT = 32 * 1024 * 1024;
/** Identifier system of a MedShare pseudonym in a lookup's Patient stubs (her FHIR view's base is /fhir/<pseudonym>). */
export const PSEUDONYM_SYSTEM = 'urn:medshare:pseudonym';
/** Media type of a converted MedShare record inside a FHIR Binary. */
export const CONVERTED_RECORD_TYPE = 'application/vnd.medshare.pre-converted';

const STATUS_TEXT: Record<number, string> = { 200: '200 OK', 201: '201 Created', 204: '204 No Content' };
const TYPE_PARAMS = { type: 'object', required: ['type'], properties: { type: { type: 'string', pattern: '^[A-Z][A-Za-z]{1,63}$' } } };
const INSTANCE_PARAMS = {
  type: 'object',
  required: ['type', 'id'],
  properties: { type: TYPE_PARAMS.properties.type, id: { type: 'string', pattern: FHIR_ID.source } },
};

const httpDate = (iso: string) => new Date(iso).toUTCString();

/** A transaction- or batch-response entry for one outcome. */
function responseEntry(outcome: WriteOutcome): Record<string, unknown> {
  const location = outcome.versionId === undefined ? undefined : `${outcome.resourceType}/${outcome.id}/_history/${outcome.versionId}`;
  return {
    response: {
      status: STATUS_TEXT[outcome.status],
      ...(location === undefined ? {} : { location, etag: `W/"${outcome.versionId}"`, lastModified: outcome.lastUpdated }),
    },
  };
}

/** The FHIR write routes; registered under `/fhir` of the gateway. */
async function fhirWriteRoutes(app: FastifyInstance, options: GatewayPluginOptions): Promise<void> {
  useFhirJson(app, GATEWAY_BODY_LIMIT);
  const { gateway, cloud, verifier } = options;
  const writer = async (request: FastifyRequest) => {
    const caller = await authenticate(verifier, request);
    requireRole(caller, 'gateway');
    return caller;
  };
  const base = (request: FastifyRequest) => `${request.protocol}://${request.host}${app.prefix}`;
  /** Answers one create/update with its version's headers and, unless `Prefer: return=minimal`, the resource. */
  const single = (request: FastifyRequest, reply: FastifyReply, outcome: WriteOutcome) => {
    void reply
      .status(outcome.status)
      .header('etag', `W/"${outcome.versionId}"`)
      .header('last-modified', httpDate(outcome.lastUpdated!))
      .header('location', `${base(request)}/${outcome.resourceType}/${outcome.id}/_history/${outcome.versionId}`);
    if (/return=minimal/.test(String(request.headers.prefer ?? ''))) return reply.send();
    // A conditional create that matched: the gateway keeps no clinical content to answer with, only where it is.
    return reply.send(
      outcome.resource ?? {
        resourceType: 'OperationOutcome',
        issue: [
          {
            severity: 'information',
            code: 'duplicate',
            diagnostics: `If-None-Exist matched ${outcome.resourceType}/${outcome.id} (version ${outcome.versionId}): nothing created; read it through your FHIR view`,
          },
        ],
      },
    );
  };

  app.get('/.well-known/smart-configuration', { config: { ...PUBLIC_ROUTE, ...PLAIN_JSON_ROUTE } }, async (request, reply) =>
    reply
      .header('cache-control', 'max-age=60')
      .type('application/json')
      .send(smartConfiguration(options.identity.issuerOf(request), options.identity.scopesSupported)),
  );

  app.get('/metadata', { config: PUBLIC_ROUTE }, async (request) =>
    capabilityStatement({
      name: 'MedShareGateway',
      oauth: { authorize: `${options.identity.issuerOf(request)}/oidc/authorize`, token: `${options.identity.issuerOf(request)}/oidc/token` },
      description:
        "MedShare hospital gateway: validates, versions and encrypts FHIR R4 writes for the semi-trusted cloud. Reads are served decrypted by the reader's own SDK (FHIR view), never here.",
      url: app.prefix,
      interactions: ['create', 'update', 'delete'],
      conditionalCreate: true,
      system: ['transaction', 'batch'],
    }),
  );

  app.post('/', { bodyLimit: GATEWAY_BODY_LIMIT }, async (request) => {
    const caller = await writer(request);
    const body = request.body as { resourceType?: unknown; type?: unknown } | null;
    if (body?.resourceType !== 'Bundle' || (body.type !== 'transaction' && body.type !== 'batch')) {
      throw new MalformedInputError('POST to the base takes a transaction or batch Bundle (create a resource with POST [base]/<type>)');
    }
    const parsed = parseWrite(body);
    if (parsed.kind === 'transaction') {
      const { outcomes } = await gateway.transaction(caller, parsed.operations);
      return { resourceType: 'Bundle', type: 'transaction-response', entry: outcomes.sort((a, b) => a.index - b.index).map(responseEntry) };
    }
    const results: Array<{ index: number; entry: Record<string, unknown> }> = [];
    for (const [index, error] of parsed.refused) results.push({ index, entry: failedEntry(error) });
    for (const result of await gateway.batch(caller, parsed.operations)) {
      results.push({ index: result.index, entry: 'error' in result ? failedEntry(result.error) : responseEntry(result) });
    }
    return { resourceType: 'Bundle', type: 'batch-response', entry: results.sort((a, b) => a.index - b.index).map((r) => r.entry) };
  });

  app.post<{ Params: { type: string } }>('/:type', { bodyLimit: GATEWAY_BODY_LIMIT, schema: { params: TYPE_PARAMS } }, async (request, reply) => {
    const caller = await writer(request);
    const ifNoneExist = request.headers['if-none-exist'];
    if (Array.isArray(ifNoneExist)) throw new MalformedInputError('one If-None-Exist header at most');
    const { outcomes } = await gateway.transaction(caller, [createOperation(request.params.type, request.body, ifNoneExist)]);
    return single(request, reply, outcomes[0]!);
  });

  app.put<{ Params: { type: string; id: string } }>(
    '/:type/:id',
    { bodyLimit: GATEWAY_BODY_LIMIT, schema: { params: INSTANCE_PARAMS } },
    async (request, reply) => {
      const caller = await writer(request);
      const ifMatch = request.headers['if-match'];
      const operation = updateOperation(request.params.type, request.params.id, request.body, ifMatch === undefined ? undefined : parseIfMatch(ifMatch));
      const { outcomes } = await gateway.transaction(caller, [operation]);
      return single(request, reply, outcomes[0]!);
    },
  );

  app.delete<{ Params: { type: string; id: string } }>('/:type/:id', { schema: { params: INSTANCE_PARAMS } }, async (request, reply) => {
    const caller = await writer(request);
    const { outcomes } = await gateway.transaction(caller, [deleteOperation(request.params.type, request.params.id)]);
    const outcome = outcomes[0]!;
    if (outcome.versionId !== undefined) void reply.header('etag', `W/"${outcome.versionId}"`);
    return reply.status(204).send();
  });

  const noReads = async () => {
    throw new FhirHttpError(
      405,
      "the gateway holds no reader key and serves no decrypted resource: read through your SDK's FHIR view (docs/platform.md, FHIR reads)",
    );
  };
  app.get<{ Querystring: Record<string, string> }>('/Patient', async (request) => {
    const caller = await authenticate(verifier, request);
    requireRecordScope(caller, options.categories.byType.Patient ?? options.categories.fallback, 's', options.categories);
    const { identifier, _format: _ignored, ...rest } = request.query;
    const unknown = Object.keys(rest)[0];
    if (unknown !== undefined || typeof identifier !== 'string')
      throw new MalformedInputError(`the gateway searches Patient by identifier=system|value only${unknown === undefined ? '' : ` (not '${unknown}')`}`);
    if (gateway.identifierKey === undefined)
      throw new FhirHttpError(501, 'this gateway has no identifier key (PlatformOptions.identifierKey): lookup by identifier is off');
    const found = await cloud.lookupIdentifier(caller.bearer, gateway.identifierKey.digestOfToken(identifier));
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      total: found.length,
      entry: found.map((pseudonym) => ({
        resource: { resourceType: 'Patient', identifier: [{ system: PSEUDONYM_SYSTEM, value: pseudonym }] },
        search: { mode: 'match' },
      })),
    };
  });
  app.get('/:type', noReads);
  app.get('/:type/:id', noReads);
  app.get('/:type/:id/*', noReads);

  app.get<{ Params: { id: string }; Querystring: { category: string } }>(
    '/Patient/:id/records',
    {
      schema: {
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: FHIR_ID.source } } },
        querystring: {
          type: 'object',
          required: ['category'],
          additionalProperties: false,
          properties: { category: { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,63}$' } },
        },
      },
    },
    async (request) => {
      const caller = await authenticate(verifier, request);
      requireRecordScope(caller, request.query.category, 'r', options.categories);
      requireRecordScope(caller, request.query.category, 's', options.categories);
      const patient = await gateway.pseudonymOf(caller.token.hospital, request.params.id);
      const records = await cloud.read(caller.bearer, patient, request.query.category);
      return {
        resourceType: 'Bundle',
        type: 'searchset',
        total: records.length,
        entry: await Promise.all(
          records.map(async (r) => ({
            resource: { resourceType: 'Binary', id: r.recordId, contentType: CONVERTED_RECORD_TYPE, data: Buffer.from(await r.joined()).toString('base64') },
          })),
        ),
      };
    },
  );
}

/** A batch-response entry for an entry that failed. */
function failedEntry(error: unknown): Record<string, unknown> {
  const { status, outcome } = outcomeOf(error);
  return { response: { status: String(status), outcome } };
}

/** The Fastify plugin; register it with prefix `/gateway`. */
export async function gatewayPlugin(app: FastifyInstance, options: GatewayPluginOptions): Promise<void> {
  useProblems(app);
  const { gateway, verifier } = options;
  senderConstrained(app, verifier);
  // JSON only: a text/plain body would otherwise reach the handler as a string (415 instead).
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/fhir+json', { parseAs: 'string', bodyLimit: GATEWAY_BODY_LIMIT }, (_request, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(Object.assign(new Error('the body is not valid JSON'), { statusCode: 400 }), undefined);
    }
  });

  // Public keys: the other hospitals pin this one on first sight; this hospital's readers verify records with the list.
  app.get('/record-key', { config: PUBLIC_ROUTE }, async () => ({ hospital: options.writers.hospital, key: options.writers.key }));
  app.get('/writer-keys', async (request) => {
    await authenticate(verifier, request);
    return { keys: await options.writers.trusted() };
  });

  app.post<{ Body: { fhirId: string; patient: string } }>(
    '/patients',
    {
      bodyLimit: 16 * 1024,
      schema: {
        body: {
          type: 'object',
          required: ['fhirId', 'patient'],
          additionalProperties: false,
          properties: { fhirId: { type: 'string', pattern: FHIR_ID.source }, patient: { type: 'string', pattern: '^psn:[A-Za-z0-9_-]{16,86}$' } },
        },
      },
    },
    async (request, reply) => {
      const caller = await authenticate(verifier, request);
      requireRole(caller, 'gateway');
      await gateway.enrol(caller, request.body.fhirId, request.body.patient);
      return reply.status(201).send({ fhirId: request.body.fhirId, patient: request.body.patient });
    },
  );

  app.post('/upload', { bodyLimit: GATEWAY_BODY_LIMIT }, async (request, reply) => {
    const caller = await authenticate(verifier, request);
    requireRole(caller, 'gateway');
    const result = await gateway.upload(caller, request.body);
    return reply.status(result.stored > 0 ? 201 : 200).send(result);
  });

  app.get<{ Querystring: { status?: 'pending' | 'complete'; patient?: string; from?: number } }>(
    '/receipts',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            status: { enum: ['pending', 'complete'] },
            patient: { type: 'string', pattern: '^psn:[A-Za-z0-9_-]{16,86}$' },
            from: { type: 'integer', minimum: 0, maximum: 2 ** 40 },
          },
        },
      },
    },
    async (request) => {
      const caller = await authenticate(verifier, request);
      requireRole(caller, 'gateway');
      return { receipts: await options.receipts.list(caller.token.hospital, request.query) };
    },
  );

  app.post('/receipts/complete', { bodyLimit: 1024 }, async (request) => {
    const caller = await authenticate(verifier, request);
    requireRole(caller, 'gateway');
    // On demand, through the cloud's gateway route: it asks the witnesses again before answering.
    return options.receipts.complete(caller.token.hospital, (entries) => options.cloud.receipts(caller.bearer, entries, options.receipts.waitMs));
  });

  app.post<{ Querystring: { profile: string } }>(
    '/research-exports',
    {
      bodyLimit: GATEWAY_BODY_LIMIT,
      schema: {
        querystring: { type: 'object', required: ['profile'], additionalProperties: false, properties: { profile: { type: 'string', maxLength: 32 } } },
      },
    },
    async (request) => {
      const caller = await authenticate(verifier, request);
      requireRole(caller, 'gateway');
      return options.exporter.release(caller, request.body, request.query.profile);
    },
  );

  await app.register(fhirWriteRoutes, { ...options, prefix: '/fhir' });
}
