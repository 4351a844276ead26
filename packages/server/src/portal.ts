/**
 * The web portal (@medshare/portal) as static files at /portal/ of a hospital service, signing in to this hospital,
 * with /portal/config.json naming the hospital and the cloud's and authority's URLs (the portal calls them from the
 * browser; they allow this origin by CORS, services/app.ts `browserOrigins`). The pages' content-security policy
 * allows scripts and styles from this origin only, connections to it, the cloud and the authority, and
 * WebAssembly compilation (mcl-wasm); nothing may frame them. Without a build, /portal/ answers 503 saying how to
 * build it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { PORTAL_DIST } from '@medshare/portal';

export interface PortalOptions {
  /** The hospital the portal signs in to (the one serving it). */
  readonly hospital: string;
  /** The cloud's URL (resolved at each request: services learn each other's ports once they listen). */
  readonly cloud: () => URL;
  /** The trusted authority's URL. */
  readonly authority: () => URL;
}

/** The portal pages' content-security policy, connecting to this origin and to `services`. */
export function portalSecurityPolicy(services: readonly URL[]): string {
  const connect = ["'self'", ...new Set(services.map((url) => url.origin))].join(' ');
  return (
    `default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; connect-src ${connect}; ` +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
  );
}

/** Registers /portal/ (and a redirect from /). */
export async function portalPlugin(app: FastifyInstance, options: PortalOptions): Promise<void> {
  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/portal/', 302));
  app.get('/portal/config.json', { schema: { hide: true } }, async (_request, reply) =>
    reply.header('cache-control', 'no-store').send({ hospital: options.hospital, cloud: options.cloud().origin, authority: options.authority().origin }),
  );
  if (!existsSync(join(PORTAL_DIST, 'index.html'))) {
    app.get('/portal/*', { schema: { hide: true } }, async (_request, reply) =>
      reply.status(503).type('application/problem+json').send({
        type: 'urn:medshare:problem:unavailable',
        title: 'Service unavailable',
        status: 503,
        detail: 'the portal is not built: run npm run build -w @medshare/portal',
      }),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root: PORTAL_DIST,
    prefix: '/portal/',
    index: 'index.html',
    decorateReply: false,
    schemaHide: true,
    setHeaders: (response) => {
      response.setHeader('content-security-policy', portalSecurityPolicy([options.cloud(), options.authority()]));
      response.setHeader('x-content-type-options', 'nosniff');
      response.setHeader('referrer-policy', 'no-referrer');
    },
  });
}
