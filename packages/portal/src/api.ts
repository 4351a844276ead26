/**
 * JSON requests to the platform (same origin). Problem answers (RFC 9457) become ApiError with the service's
 * detail, which the screens show as they are.
 */

/** A refused or failed request. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** One request; `token` goes as a bearer token, `dpop` as the DPoP header (then the scheme is DPoP). */
export async function api<T>(
  method: string,
  path: string,
  options: { body?: unknown; token?: string; dpop?: string; form?: Record<string, string> } = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  let body: string | undefined;
  if (options.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(options.form).toString();
  } else if (options.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  if (options.token) headers.authorization = `${options.dpop ? 'DPoP' : 'Bearer'} ${options.token}`;
  if (options.dpop) headers.dpop = options.dpop;
  const response = await fetch(path, { method, headers, body, credentials: 'omit' });
  const text = await response.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!response.ok) {
    const problem = json as { detail?: string; error_description?: string } | undefined;
    throw new ApiError(response.status, problem?.detail ?? problem?.error_description ?? `HTTP ${response.status}`);
  }
  return json as T;
}

/** A signed-in caller: her access token and the device key it is bound to (DPoP, RFC 9449). */
export interface BoundCaller {
  readonly token: string;
  readonly device: { proof(method: string, url: string, options?: { accessToken?: string }): Promise<string> };
}

/**
 * One request as `caller`: her token with a fresh DPoP proof of her device key for this method and URL. The cloud
 * and the gateways refuse a bound token without one, so a token stolen from the page is useless without the key.
 */
export async function callerApi<T>(caller: BoundCaller, method: string, url: string, options: { body?: unknown } = {}): Promise<T> {
  return api<T>(method, url, { ...options, token: caller.token, dpop: await caller.device.proof(method, url, { accessToken: caller.token }) });
}
