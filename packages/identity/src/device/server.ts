/**
 * The medical-server side of device authentication: answers logins (protocol.ts) and verifies
 * signed requests (signature.ts). It resists:
 *   - replay: each login nonce and each request nonce is accepted once within the time window
 *     (nonce cache), and anything older than the window is refused (stale timestamp);
 *   - tampering: method, path, query and the body digest are covered by the MAC; the digest is
 *     recomputed from the bytes received;
 *   - impersonation of the device or the server: both MACs need K_ij; a key for another server fails;
 *   - a revoked device: checked at login and on every request;
 *   - timing attacks: every MAC comparison is crypto.timingSafeEqual.
 */
import { randomBytes } from 'node:crypto';
import { AccessDeniedError } from '@medshare/crypto';
import type { NonceCache, TicketStore } from '../stores.ts';
import { checkLoginRequest, deriveSessionKey, macMatches, newNonce, protocolMac, type LoginResponse } from './protocol.ts';
import { derivePairwiseKey, type DeviceRevocationCheck } from './registration-centre.ts';
import { computeSignature, contentDigest, parseSignatureHeaders, signatureBase, type SignedRequestParts } from './signature.ts';

/** A device session on this server. */
export interface DeviceSession {
  readonly deviceId: string;
  readonly key: string; // base64url SK
  readonly expiresAtMs: number;
}

export interface DeviceAuthServerOptions {
  readonly serverId: string;
  readonly serverSecret: Uint8Array;
  readonly isRevoked: DeviceRevocationCheck;
  readonly nonces: NonceCache;
  readonly sessions: TicketStore<DeviceSession>;
  readonly windowSeconds?: number;
  readonly sessionSeconds?: number;
  readonly now?: () => number;
}

/** Device authentication for one medical server. */
export class DeviceAuthServer {
  private readonly windowMs: number;
  private readonly sessionMs: number;
  private readonly now: () => number;

  constructor(private readonly options: DeviceAuthServerOptions) {
    this.windowMs = (options.windowSeconds ?? 30) * 1000;
    this.sessionMs = (options.sessionSeconds ?? 900) * 1000;
    this.now = options.now ?? Date.now;
  }

  /** Message 1 → message 2, creating a session. */
  async login(body: unknown): Promise<LoginResponse> {
    const request = checkLoginRequest(body);
    const nowMs = this.now();
    if (request.serverId !== this.options.serverId) throw new AccessDeniedError('login is addressed to another server');
    if (Math.abs(nowMs - request.timestamp) > this.windowMs) throw new AccessDeniedError('login timestamp is outside the allowed window');
    if (await this.options.isRevoked(request.deviceId)) throw new AccessDeniedError('device authentication failed');
    const pairwiseKey = derivePairwiseKey(this.options.serverSecret, request.deviceId);
    const expected = protocolMac(pairwiseKey, 'login-request', [request.serverId, request.deviceId, request.nonce, request.timestamp]);
    if (!macMatches(expected, request.mac)) throw new AccessDeniedError('device authentication failed');
    if (!(await this.options.nonces.add(`login ${request.deviceId} ${request.nonce}`, request.timestamp + 2 * this.windowMs, nowMs))) {
      throw new AccessDeniedError('login request has been replayed');
    }
    const sessionId = randomBytes(16).toString('base64url');
    const nonce = newNonce();
    const expiresAt = nowMs + this.sessionMs;
    const key = deriveSessionKey(pairwiseKey, request, { nonce, sessionId });
    await this.options.sessions.put(sessionId, { deviceId: request.deviceId, key: key.toString('base64url'), expiresAtMs: expiresAt }, expiresAt, nowMs);
    const mac = protocolMac(pairwiseKey, 'login-response', [request.serverId, request.deviceId, request.nonce, nonce, sessionId, expiresAt]).toString(
      'base64url',
    );
    return { sessionId, nonce, expiresAt, mac };
  }

  /** Verifies a signed request; returns the authenticated device id. */
  async verify(parts: SignedRequestParts, headers: Record<string, string | string[] | undefined>): Promise<{ deviceId: string; sessionId: string }> {
    const { params, signature, digest } = parseSignatureHeaders(headers);
    const nowMs = this.now();
    if (Math.abs(nowMs - params.created * 1000) > this.windowMs) throw new AccessDeniedError('request signature is stale');
    const session = await this.options.sessions.peek(params.keyId, nowMs);
    if (!session) throw new AccessDeniedError('unknown or expired device session');
    if (await this.options.isRevoked(session.deviceId)) throw new AccessDeniedError('device has been revoked');
    if (digest !== contentDigest(parts.body)) throw new AccessDeniedError('request body does not match its digest');
    const expected = computeSignature(Buffer.from(session.key, 'base64url'), signatureBase(parts, digest, params));
    if (!macMatches(expected, signature.toString('base64url'))) throw new AccessDeniedError('request signature is not valid');
    if (!(await this.options.nonces.add(`request ${params.keyId} ${params.nonce}`, params.created * 1000 + 2 * this.windowMs, nowMs))) {
      throw new AccessDeniedError('request has been replayed');
    }
    return { deviceId: session.deviceId, sessionId: params.keyId };
  }
}
