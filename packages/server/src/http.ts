/**
 * What every platform route shares: DPoP-bound token authentication against the federation trust list, role checks,
 * pseudonyms for agents, and RFC 9457 problem details through identity's one error→HTTP mapping (`problemFor`: 401 for
 * a missing or bad token, 403 for a valid token that is not allowed, 400/413/415 for bad input, 404 for unknown
 * resources, 503 with Retry-After while a dependency is down, 500 saying nothing more).
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AccessDeniedError, MalformedInputError, MedShareError, RateLimitedError, UnauthenticatedError, UnavailableError } from '@medshare/crypto';
import { DPOP_CHALLENGE, presentedToken, problemFor, type SenderConstrainedVerifier, type TokenVerifier, type VerifiedToken } from '@medshare/identity';

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

/**
 * The caller's pseudonym in logs and the ledger. MedShare hospitals issue tokens whose subject is already a session
 * pseudonym (identity's sso/pseudonyms.ts: one per session, traceable only by the issuing hospital), kept as it is
 * so that the hospital can trace a ledger entry; any other subject is hashed with its issuer, so no log carries it.
 */
export function agentPseudonym(issuer: string, subject: string): string {
  if (PSEUDONYM.test(subject)) return subject;
  return `psn:${createHash('sha256').update(`medshare/agent/v1|${issuer}|${subject}`).digest('base64url').slice(0, 22)}`;
}

/**
 * Verifies the request's DPoP-bound token and its proof (401 when either is missing or fails a check): a token
 * alone is not enough on any platform route (identity's dpop/verify.ts).
 */
export async function authenticate(verifier: SenderConstrainedVerifier, request: FastifyRequest): Promise<Caller> {
  const token = await verifier.verifyRequest(request);
  const raw = presentedToken(request.headers.authorization)!.token;
  const role = token.attributes.find((a) => a.startsWith('role:'))?.slice('role:'.length) ?? 'none';
  return { token, pseudonym: agentPseudonym(token.issuer, token.subject), role, bearer: raw };
}

/**
 * A bare bearer token (401 when missing or invalid), for the storage-audit routes only: their CLI (`medshare audit
 * storage`) takes a token from `medshare identity login`, which has no device key yet. Not DPoP-bound: a stolen
 * auditor token works there (docs/identity.md §8).
 */
export async function authenticateBearer(verifier: TokenVerifier, request: FastifyRequest): Promise<Caller> {
  const presented = presentedToken(request.headers.authorization);
  if (presented === undefined) throw new UnauthenticatedError('a bearer SSO token is required');
  let token: VerifiedToken;
  try {
    token = await verifier.verify(presented.token);
  } catch (error) {
    // An issuer that cannot be asked about the session is a 503, not a bad token.
    if (error instanceof MedShareError && !(error instanceof UnavailableError)) throw new UnauthenticatedError(error.message);
    throw error;
  }
  const role = token.attributes.find((a) => a.startsWith('role:'))?.slice('role:'.length) ?? 'none';
  return { token, pseudonym: agentPseudonym(token.issuer, token.subject), role, bearer: presented.token };
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
  app.setErrorHandler((error, request, reply) => {
    const problem = problemFor(error);
    // An unexpected error was answered with a bare 500 and logged nowhere (an 8 MiB upload's MSM overflowed mcl-wasm's
    // stack unseen). Its class and stack frames are logged; not its message, which may quote request data.
    if (problem.status === 500)
      request.log.error(
        {
          error:
            error instanceof Error
              ? {
                  name: error.name,
                  frames: error.stack
                    ?.split('\n')
                    .slice(1, 8)
                    .map((l) => l.trim()),
                }
              : typeof error,
        },
        'internal error',
      );
    if (error instanceof RateLimitedError || error instanceof UnavailableError) void reply.header('retry-after', String(error.retryAfterSeconds));
    if (problem.status === 401) void reply.header('www-authenticate', DPOP_CHALLENGE);
    return reply.status(problem.status).type('application/problem+json').send(problem);
  });
  app.setNotFoundHandler((_request, reply) =>
    reply
      .status(404)
      .type('application/problem+json')
      .send({ type: 'urn:medshare:problem:not-found', title: 'Not found', status: 404, detail: 'no such resource' }),
  );
}
