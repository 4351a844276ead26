/**
 * Errors as RFC 9457 problem details (`application/problem+json`): the one error→HTTP mapping of MedShare's
 * services (identity's plugins and every @medshare/server service use it). Typed MedShare errors become 4xx (or
 * 503) answers with their message, by code; anything else becomes a 500 whose body says nothing more, so that no
 * internal detail (and no secret) reaches a client. Nothing is logged here.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { MedShareError, RateLimitedError, UnavailableError, type ErrorCode } from '@medshare/crypto';

/** HTTP status of each error code (ACCESS_DENIED is 403 unless a scope treats it as failed authentication). */
export const HTTP_STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  MALFORMED: 400,
  UNSUPPORTED: 400,
  POLICY_SYNTAX: 400,
  INTEGRITY: 400,
  LIMIT: 413,
  ACCESS_DENIED: 403,
  UNAUTHENTICATED: 401,
  NOT_FOUND: 404,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
};

const TITLE_BY_STATUS: Readonly<Record<number, string>> = {
  401: 'Authentication required',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  413: 'Too large',
  429: 'Too many requests',
  503: 'Service unavailable',
};

/** The problem type URN of an error code (`urn:medshare:problem:access-denied`); clients map it back to the code. */
export function problemType(code: ErrorCode): string {
  return `urn:medshare:problem:${code.toLowerCase().replaceAll('_', '-')}`;
}

/** A problem document. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

/**
 * The problem answer for any thrown value. `deniedStatus` is what ACCESS_DENIED becomes: 403 on resource routes,
 * 401 on login routes (a wrong password is a failed authentication). Fastify's own 4xx errors (validation, body
 * limits, content types) keep their status; an unknown-field validation error names the field (Ajv's does not).
 */
export function problemFor(error: unknown, deniedStatus: 401 | 403 = 403): Problem {
  if (error instanceof MedShareError) {
    const status = error.code === 'ACCESS_DENIED' ? deniedStatus : HTTP_STATUS_BY_CODE[error.code];
    return { type: problemType(error.code), title: TITLE_BY_STATUS[status] ?? 'Bad request', status, detail: error.message };
  }
  const fastifyError = error as Partial<FastifyError>;
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    const unknown = fastifyError.validation?.find((v) => v.keyword === 'additionalProperties')?.params.additionalProperty;
    const detail = typeof unknown === 'string' ? `${fastifyError.message}: '${unknown}'` : String(fastifyError.message);
    const status = fastifyError.statusCode;
    return {
      type: status === 429 ? problemType('RATE_LIMITED') : 'urn:medshare:problem:bad-request',
      title: TITLE_BY_STATUS[status] ?? 'Bad request',
      status,
      detail: detail.slice(0, 200),
    };
  }
  return { type: 'urn:medshare:problem:internal', title: 'Internal error', status: 500, detail: 'the request could not be completed' };
}

/** Installs the problem+json error handler on a Fastify scope (401 or 403 for denied access). */
export function useProblemDetails(app: FastifyInstance, deniedStatus: 401 | 403): void {
  app.setErrorHandler((error, _request, reply) => {
    const problem = problemFor(error, deniedStatus);
    if (error instanceof RateLimitedError || error instanceof UnavailableError) void reply.header('retry-after', String(error.retryAfterSeconds));
    if (problem.status === 401) void reply.header('www-authenticate', 'Bearer');
    return reply.status(problem.status).type('application/problem+json').send(problem);
  });
}

/** The bearer token of an Authorization header, or undefined if there is none. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(header ?? '');
  return match?.[1];
}
