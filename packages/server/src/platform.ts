/**
 * `medshare serve all`: every trust domain of the platform on one machine — the trusted authority, the cloud and
 * one service per hospital — each its own Fastify server on its own port with its own database, talking to the
 * others only over HTTP exactly as separate deployments do (the hospitals' gateways upload through the cloud's
 * gateway routes; the cloud and the authority verify hospital tokens against the JWKS and session-status routes
 * the hospitals serve). Nothing is shared in memory: what runs here runs the same across machines
 * (docs/platform.md § Deployment).
 */
import { MalformedInputError, type abe } from '@medshare/crypto';
import { randomKeyEncryptionKey, type Database, type KeyEncryptionKey } from '@medshare/db';
import { TrustList, type LimiterOptions, type ScryptParams } from '@medshare/identity';
import type { AuditLog } from '@medshare/ledger';
import type { CloudService } from './cloud/service.ts';
import type { CategoryMapping } from './gateway/fhir.ts';
import type { ServiceUrls } from './http-client.ts';
import { listen, type ServiceHttpOptions } from './services/app.ts';
import { createAuthorityService, type AuthorityService } from './services/authority.ts';
import { createCloudService, type CloudDeployment } from './services/cloud.ts';
import { createHospitalService, type HospitalDeployment } from './services/hospital.ts';
import { checkHospitalName, trustHospital } from './services/trust.ts';

/** One database per trust domain. */
export interface PlatformDatabases {
  readonly authority: Database;
  readonly cloud: Database;
  readonly hospitals: Readonly<Record<string, Database>>;
}

export interface PlatformOptions extends ServiceHttpOptions {
  /** Each service's own database. */
  readonly databases: PlatformDatabases;
  /** Hospital names (lower-case codes); each gets its own service. */
  readonly hospitals: readonly string[];
  /** Administrator credential of every hospital's identity service (register users). */
  readonly adminToken: string;
  /** The cloud's key-encryption key (default: a fresh one in memory, for a platform that keeps nothing). */
  readonly cloudKek?: KeyEncryptionKey;
  /** Resource type → category mapping of the gateways. */
  readonly categories?: CategoryMapping;
  /** scrypt parameters for passwords (identity's production default when absent). */
  readonly scrypt?: ScryptParams;
  /** Login rate limits and lockout (identity's defaults when absent; a load test from one address raises them). */
  readonly limits?: Partial<LimiterOptions>;
  /** The clock of token issuance and verification (tests move it). */
  readonly now?: () => number;
  /** The platform's emergency policy (default `role:emergency`; null for none), see CloudServiceOptions. */
  readonly emergencyPolicy?: string | null;
  /** Worker threads converting records on read in the cloud (default 0: in its event loop). */
  readonly conversionWorkers?: number;
  /** Address every service listens on (default 127.0.0.1). */
  readonly host?: string;
  /** The authority's port; the cloud's is the next one, then each hospital's in order. 0 (default): free ports. */
  readonly port?: number;
}

/** A running platform: every service listening, and what tests and the CLI look at. */
export interface Platform {
  readonly urls: ServiceUrls;
  readonly cloud: CloudService;
  readonly ledger: AuditLog;
  readonly abePublicKey: abe.PublicKey;
  /** Issuer of each hospital's tokens. */
  readonly issuers: ReadonlyMap<string, string>;
  readonly services: { readonly authority: AuthorityService; readonly cloud: CloudDeployment; readonly hospitals: readonly HospitalDeployment[] };
  close(): Promise<void>;
}

/** Starts every service, each listening on its own port, wired to the others by URL. */
export async function createPlatform(options: PlatformOptions): Promise<Platform> {
  for (const name of options.hospitals) checkHospitalName(name);
  const host = options.host ?? '127.0.0.1';
  const port = (offset: number) => (options.port ? options.port + offset : 0);
  const http: ServiceHttpOptions = { logger: options.logger, requestsPerMinute: options.requestsPerMinute, trustProxy: options.trustProxy, tls: options.tls };
  const database = (name: string) => {
    const db = options.databases.hospitals[name];
    if (db === undefined) throw new MalformedInputError(`no database is given for hospital ${name}`);
    return db;
  };
  // The cloud and the authority learn the hospitals' URLs once those listen (a distributed deployment reads
  // them from its config file instead).
  const cloudTrust = new TrustList();
  const authorityTrust = new TrustList();
  const authority = await createAuthorityService({ ...http, db: options.databases.authority, hospitals: authorityTrust, now: options.now });
  const cloud = await createCloudService({
    ...http, db: options.databases.cloud, kek: options.cloudKek ?? randomKeyEncryptionKey(), hospitals: cloudTrust, now: options.now,
    emergencyPolicy: options.emergencyPolicy, conversionWorkers: options.conversionWorkers,
  });
  const started: Array<{ close(): Promise<void> }> = [authority, cloud];
  try {
    const authorityUrl = await listen(authority.app, host, port(0));
    const cloudUrl = await listen(cloud.app, host, port(1));
    const hospitals: HospitalDeployment[] = [];
    const hospitalUrls: Record<string, URL> = {};
    for (const [i, name] of options.hospitals.entries()) {
      const hospital = await createHospitalService({
        ...http, db: database(name), name, adminToken: options.adminToken, cloud: cloudUrl, authorityUrl,
        categories: options.categories, scrypt: options.scrypt, limits: options.limits, now: options.now,
      });
      started.push(hospital);
      hospitals.push(hospital);
      hospitalUrls[name] = await listen(hospital.app, host, port(2 + i));
      for (const trust of [cloudTrust, authorityTrust]) trustHospital(trust, { name, url: hospitalUrls[name] });
    }
    return {
      urls: { authority: authorityUrl, cloud: cloudUrl, hospitals: hospitalUrls },
      cloud: cloud.cloud,
      ledger: cloud.ledger,
      abePublicKey: authority.abePublicKey,
      issuers: new Map(hospitals.map((h) => [h.name, h.issuer])),
      services: { authority, cloud, hospitals },
      close: () => closeAll(started),
    };
  } catch (error) {
    await closeAll(started);
    throw error;
  }
}

/** Closes services in reverse order of starting (hospitals first: they call the cloud). */
async function closeAll(services: ReadonlyArray<{ close(): Promise<void> }>): Promise<void> {
  for (const service of [...services].reverse()) await service.close();
}
