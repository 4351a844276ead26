/**
 * `medshare serve all`: every trust domain of the platform on one machine — the trusted authority, the cloud and
 * one service per hospital — each its own Fastify server on its own port with its own database and KEK, talking to
 * the others only over HTTP exactly as separate deployments do (the hospitals' gateways upload through the cloud's
 * gateway routes; the cloud and the authority verify hospital tokens against the JWKS and session-status routes
 * the hospitals serve; the cloud's ledger obtains cosignatures from the hospitals' witnesses over HTTP). Nothing is
 * shared in memory: what runs here runs the same across machines (docs/platform.md § Deployment).
 *
 * Tests may give one database handle for every service (`db`): the services still keep to their own tables.
 */
import { MalformedInputError, type abe } from '@medshare/crypto';
import type { Database, KeyEncryptionKey } from '@medshare/db';
import type { LimiterOptions, OidcClient, RelyingParty, ScryptParams } from '@medshare/identity';
import type { AuditLog, TrustPolicy } from '@medshare/ledger';
import type { CloudService } from './cloud/service.ts';
import type { CategoryMapping } from './gateway/fhir.ts';
import type { ServiceUrls } from './http-client.ts';
import { listen, type ServiceHttpOptions } from './services/app.ts';
import { createAuthorityService, type AuthorityService } from './services/authority.ts';
import { createCloudService, type CloudDeployment, type CloudServiceOptions } from './services/cloud.ts';
import { createHospitalService, type HospitalDeployment } from './services/hospital.ts';
import { checkHospitalName, type HospitalPeer } from './services/trust.ts';
import type { StatsAggregator } from './stats/aggregator.ts';
import type { Consortium } from './stats/consortium.ts';

export { DEFAULT_EMERGENCY_POLICY } from './services/cloud.ts';
export { TA_AUDIENCE } from './services/authority.ts';

/** One database per trust domain. */
export interface PlatformDatabases {
  readonly authority: Database;
  readonly cloud: Database;
  readonly hospitals: Readonly<Record<string, Database>>;
}

/** One key-encryption key per trust domain. */
export interface PlatformKeks {
  readonly authority: KeyEncryptionKey;
  readonly cloud: KeyEncryptionKey;
  readonly hospitals: Readonly<Record<string, KeyEncryptionKey>>;
}

export interface PlatformOptions extends ServiceHttpOptions {
  /** Each service's own database. */
  readonly databases?: PlatformDatabases;
  /** Or one database handle for every service (tests: one PGlite instead of four; each service keeps to its tables). */
  readonly db?: Database;
  /** Hospital names (lower-case codes); each gets its own service. */
  readonly hospitals: readonly string[];
  /** Each hospital's own administrator credential (registration, administration), by hospital name. */
  readonly adminTokens: Readonly<Record<string, string>>;
  /** Each service's key-encryption key; or `kek` for all of them. */
  readonly keks?: PlatformKeks;
  /**
   * Wraps the secrets each service keeps in its database (TOTP secrets, token-signing keys, the TA's master key, the
   * ledger's and witnesses' signing keys) when `keks` is not given; never stored there.
   */
  readonly kek?: KeyEncryptionKey;
  /** The WebAuthn relying party (id and origins) of the hospitals' identity services (default localhost, http://localhost). */
  readonly relyingParty?: Pick<RelyingParty, 'id' | 'origins'>;
  /** Resource type → category mapping of the gateways and the cloud's scope checks. */
  readonly categories?: CategoryMapping;
  /**
   * The consortium's identifier key (32 bytes, shared by the hospitals, never given to the cloud): every hospital's
   * gateway indexes Patient identifiers under it for cross-hospital lookup (gateway/identifier-index.ts). None: off.
   */
  readonly identifierKey?: Uint8Array;
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
  /** Worker threads encrypting uploads in each hospital's gateway (default 0: in its event loop). */
  readonly encryptionWorkers?: number;
  /** The statistics consortium whose queries the cloud aggregates at /stats (none: no statistics routes). */
  readonly statsConsortium?: Consortium;
  /** A file outside the cloud's database where the ledger keeps its last signed checkpoint. */
  readonly ledgerCheckpointFile?: string;
  /** The anchor contract the cloud puts its ledger's witnessed checkpoints on (createCloudService's `ledgerAnchor`). */
  readonly ledgerAnchor?: CloudServiceOptions['ledgerAnchor'];
  /** Address every service listens on (default 127.0.0.1). */
  readonly host?: string;
  /** The authority's port; the cloud's is the next one, then each hospital's in order. 0 (default): free ports. */
  readonly port?: number;
  /**
   * Origins browsers reach the hospitals' portals at (CORS at the cloud and the authority). Default: each hospital's
   * URL as it listens (and its `localhost` spelling for 127.0.0.1).
   */
  readonly portalOrigins?: readonly string[];
  /** OpenID Connect clients of every hospital besides the portal (tests register their own). */
  readonly oidcClients?: readonly OidcClient[];
}

/** A running platform: every service listening, and what tests and the CLI look at. */
export interface Platform {
  readonly urls: ServiceUrls;
  readonly cloud: CloudService;
  readonly ledger: AuditLog;
  /** The ledger keys (log, witnesses, quorum) a verifier pins. */
  readonly ledgerTrust: TrustPolicy;
  /** The cloud's statistics service, when a consortium was given. */
  readonly stats?: StatsAggregator;
  readonly abePublicKey: abe.PublicKey;
  /** Issuer of each hospital's tokens. */
  readonly issuers: ReadonlyMap<string, string>;
  readonly services: { readonly authority: AuthorityService; readonly cloud: CloudDeployment; readonly hospitals: readonly HospitalDeployment[] };
  close(): Promise<void>;
}

function byHospital<T>(map: Readonly<Record<string, T>> | undefined, name: string, what: string): T {
  const value = map?.[name];
  if (value === undefined) throw new MalformedInputError(`hospital ${name} has no ${what}`);
  return value;
}

/**
 * Starts every service, each listening on its own port, wired to the others by URL: the hospitals first (they
 * reach the cloud and the authority only when asked to), then the authority and the cloud, which learn the
 * hospitals' token keys and witness keys from them.
 */
export async function createPlatform(options: PlatformOptions): Promise<Platform> {
  for (const name of options.hospitals) checkHospitalName(name);
  const host = options.host ?? '127.0.0.1';
  const port = (offset: number) => (options.port ? options.port + offset : 0);
  const http: ServiceHttpOptions = { logger: options.logger, requestsPerMinute: options.requestsPerMinute, trustProxy: options.trustProxy, tls: options.tls };
  const databases: PlatformDatabases = options.databases ?? (() => {
    if (options.db === undefined) throw new MalformedInputError('createPlatform needs databases (or one db)');
    const db = options.db;
    return { authority: db, cloud: db, hospitals: Object.fromEntries(options.hospitals.map((h) => [h, db])) };
  })();
  const keks: PlatformKeks = options.keks ?? (() => {
    if (options.kek === undefined) throw new MalformedInputError('createPlatform needs a key-encryption key per service (or one kek)');
    const kek = options.kek;
    return { authority: kek, cloud: kek, hospitals: Object.fromEntries(options.hospitals.map((h) => [h, kek])) };
  })();
  const late: { authority?: URL; cloud?: URL } = {};
  const lateUrl = (which: 'authority' | 'cloud') => () => {
    const url = late[which];
    if (url === undefined) throw new MalformedInputError(`the ${which} is not listening yet`);
    return url;
  };
  const started: Array<{ close(): Promise<void> }> = [];
  try {
    const hospitals: HospitalDeployment[] = [];
    const hospitalUrls: Record<string, URL> = {};
    const peers: HospitalPeer[] = [];
    for (const [i, name] of options.hospitals.entries()) {
      const hospital = await createHospitalService({
        ...http, db: byHospital(databases.hospitals, name, 'database'), kek: byHospital(keks.hospitals, name, 'key-encryption key'), name,
        adminToken: byHospital(options.adminTokens, name, 'administrator credential'), cloud: lateUrl('cloud'), authorityUrl: lateUrl('authority'),
        relyingParty: options.relyingParty, categories: options.categories, scrypt: options.scrypt, limits: options.limits, now: options.now,
        identifierKey: options.identifierKey,
        ...(options.oidcClients === undefined ? {} : { oidcClients: options.oidcClients }),
        encryptionWorkers: options.encryptionWorkers,
        // Its own list of the federation (every hospital is listening before the first upload).
        federation: () => peers,
      });
      started.push(hospital);
      hospitals.push(hospital);
      hospitalUrls[name] = await listen(hospital.app, host, port(2 + i));
      // Record keys are not pinned here: each hospital fetches the others' from them and pins it (a config file's default).
      peers.push({ name, url: hospitalUrls[name], witnessKey: hospital.witnessKey });
    }
    const portals = options.portalOrigins ?? Object.values(hospitalUrls).flatMap((url) => [url.origin, url.origin.replace('//127.0.0.1:', '//localhost:')]);
    // The hospitals' portals call the authority and the cloud from browsers.
    const browserFacing: ServiceHttpOptions = { ...http, browserOrigins: [...new Set(portals)] };
    const authority = await createAuthorityService({ ...browserFacing, db: databases.authority, kek: keks.authority, hospitals: peers, now: options.now });
    started.push(authority);
    late.authority = await listen(authority.app, host, port(0));
    const cloud = await createCloudService({
      ...browserFacing, db: databases.cloud, kek: keks.cloud, hospitals: peers, now: options.now, categories: options.categories,
      emergencyPolicy: options.emergencyPolicy, conversionWorkers: options.conversionWorkers, statsConsortium: options.statsConsortium,
      ledgerCheckpointFile: options.ledgerCheckpointFile, ...(options.ledgerAnchor === undefined ? {} : { ledgerAnchor: options.ledgerAnchor }),
    });
    started.push(cloud);
    late.cloud = await listen(cloud.app, host, port(1));
    return {
      urls: { authority: late.authority, cloud: late.cloud, hospitals: hospitalUrls },
      cloud: cloud.cloud,
      ledger: cloud.ledger,
      ledgerTrust: cloud.ledgerTrust,
      ...(cloud.stats === undefined ? {} : { stats: cloud.stats }),
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

/** Closes services in reverse order of starting (the cloud first: it calls the hospitals' witnesses). */
async function closeAll(services: ReadonlyArray<{ close(): Promise<void> }>): Promise<void> {
  for (const service of [...services].reverse()) await service.close();
}
