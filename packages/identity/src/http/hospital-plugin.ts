/**
 * A hospital's identity service as a Fastify plugin: user registration (administrator), the
 * two-step multi-factor login that ends in an SSO token, WebAuthn enrolment, logout, the JWKS and
 * the session-status endpoint other federation members consult.
 *
 *   GET  /.well-known/jwks.json            public signing keys
 *   POST /users                            (admin bearer) register a user → enrolment (shown once)
 *   POST /login/password                   { username, password } → { ticket, factors }
 *   POST /login/totp | /login/recovery     { ticket, code, audience, scopes?, deviceKey? } → token
 *   POST /login/webauthn/options           { ticket } → WebAuthn request options
 *   POST /login/webauthn                   { ticket, response, audience, scopes?, deviceKey? } → token
 *   POST /webauthn/register/options        (bearer) → WebAuthn creation options
 *   POST /webauthn/register                (bearer) { response } → { credentialId }
 *   POST /recovery-codes                   (bearer) → ten new recovery codes (the old ones stop working)
 *   POST /token                            (bearer) { audience, scopes?, deviceKey? } → a fresh token, same session
 *   POST /logout                           (bearer) revokes the session everywhere
 *   GET  /sso/sessions/:sid                { active }
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { JWK } from 'jose';
import { AccessDeniedError } from '@medshare/crypto';
import type { AccountService, AuthenticatedUser } from '../account/accounts.ts';
import type { CredentialService } from '../account/credentials.ts';
import type { SigningKeyRing } from '../sso/keyring.ts';
import type { TokenIssuer } from '../sso/issuer.ts';
import { localSessionStatus, type TokenVerifier } from '../sso/federation.ts';
import type { VerifiedToken } from '../sso/claims.ts';
import type { SessionStore } from '../stores.ts';
import { bearerToken, useProblemDetails } from './problem.ts';

export interface HospitalPluginOptions {
  readonly accounts: AccountService;
  readonly credentials: CredentialService;
  readonly issuer: TokenIssuer;
  readonly keys: SigningKeyRing;
  readonly sessions: SessionStore;
  /** Verifies this hospital's own tokens (audience = its issuer URL). */
  readonly verifier: TokenVerifier;
  /** Administrator credential for registration; compared in constant time. */
  readonly adminToken: string;
  readonly now?: () => number;
}

const BODY_LIMIT = 64 * 1024;
const str = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength });
const tokenRequest = {
  audience: { type: 'array', minItems: 1, maxItems: 8, items: str(256) },
  scopes: { type: 'array', maxItems: 64, items: str(128) },
  deviceKey: { type: 'object', maxProperties: 8 },
};
const codeBody = {
  type: 'object',
  required: ['ticket', 'code', 'audience'],
  additionalProperties: false,
  properties: { ticket: str(64), code: str(32), ...tokenRequest },
};

interface TokenFields {
  audience: string[];
  scopes?: string[];
  deviceKey?: JWK;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** The Fastify plugin; register it with a prefix such as `/identity`. */
export async function hospitalIdentityPlugin(app: FastifyInstance, options: HospitalPluginOptions): Promise<void> {
  useProblemDetails(app, 401);
  const { accounts, credentials, issuer, keys, sessions, verifier } = options;
  const now = options.now ?? Date.now;
  const adminDigest = digest(options.adminToken);

  async function authenticated(request: FastifyRequest): Promise<VerifiedToken> {
    const token = bearerToken(request.headers.authorization);
    if (!token) throw new AccessDeniedError('a bearer token is required');
    return verifier.verify(token);
  }

  async function issue(user: AuthenticatedUser, fields: TokenFields) {
    const issued = await issuer.startSession(user, fields);
    return { token: issued.token, sessionId: issued.sessionId, expiresAt: issued.expiresAt, tokenType: 'Bearer', factor: user.factor };
  }

  app.get('/.well-known/jwks.json', async (_request, reply) => reply.header('cache-control', 'max-age=60').send(keys.jwks()));

  app.post<{ Body: { username: string; password: string; attributes: string[]; scopes: string[] } }>('/users', {
    bodyLimit: BODY_LIMIT,
    schema: {
      body: {
        type: 'object',
        required: ['username', 'password', 'attributes', 'scopes'],
        additionalProperties: false,
        properties: { username: str(64), password: str(1024), attributes: { type: 'array', maxItems: 64, items: str(256) }, scopes: { type: 'array', maxItems: 64, items: str(128) } },
      },
    },
  }, async (request, reply) => {
    const token = bearerToken(request.headers.authorization);
    if (!token || !timingSafeEqual(digest(token), adminDigest)) throw new AccessDeniedError('administrator credential required');
    return reply.status(201).send(await accounts.register(request.body));
  });

  app.post<{ Body: { username: string; password: string } }>('/login/password', {
    bodyLimit: BODY_LIMIT,
    schema: { body: { type: 'object', required: ['username', 'password'], additionalProperties: false, properties: { username: str(256), password: str(1024) } } },
  }, async (request) => accounts.startLogin(request.body.username, request.body.password, request.ip));

  app.post<{ Body: { ticket: string; code: string } & TokenFields }>('/login/totp', { bodyLimit: BODY_LIMIT, schema: { body: codeBody } }, async (request) =>
    issue(await accounts.finishWithTotp(request.body.ticket, request.body.code, request.ip), request.body),
  );

  app.post<{ Body: { ticket: string; code: string } & TokenFields }>('/login/recovery', { bodyLimit: BODY_LIMIT, schema: { body: codeBody } }, async (request) =>
    issue(await accounts.finishWithRecoveryCode(request.body.ticket, request.body.code, request.ip), request.body),
  );

  app.post<{ Body: { ticket: string } }>('/login/webauthn/options', {
    bodyLimit: BODY_LIMIT,
    schema: { body: { type: 'object', required: ['ticket'], additionalProperties: false, properties: { ticket: str(64) } } },
  }, async (request) => accounts.webauthnLoginOptions(request.body.ticket));

  app.post<{ Body: { ticket: string; response: never } & TokenFields }>('/login/webauthn', {
    bodyLimit: BODY_LIMIT,
    schema: { body: { type: 'object', required: ['ticket', 'response', 'audience'], additionalProperties: false, properties: { ticket: str(64), response: { type: 'object' }, ...tokenRequest } } },
  }, async (request) => issue(await accounts.finishWithWebAuthn(request.body.ticket, request.body.response, request.ip), request.body));

  app.post('/webauthn/register/options', async (request) => credentials.webauthnRegistrationOptions((await authenticated(request)).subject));

  app.post<{ Body: { response: never } }>('/webauthn/register', {
    bodyLimit: BODY_LIMIT,
    schema: { body: { type: 'object', required: ['response'], additionalProperties: false, properties: { response: { type: 'object' } } } },
  }, async (request) => credentials.finishWebAuthnRegistration((await authenticated(request)).subject, request.body.response));

  app.post<{ Body: TokenFields }>('/token', {
    bodyLimit: BODY_LIMIT,
    schema: { body: { type: 'object', required: ['audience'], additionalProperties: false, properties: tokenRequest } },
  }, async (request) => {
    const current = await authenticated(request);
    const issued = await issuer.sign(await credentials.profile(current.subject), current.sessionId, request.body);
    return { token: issued.token, sessionId: issued.sessionId, expiresAt: issued.expiresAt, tokenType: 'Bearer' };
  });

  app.post('/recovery-codes', async (request) => ({ recoveryCodes: await credentials.regenerateRecoveryCodes((await authenticated(request)).subject) }));

  app.post('/logout', async (request, reply) => {
    await sessions.revoke((await authenticated(request)).sessionId);
    return reply.status(204).send();
  });

  const sessionStatus = localSessionStatus(sessions, now);
  app.get<{ Params: { sid: string } }>('/sso/sessions/:sid', async (request) => ({ active: await sessionStatus(request.params.sid) }));
}
