/** A running platform on 127.0.0.1 with the demo's cast, for the integration tests (PGlite and PostgreSQL). */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pre } from '@medshare/crypto';
import { randomKeyEncryptionKey, type Database, type KeyEncryptionKey } from '@medshare/db';
import { createPlatform, roleScopes, DoctorClient, GatewayClient, PatientClient, PlatformClient, type Platform, type PlatformOptions, type Session } from '../src/index.ts';

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

export interface Cast {
  platform: Platform;
  /** The platform's key-encryption key (tests unwrap what it stored). */
  kek: KeyEncryptionKey;
  base: URL;
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
export async function sessionFetch(session: Session, url: URL, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
  return fetch(url, { ...init, headers: { ...init.headers, ...(await sessionHeaders(session, init.method ?? 'GET', url)) } });
}

/** The headers of one request as `session`: `Authorization: DPoP` and a fresh proof of its device key. */
export async function sessionHeaders(session: Session, method: string, url: string | URL): Promise<Record<string, string>> {
  return { authorization: `DPoP ${session.token}`, dpop: await session.device.dpop.proof(method, url, { accessToken: session.token }) };
}

/** Starts the platform on `db` with two hospitals and logs in the cast. */
export async function startCast(db: Database, extra: Partial<PlatformOptions> = {}): Promise<Cast> {
  const kek = extra.kek ?? randomKeyEncryptionKey();
  const platform = await createPlatform({ db, hospitals: ['st-marys', 'riverside'], adminTokens: ADMINS, scrypt: FAST_SCRYPT, ...extra, kek });
  const base = new URL(await platform.app.listen({ host: '127.0.0.1', port: 0 }));
  const client = new PlatformClient(base);
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
    platform, kek, base, client, patient, gateway,
    chen: await reader('chen', ['role:doctor', 'dept:cardiology']),
    patel: await reader('patel', ['role:doctor', 'dept:dermatology']),
    okafor: await reader('okafor', ['role:emergency']),
    registerAndLogin: async (hospital, username, attributes) => {
      const { totpSecret } = await enrol(hospital, username, attributes);
      return client.login(hospital, username, PASSWORD, totpSecret);
    },
  };
}
