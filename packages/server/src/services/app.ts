/**
 * What every MedShare service process shares: one Fastify app with problem+json errors, a per-client rate limit,
 * the OpenAPI document of its routes, optional TLS, and the client address taken from a trusted proxy's
 * X-Forwarded-For only when told to (a hospital's integration engine is one address for many users).
 */
import type { AddressInfo } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { useProblems } from '../http.ts';

/** HTTP settings of one service. */
export interface ServiceHttpOptions {
  /** Log requests with Fastify's logger (method, URL, status: never bodies or tokens); or a destination stream. */
  readonly logger?: boolean | { stream: NodeJS.WritableStream };
  /** Requests per client address per minute on every route (default 600; identity's login limits come on top). */
  readonly requestsPerMinute?: number;
  /**
   * Fastify's trustProxy: true, or the proxies' addresses (comma-separated or a list); the client address for
   * rate limits is then the one the proxy forwards. Default false: the connection's own address.
   */
  readonly trustProxy?: boolean | string | string[];
  /** PEM certificate chain and key: the service speaks HTTPS only. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /**
   * Origins of web pages allowed to call this service from a browser (CORS): the hospitals' portals, for the cloud
   * and the authority. None by default. Tokens go in headers, never cookies, so no credentials mode is allowed.
   */
  readonly browserOrigins?: readonly string[];
}

/** Identity routes relying parties call (session status, JWKS): cheap lookups by random id, no credentials. */
const FEDERATION_ROUTE = /^\/identity\/[a-z0-9-]+\/(sso\/sessions\/[^/?]+|sso\/session-status|\.well-known\/jwks\.json)$/;

/** The default rate limit (requests per client address per minute). */
export const DEFAULT_REQUESTS_PER_MINUTE = 600;

/** A new service app (not yet listening), with swagger, the rate limit and problem answers installed. */
export async function serviceApp(title: string, options: ServiceHttpOptions): Promise<FastifyInstance> {
  const logger = typeof options.logger === 'object' ? { level: 'info', stream: options.logger.stream } : (options.logger ?? false);
  // Long path parameters reach schema validation (a 400 problem) instead of the router's bare 414. Unknown fields
  // are refused, as the schemas say (`additionalProperties: false`), not silently dropped (Fastify's default).
  const app = Fastify({
    logger,
    bodyLimit: 1024 * 1024,
    trustProxy: options.trustProxy ?? false,
    ...(options.tls ? { https: { cert: options.tls.cert, key: options.tls.key } } : {}),
    routerOptions: { maxParamLength: 2048 },
    ajv: { customOptions: { removeAdditional: false } },
  }) as unknown as FastifyInstance;
  useProblems(app);
  // Registered first so that it sees every route and schema added later.
  await app.register(swagger, { openapi: { info: { title, version: '0.1.0' } } });
  // The routes other services call on every request they verify (session status, JWKS) are not limited per address:
  // the cloud is one address for all its users, and a limited session check would read as a revoked session.
  await app.register(rateLimit, {
    global: true,
    max: options.requestsPerMinute ?? DEFAULT_REQUESTS_PER_MINUTE,
    timeWindow: 60_000,
    allowList: (request) => FEDERATION_ROUTE.test(request.url),
  });
  if (options.browserOrigins && options.browserOrigins.length > 0) {
    await app.register(cors, {
      origin: [...options.browserOrigins],
      methods: ['GET', 'POST', 'PUT', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type', 'dpop'],
      credentials: false,
      maxAge: 600,
      strictPreflight: true,
    });
  }
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}

/** Starts listening and returns the service's base URL (`http(s)://host:port/`). */
export async function listen(app: FastifyInstance, host: string, port: number): Promise<URL> {
  await app.listen({ host, port });
  const address = app.server.address() as AddressInfo;
  const scheme = app.server instanceof TlsServer ? 'https' : 'http';
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return new URL(`${scheme}://${shown}:${address.port}/`);
}
