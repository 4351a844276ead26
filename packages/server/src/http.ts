/**
 * What every platform route shares: bearer-token authentication against the federation trust list, role checks,
 * pseudonyms for agents, and RFC 9457 problem details (401 for a missing or bad token, 403 for a valid token
 * that is not allowed, 400/413/415 for bad input, 404 for unknown resources, 500 saying nothing more).
 */
import { createHash } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { AccessDeniedError, MalformedInputError, MedShareError, NotFoundError, UnauthenticatedError, type ErrorCode } from '@medshare/crypto';
import { bearerToken, type TokenVerifier, type VerifiedToken } from '@medshare/identity';

export { NotFoundError, UnauthenticatedError } from '@medshare/crypto';

/** Who is calling, as the platform sees it after verifying the token. */
export interface Caller {
  readonly token: VerifiedToken;
  /** The caller's pseudonym in logs and the ledger (never the uid itself). */
  readonly pseudonym: string;
  readonly role: string;
}

/** The audience of every platform service token. */
export const PLATFORM_AUDIENCE = 'medshare-platform';
/** Patient pseudonyms: `psn:` + 16-86 base64url characters (the ledger's format). */
export const PSEUDONYM = /^psn:[A-Za-z0-9_-]{16,86}$/;

/** A stable pseudonym for a user: a hash of issuer and subject, so logs never carry the uid. */
export function agentPseudonym(issuer: string, subject: string): string {
  return `psn:${createHash('sha256').update(`medshare/agent/v1|${issuer}|${subject}`).digest('base64url').slice(0, 22)}`;
}

/** Verifies the bearer token of a request (401 when missing or invalid). */
export async function authenticate(verifier: TokenVerifier, request: FastifyRequest): Promise<Caller> {
  const raw = bearerToken(request.headers.authorization);
  if (raw === undefined) throw new UnauthenticatedError('a bearer SSO token is required');
  let token: VerifiedToken;
  try {
    token = await verifier.verify(raw);
  } catch (error) {
    if (error instanceof MedShareError) throw new UnauthenticatedError(error.message);
    throw error;
  }
  const role = token.attributes.find((a) => a.startsWith('role:'))?.slice('role:'.length) ?? 'none';
  return { token, pseudonym: agentPseudonym(token.issuer, token.subject), role };
}

/** Refuses (403) a caller whose role is not one of `roles`. */
export function requireRole(caller: Caller, ...roles: string[]): void {
  if (!roles.includes(caller.role)) throw new AccessDeniedError(`this operation needs role ${roles.join(' or ')}`);
}

/** Checks a path parameter that names a patient. */
export function patientParam(value: string): string {
  if (!PSEUDONYM.test(value)) throw new MalformedInputError('a patient is named by its pseudonym psn:<16-86 base64url>');
  return value;
}

/** The RFC 9457 problem of an error (the one error → status mapping; FHIR routes wrap it in an OperationOutcome). */
export function problemFor(error: unknown): { type: string; title: string; status: number; detail: string } {
  if (error instanceof UnauthenticatedError) return { type: 'urn:medshare:problem:unauthenticated', title: 'Authentication required', status: 401, detail: error.message };
  if (error instanceof NotFoundError) return { type: 'urn:medshare:problem:not-found', title: 'Not found', status: 404, detail: error.message };
  if (error instanceof MedShareError) {
    const status = STATUS_BY_CODE[error.code];
    const title = TITLE_BY_STATUS[status] ?? 'Bad request';
    return { type: `urn:medshare:problem:${error.code.toLowerCase().replace('_', '-')}`, title, status, detail: error.message };
  }
  const fastifyError = error as Partial<FastifyError>;
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    // Ajv's message for an unknown field does not say which one.
    const unknown = fastifyError.validation?.find((v) => v.keyword === 'additionalProperties')?.params.additionalProperty;
    const detail = typeof unknown === 'string' ? `${fastifyError.message}: '${unknown}'` : String(fastifyError.message);
    return { type: 'urn:medshare:problem:bad-request', title: 'Bad request', status: fastifyError.statusCode, detail: detail.slice(0, 200) };
  }
  return { type: 'urn:medshare:problem:internal', title: 'Internal error', status: 500, detail: 'the request could not be completed' };
}

const STATUS_BY_CODE: Record<ErrorCode, number> = {
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
const TITLE_BY_STATUS: Record<number, string> = {
  401: 'Authentication required',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  413: 'Too large',
  429: 'Too many requests',
  503: 'Service unavailable',
};

/** Installs problem+json errors and a problem+json 404 on a Fastify scope. */
export function useProblems(app: FastifyInstance): void {
  app.setErrorHandler((error, _request, reply) => {
    const problem = problemFor(error);
    if (problem.status === 401) void reply.header('www-authenticate', 'Bearer');
    return reply.status(problem.status).type('application/problem+json').send(problem);
  });
  app.setNotFoundHandler((_request, reply) =>
    reply.status(404).type('application/problem+json').send({ type: 'urn:medshare:problem:not-found', title: 'Not found', status: 404, detail: 'no such resource' }),
  );
}
