/**
 * FHIR R4 RESTful API conventions (https://hl7.org/fhir/R4/http.html) shared by the hospital gateway's write API
 * (plugin.ts) and the reader's local FHIR view (sdk/fhir-view.ts):
 *   - JSON only: `application/fhir+json` or `application/json` in (anything else, XML included, is 415); out always
 *     `application/fhir+json`; `_format` or `Accept` asking for anything but JSON is 406;
 *   - every error is an OperationOutcome with the status of the platform's one error mapping (http.ts problemFor);
 *   - a CapabilityStatement at `/metadata` listing what the scope really supports.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DPOP_CHALLENGE, problemFor } from '@medshare/identity';
import { RateLimitedError, UnavailableError } from '@medshare/crypto';
import { FhirValidationError } from './fhir-validate.ts';

/** The media type of FHIR JSON. */
export const FHIR_JSON = 'application/fhir+json';
const JSON_FORMATS = new Set(['json', 'application/json', FHIR_JSON]);

const ISSUE_CODE: Record<number, string> = {
  400: 'invalid',
  401: 'login',
  403: 'forbidden',
  404: 'not-found',
  405: 'not-supported',
  406: 'not-supported',
  409: 'conflict',
  410: 'deleted',
  412: 'conflict',
  413: 'too-costly',
  415: 'not-supported',
  429: 'throttled',
  501: 'not-supported',
  503: 'transient',
};

/** An OperationOutcome resource. */
export interface OperationOutcome {
  resourceType: 'OperationOutcome';
  issue: Array<{
    severity: 'fatal' | 'error' | 'warning' | 'information';
    code: string;
    diagnostics?: string;
    details?: { text: string };
    expression?: string[];
  }>;
}

/** An HTTP status with a message, for FHIR outcomes the error taxonomy has no code for (405, 406, 410). */
export class FhirHttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** The status and OperationOutcome of an error (validation errors keep their element-level issues). */
export function outcomeOf(error: unknown): { status: number; outcome: OperationOutcome } {
  if (error instanceof FhirHttpError) {
    return {
      status: error.statusCode,
      outcome: {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: ISSUE_CODE[error.statusCode] ?? 'processing', diagnostics: error.message }],
      },
    };
  }
  if (error instanceof FhirValidationError) {
    const issue = error.issues.map((i) => ({
      severity: 'error' as const,
      code: i.code ?? 'invalid',
      diagnostics: i.diagnostics ?? i.details?.text ?? error.message,
      ...(i.details?.text === undefined ? {} : { details: { text: i.details.text } }),
      ...(i.expression === undefined ? {} : { expression: i.expression }),
    }));
    return { status: 400, outcome: { resourceType: 'OperationOutcome', issue } };
  }
  const problem = problemFor(error);
  return {
    status: problem.status,
    outcome: { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: ISSUE_CODE[problem.status] ?? 'exception', diagnostics: problem.detail }] },
  };
}

function sendOutcome(reply: FastifyReply, error: unknown): FastifyReply {
  const { status, outcome } = outcomeOf(error);
  if (status === 401) void reply.header('www-authenticate', DPOP_CHALLENGE);
  if (error instanceof RateLimitedError || error instanceof UnavailableError) void reply.header('retry-after', String(error.retryAfterSeconds));
  return reply.status(status).type(FHIR_JSON).send(outcome);
}

/** 406 unless `_format` and `Accept` allow JSON. */
function negotiate(request: FastifyRequest): void {
  const format = (request.query as Record<string, unknown> | undefined)?._format;
  if (format !== undefined && !(typeof format === 'string' && JSON_FORMATS.has(format.split(';')[0]!.trim().toLowerCase()))) {
    throw new FhirHttpError(406, `_format '${String(format)}' is not supported: this server speaks FHIR JSON only (_format=json)`);
  }
  const accept = request.headers.accept;
  if (accept === undefined || accept.trim() === '') return;
  const types = accept.split(',').map((t) => t.split(';')[0]!.trim().toLowerCase());
  if (!types.some((t) => t === '*/*' || t === 'application/*' || JSON_FORMATS.has(t) || t.endsWith('+json'))) {
    throw new FhirHttpError(406, `Accept '${accept.slice(0, 100)}' is not supported: this server answers application/fhir+json only`);
  }
}

/** Route `config` of a route in a FHIR scope that answers plain `application/json` (SMART's discovery document). */
export const PLAIN_JSON_ROUTE = { plainJson: true } as const;

/**
 * Makes a Fastify scope a FHIR JSON endpoint: parsers for both JSON media types (up to `bodyLimit`), content
 * negotiation, FHIR JSON answers (but for PLAIN_JSON_ROUTE routes), and OperationOutcome for every error and unknown route (404) or method (405).
 */
export function useFhirJson(app: FastifyInstance, bodyLimit: number): void {
  app.removeAllContentTypeParsers();
  const parse = (_request: FastifyRequest, body: string | Buffer, done: (error: Error | null, value?: unknown) => void) => {
    try {
      done(null, JSON.parse(body.toString()));
    } catch {
      done(Object.assign(new Error('the body is not valid JSON'), { statusCode: 400 }), undefined);
    }
  };
  app.addContentTypeParser([FHIR_JSON, 'application/json'], { parseAs: 'string', bodyLimit }, parse);
  app.addHook('onRequest', async (request) => negotiate(request));
  app.addHook('onSend', async (request, reply, payload) => {
    const type = String(reply.getHeader('content-type') ?? '');
    const plainJson = (request.routeOptions.config as { plainJson?: unknown } | undefined)?.plainJson === true;
    if ((type.startsWith('application/json') && !plainJson) || type === '') void reply.header('content-type', `${FHIR_JSON}; charset=utf-8`);
    return payload;
  });
  app.setErrorHandler((error, _request, reply) => sendOutcome(reply, error));
  app.setNotFoundHandler((request, reply) =>
    sendOutcome(reply, new FhirHttpError(404, `no FHIR interaction ${request.method} ${request.url.split('?')[0]} here (see /metadata)`)),
  );
}

/** The SMART App Launch extension of CapabilityStatement.rest.security naming the OAuth endpoints. */
export const SMART_OAUTH_URIS = 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris';

/** A CapabilityStatement of a server that supports `interactions` on every resource type (JSON only). */
export function capabilityStatement(options: {
  name: string;
  description: string;
  url: string;
  interactions: readonly string[];
  system: readonly string[];
  searchParams?: ReadonlyArray<{ name: string; type: string; documentation: string }>;
  versioning?: 'versioned' | 'no-version';
  /** Whether creates may be conditional (If-None-Exist). */
  conditionalCreate?: boolean;
  /** Operations served (`$everything`), each with its OperationDefinition's canonical URL. */
  operations?: ReadonlyArray<{ name: string; definition: string }>;
  /** The SMART authorization server's endpoints, declared with the `oauth-uris` extension of rest.security. */
  oauth?: { authorize: string; token: string };
}): Record<string, unknown> {
  const oauthUris =
    options.oauth === undefined
      ? {}
      : {
          extension: [
            {
              url: SMART_OAUTH_URIS,
              extension: [
                { url: 'authorize', valueUri: options.oauth.authorize },
                { url: 'token', valueUri: options.oauth.token },
              ],
            },
          ],
        };
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-12-01',
    publisher: 'MedShare',
    kind: 'instance',
    name: options.name,
    description: options.description,
    implementation: { description: options.description, url: options.url },
    software: { name: 'MedShare', version: '0.1.0' },
    fhirVersion: '4.0.1',
    format: [FHIR_JSON, 'json'],
    rest: [
      {
        mode: 'server',
        security: {
          ...oauthUris,
          cors: false,
          service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
          description: 'Bearer SSO token of a MedShare hospital (SMART scopes)',
        },
        resource: [
          {
            type: 'Resource',
            interaction: options.interactions.map((code) => ({ code })),
            versioning: options.versioning ?? 'versioned',
            readHistory: options.interactions.includes('vread'),
            updateCreate: options.interactions.includes('update'),
            ...(options.conditionalCreate === true ? { conditionalCreate: true } : {}),
            ...(options.searchParams === undefined ? {} : { searchParam: options.searchParams }),
            ...(options.operations === undefined ? {} : { operation: options.operations }),
          },
        ],
        interaction: options.system.map((code) => ({ code })),
      },
    ],
  };
}
