/**
 * Device authentication for a medical server as a Fastify plugin.
 *
 *   POST /device/login   message 1 → message 2 (device/protocol.ts)
 *   every route added by `routes` requires a valid HMAC request signature (device/signature.ts);
 *   the handler finds the authenticated device in `request.medshareDevice`.
 *
 * Inside the plugin the body parsers keep the raw bytes, because the signature covers the digest of
 * exactly the bytes that were sent: JSON bodies are parsed after that, any other type is handed to
 * the route as a Buffer.
 */
import type { FastifyInstance } from 'fastify';
import { MalformedInputError } from '@medshare/crypto';
import type { DeviceAuthServer } from '../device/server.ts';
import { splitTarget } from '../device/signature.ts';
import { useProblemDetails } from './problem.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The device that signed this request (set by deviceAuthenticationPlugin). */
    medshareDevice?: { deviceId: string; sessionId: string };
    /** The exact body bytes received (set by deviceAuthenticationPlugin's parser). */
    medshareRawBody?: Buffer;
  }
}

export interface DevicePluginOptions {
  readonly server: DeviceAuthServer;
  /** Registers the routes that require a signed request. */
  readonly routes: (scope: FastifyInstance) => void | Promise<void>;
  readonly bodyLimit?: number;
}

/** The Fastify plugin. */
export async function deviceAuthenticationPlugin(app: FastifyInstance, options: DevicePluginOptions): Promise<void> {
  useProblemDetails(app, 401);
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: options.bodyLimit ?? 1024 * 1024 }, (request, body, done) => {
    const bytes = body as Buffer;
    request.medshareRawBody = bytes;
    if (bytes.length === 0) return done(null, undefined);
    try {
      done(null, JSON.parse(bytes.toString('utf8')));
    } catch {
      done(new MalformedInputError('request body is not valid JSON'), undefined);
    }
  });

  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: options.bodyLimit ?? 1024 * 1024 }, (request, body, done) => {
    request.medshareRawBody = body as Buffer;
    done(null, body);
  });

  app.post('/device/login', { bodyLimit: 4096 }, async (request) => options.server.login(request.body));

  await app.register(async (scope) => {
    scope.addHook('preHandler', async (request) => {
      const { path, query } = splitTarget(request.url);
      const parts = { method: request.method, path, query, body: request.medshareRawBody ?? Buffer.alloc(0) };
      request.medshareDevice = await options.server.verify(parts, request.headers);
    });
    await options.routes(scope);
  });
}
