/**
 * The web portal (@medshare/portal) as static files at /portal/, served by the hospital service, with the
 * hospitals it can sign in to at /portal/config.json. The pages' content-security policy allows only this origin
 * (and WebAssembly compilation, which mcl-wasm needs); nothing is framed. Without a build, /portal/ answers 503
 * saying how to build it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { PORTAL_DIST } from '@medshare/portal';

/** The portal pages' content-security policy. */
export const PORTAL_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
  + "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/** Registers /portal/ (and a redirect from /). `hospitals` are those the portal offers to sign in to. */
export async function portalPlugin(app: FastifyInstance, options: { hospitals: readonly string[] }): Promise<void> {
  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/portal/', 302));
  app.get('/portal/config.json', { schema: { hide: true } }, async () => ({ hospitals: options.hospitals }));
  if (!existsSync(join(PORTAL_DIST, 'index.html'))) {
    app.get('/portal/*', { schema: { hide: true } }, async (_request, reply) =>
      reply.status(503).type('application/problem+json').send({
        type: 'urn:medshare:problem:unavailable', title: 'Service unavailable', status: 503, detail: 'the portal is not built: run npm run build -w @medshare/portal',
      }));
    return;
  }
  await app.register(fastifyStatic, {
    root: PORTAL_DIST, prefix: '/portal/', index: 'index.html', decorateReply: false, schemaHide: true,
    setHeaders: (response) => {
      response.setHeader('content-security-policy', PORTAL_CSP);
      response.setHeader('x-content-type-options', 'nosniff');
      response.setHeader('referrer-policy', 'no-referrer');
    },
  });
}
