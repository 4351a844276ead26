/**
 * Sign-in through the hospital's OpenID Connect provider: authorization code with PKCE S256, `state` and `nonce`,
 * RFC 9207's `iss` checked, the code redeemed with a DPoP proof by this page's device key that names its X25519
 * key (so the access token is bound to both), and the id_token verified against the hospital's JWKS. Tokens stay
 * in memory; the refresh credential is used with a fresh DPoP proof before the access token expires.
 */
import { base64url, createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { api } from './api.ts';
import { DeviceKeys } from './device.ts';

export const CLIENT_ID = 'medshare-portal';
const PENDING = 'medshare-portal/login';

/** A signed-in user of one hospital. */
export interface Session {
  readonly hospital: string;
  readonly device: DeviceKeys;
  token: string;
  refreshToken: string | undefined;
  readonly subject: string;
  readonly username: string;
  readonly attributes: string[];
  readonly role: string;
}

const redirectUri = () => `${location.origin}/portal/`;
/**
 * SMART App Launch, standalone: `aud` is this hospital's FHIR base, and the clinical scopes the portal's own
 * onboarding grants (a patient her own records, staff as users); the hospital grants those of them she holds.
 */
const SMART_SCOPES = 'patient/*.rs user/*.rs';
const issuerOf = (hospital: string) => `${location.origin}/identity/${hospital}`;
const random = () => base64url.encode(crypto.getRandomValues(new Uint8Array(32)));

/** Sends the browser to the hospital's sign-in page. */
export async function signIn(hospital: string): Promise<void> {
  const verifier = random();
  const state = random();
  const nonce = random();
  sessionStorage.setItem(PENDING, JSON.stringify({ hospital, verifier, state, nonce }));
  const challenge = base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: redirectUri(),
    scope: `openid profile offline_access ${SMART_SCOPES}`,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    nonce,
    aud: `${location.origin}/gateway/fhir`,
  });
  location.assign(`${issuerOf(hospital)}/oidc/authorize?${params}`);
}

/**
 * Completes a sign-in when the page is the redirect target (`?code=…&state=…&iss=…`); undefined when it is not.
 * @throws Error for a wrong state or issuer, an OAuth error, or an id_token that does not verify.
 */
export async function completeSignIn(): Promise<Session | undefined> {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return undefined;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? 'null') as { hospital: string; verifier: string; state: string; nonce: string } | null;
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, '', '/portal/');
  if (!pending || params.get('state') !== pending.state) throw new Error('this sign-in was not started here (state mismatch)');
  const issuer = issuerOf(pending.hospital);
  if (params.get('iss') !== issuer) throw new Error('the sign-in answer comes from another issuer');
  if (params.has('error')) throw new Error(params.get('error_description') ?? params.get('error')!);
  const device = await DeviceKeys.generate();
  const tokenUrl = `${issuer}/oidc/token`;
  const tokens = await api<{ access_token: string; id_token: string; refresh_token?: string }>('POST', tokenUrl, {
    form: {
      grant_type: 'authorization_code',
      code: params.get('code')!,
      redirect_uri: redirectUri(),
      client_id: CLIENT_ID,
      code_verifier: pending.verifier,
      device_key: JSON.stringify(device.sealingJwk),
    },
    dpop: await device.proof('POST', tokenUrl, { claims: { sealing_jkt: device.sealingThumbprint } }),
  });
  const { payload: id } = await jwtVerify(tokens.id_token, createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`)), { issuer, audience: CLIENT_ID });
  if (id.nonce !== pending.nonce) throw new Error('the id_token is not for this sign-in (nonce mismatch)');
  const access = decodeJwt(tokens.access_token) as { attrs?: string[] };
  const attributes = access.attrs ?? [];
  const session: Session = {
    hospital: pending.hospital,
    device,
    token: tokens.access_token,
    refreshToken: tokens.refresh_token,
    subject: String(id.sub),
    username: String(id.preferred_username ?? id.sub),
    attributes,
    role: attributes.find((a) => a.startsWith('role:'))?.slice(5) ?? 'none',
  };
  keepFresh(session);
  return session;
}

/** Refreshes the access token a minute before it expires, for as long as the page lives. */
function keepFresh(session: Session): void {
  const expires = (decodeJwt(session.token).exp ?? 0) * 1000;
  setTimeout(
    async () => {
      if (!session.refreshToken) return;
      const url = `${issuerOf(session.hospital)}/token`;
      const fresh = await api<{ token: string; refreshToken: string }>('POST', url, {
        body: { refreshToken: session.refreshToken },
        dpop: await session.device.proof('POST', url),
      });
      session.token = fresh.token;
      session.refreshToken = fresh.refreshToken;
      keepFresh(session);
    },
    Math.max(5_000, expires - Date.now() - 60_000),
  );
}
