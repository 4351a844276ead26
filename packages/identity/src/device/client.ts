/**
 * The device side: logs in to one medical server over HTTP (protocol.ts) and signs each request
 * with the session key (signature.ts). Uses the global fetch.
 */
import { AccessDeniedError, MalformedInputError } from '@medshare/crypto';
import { acceptLoginResponse, createLoginRequest, newNonce } from './protocol.ts';
import type { DeviceCredential } from './registration-centre.ts';
import { signRequest, splitTarget } from './signature.ts';

/** A logged-in session with one server. */
export class DeviceSessionClient {
  private constructor(
    private readonly baseUrl: URL,
    readonly sessionId: string,
    private readonly key: Buffer,
    private readonly now: () => number,
  ) {}

  /**
   * Logs in to the server `serverId` at `baseUrl` (which serves `POST device/login`); verifies the
   * server's answer, so a server without K_ij cannot impersonate it.
   */
  static async login(baseUrl: URL, credential: DeviceCredential, serverId: string, now: () => number = Date.now): Promise<DeviceSessionClient> {
    const encoded = credential.keys[serverId];
    if (!encoded) throw new MalformedInputError(`this device is not registered for server ${serverId}`);
    const pairwiseKey = Buffer.from(encoded, 'base64url');
    const request = createLoginRequest(credential.deviceId, serverId, pairwiseKey, now());
    const response = await fetch(new URL('device/login', baseUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
    });
    if (!response.ok) throw new AccessDeniedError(`login refused (HTTP ${response.status})`);
    const body = (await response.json()) as { sessionId: string };
    const key = acceptLoginResponse(pairwiseKey, request, body);
    return new DeviceSessionClient(baseUrl, body.sessionId, key, now);
  }

  /** The signature headers for a request (exposed so tests and other transports can use them). */
  sign(method: string, target: string, body: Uint8Array): Record<string, string> {
    const { path, query } = splitTarget(target);
    return signRequest(this.key, { method, path, query, body }, { created: Math.floor(this.now() / 1000), nonce: newNonce(), keyId: this.sessionId });
  }

  /** Sends a signed request; `target` is a path with optional query, resolved against the base URL. */
  async fetch(method: string, target: string, json?: unknown): Promise<Response> {
    const body = json === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(json));
    const url = new URL(target.replace(/^\//, ''), this.baseUrl);
    const headers = { ...this.sign(method, url.pathname + url.search, body), ...(json === undefined ? {} : { 'content-type': 'application/json' }) };
    return fetch(url, { method, headers, body: json === undefined ? undefined : body });
  }
}
