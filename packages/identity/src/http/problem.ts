/**
 * Errors as RFC 9457 problem details (`application/problem+json`). Typed MedShare errors become
 * 4xx answers with their message; anything else becomes a 500 whose body says nothing more, so
 * that no internal detail (and no secret) reaches a client. Nothing is logged here.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { MedShareError } from '@medshare/crypto';
import { ConflictError, RateLimitedError } from '../errors.ts';

const STATUS = {
  MALFORMED: 400,
  UNSUPPORTED: 400,
  POLICY_SYNTAX: 400,
  LIMIT: 413,
  INTEGRITY: 400,
  UNAUTHENTICATED: 401,
  NOT_FOUND: 404,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
} as const;

/** A problem document. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

function problemFor(error: unknown, deniedStatus: 401 | 403): Problem {
  if (error instanceof RateLimitedError) return { type: 'urn:medshare:problem:rate-limited', title: 'Too many attempts', status: 429, detail: error.message };
  if (error instanceof ConflictError) return { type: 'urn:medshare:problem:conflict', title: 'Conflict', status: 409, detail: error.message };
  if (error instanceof MedShareError) {
    const status = error.code === 'ACCESS_DENIED' ? deniedStatus : STATUS[error.code];
    const title = status === 401 ? 'Authentication failed' : status === 403 ? 'Forbidden' : 'Bad request';
    return { type: `urn:medshare:problem:${error.code.toLowerCase().replace('_', '-')}`, title, status, detail: error.message };
  }
  const fastifyError = error as Partial<FastifyError>;
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return { type: 'urn:medshare:problem:bad-request', title: 'Bad request', status: fastifyError.statusCode, detail: String(fastifyError.message).slice(0, 200) };
  }
  return { type: 'urn:medshare:problem:internal', title: 'Internal error', status: 500, detail: 'the request could not be completed' };
}

/** Installs the problem+json error handler on a Fastify scope (401 or 403 for denied access). */
export function useProblemDetails(app: FastifyInstance, deniedStatus: 401 | 403): void {
  app.setErrorHandler((error, _request, reply) => {
    const problem = problemFor(error, deniedStatus);
    if (error instanceof RateLimitedError) void reply.header('retry-after', String(error.retryAfterSeconds));
    if (problem.status === 401) void reply.header('www-authenticate', 'Bearer');
    return reply.status(problem.status).type('application/problem+json').send(problem);
  });
}

/** The bearer token of an Authorization header, or undefined if there is none. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(header ?? '');
  return match?.[1];
}
