/**
 * The trusted authority's key service as a Fastify plugin.
 *
 *   GET  /ta/public-key   the CP-ABE public parameters (base64 of the versioned encoding)
 *   POST /ta/keys         (`Authorization: DPoP <SSO token>`, `DPoP: <proof>`) { attributes, deviceKey } → the key sealed to deviceKey
 *
 * The response holds only the sealed box; the clear key exists only inside TrustedAuthority.issueKey.
 */
import type { FastifyInstance } from 'fastify';
import type { JWK } from 'jose';
import { abe, AccessDeniedError } from '@medshare/crypto';
import type { TrustedAuthority } from '../ta/authority.ts';
import { useProblemDetails } from './problem.ts';
import { dpopHeader, presentedToken, requestUrl } from './proof.ts';

export interface TaPluginOptions {
  readonly authority: TrustedAuthority;
  readonly publicKey: abe.PublicKey;
}

/** The Fastify plugin. */
export async function trustedAuthorityPlugin(app: FastifyInstance, options: TaPluginOptions): Promise<void> {
  useProblemDetails(app, 403);
  const encodedPublicKey = Buffer.from(abe.encodePublicKey(options.publicKey)).toString('base64');

  app.get('/ta/public-key', async () => ({ authorityId: options.authority.authorityId, publicKey: encodedPublicKey }));

  app.post<{ Body: { attributes: string[]; deviceKey: JWK } }>(
    '/ta/keys',
    {
      bodyLimit: 16 * 1024,
      schema: {
        body: {
          type: 'object',
          required: ['attributes', 'deviceKey'],
          additionalProperties: false,
          properties: {
            attributes: { type: 'array', minItems: 1, maxItems: 64, items: { type: 'string', minLength: 1, maxLength: 256 } },
            deviceKey: { type: 'object', maxProperties: 8 },
          },
        },
      },
    },
    async (request) => {
      const presented = presentedToken(request.headers.authorization);
      if (!presented) throw new AccessDeniedError('an SSO token is required');
      return options.authority.issueKey(presented.token, request.body, { proof: dpopHeader(request), method: request.method, url: requestUrl(request) });
    },
  );
}
