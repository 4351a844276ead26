/**
 * The federation as a service in another domain sees it: each trusted hospital by name and URL, its tokens
 * verified against the JWKS it publishes and its sessions checked at its own session-status route, over HTTP(S)
 * with timeouts. A hospital that cannot be asked about a session makes the request a 503 (UnavailableError),
 * not a 401: the token may be fine, its issuer is down.
 */
import { MalformedInputError, UnavailableError } from '@medshare/crypto';
import { TrustList, type SessionStatus } from '@medshare/identity';

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

/**
 * Session status at a remote issuer (`GET <base>sso/sessions/<sid>` → `{active}`). An answer of anything but
 * `active: true` is a revoked session; no answer (refused, timed out, 5xx, 429) is UnavailableError. Nothing is
 * cached (revocation stays immediate); concurrent checks of one session share one request, so a reader's burst
 * of parallel reads costs her hospital one lookup.
 */
export function remoteSessionCheck(base: URL, timeoutMs = SESSION_STATUS_TIMEOUT_MS): SessionStatus {
  const inFlight = new Map<string, Promise<boolean>>();
  const check = async (sessionId: string): Promise<boolean> => {
    let response: Response;
    try {
      response = await fetch(new URL(`sso/sessions/${encodeURIComponent(sessionId)}`, base), { signal: AbortSignal.timeout(timeoutMs) });
    } catch {
      throw new UnavailableError(`the token's issuer at ${base.origin} cannot be reached to check the session`);
    }
    if (response.status >= 500 || response.status === 429) throw new UnavailableError(`the token's issuer at ${base.origin} answered ${response.status}`);
    if (!response.ok) return false;
    const body = (await response.json().catch(() => ({}))) as { active?: unknown };
    return body.active === true;
  };
  return (sessionId) => {
    let pending = inFlight.get(sessionId);
    if (pending === undefined) {
      pending = check(sessionId).finally(() => inFlight.delete(sessionId));
      inFlight.set(sessionId, pending);
    }
    return pending;
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
