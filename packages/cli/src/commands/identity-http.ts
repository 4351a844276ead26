/**
 * HTTP calls of the `medshare identity` commands. Problem answers become typed errors (hence exit codes) through the
 * one HTTP→error mapper the SDK uses too (`errorFromProblem` of @medshare/server).
 */
import { UnavailableError } from '@medshare/crypto';
// The SDK's HTTP module alone: the package's index loads the whole platform (~2 s before every identity command).
import { errorFromProblem } from '@medshare/server/http-client';

/** POSTs (or PUTs) JSON to `url`; returns the parsed body of a 2xx answer or throws the matching typed error. */
export async function postJson(url: URL, body: unknown, bearer?: string, method: 'POST' | 'PUT' = 'POST'): Promise<any> {
  const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  let response: Response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  } catch {
    throw new UnavailableError(`cannot reach ${url.origin}`);
  }
  const text = await response.text();
  if (!response.ok) throw errorFromProblem(response.status, text);
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}
