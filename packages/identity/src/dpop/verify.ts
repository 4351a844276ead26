/**
 * Sender-constrained access tokens at a resource server (RFC 9449 §7): a route that takes a user's token accepts it
 * only as `Authorization: DPoP <token>` together with a `DPoP` proof, signed by the key the token is bound to
 * (`cnf.jkt`), for this very request (`htm`, `htu`), this token (`ath`), fresh (`iat` ±60 s) and never seen before
 * (`jti`, kept in a replay cache until the proof could no longer pass the `iat` check). A stolen token alone, a
 * replayed proof, a proof made for another URL, method or token, a token presented as `Bearer`, or a token that was
 * never bound to a device key are all refused. The proof checks themselves are sso/dpop.ts (jose).
 *
 * Services install it with `senderConstrained(app, verifier)` (a Fastify `onRequest` hook: nothing of the request
 * is parsed before the caller is known), or call `verifyRequest` per route where only some routes take tokens.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AccessDeniedError, MedShareError, UnauthenticatedError, UnavailableError } from '@medshare/crypto';
import { dpopHeader, presentedToken, requestUrl } from '../http/proof.ts';
import type { VerifiedToken } from '../sso/claims.ts';
import type { DpopVerifier } from '../sso/dpop.ts';
import type { TokenVerifier } from '../sso/federation.ts';

/** The `WWW-Authenticate` challenge of a resource server that takes DPoP-bound tokens only (RFC 9449 §7.1). */
export const DPOP_CHALLENGE = 'DPoP algs="EdDSA"';

/** Checks a request's access token and its DPoP proof together (once per request: later calls share the answer). */
export class SenderConstrainedVerifier {
  private readonly verified = new WeakMap<FastifyRequest, Promise<VerifiedToken>>();

  /**
   * @param tokens verifies the token itself (issuer, signature, audience, times, revocation)
   * @param proofs verifies the proof; its replay cache should be shared by every instance of the service
   * @param options.issuerProofs also accept a proof signed by one of the token issuer's published token-signing keys:
   *   the hospital's own service calling on its user's behalf (the gateway → the cloud). This gives the hospital no
   *   power it lacks: it can issue its users tokens bound to any key it likes. A thief holds neither key.
   */
  constructor(
    readonly tokens: TokenVerifier,
    private readonly proofs: DpopVerifier,
    private readonly options: { issuerProofs?: boolean } = {},
  ) {}

  /**
   * The request's verified token. A second call for the same request returns the first answer (the proof's `jti`
   * is spent by the first).
   * @throws UnauthenticatedError when the token is missing, invalid, not DPoP-bound, or its proof fails a check
   *   (the message names which); nothing of the token or proof is in it.
   */
  verifyRequest(request: FastifyRequest): Promise<VerifiedToken> {
    let answer = this.verified.get(request);
    if (answer === undefined) this.verified.set(request, (answer = this.check(request)));
    return answer;
  }

  private async check(request: FastifyRequest): Promise<VerifiedToken> {
    const presented = presentedToken(request.headers.authorization);
    if (presented === undefined) throw new UnauthenticatedError('a DPoP-bound SSO token is required (Authorization: DPoP <token>)');
    try {
      const token = await this.tokens.verify(presented.token);
      if (token.proofKeyThumbprint === undefined) throw new AccessDeniedError('the token is not bound to a device key: log in with a DPoP proof');
      // RFC 9449 §7.1: a DPoP-bound token must not be accepted under the Bearer scheme.
      if (presented.scheme !== 'DPoP') throw new AccessDeniedError('a DPoP-bound token goes with Authorization: DPoP and a DPoP proof');
      const expected = { method: request.method, url: requestUrl(request), accessToken: presented.token };
      if (!this.options.issuerProofs) {
        await this.proofs.verify(dpopHeader(request), { ...expected, thumbprint: token.proofKeyThumbprint });
        return token;
      }
      const { thumbprint } = await this.proofs.verify(dpopHeader(request), expected);
      if (thumbprint !== token.proofKeyThumbprint && !(await this.tokens.issuerHoldsKey(token.issuer, thumbprint))) {
        throw new AccessDeniedError('DPoP proof is signed by another key than the token is bound to');
      }
      return token;
    } catch (error) {
      // An issuer that cannot be asked about the session is a 503, not a bad token.
      if (error instanceof MedShareError && !(error instanceof UnauthenticatedError) && !(error instanceof UnavailableError))
        throw new UnauthenticatedError(error.message);
      throw error;
    }
  }
}

/** Route `config` of a route senderConstrained leaves open to anonymous callers (discovery only). */
export const PUBLIC_ROUTE = { public: true } as const;

/**
 * Requires a DPoP-bound token and proof on every route of the Fastify scope `app` registered after this call: an
 * `onRequest` hook of each route, so nothing of the body is read before the caller is known, appended after the
 * hooks that parent scopes' `onRoute` handlers added (a rate limiter counts refused requests too). The scope's
 * error handler answers the UnauthenticatedError (401). Handlers get the token from `verifier.verifyRequest(request)`
 * again (the same answer, no second check). A route declared with `config: PUBLIC_ROUTE` is left open: discovery
 * documents a client reads before it has a token (a FHIR CapabilityStatement, SMART configuration).
 */
export function senderConstrained(app: FastifyInstance, verifier: SenderConstrainedVerifier): void {
  const check = async (request: FastifyRequest) => {
    await verifier.verifyRequest(request);
  };
  app.addHook('onRoute', (route) => {
    if ((route.config as { public?: unknown } | undefined)?.public === true) return;
    const hooks = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [...hooks, check];
  });
}
