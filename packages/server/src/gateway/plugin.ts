/**
 * The hospital gateway's FHIR R4 facade (Fastify). Callers are the hospital's own systems with a token of role
 * `gateway` from that hospital; the hospital is the token's. Bodies are `application/fhir+json` or
 * `application/json` (anything else is 415), at most 32 MiB (a whole Synthea patient is 0.5-3.2 MB).
 *
 *   POST /patients                        { fhirId, patient }   enrol a FHIR patient under her pseudonym
 *   POST /fhir                            a resource or a transaction Bundle → encrypted and uploaded atomically
 *   GET  /fhir/Patient/:id/records?category=   converted records for the caller, as a FHIR searchset of Binary
 *                                              (a SMART scope to read and search that category, scopes.ts)
 */
import type { FastifyInstance } from 'fastify';
import type { TokenVerifier } from '@medshare/identity';
import { authenticate, requireRole, useProblems } from '../http.ts';
import { requireRecordScope } from '../scopes.ts';
import type { CloudApi } from './cloud-api.ts';
import { FHIR_ID, type CategoryMapping } from './fhir.ts';
import type { GatewayService } from './service.ts';

export interface GatewayPluginOptions {
  readonly gateway: GatewayService;
  readonly cloud: CloudApi;
  /** Verifies tokens of the gateway's own hospital (its callers are that hospital's systems and staff). */
  readonly verifier: TokenVerifier;
  /** Resource type → category, for SMART scopes. */
  readonly categories: CategoryMapping;
}

export const GATEWAY_BODY_LIMIT = 32 * 1024 * 1024;
/** Media type of a converted MedShare record inside a FHIR Binary. */
export const CONVERTED_RECORD_TYPE = 'application/vnd.medshare.pre-converted';

/** The Fastify plugin; register it with prefix `/gateway`. */
export async function gatewayPlugin(app: FastifyInstance, options: GatewayPluginOptions): Promise<void> {
  useProblems(app);
  const { gateway, cloud, verifier } = options;
  // FHIR JSON only: a text/plain body would otherwise reach the handler as a string (415 instead).
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/fhir+json', { parseAs: 'string', bodyLimit: GATEWAY_BODY_LIMIT }, (_request, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(Object.assign(new Error('the body is not valid JSON'), { statusCode: 400 }), undefined);
    }
  });

  app.post<{ Body: { fhirId: string; patient: string } }>('/patients', {
    bodyLimit: 16 * 1024,
    schema: {
      body: {
        type: 'object', required: ['fhirId', 'patient'], additionalProperties: false,
        properties: { fhirId: { type: 'string', pattern: FHIR_ID.source }, patient: { type: 'string', pattern: '^psn:[A-Za-z0-9_-]{16,86}$' } },
      },
    },
  }, async (request, reply) => {
    const caller = await authenticate(verifier, request);
    requireRole(caller, 'gateway');
    await gateway.enrol(caller, request.body.fhirId, request.body.patient);
    return reply.status(201).send({ fhirId: request.body.fhirId, patient: request.body.patient });
  });

  app.post('/fhir', { bodyLimit: GATEWAY_BODY_LIMIT }, async (request, reply) => {
    const caller = await authenticate(verifier, request);
    requireRole(caller, 'gateway');
    const result = await gateway.upload(caller, request.body);
    return reply.status(result.stored > 0 ? 201 : 200).send(result);
  });

  app.get<{ Params: { id: string }; Querystring: { category: string } }>('/fhir/Patient/:id/records', {
    schema: {
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: FHIR_ID.source } } },
      querystring: { type: 'object', required: ['category'], additionalProperties: false, properties: { category: { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,63}$' } } },
    },
  }, async (request) => {
    const caller = await authenticate(verifier, request);
    requireRecordScope(caller, request.query.category, 'r', options.categories);
    requireRecordScope(caller, request.query.category, 's', options.categories);
    const patient = await gateway.pseudonymOf(caller.token.hospital, request.params.id);
    const records = await cloud.read(caller.bearer, patient, request.query.category);
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      total: records.length,
      entry: records.map((r) => ({ resource: { resourceType: 'Binary', id: r.recordId, contentType: CONVERTED_RECORD_TYPE, data: Buffer.from(r.ciphertext).toString('base64') } })),
    };
  });
}
