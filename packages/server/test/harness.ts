/** A running platform on 127.0.0.1 with the demo's cast, for the integration tests (PGlite and PostgreSQL). */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pre } from '@medshare/crypto';
import { randomKeyEncryptionKey, type Database, type KeyEncryptionKey } from '@medshare/db';
import {
  createPlatform,
  DoctorClient,
  GatewayClient,
  PatientClient,
  PlatformClient,
  roleScopes,
  type Platform,
  type PlatformDatabases,
  type PlatformOptions,
  type ServiceUrls,
  type Session,
} from '../src/index.ts';

export const ADMIN = 'admin-token-for-platform-tests-0123';
/** Each hospital's own administrator credential. */
export const ADMINS: Record<string, string> = { 'st-marys': ADMIN, riverside: 'admin-token-for-riverside-tests-4567' };
export const FAST_SCRYPT = { logN: 12, r: 8, p: 1 };
export const CATEGORIES = ['lab', 'imaging', 'notes', 'medication', 'clinical'];
export const LAB_POLICY = '(role:doctor and dept:cardiology) or role:emergency';
export const SAMPLE_BUNDLE = fileURLToPath(new URL('../../cli/fixtures/synthea-sample.json', import.meta.url));

/** The sample Synthea bundle (BOM stripped). */
export function sampleBundle(): { resourceType: string; type: string; entry: Array<{ resource: { resourceType: string; id: string } }> } {
  return JSON.parse(readFileSync(SAMPLE_BUNDLE, 'utf8').replace(/^\uFEFF/, ''));
}

/**
 * One database handle for every service: the services still talk only over HTTP and keep to their own tables, but
 * a test file starts one PGlite instead of four (~2.5 s and ~0.8 GB each). The demo, `serve` and the
 * multi-process deployment test give each service its own database.
 */
export function sharedDatabases(db: Database, hospitals: readonly string[]): PlatformDatabases {
  return { authority: db, cloud: db, hospitals: Object.fromEntries(hospitals.map((h) => [h, db])) };
}

/** The URL a platform path goes to: /identity/<h>/ and /gateway/ to a hospital, /ta/ to the authority, the rest to the cloud. */
export function routeUrl(urls: ServiceUrls, path: string, gatewayHospital = 'st-marys'): URL {
  const identity = /^\/identity\/([a-z0-9-]+)\//.exec(path);
  const base = identity
    ? urls.hospitals[identity[1]!]
    : path.startsWith('/gateway/')
      ? urls.hospitals[gatewayHospital]
      : path.startsWith('/ta/')
        ? urls.authority
        : urls.cloud;
  return new URL(path, base);
}

export interface Cast {
  platform: Platform;
  /** The platform's key-encryption key (every service's here; tests unwrap what it stored). */
  kek: KeyEncryptionKey;
  /** The cloud's URL (the /cloud, /ledger and /stats routes). */
  base: URL;
  urls: ServiceUrls;
  /** The URL of a platform path (routeUrl). */
  urlFor(path: string): URL;
  client: PlatformClient;
  patient: PatientClient;
  gateway: GatewayClient;
  chen: DoctorClient;
  patel: DoctorClient;
  okafor: DoctorClient;
  /** A doctor at St Mary's with a plain platform session (no ABE key). */
  registerAndLogin(hospital: string, username: string, attributes: string[]): Promise<Session>;
}

const PASSWORD = 'a long enough passphrase';

/** fetch as `session`: its token and a fresh DPoP proof for this method and URL added to `init`'s headers. */
export async function sessionFetch(
  session: Session,
  url: URL,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Response> {
  return fetch(url, { ...init, headers: { ...init.headers, ...(await sessionHeaders(session, init.method ?? 'GET', url)) } });
}

/** The headers of one request as `session`: `Authorization: DPoP` and a fresh proof of its device key. */
export async function sessionHeaders(session: Session, method: string, url: string | URL): Promise<Record<string, string>> {
  return { authorization: `DPoP ${session.token}`, dpop: await session.device.dpop.proof(method, url, { accessToken: session.token }) };
}

const HOSPITALS = ['st-marys', 'riverside'];

/** Starts the platform on `db` (or `extra.databases`) with two hospitals and logs in the cast. */
export async function startCast(db: Database, extra: Partial<PlatformOptions> = {}): Promise<Cast> {
  const kek = extra.kek ?? randomKeyEncryptionKey();
  const platform = await createPlatform({
    databases: sharedDatabases(db, HOSPITALS),
    hospitals: HOSPITALS,
    adminTokens: ADMINS,
    scrypt: FAST_SCRYPT,
    ...extra,
    kek,
  });
  const { urls } = platform;
  const client = new PlatformClient(urls);
  const enrol = (hospital: string, username: string, attributes: string[]) =>
    client.registerUser(hospital, ADMINS[hospital]!, { username, password: PASSWORD, attributes, scopes: roleScopes(attributes) });
  const reader = async (username: string, attributes: string[]) => {
    const { totpSecret } = await enrol('riverside', username, attributes);
    return client.loginReader('riverside', username, PASSWORD, totpSecret, attributes);
  };
  const patientEnrolment = await enrol('st-marys', 'antonia', ['role:patient']);
  const patientSession = await client.login('st-marys', 'antonia', PASSWORD, patientEnrolment.totpSecret);
  const patient = new PatientClient(patientSession, pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, CATEGORIES));
  const gatewayEnrolment = await enrol('st-marys', 'ehr-system', ['role:gateway']);
  const gateway = new GatewayClient(await client.login('st-marys', 'ehr-system', PASSWORD, gatewayEnrolment.totpSecret));
  return {
    platform,
    kek,
    base: urls.cloud,
    urls,
    urlFor: (path) => routeUrl(urls, path),
    client,
    patient,
    gateway,
    chen: await reader('chen', ['role:doctor', 'dept:cardiology']),
    patel: await reader('patel', ['role:doctor', 'dept:dermatology']),
    okafor: await reader('okafor', ['role:emergency']),
    registerAndLogin: async (hospital, username, attributes) => {
      const { totpSecret } = await enrol(hospital, username, attributes);
      return client.login(hospital, username, PASSWORD, totpSecret);
    },
  };
}
