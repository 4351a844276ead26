/**
 * What every platform route shares: bearer-token authentication against the federation trust list, role checks,
 * pseudonyms for agents, and RFC 9457 problem details through identity's one error→HTTP mapping (`problemFor`: 401 for
 * a missing or bad token, 403 for a valid token that is not allowed, 400/413/415 for bad input, 404 for unknown
 * resources, 503 with Retry-After while a dependency is down, 500 saying nothing more).
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AccessDeniedError, MalformedInputError, MedShareError, RateLimitedError, UnauthenticatedError, UnavailableError } from '@medshare/crypto';
import { bearerToken, problemFor, type TokenVerifier, type VerifiedToken } from '@medshare/identity';

export { NotFoundError, UnauthenticatedError } from '@medshare/crypto';

/** Who is calling, as the platform sees it after verifying the token. */
export interface Caller {
  readonly token: VerifiedToken;
  /** The caller's pseudonym in logs and the ledger (never the uid itself). */
  readonly pseudonym: string;
  readonly role: string;
  /** The bearer token itself, for a service that calls another on the caller's behalf (the gateway → the cloud). */
  readonly bearer: string;
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
    // An issuer that cannot be asked about the session is a 503, not a bad token.
    if (error instanceof MedShareError && !(error instanceof UnavailableError)) throw new UnauthenticatedError(error.message);
    throw error;
  }
  const role = token.attributes.find((a) => a.startsWith('role:'))?.slice('role:'.length) ?? 'none';
  return { token, pseudonym: agentPseudonym(token.issuer, token.subject), role, bearer: raw };
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

/** Installs problem+json errors and a problem+json 404 on a Fastify scope. */
export function useProblems(app: FastifyInstance): void {
  app.setErrorHandler((error, _request, reply) => {
    const problem = problemFor(error);
    if (error instanceof RateLimitedError || error instanceof UnavailableError) void reply.header('retry-after', String(error.retryAfterSeconds));
    if (problem.status === 401) void reply.header('www-authenticate', 'Bearer');
    return reply.status(problem.status).type('application/problem+json').send(problem);
  });
  app.setNotFoundHandler((_request, reply) =>
    reply.status(404).type('application/problem+json').send({ type: 'urn:medshare:problem:not-found', title: 'Not found', status: 404, detail: 'no such resource' }),
  );
}
