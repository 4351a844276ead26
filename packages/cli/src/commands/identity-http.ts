/** HTTP calls of the `medshare identity` commands: problem+json answers become typed errors (exit codes). */
import { AccessDeniedError, MalformedInputError, NotFoundError } from '@medshare/crypto';
import { RateLimitedError } from '@medshare/identity';

/** POSTs (or PUTs) JSON to `url`; returns the parsed body of a 2xx answer or throws the matching typed error. */
export async function postJson(url: URL, body: unknown, bearer?: string, method: 'POST' | 'PUT' = 'POST'): Promise<any> {
  const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  let response: Response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  } catch {
    throw new Error(`cannot reach ${url.origin}`);
  }
  const text = await response.text();
  let parsed: any;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (response.ok) return parsed;
  const detail = typeof parsed?.detail === 'string' ? parsed.detail : `HTTP ${response.status}`;
  if (response.status === 401 || response.status === 403) throw new AccessDeniedError(detail);
  if (response.status === 429) {
    const wait = Number(response.headers.get('retry-after') ?? 60);
    throw new RateLimitedError(`too many attempts; retry after ${wait} s`, wait);
  }
  if (response.status === 404) throw new NotFoundError(detail);
  if (response.status >= 400 && response.status < 500) throw new MalformedInputError(detail);
  throw new Error(`server error: ${detail}`);
}
