/**
 * The one HTTP client of MedShare's services and SDK: JSON over fetch with a timeout on every call (a remote
 * service that is down or stuck never hangs the caller), retries of idempotent calls on 503/429/network failures,
 * and the one HTTP→error mapping: a problem answer (RFC 9457) becomes the taxonomy's typed error again, by its
 * `type` (`urn:medshare:problem:<code>`) or else by its status, so the CLI's exit codes apply end to end.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { MalformedInputError, MedShareError, UnavailableError, type ErrorCode } from '@medshare/crypto';
import { RECORD_STREAM_TYPE, recordStreamEvents, wholeRecords, type RecordParts, type RecordStreamEvent } from './cloud/record-stream.ts';

/** An HTTP problem answer as a typed error; `status` is the HTTP status, `code` the taxonomy's. */
export class HttpProblemError extends MedShareError {
  constructor(
    readonly status: number,
    message: string,
    code: ErrorCode = codeForStatus(status),
  ) {
    super(code, message);
  }
}

const CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'MALFORMED',
  'UNSUPPORTED',
  'LIMIT',
  'POLICY_SYNTAX',
  'ACCESS_DENIED',
  'INTEGRITY',
  'UNAUTHENTICATED',
  'NOT_FOUND',
  'CONFLICT',
  'RATE_LIMITED',
  'UNAVAILABLE',
]);

/** The error code an HTTP status stands for when the problem names none. */
export function codeForStatus(status: number): ErrorCode {
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'ACCESS_DENIED';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'CONFLICT';
  if (status === 413) return 'LIMIT';
  if (status === 429) return 'RATE_LIMITED';
  if (status >= 500) return 'UNAVAILABLE';
  return 'MALFORMED';
}

/** The typed error of a problem answer (the HTTP→error mapping shared by the SDK, the CLI and service-to-service calls). */
export function errorFromProblem(status: number, body: string): HttpProblemError {
  let detail = `HTTP ${status}`;
  let code = codeForStatus(status);
  try {
    const problem = JSON.parse(body) as { detail?: unknown; type?: unknown };
    if (typeof problem.detail === 'string') detail = problem.detail;
    const named = typeof problem.type === 'string' ? /^urn:medshare:problem:([a-z-]+)$/.exec(problem.type)?.[1]?.toUpperCase().replaceAll('-', '_') : undefined;
    // A remote service's own outage stays an outage here; its 4xx keep their meaning.
    if (named !== undefined && CODES.has(named) && status < 500) code = named as ErrorCode;
  } catch {
    // not a problem document: keep the status line
  }
  return new HttpProblemError(status, detail, code);
}

/** One call's options. */
export interface CallOptions {
  readonly body?: unknown;
  readonly token?: string;
  /**
   * A DPoP proof (RFC 9449), or a function making a fresh one for the URL called (once per attempt: a proof is
   * single-use, so a retry needs a new one); the token then goes as `Authorization: DPoP`.
   */
  readonly dpop?: string | ((url: URL) => Promise<string>);
  readonly contentType?: string;
  /** Milliseconds before the call is abandoned with UnavailableError (default 120 s: a read converts a whole category). */
  readonly timeoutMs?: number;
  /**
   * Whether repeating the call changes nothing more than the first time (GET, PUT, DELETE are; a POST that the
   * server makes idempotent, such as an upload with deterministic record ids, may say so). Only those are retried.
   */
  readonly idempotent?: boolean;
  /** Retries of an idempotent call after a network failure, 503 or 429 (default 2). */
  readonly retries?: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;
/** Waits between retries grow from this; a Retry-After above MAX_RETRY_WAIT_MS ends the retries instead. */
const RETRY_BASE_MS = 250;
const MAX_RETRY_WAIT_MS = 5_000;

/** Sets the token (`Bearer`, or `DPoP` with a proof) on `headers`; a proof function makes a fresh one for `url` (once per attempt). */
async function authorize(headers: Record<string, string>, options: Pick<CallOptions, 'token' | 'dpop'>, url: URL): Promise<void> {
  if (options.token !== undefined) headers.authorization = `${options.dpop === undefined ? 'Bearer' : 'DPoP'} ${options.token}`;
  if (options.dpop !== undefined) headers.dpop = typeof options.dpop === 'string' ? options.dpop : await options.dpop(url);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Calls `method path` on `base` and returns the parsed JSON answer (undefined for an empty body). */
export async function callJson<T>(base: URL, method: string, path: string, options: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = {};
  if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const idempotent = options.idempotent ?? (method === 'GET' || method === 'PUT' || method === 'DELETE');
  const retries = idempotent ? (options.retries ?? 2) : 0;
  const url = new URL(path.replace(/^\//, ''), base.href.endsWith('/') ? base : new URL(`${base.href}/`));
  for (let attempt = 0; ; attempt++) {
    let failure: MedShareError;
    let wait = RETRY_BASE_MS * 2 ** attempt;
    try {
      await authorize(headers, options, url);
      const response = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS) });
      const text = await response.text();
      if (response.ok) return (text === '' ? undefined : JSON.parse(text)) as T;
      failure = errorFromProblem(response.status, text);
      if (response.status !== 503 && response.status !== 429) throw failure;
      const retryAfter = Number(response.headers.get('retry-after'));
      if (Number.isFinite(retryAfter) && retryAfter > 0) wait = retryAfter * 1000;
    } catch (error) {
      if (error instanceof HttpProblemError && error.status !== 503 && error.status !== 429) throw error;
      failure = error instanceof MedShareError ? error : new UnavailableError(`${url.origin} is unreachable (${reasonOf(error)})`);
    }
    if (attempt >= retries || wait > MAX_RETRY_WAIT_MS) throw failure;
    await sleep(wait);
  }
}

/**
 * POSTs a JSON body to a read route asking for the binary record stream (`Accept: application/octet-stream`,
 * cloud/record-stream.ts) and yields its events as the bytes arrive: no base64, no JSON around large payloads, and a
 * large payload handed out piece by piece. A problem answer becomes its typed error, as with callJson; a read is
 * not retried (it is audited). Stopping the iteration early ends the request. The body is read with node:http(s),
 * not fetch: receiving a 16 MiB stream through fetch's web streams cost this process about twice the CPU time
 * (docs/benchmarks.md § Platform); TLS trusts what fetch trusts (the system store and NODE_EXTRA_CA_CERTS).
 */
export async function* callRecordStreamEvents(
  base: URL,
  path: string,
  options: Pick<CallOptions, 'body' | 'token' | 'dpop' | 'timeoutMs'>,
): AsyncGenerator<RecordStreamEvent> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: RECORD_STREAM_TYPE };
  const url = new URL(path.replace(/^\//, ''), base.href.endsWith('/') ? base : new URL(`${base.href}/`));
  let response: IncomingMessage | undefined;
  try {
    await authorize(headers, options, url);
    const body = JSON.stringify(options.body ?? {});
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    response = await new Promise<IncomingMessage>((resolve, reject) => {
      const request = send(
        url,
        {
          method: 'POST',
          headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
          signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
        },
        resolve,
      );
      request.once('error', reject);
      request.end(body);
    });
    const status = response.statusCode ?? 0;
    if (status < 200 || status > 299) {
      const text: Buffer[] = [];
      for await (const chunk of response) text.push(chunk as Buffer);
      throw errorFromProblem(status, Buffer.concat(text).toString('utf8'));
    }
    if (response.headers['content-type'] !== RECORD_STREAM_TYPE) throw new MalformedInputError(`${url.origin} did not answer a record stream`);
    yield* recordStreamEvents(response);
  } catch (error) {
    if (error instanceof MedShareError) throw error;
    throw new UnavailableError(`${url.origin} is unreachable (${reasonOf(error)})`);
  } finally {
    // An iteration stopped early (or failed) leaves the rest of the answer unread: close the connection.
    if (response !== undefined && !response.complete) response.destroy();
  }
}

/** As callRecordStreamEvents, gathered: every record of the answer with its payload in one buffer. */
export async function callRecordStream(base: URL, path: string, options: Pick<CallOptions, 'body' | 'token' | 'dpop' | 'timeoutMs'>): Promise<RecordParts[]> {
  const records: RecordParts[] = [];
  for await (const record of wholeRecords(callRecordStreamEvents(base, path, options))) records.push(record);
  return records;
}

function reasonOf(error: unknown): string {
  const named = error as { name?: string; cause?: { code?: string } };
  if (named?.name === 'TimeoutError' || named?.name === 'AbortError') return 'timed out';
  return named?.cause?.code ?? (error instanceof Error ? error.message : String(error));
}

/** The URL of every service, as a deployment's configuration or `serve all` gives them. */
export interface ServiceUrls {
  readonly authority: URL;
  readonly cloud: URL;
  /** Each hospital's service (identity under /identity/<name>/, gateway under /gateway/). */
  readonly hospitals: Readonly<Record<string, URL>>;
}

/** Service URLs where everything is behind one origin (a reverse proxy routing by path prefix). */
export function sameOrigin(base: string | URL, hospitals: readonly string[]): ServiceUrls {
  const url = new URL(base);
  return { authority: url, cloud: url, hospitals: Object.fromEntries(hospitals.map((h) => [h, url])) };
}
