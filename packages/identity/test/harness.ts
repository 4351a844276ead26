/** Real Fastify servers on 127.0.0.1 for the identity tests, with a controllable clock. */
import Fastify, { type FastifyInstance } from 'fastify';
import { randomKeyEncryptionKey, type Database } from '@medshare/db';
import { abe } from '@medshare/crypto';
import {
  createMemoryHospital,
  createSqlHospital,
  DeviceKeys,
  DpopVerifier,
  hospitalIdentityPlugin,
  MemoryNonceCache,
  remoteSessionStatus,
  TokenVerifier,
  TrustedAuthority,
  trustedAuthorityPlugin,
  TrustList,
  type FederationMember,
  type HospitalService,
} from '../src/index.ts';

/** A clock tests can move forward. */
export class TestClock {
  private offsetMs = 0;
  readonly now = () => Date.now() + this.offsetMs;
  advance(seconds: number): void {
    this.offsetMs += seconds * 1000;
  }
}

export const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';
/** The services the test hospitals register as audiences. */
export const SERVICES = ['medshare-cloud', 'medshare-ta', 'x'];
export const FAST_SCRYPT = { logN: 12, r: 8, p: 1 };

export interface RunningHospital {
  readonly name: string;
  readonly issuer: string;
  readonly base: URL; // …/identity/
  readonly origin: string;
  readonly app: FastifyInstance;
  readonly service: HospitalService;
  /** This hospital as another member's trust list sees it: JWKS and session status over HTTP. */
  member(): FederationMember;
  /** POSTs JSON; `from` is the client address it appears to come from (X-Forwarded-For). */
  post(path: string, body: unknown, bearer?: string, dpop?: string, from?: string): Promise<{ status: number; body: any; headers: Headers }>;
  /** PUTs JSON (administrator operations). */
  put(path: string, body: unknown, bearer?: string): Promise<{ status: number; body: any; headers: Headers }>;
  /** The absolute URL of a path of this service (what a DPoP proof names). */
  url(path: string): URL;
  close(): Promise<void>;
}

export interface RunningAuthority {
  readonly authority: TrustedAuthority;
  readonly publicKey: abe.PublicKey;
  readonly app: FastifyInstance;
  /** Where it listens (its routes are at /ta/…). */
  readonly base: string;
}

/**
 * Starts a trusted authority (new CP-ABE keys; abe.init first) that trusts `hospital`'s tokens, on 127.0.0.1 (random
 * port): what the TA's own tests and the attacks on it both stand up.
 */
export async function startAuthority(hospital: RunningHospital, clock: TestClock): Promise<RunningAuthority> {
  const trust = new TrustList();
  trust.add(hospital.member());
  const keys = abe.setup();
  const authority = new TrustedAuthority({
    verifier: new TokenVerifier('medshare-ta', trust, { now: clock.now }),
    publicKey: keys.publicKey,
    masterKey: keys.masterKey,
    usedTokens: new MemoryNonceCache(),
    proofs: new DpopVerifier(new MemoryNonceCache(), clock.now),
    now: clock.now,
  });
  const app = Fastify({ logger: false });
  await app.register(trustedAuthorityPlugin, { authority, publicKey: keys.publicKey });
  return { authority, publicKey: keys.publicKey, app, base: await app.listen({ host: '127.0.0.1', port: 0 }) };
}

/** Starts a hospital identity service on 127.0.0.1 (random port), on SQL stores in `db` if given, else in memory. */
export async function startHospital(name: string, clock: TestClock, limits = {}, db?: Database, adminToken = ADMIN_TOKEN): Promise<RunningHospital> {
  const issuer = `https://idp.${name}.example`;
  const origin = `https://${name}.example`;
  const config = {
    hospital: name,
    issuer,
    adminToken,
    relyingParty: { id: `${name}.example`, name, origins: [origin] },
    audiences: SERVICES,
    scrypt: FAST_SCRYPT,
    limits,
    now: clock.now,
  };
  const service = db ? await createSqlHospital(db, { ...config, kek: randomKeyEncryptionKey() }) : await createMemoryHospital(config);
  // X-Forwarded-For from the loopback is believed, so tests can speak from several client addresses.
  const app = Fastify({ logger: false, trustProxy: '127.0.0.1' });
  await app.register(hospitalIdentityPlugin, { ...service, prefix: '/identity' });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  const base = new URL('/identity/', address);
  return {
    name,
    issuer,
    base,
    origin,
    app,
    service,
    member: () => ({ issuer, hospital: name, jwks: new URL('.well-known/jwks.json', base), sessionStatus: remoteSessionStatus(base) }),
    post: (path, body, bearer, dpop, from) => postJson(new URL(path, base), body, bearer, dpop, from),
    url: (path) => new URL(path, base),
    put: (path, body, bearer) => postJson(new URL(path, base), body, bearer, undefined, undefined, 'PUT'),
    close: () => app.close(),
  };
}

/** POSTs JSON and returns status, parsed body and headers; with `dpop`, the token goes as `DPoP` with that proof. */
export async function postJson(
  url: URL,
  body: unknown,
  bearer?: string,
  dpop?: string,
  from?: string,
  method = 'POST',
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (from) headers['x-forwarded-for'] = from;
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (bearer) headers.authorization = `${dpop ? 'DPoP' : 'Bearer'} ${bearer}`;
  if (dpop) headers.dpop = dpop;
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
}

export const DOCTOR = {
  username: 'alice',
  password: 'a long enough passphrase',
  attributes: ['role:doctor', 'dept:cardiology', 'level=3'],
  scopes: ['user/Observation.rs', 'patient/*.rs', 'openid'],
};

/** Registers a user and returns the enrolment (TOTP secret, recovery codes). */
export async function register(hospital: RunningHospital, user = DOCTOR): Promise<{ userId: string; totpSecret: string; recoveryCodes: string[] }> {
  const result = await hospital.post('users', user, ADMIN_TOKEN);
  if (result.status !== 201) throw new Error(`registration failed: ${JSON.stringify(result.body)}`);
  return result.body;
}

/** A login (password, TOTP at `clock`) on `device`, whose keys sign the challenge; the token is also for the hospital itself. */
export async function deviceLogin(
  hospital: RunningHospital,
  device: DeviceKeys,
  totpCode: () => string,
  options: { username?: string; password?: string; audience?: string[] } = {},
): Promise<{ status: number; body: any }> {
  const first = await hospital.post('login/password', { username: options.username ?? DOCTOR.username, password: options.password ?? DOCTOR.password });
  if (first.status !== 200) return first;
  const proof = await device.loginProof(hospital.url('login/totp'), first.body.challenge);
  const audience = options.audience ?? ['medshare-cloud', 'medshare-ta', hospital.issuer];
  return hospital.post('login/totp', { ticket: first.body.ticket, code: totpCode(), audience, deviceKey: device.sealingPublicJwk }, undefined, proof);
}
