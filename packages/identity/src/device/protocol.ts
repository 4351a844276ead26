/**
 * Mutual authentication and session keys between a registered device and one medical server,
 * using only the pairwise key K (registration-centre.ts), HMAC-SHA256 and HKDF-SHA256.
 *
 *   1. D → S  LoginRequest  { DID, SID, N_D, T_D, mac1 = HMAC(K, "login-request" ‖ SID ‖ DID ‖ N_D ‖ T_D) }
 *      S: |now − T_D| ≤ window, DID not revoked, (DID, N_D) unseen, mac1 correct (constant time).
 *   2. S → D  LoginResponse { session, N_S, exp, mac2 = HMAC(K, "login-response" ‖ SID ‖ DID ‖ N_D ‖ N_S ‖ session ‖ exp) }
 *      D: mac2 correct ⇒ S knows K, i.e. it is server SID (mutual authentication), and it answered
 *      this very request (N_D).
 *   Both: SK = HKDF-SHA256(K, salt = N_D ‖ N_S, info = "medshare/device-session/v1" ‖ SID ‖ DID ‖ session).
 *   3. Every later request is signed with SK (signature.ts); the first one confirms SK to S.
 *
 * Fields are joined with a 0 byte after validation (no field may contain one), so no two different
 * field lists produce the same MAC input.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { AccessDeniedError, MalformedInputError } from '@medshare/crypto';
import { checkIdentifier } from './registration-centre.ts';

/** Message 1. */
export interface LoginRequest {
  readonly deviceId: string;
  readonly serverId: string;
  readonly nonce: string; // base64url, 16 bytes
  readonly timestamp: number; // unix ms
  readonly mac: string; // base64url
}

/** Message 2. */
export interface LoginResponse {
  readonly sessionId: string;
  readonly nonce: string;
  readonly expiresAt: number; // unix ms
  readonly mac: string;
}

const NONCE = /^[A-Za-z0-9_-]{22}$/;
const MAC = /^[A-Za-z0-9_-]{43}$/;

/** HMAC-SHA256 over a label and NUL-separated fields. */
export function protocolMac(key: Uint8Array, label: string, fields: readonly (string | number)[]): Buffer {
  const hmac = createHmac('sha256', key).update(label);
  for (const field of fields) hmac.update(Buffer.from([0])).update(String(field), 'utf8');
  return hmac.digest();
}

/** Constant-time check of a base64url MAC against the expected bytes. */
export function macMatches(expected: Buffer, received: string): boolean {
  const bytes = Buffer.from(received, 'base64url');
  return bytes.length === expected.length && timingSafeEqual(bytes, expected);
}

/** SK from the pairwise key and both nonces. */
export function deriveSessionKey(pairwiseKey: Uint8Array, request: LoginRequest, response: Pick<LoginResponse, 'nonce' | 'sessionId'>): Buffer {
  const salt = Buffer.concat([Buffer.from(request.nonce, 'base64url'), Buffer.from(response.nonce, 'base64url')]);
  const info = `medshare/device-session/v1\0${request.serverId}\0${request.deviceId}\0${response.sessionId}`;
  return Buffer.from(hkdfSync('sha256', pairwiseKey, salt, info, 32));
}

/** A fresh 16-byte nonce, base64url. */
export function newNonce(): string {
  return randomBytes(16).toString('base64url');
}

/** Validates message 1's shape (not its MAC). */
export function checkLoginRequest(value: unknown): LoginRequest {
  const m = value as Partial<LoginRequest> | null;
  if (typeof m !== 'object' || m === null) throw new MalformedInputError('login request must be an object');
  checkIdentifier(m.deviceId, 'device id');
  checkIdentifier(m.serverId, 'server id');
  if (typeof m.nonce !== 'string' || !NONCE.test(m.nonce)) throw new MalformedInputError('login nonce must be 16 bytes base64url');
  if (typeof m.timestamp !== 'number' || !Number.isSafeInteger(m.timestamp)) throw new MalformedInputError('login timestamp must be an integer');
  if (typeof m.mac !== 'string' || !MAC.test(m.mac)) throw new MalformedInputError('login mac must be 32 bytes base64url');
  return m as LoginRequest;
}

/** Builds message 1 (device side). */
export function createLoginRequest(deviceId: string, serverId: string, pairwiseKey: Uint8Array, nowMs: number): LoginRequest {
  const nonce = newNonce();
  const mac = protocolMac(pairwiseKey, 'login-request', [serverId, deviceId, nonce, nowMs]).toString('base64url');
  return { deviceId, serverId, nonce, timestamp: nowMs, mac };
}

/** Checks message 2 (device side) and returns SK; AccessDeniedError if the server is not genuine. */
export function acceptLoginResponse(pairwiseKey: Uint8Array, request: LoginRequest, value: unknown): Buffer {
  const m = value as Partial<LoginResponse> | null;
  if (
    typeof m !== 'object' ||
    m === null ||
    typeof m.sessionId !== 'string' ||
    typeof m.nonce !== 'string' ||
    !NONCE.test(m.nonce) ||
    typeof m.expiresAt !== 'number' ||
    typeof m.mac !== 'string'
  ) {
    throw new MalformedInputError('login response is malformed');
  }
  const expected = protocolMac(pairwiseKey, 'login-response', [request.serverId, request.deviceId, request.nonce, m.nonce, m.sessionId, m.expiresAt]);
  if (!macMatches(expected, m.mac)) throw new AccessDeniedError('server failed to authenticate');
  return deriveSessionKey(pairwiseKey, request, { nonce: m.nonce, sessionId: m.sessionId });
}
