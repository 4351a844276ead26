/**
 * What the plugins read from a request to check a DPoP proof (sso/dpop.ts): the access token of an
 * `Authorization: DPoP …` (or `Bearer …`) header, the `DPoP` header, and the request's URL as the client addressed it.
 */
import type { FastifyRequest } from 'fastify';
import { AccessDeniedError } from '@medshare/crypto';

/** The token of an `Authorization: DPoP <token>` or `Bearer <token>` header, with its scheme. */
export function presentedToken(header: string | undefined): { scheme: 'DPoP' | 'Bearer'; token: string } | undefined {
  const match = /^(DPoP|Bearer) ([A-Za-z0-9._~+/-]+=*)$/.exec(header ?? '');
  return match ? { scheme: match[1] as 'DPoP' | 'Bearer', token: match[2]! } : undefined;
}

/** The request's single `DPoP` header, if any (two are refused: RFC 9449 §4.3 step 1). */
export function dpopHeader(request: FastifyRequest): string | undefined {
  const value = request.headers.dpop;
  if (Array.isArray(value)) throw new AccessDeniedError('exactly one DPoP proof is allowed');
  return value;
}

/**
 * The request's URL without query, as `htu` names it: scheme and host as Fastify resolved them (from the
 * connection, or from X-Forwarded-* only when the platform trusts the proxy it came through).
 */
export function requestUrl(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}${request.url.split('?', 1)[0]}`;
}
