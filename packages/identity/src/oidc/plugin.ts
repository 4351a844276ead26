/**
 * The OpenID Connect routes of a hospital's identity service, as a Fastify plugin registered with the same prefix
 * as hospitalIdentityPlugin (`/identity/<hospital>`):
 *
 *   GET  /.well-known/openid-configuration   OpenID Connect Discovery 1.0 (issuer = this service's URL)
 *   GET  /.well-known/smart-configuration    SMART App Launch 2.x discovery
 *   GET  /oidc/authorize                     authorization endpoint → the sign-in page
 *   POST /oidc/login                         (form) username, password → the second-factor page
 *   POST /oidc/login/totp                    (form) one-time code → 303 to the client with code, state, iss
 *   POST /oidc/login/webauthn | /passkey     (JSON) a WebAuthn assertion → { location }
 *   GET  /oidc/login.js                      the pages' WebAuthn script
 *   POST /oidc/token                         (form) authorization_code + PKCE verifier [+ DPoP proof] → tokens, id_token
 *
 * The issuer URL is `<origin><prefix>`, where the origin is `publicOrigin` when configured, else the one the request
 * was addressed to (as Fastify resolves it: X-Forwarded-* only through a trusted proxy). A client pins the issuer it
 * discovered and checks the `iss` of id_tokens and authorization responses against it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MedShareError } from '@medshare/crypto';
import type { AccountService, AuthenticatedUser } from '../account/accounts.ts';
import { RateLimitedError } from '../errors.ts';
import { dpopHeader, requestUrl } from '../http/proof.ts';
import type { DpopVerifier, VerifiedProof } from '../sso/dpop.ts';
import { errorPage, LOGIN_SCRIPT, pageSecurityPolicy, passwordPage, secondFactorPage } from './page.ts';
import { OAuthError, RedirectableOAuthError, type OidcProvider } from './provider.ts';

export interface OidcPluginOptions {
  readonly hospital: string;
  readonly provider: OidcProvider;
  readonly accounts: AccountService;
  readonly proofs: DpopVerifier;
  /** The origin clients reach this service at (default: the request's). */
  readonly publicOrigin?: string;
  /** The scopes discovery lists. */
  readonly scopesSupported: readonly string[];
}

const form = (fields: string[]) => ({
  type: 'object',
  required: fields,
  properties: Object.fromEntries(fields.map((f) => [f, { type: 'string', minLength: 1, maxLength: 1024 }])),
});
const webauthnBody = {
  type: 'object',
  required: ['request', 'ticket', 'response'],
  additionalProperties: false,
  properties: { request: { type: 'string', maxLength: 64 }, ticket: { type: 'string', maxLength: 64 }, response: { type: 'object' } },
};

/** The origin a request reached this service at: `publicOrigin` when configured, else the request's (as Fastify resolves it). */
export const requestOrigin = (request: FastifyRequest, publicOrigin?: string): string => publicOrigin ?? `${request.protocol}://${request.host}`;

/**
 * The SMART App Launch 2.x discovery document of the identity service whose issuer URL is `issuer` (served at the
 * issuer's and at each FHIR base's `/.well-known/smart-configuration`).
 */
export function smartConfiguration(issuer: string, scopesSupported: readonly string[]): Record<string, unknown> {
  return {
    issuer,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    authorization_endpoint: `${issuer}/oidc/authorize`,
    token_endpoint: `${issuer}/oidc/token`,
    grant_types_supported: ['authorization_code'],
    token_endpoint_auth_methods_supported: ['none'],
    scopes_supported: scopesSupported,
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    capabilities: ['launch-standalone', 'client-public', 'sso-openid-connect', 'permission-patient', 'permission-user', 'permission-v1', 'permission-v2'],
  };
}

/** The Fastify plugin. */
export async function oidcPlugin(app: FastifyInstance, options: OidcPluginOptions): Promise<void> {
  const { accounts, provider, proofs, hospital } = options;
  const prefix = app.prefix;
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(String(body))));
  });

  const origin = (request: FastifyRequest) => requestOrigin(request, options.publicOrigin);
  const issuerOf = (request: FastifyRequest) => `${origin(request)}${prefix}`;

  app.get('/.well-known/openid-configuration', async (request, reply) => {
    const issuer = issuerOf(request);
    return reply.header('cache-control', 'max-age=60').send({
      issuer,
      authorization_endpoint: `${issuer}/oidc/authorize`,
      token_endpoint: `${issuer}/oidc/token`,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      grant_types_supported: ['authorization_code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['EdDSA'],
      token_endpoint_auth_methods_supported: ['none'],
      code_challenge_methods_supported: ['S256'],
      scopes_supported: options.scopesSupported,
      claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'acr', 'amr', 'sid', 'azp', 'preferred_username', 'hospital', 'attributes'],
      acr_values_supported: ['urn:medshare:acr:mfa'],
      dpop_signing_alg_values_supported: ['EdDSA', 'Ed25519'],
      authorization_response_iss_parameter_supported: true,
      request_parameter_supported: false,
      request_uri_parameter_supported: false,
    });
  });

  app.get('/.well-known/smart-configuration', async (request, reply) =>
    reply.header('cache-control', 'max-age=60').send(smartConfiguration(issuerOf(request), options.scopesSupported)),
  );

  /** An HTML page with the CSP that lets its form redirect to the client. */
  const page = (reply: FastifyReply, status: number, html: string, redirectUri?: string) =>
    reply
      .status(status)
      .type('text/html; charset=utf-8')
      .header('content-security-policy', pageSecurityPolicy(redirectUri ? new URL(redirectUri).origin : ''))
      .header('x-frame-options', 'DENY')
      .header('cache-control', 'no-store')
      .header('referrer-policy', 'no-referrer')
      .send(html);

  app.get('/oidc/authorize', async (request, reply) => {
    try {
      const { requestId, client, pending } = await provider.authorize(request.query as Record<string, unknown>, origin(request), issuerOf(request));
      return page(reply, 200, passwordPage({ hospital, clientName: client.name, requestId, base: prefix }), pending.redirectUri);
    } catch (error) {
      if (error instanceof RedirectableOAuthError) return reply.redirect(error.redirect, 303);
      if (error instanceof OAuthError) return page(reply, 400, errorPage(error.message));
      throw error;
    }
  });

  app.get('/oidc/login.js', async (_request, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'max-age=300').send(LOGIN_SCRIPT));

  /** The sign-in failure a user may read (wrong password, lockout); anything else is not hers to see. */
  const userMessage = (error: unknown) => {
    if (error instanceof RateLimitedError || error instanceof MedShareError) return error.message;
    throw error;
  };

  app.post<{ Body: { request: string; username: string; password: string } }>(
    '/oidc/login',
    { schema: { body: form(['request', 'username', 'password']) } },
    async (request, reply) => {
      const { request: requestId, username, password } = request.body;
      const pending = await provider.pending(requestId);
      if (!pending) return page(reply, 400, errorPage('the sign-in request has expired; start again from the application'));
      const client = provider.client(pending.clientId)!;
      try {
        const { ticket, factors } = await accounts.startLogin(username, password, request.ip);
        return page(reply, 200, secondFactorPage({ hospital, requestId, ticket, factors, base: prefix }), pending.redirectUri);
      } catch (error) {
        return page(reply, 401, passwordPage({ hospital, clientName: client.name, requestId, base: prefix, error: userMessage(error) }), pending.redirectUri);
      }
    },
  );

  app.post<{ Body: { request: string; ticket: string; code: string } }>(
    '/oidc/login/totp',
    { schema: { body: form(['request', 'ticket', 'code']) } },
    async (request, reply) => {
      const { request: requestId, ticket, code } = request.body;
      const pending = await provider.pending(requestId);
      if (!pending) return page(reply, 400, errorPage('the sign-in request has expired; start again from the application'));
      let user: AuthenticatedUser;
      try {
        user = await accounts.finishWithTotp(ticket, code, request.ip);
      } catch (error) {
        // The ticket survives a wrong code (accounts.ts counts the attempt), so she may try again on the same page.
        return page(
          reply,
          401,
          secondFactorPage({ hospital, requestId, ticket, factors: ['totp'], base: prefix, error: userMessage(error) }),
          pending.redirectUri,
        );
      }
      return reply.redirect(await provider.complete(requestId, user), 303);
    },
  );

  for (const [path, finish] of [
    ['/oidc/login/webauthn', (t: string, r: never, ip: string) => accounts.finishWithWebAuthn(t, r, ip)],
    ['/oidc/login/passkey', (t: string, r: never, ip: string) => accounts.finishWithPasskey(t, r, ip)],
  ] as const) {
    app.post<{ Body: { request: string; ticket: string; response: never } }>(path, { schema: { body: webauthnBody } }, async (request, reply) => {
      const { request: requestId, ticket, response } = request.body;
      try {
        if (!(await provider.pending(requestId))) throw new OAuthError('access_denied', 'the sign-in request has expired; start again from the application');
        const user = await finish(ticket, response, request.ip);
        return { location: await provider.complete(requestId, user) };
      } catch (error) {
        return reply
          .status(401)
          .type('application/problem+json')
          .send({ type: 'urn:medshare:problem:access-denied', title: 'Sign-in failed', status: 401, detail: userMessage(error) });
      }
    });
  }

  app.post<{ Body: Record<string, unknown> }>('/oidc/token', async (request, reply) => {
    void reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    try {
      if (
        typeof request.body !== 'object' ||
        request.body === null ||
        !String(request.headers['content-type']).startsWith('application/x-www-form-urlencoded')
      ) {
        throw new OAuthError('invalid_request', 'the token request is a form (application/x-www-form-urlencoded)');
      }
      let proof: VerifiedProof | undefined;
      const header = dpopHeader(request);
      if (header !== undefined) {
        try {
          proof = await proofs.verify(header, { method: 'POST', url: requestUrl(request) });
        } catch (error) {
          throw new OAuthError('invalid_dpop_proof', (error as Error).message);
        }
      }
      return await provider.exchange(request.body, proof);
    } catch (error) {
      if (!(error instanceof MedShareError)) throw error;
      const oauth = error instanceof OAuthError ? error : new OAuthError('invalid_request', error.message);
      return reply.status(oauth.status).send({ error: oauth.error, error_description: oauth.message });
    }
  });
}
