/**
 * A hospital's identity service as a Fastify plugin: user registration and administration (this hospital's
 * administrator credential), the two-step multi-factor login that ends in an SSO token, refresh, factor changes
 * behind step-up, logout, the JWKS and the session-status endpoint other federation members consult.
 *
 *   GET  /.well-known/jwks.json            public signing keys
 *   POST /users                            (admin) register a user → enrolment (shown once)
 *   POST /admin/users/:username/disable | /enable | /revoke-sessions | /unlock        (admin)
 *   PUT  /admin/users/:username/attributes (admin) { attributes } → the new attributes; her sessions are revoked
 *   POST /admin/trace                      (admin) { pseudonym } → { username, userId, sessionId, loggedInAt }: whom a
 *                                          session pseudonym (a token subject, a ledger agent) names
 *   POST /login/password                   { username, password } → { ticket, factors, challenge }
 *   POST /login/totp | /login/recovery     { ticket, code, audience, clientId?, scopes?, deviceKey? } → token
 *   POST /login/webauthn/options           { ticket } → WebAuthn request options
 *   POST /login/webauthn                   { ticket, response, audience, clientId?, scopes?, deviceKey? } → token
 *   POST /login/passkey/options            → { ticket, options, challenge }   (WebAuthn as the first and second factor)
 *   POST /login/passkey                    { ticket, response, audience, clientId?, scopes?, deviceKey? } → token
 *   POST /token                            (DPoP proof) { refreshToken, audience?, scopes? } → fresh token and refresh credential
 *   POST /webauthn/register/options        (step-up) → WebAuthn creation options
 *   POST /webauthn/register                (step-up) { response } → { credentialId }
 *   POST /recovery-codes                   (step-up) → ten new recovery codes (the old ones stop working)
 *   POST /totp/reset                       (step-up) → a new TOTP secret (the old one stops working)
 *   POST /password                         (step-up) { password } → 204
 *   POST /logout                           (any token of this hospital) revokes the session everywhere
 *   GET  /sso/sessions/:sid                { active }
 *   POST /sso/session-status               { sessions: [sid…] } → { active: [boolean…] } (the same check for many
 *                                          sessions in one request and one lookup: a relying party's concurrent checks)
 *
 * Login with a device: the device signs the `challenge` of step 1 in a DPoP proof (RFC 9449 `nonce`) with its
 * Ed25519 key, naming its X25519 key (`sealing_jkt`) when it gives one as `deviceKey`. The session is then bound
 * to both (`cnf`), and gets a refresh credential. Step-up: `Authorization: DPoP <token>` for this hospital's own
 * audience (its issuer URL), a DPoP proof by the token's key, and a login at most five minutes old.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { JWK } from 'jose';
import { AccessDeniedError } from '@medshare/crypto';
import { loginChallenge, type AccountService, type AuthenticatedUser } from '../account/accounts.ts';
import type { AdminService } from '../account/admin.ts';
import { requireRecentLogin, type CredentialService } from '../account/credentials.ts';
import type { DpopVerifier } from '../sso/dpop.ts';
import { localSessionStatus, type TokenVerifier } from '../sso/federation.ts';
import { deviceKeyThumbprint, type IssuedToken, type TokenIssuer } from '../sso/issuer.ts';
import type { SigningKeyRing } from '../sso/keyring.ts';
import type { SessionDevice, SessionStore } from '../stores.ts';
import { bearerToken, useProblemDetails } from './problem.ts';
import { dpopHeader, presentedToken, requestUrl } from './proof.ts';

/** Most sessions one `POST /sso/session-status` asks about. */
export const MAX_SESSION_STATUS_BATCH = 256;

export interface HospitalPluginOptions {
  readonly accounts: AccountService;
  readonly credentials: CredentialService;
  readonly admin: AdminService;
  /** Checks DPoP proofs (its used-proof cache is this hospital's). */
  readonly proofs: DpopVerifier;
  readonly issuer: TokenIssuer;
  readonly keys: SigningKeyRing;
  readonly sessions: SessionStore;
  /** Verifies this hospital's own tokens (audience = its issuer URL). */
  readonly verifier: TokenVerifier;
  /** Verifies any token of this hospital, whatever its audience (logout). */
  readonly logoutVerifier: TokenVerifier;
  /** This hospital's administrator credential (registration, administration); compared in constant time. */
  readonly adminToken: string;
  readonly now?: () => number;
}

const BODY_LIMIT = 64 * 1024;
const str = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength });
const tokenRequest = {
  audience: { type: 'array', minItems: 1, maxItems: 8, items: str(256) },
  scopes: { type: 'array', maxItems: 64, items: str(128) },
  clientId: str(128),
  deviceKey: { type: 'object', maxProperties: 8 },
};
const codeBody = {
  type: 'object',
  required: ['ticket', 'code', 'audience'],
  additionalProperties: false,
  properties: { ticket: str(64), code: str(32), ...tokenRequest },
};
/** The body that finishes a login with a WebAuthn assertion: a second factor (`/login/webauthn`) or a passkey (`/login/passkey`). */
const assertionBody = {
  type: 'object',
  required: ['ticket', 'response', 'audience'],
  additionalProperties: false,
  properties: { ticket: str(64), response: { type: 'object' }, ...tokenRequest },
};

interface TokenFields {
  audience: string[];
  scopes?: string[];
  clientId?: string;
  deviceKey?: JWK;
}

const usernameParams = { type: 'object', required: ['username'], properties: { username: str(64) } };

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * A check that a request carries `adminToken` as its bearer token (compared in constant time, by digest), for every
 * route of the hospital's administrator. @throws AccessDeniedError otherwise.
 */
export function adminCredentialCheck(adminToken: string): (request: FastifyRequest) => void {
  const adminDigest = digest(adminToken);
  return (request) => {
    const token = bearerToken(request.headers.authorization);
    if (!token || !timingSafeEqual(digest(token), adminDigest)) throw new AccessDeniedError('administrator credential of this hospital required');
  };
}

/** The Fastify plugin; register it with a prefix such as `/identity`. */
export async function hospitalIdentityPlugin(app: FastifyInstance, options: HospitalPluginOptions): Promise<void> {
  useProblemDetails(app, 401);
  const { accounts, admin, credentials, issuer, keys, logoutVerifier, proofs, sessions, verifier } = options;
  const now = options.now ?? Date.now;
  const requireAdmin = adminCredentialCheck(options.adminToken);

  /** Step-up: a DPoP-bound token for this hospital, a proof by its key, a login within five minutes; returns the user's id. */
  async function steppedUp(request: FastifyRequest): Promise<string> {
    const presented = presentedToken(request.headers.authorization);
    if (!presented) throw new AccessDeniedError('a token is required');
    const token = await verifier.verify(presented.token);
    if (token.proofKeyThumbprint === undefined) throw new AccessDeniedError('changing a factor needs a login with a device key (DPoP)');
    await proofs.verify(dpopHeader(request), {
      method: request.method,
      url: requestUrl(request),
      accessToken: presented.token,
      thumbprint: token.proofKeyThumbprint,
    });
    requireRecentLogin(token, now());
    // The subject is a pseudonym: the session names the user.
    const session = await sessions.get(token.sessionId);
    if (session === undefined) throw new AccessDeniedError('token session is unknown');
    return session.userId;
  }

  /** The device keys the login's DPoP proof signs the challenge of `ticket` with (none without a proof). */
  async function provenDevice(request: FastifyRequest, ticket: string, deviceKey: JWK | undefined): Promise<SessionDevice | undefined> {
    const proof = dpopHeader(request);
    if (proof === undefined) {
      if (deviceKey !== undefined) throw new AccessDeniedError('a device key must be proven: sign the login challenge in a DPoP proof');
      return undefined;
    }
    const verified = await proofs.verify(proof, { method: 'POST', url: requestUrl(request), nonce: loginChallenge(ticket) });
    if (deviceKey === undefined) return { proofKey: verified.thumbprint };
    const sealingKey = await deviceKeyThumbprint(deviceKey);
    if (verified.payload.sealing_jkt !== sealingKey) throw new AccessDeniedError('the login proof does not name this device key');
    return { proofKey: verified.thumbprint, sealingKey };
  }

  function answer(issued: IssuedToken, factor?: AuthenticatedUser['factor']) {
    return {
      token: issued.token,
      sessionId: issued.sessionId,
      expiresAt: issued.expiresAt,
      tokenType: issued.refreshToken ? 'DPoP' : 'Bearer',
      ...(issued.refreshToken ? { refreshToken: issued.refreshToken } : {}),
      ...(factor ? { factor } : {}),
    };
  }

  async function login(request: FastifyRequest<{ Body: { ticket: string } & TokenFields }>, finish: () => Promise<AuthenticatedUser>) {
    const device = await provenDevice(request, request.body.ticket, request.body.deviceKey);
    const user = await finish();
    const { audience, scopes, clientId } = request.body;
    return answer(await issuer.startSession(user, { audience, ...(scopes ? { scopes } : {}), ...(clientId ? { clientId } : {}) }, device), user.factor);
  }

  app.get('/.well-known/jwks.json', async (_request, reply) => reply.header('cache-control', 'max-age=60').send(keys.jwks()));

  app.post<{ Body: { username: string; password: string; attributes: string[]; scopes: string[] } }>(
    '/users',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        body: {
          type: 'object',
          required: ['username', 'password', 'attributes', 'scopes'],
          additionalProperties: false,
          properties: {
            username: str(64),
            password: str(1024),
            attributes: { type: 'array', maxItems: 64, items: str(256) },
            scopes: { type: 'array', maxItems: 64, items: str(128) },
          },
        },
      },
    },
    async (request, reply) => {
      requireAdmin(request);
      return reply.status(201).send(await accounts.register(request.body));
    },
  );

  const adminActions = {
    disable: (username: string) => admin.setDisabled(username, true),
    enable: (username: string) => admin.setDisabled(username, false),
    'revoke-sessions': (username: string) => admin.revokeSessions(username),
    unlock: async (username: string) => (await admin.unlock(username), {}),
  };
  for (const [action, run] of Object.entries(adminActions)) {
    app.post<{ Params: { username: string } }>(`/admin/users/:username/${action}`, { schema: { params: usernameParams } }, async (request) => {
      requireAdmin(request);
      return run(request.params.username);
    });
  }
  app.post<{ Body: { pseudonym: string } }>(
    '/admin/trace',
    {
      bodyLimit: BODY_LIMIT,
      schema: { body: { type: 'object', required: ['pseudonym'], additionalProperties: false, properties: { pseudonym: str(100) } } },
    },
    async (request) => {
      requireAdmin(request);
      return admin.trace(request.body.pseudonym);
    },
  );
  app.put<{ Params: { username: string }; Body: { attributes: string[] } }>(
    '/admin/users/:username/attributes',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        params: usernameParams,
        body: {
          type: 'object',
          required: ['attributes'],
          additionalProperties: false,
          properties: { attributes: { type: 'array', maxItems: 64, items: str(256) } },
        },
      },
    },
    async (request) => {
      requireAdmin(request);
      return admin.setAttributes(request.params.username, request.body.attributes);
    },
  );

  app.post<{ Body: { username: string; password: string } }>(
    '/login/password',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        body: { type: 'object', required: ['username', 'password'], additionalProperties: false, properties: { username: str(256), password: str(1024) } },
      },
    },
    async (request) => accounts.startLogin(request.body.username, request.body.password, request.ip),
  );

  app.post<{ Body: { ticket: string; code: string } & TokenFields }>('/login/totp', { bodyLimit: BODY_LIMIT, schema: { body: codeBody } }, async (request) =>
    login(request, () => accounts.finishWithTotp(request.body.ticket, request.body.code, request.ip)),
  );

  app.post<{ Body: { ticket: string; code: string } & TokenFields }>(
    '/login/recovery',
    { bodyLimit: BODY_LIMIT, schema: { body: codeBody } },
    async (request) => login(request, () => accounts.finishWithRecoveryCode(request.body.ticket, request.body.code, request.ip)),
  );

  app.post<{ Body: { ticket: string } }>(
    '/login/webauthn/options',
    {
      bodyLimit: BODY_LIMIT,
      schema: { body: { type: 'object', required: ['ticket'], additionalProperties: false, properties: { ticket: str(64) } } },
    },
    async (request) => accounts.webauthnLoginOptions(request.body.ticket),
  );

  app.post<{ Body: { ticket: string; response: never } & TokenFields }>(
    '/login/webauthn',
    { bodyLimit: BODY_LIMIT, schema: { body: assertionBody } },
    async (request) => login(request, () => accounts.finishWithWebAuthn(request.body.ticket, request.body.response, request.ip)),
  );

  app.post('/login/passkey/options', async () => accounts.passkeyLoginOptions());

  app.post<{ Body: { ticket: string; response: never } & TokenFields }>(
    '/login/passkey',
    { bodyLimit: BODY_LIMIT, schema: { body: assertionBody } },
    async (request) => login(request, () => accounts.finishWithPasskey(request.body.ticket, request.body.response, request.ip)),
  );

  app.post<{ Body: { refreshToken: string; audience?: string[]; scopes?: string[] } }>(
    '/token',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        body: {
          type: 'object',
          required: ['refreshToken'],
          additionalProperties: false,
          properties: { refreshToken: str(256), audience: tokenRequest.audience, scopes: tokenRequest.scopes },
        },
      },
    },
    async (request) => {
      const proof = await proofs.verify(dpopHeader(request), { method: 'POST', url: requestUrl(request) });
      const { refreshToken, audience, scopes } = request.body;
      return answer(
        await issuer.refresh(refreshToken, proof.thumbprint, { ...(audience ? { audience } : {}), ...(scopes ? { scopes } : {}) }, (id) =>
          credentials.profile(id),
        ),
      );
    },
  );

  app.post('/webauthn/register/options', async (request) => credentials.webauthnRegistrationOptions(await steppedUp(request)));

  app.post<{ Body: { response: never } }>(
    '/webauthn/register',
    {
      bodyLimit: BODY_LIMIT,
      schema: { body: { type: 'object', required: ['response'], additionalProperties: false, properties: { response: { type: 'object' } } } },
    },
    async (request) => credentials.finishWebAuthnRegistration(await steppedUp(request), request.body.response),
  );

  app.post('/recovery-codes', async (request) => ({ recoveryCodes: await credentials.regenerateRecoveryCodes(await steppedUp(request)) }));

  app.post('/totp/reset', async (request) => credentials.resetTotp(await steppedUp(request)));

  app.post<{ Body: { password: string } }>(
    '/password',
    {
      bodyLimit: BODY_LIMIT,
      schema: { body: { type: 'object', required: ['password'], additionalProperties: false, properties: { password: str(1024) } } },
    },
    async (request, reply) => {
      await credentials.changePassword(await steppedUp(request), request.body.password);
      return reply.status(204).send();
    },
  );

  app.post('/logout', async (request, reply) => {
    const presented = presentedToken(request.headers.authorization);
    if (!presented) throw new AccessDeniedError('a token is required');
    await sessions.revoke((await logoutVerifier.verify(presented.token)).sessionId);
    return reply.status(204).send();
  });

  const sessionStatus = localSessionStatus(sessions, now);
  app.get<{ Params: { sid: string } }>('/sso/sessions/:sid', async (request) => ({ active: await sessionStatus(request.params.sid) }));
  app.post<{ Body: { sessions: string[] } }>(
    '/sso/session-status',
    {
      bodyLimit: 64 * 1024,
      schema: {
        body: {
          type: 'object',
          required: ['sessions'],
          additionalProperties: false,
          properties: { sessions: { type: 'array', minItems: 1, maxItems: MAX_SESSION_STATUS_BATCH, items: { type: 'string', minLength: 1, maxLength: 128 } } },
        },
      },
    },
    async (request) => {
      const active = await sessions.activeAmong(request.body.sessions, now());
      return { active: request.body.sessions.map((sid) => active.has(sid)) };
    },
  );
}
