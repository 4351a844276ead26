/**
 * The federation as a service in another domain sees it: each trusted hospital by name and URL, its tokens
 * verified against the JWKS it publishes and its sessions checked at its own session-status route, over HTTP(S)
 * with timeouts. A hospital that cannot be asked about a session makes the request a 503 (UnavailableError),
 * not a 401: the token may be fine, its issuer is down.
 */
import { MalformedInputError, UnavailableError } from '@medshare/crypto';
import { MAX_SESSION_STATUS_BATCH, TrustList, type SessionStatus } from '@medshare/identity';

/** A trusted hospital, as the config file or `--hospital-url name=url` lists it. */
export interface HospitalPeer {
  /** Lower-case code (`st-marys`). */
  readonly name: string;
  /** Base URL of the hospital's service (identity under /identity/<name>/, gateway under /gateway/). */
  readonly url: string | URL;
  /** Its token issuer (default `urn:medshare:idp:<name>`). */
  readonly issuer?: string;
  /** Its JWKS (default `<url>/identity/<name>/.well-known/jwks.json`). */
  readonly jwks?: string | URL;
  /** Base of its session-status route `…/sso/sessions/<sid>` (default `<url>/identity/<name>/`). */
  readonly sessionStatus?: string | URL;
  /** Its ledger witness's verifier key, pinned by the config (default: fetched from the hospital once, then pinned). */
  readonly witnessKey?: string;
  /** Its gateway's record-signing key, pinned by the config (default: fetched from the hospital once, then pinned). */
  readonly recordKey?: string;
}

/** Hospital names: lower-case codes. */
export const HOSPITAL_NAME = /^[a-z][a-z0-9-]{0,62}$/;
/** Milliseconds a session-status check may take before the request fails with 503. */
const SESSION_STATUS_TIMEOUT_MS = 10_000;

/** The issuer URN of a hospital's tokens. */
export function issuerOf(hospital: string): string {
  return `urn:medshare:idp:${hospital}`;
}

/** Checks a hospital name (lower-case code). */
export function checkHospitalName(name: string): string {
  if (!HOSPITAL_NAME.test(name)) throw new MalformedInputError(`hospital names are lower-case codes: '${name}'`);
  return name;
}

/** A URL relative to a base that may lack its trailing slash. */
function under(base: string | URL, path: string): URL {
  const url = new URL(base);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return new URL(path, url);
}

/** A session check waiting for its request. */
interface PendingCheck {
  readonly promise: Promise<boolean>;
  readonly resolve: (active: boolean) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Session status at a remote issuer (`POST <base>sso/session-status` → `{active: [...]}`). An answer of anything but
 * `true` for a session is a revoked session; no answer (refused, timed out, 5xx, 429) is UnavailableError. Nothing
 * is cached (revocation stays immediate): every check is answered by a request sent after the check was asked for.
 * Checks are batched: while a request is on its way, the checks asked for meanwhile wait and then go together
 * in the next one (one request and one lookup at the issuer for a burst of concurrent reads; a lone check is sent
 * at once). Checks of one session waiting for the same request share its answer.
 */
export function remoteSessionCheck(base: URL, timeoutMs = SESSION_STATUS_TIMEOUT_MS): SessionStatus {
  const target = new URL('sso/session-status', base);
  /** Checks not yet sent, by session id. */
  const waiting = new Map<string, PendingCheck>();
  let inFlight = 0;
  const ask = async (sessionIds: string[]): Promise<boolean[]> => {
    let response: Response;
    try {
      response = await fetch(target, {
        method: 'POST',
        body: JSON.stringify({ sessions: sessionIds }),
        headers: { 'content-type': 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch {
      throw new UnavailableError(`the token's issuer at ${base.origin} cannot be reached to check the session`);
    }
    if (response.status >= 500 || response.status === 429) throw new UnavailableError(`the token's issuer at ${base.origin} answered ${response.status}`);
    const body = response.ok ? ((await response.json().catch(() => ({}))) as { active?: unknown }) : {};
    const active = Array.isArray(body.active) && body.active.length === sessionIds.length ? body.active : [];
    return sessionIds.map((_, i) => active[i] === true);
  };
  const send = (): void => {
    const batch = [...waiting].slice(0, MAX_SESSION_STATUS_BATCH);
    for (const [sessionId] of batch) waiting.delete(sessionId);
    inFlight += 1;
    ask(batch.map(([sessionId]) => sessionId))
      .then(
        (active) => batch.forEach(([, pending], i) => pending.resolve(active[i]!)),
        (error: unknown) => batch.forEach(([, pending]) => pending.reject(error)),
      )
      .finally(() => {
        inFlight -= 1;
        if (waiting.size > 0 && inFlight === 0) send();
      });
  };
  return (sessionId) => {
    let pending = waiting.get(sessionId);
    if (pending === undefined) {
      let resolve!: (active: boolean) => void;
      let reject!: (error: unknown) => void;
      const promise = new Promise<boolean>((yes, no) => {
        resolve = yes;
        reject = no;
      });
      pending = { promise, resolve, reject };
      waiting.set(sessionId, pending);
    }
    // A full batch goes at once; otherwise the checks wait for the request on its way (or go now if there is none).
    if (inFlight === 0 || waiting.size >= MAX_SESSION_STATUS_BATCH) send();
    return pending.promise;
  };
}

/** Adds (or replaces) a remote hospital on a trust list. */
export function trustHospital(trust: TrustList, peer: HospitalPeer): void {
  const name = checkHospitalName(peer.name);
  trust.add({
    issuer: peer.issuer ?? issuerOf(name),
    hospital: name,
    jwks: new URL(peer.jwks ?? under(peer.url, `identity/${name}/.well-known/jwks.json`)),
    sessionStatus: remoteSessionCheck(under(peer.sessionStatus ?? under(peer.url, `identity/${name}/`), '')),
  });
}

/** A trust list of remote hospitals. */
export function federationTrust(peers: readonly HospitalPeer[]): TrustList {
  const trust = new TrustList();
  for (const peer of peers) trustHospital(trust, peer);
  return trust;
}
