/**
 * The platform in one process (docs/platform.md): the trusted authority, one identity service per hospital,
 * the cloud and the hospital gateway, as Fastify plugins on one server, sharing a federation trust list. Every
 * component keeps its state in `db` (the hospitals' identity services in the identity_* tables, one row set per
 * hospital), so a restart keeps accounts, sessions, signing keys and the TA's record of used tokens.
 *
 *   /identity/<hospital>/...   hospital identity (accounts, MFA login, SSO tokens)   @medshare/identity
 *   /ta/...                    trusted authority (CP-ABE public key, sealed key issuance)
 *   /cloud/...                 cloud store and re-encryption proxy
 *   /gateway/...               hospital gateway (FHIR R4 facade)
 *   /stats/...                 cross-hospital statistics under threshold encryption (when a consortium is given)
 *   /ledger/...                public audit ledger: witnessed checkpoint, entries, proofs, health (ledger.ts)
 *   /witness/<hospital>/...    each hospital's witness (c2sp.org/tlog-witness add-checkpoint)
 *   /openapi.json              the OpenAPI document of all of the above
 */
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { abe, MalformedInputError } from '@medshare/crypto';
import { migrate, type Database, type KeyEncryptionKey } from '@medshare/db';
import {
  createSqlHospital, DpopVerifier, hospitalIdentityPlugin, localSessionStatus, migrateIdentity, SqlNonceCache, TokenVerifier, trustedAuthorityPlugin,
  TrustedAuthority, TrustList, type LimiterOptions, type RelyingParty, type ScryptParams,
} from '@medshare/identity';
import type { AuditLog } from '@medshare/ledger';
import { loadAuthoritySetup } from './authority.ts';
import { createConverter } from './cloud/conversion-pool.ts';
import { cloudPlugin } from './cloud/plugin.ts';
import { CloudService } from './cloud/service.ts';
import { CloudStore } from './cloud/store.ts';
import { DEFAULT_CATEGORY_MAPPING, type CategoryMapping } from './gateway/fhir.ts';
import { gatewayPlugin } from './gateway/plugin.ts';
import { IdentifierKey } from './gateway/identifier-index.ts';
import { GatewayService } from './gateway/service.ts';
import { PLATFORM_AUDIENCE, useProblems } from './http.ts';
import { openPlatformLedger } from './ledger.ts';
import { CLOUD_MIGRATIONS, GATEWAY_MIGRATIONS } from './migrations.ts';
import { StatsAggregator } from './stats/aggregator.ts';
import type { Consortium } from './stats/consortium.ts';
import { statsPlugin } from './stats/plugin.ts';

/** The audience of trusted-authority tokens (identity's TA plugin checks it). */
export const TA_AUDIENCE = 'medshare-ta';
const HOSPITAL_NAME = /^[a-z][a-z0-9-]{0,62}$/;
/**
 * Group commit of the audit ledger under concurrent load (AuditLog's lingerMs): 20 doctors reading on PostgreSQL
 * went from ~3 to ~6 entries per transaction and the database's CPU time per read fell by a third
 * (docs/benchmarks.md § Platform); a lone request never waits.
 */
const LEDGER_LINGER_MS = 10;

export interface PlatformOptions {
  /** The database every component uses (separate ones per component are possible; one is the default). */
  readonly db: Database;
  /** Hospital names (lower-case codes); each gets an identity service at /identity/<name>/. */
  readonly hospitals: readonly string[];
  /** Each hospital's own administrator credential (registration, administration), by hospital name. */
  readonly adminTokens: Readonly<Record<string, string>>;
  /**
   * Wraps the secrets the platform keeps in `db` (TOTP secrets, token-signing keys, the TA's master key, the ledger's and
   * witnesses' signing keys); never stored there. Tests and demos that never reopen a database use a random one.
   */
  readonly kek: KeyEncryptionKey;
  /** The WebAuthn relying party (id and origins) of the hospitals' identity services (default localhost, http://localhost). */
  readonly relyingParty?: Pick<RelyingParty, 'id' | 'origins'>;
  /**
   * Proxies whose X-Forwarded-For / -Proto / -Host are believed (addresses or CIDR ranges, as Fastify's trustProxy):
   * behind a reverse proxy, login throttling then counts the client's address, not the proxy's. Default: none.
   */
  readonly trustProxy?: readonly string[];
  /** Resource type → category mapping of the gateway. */
  readonly categories?: CategoryMapping;
  /**
   * The consortium's identifier key (32 bytes, shared by the hospitals, never the cloud's): gateways index Patient
   * identifiers under it for cross-hospital lookup (gateway/identifier-index.ts). None: lookup is off.
   */
  readonly identifierKey?: Uint8Array;
  /** scrypt parameters for passwords (identity's production default when absent). */
  readonly scrypt?: ScryptParams;
  /** Log requests with Fastify's logger (method, URL, status: never bodies or tokens); or a destination stream. */
  readonly logger?: boolean | { stream: NodeJS.WritableStream };
  /** Login rate limits and lockout (identity's defaults when absent; a load test from one address raises them). */
  readonly limits?: Partial<LimiterOptions>;
  /** Requests per client address per minute on every route (default 600; identity's login limits come on top). */
  readonly requestsPerMinute?: number;
  /** The clock of token issuance and verification (tests move it). */
  readonly now?: () => number;
  /**
   * The platform's emergency policy: gateways grant every record under it, and role:emergency staff whose
   * attributes satisfy it may break the glass where the patient has no emergency delegation of her own (unless
   * she opted out). Default `role:emergency`; null for no platform emergency access.
   */
  readonly emergencyPolicy?: string | null;
  /**
   * Worker threads converting records on read (default 0: in the event loop's thread, enough for tests and a small
   * clinic; `medshare serve` defaults to defaultConversionWorkers, see cloud/conversion-pool.ts).
   */
  readonly conversionWorkers?: number;
  /** The statistics consortium whose queries the cloud aggregates at /stats (none: no statistics routes). */
  readonly statsConsortium?: Consortium;
  /** A file outside the database where the ledger keeps its last signed checkpoint (checked on open and before each signature). */
  readonly ledgerCheckpointFile?: string;
}

/** The default platform emergency policy. */
export const DEFAULT_EMERGENCY_POLICY = 'role:emergency';

/** A composed platform: the Fastify app plus the services, for tests and the CLI. */
export interface Platform {
  readonly app: FastifyInstance;
  readonly cloud: CloudService;
  readonly ledger: AuditLog;
  /** The cloud's statistics service, when a consortium was given. */
  readonly stats?: StatsAggregator;
  readonly abePublicKey: abe.PublicKey;
  /** Issuer URL of each hospital's tokens. */
  readonly issuers: ReadonlyMap<string, string>;
  close(): Promise<void>;
}

/** Builds the platform app (not yet listening). */
export async function createPlatform(options: PlatformOptions): Promise<Platform> {
  for (const name of options.hospitals) if (!HOSPITAL_NAME.test(name)) throw new MalformedInputError(`hospital names are lower-case codes: '${name}'`);
  await abe.init();
  const { db } = options;
  await migrate(db, 'cloud', CLOUD_MIGRATIONS);
  await migrate(db, 'gateway', GATEWAY_MIGRATIONS);
  await migrateIdentity(db);
  const store = new CloudStore(db);
  const platformLedger = await openPlatformLedger(db, {
    kek: options.kek, hospitals: options.hospitals, lingerMs: LEDGER_LINGER_MS,
    ...(options.ledgerCheckpointFile === undefined ? {} : { checkpointFile: options.ledgerCheckpointFile }),
  });
  const ledger = platformLedger.log;
  const setup = await loadAuthoritySetup(db, options.kek);

  const now = options.now ?? Date.now;
  const logger = typeof options.logger === 'object' ? { level: 'info', stream: options.logger.stream } : (options.logger ?? false);
  // Long path parameters reach schema validation (a 400 problem) instead of the router's bare 414. Unknown fields
  // are refused, as the schemas say (`additionalProperties: false`), not silently dropped (Fastify's default).
  const app = Fastify({
    logger, bodyLimit: 1024 * 1024, routerOptions: { maxParamLength: 2048 }, ajv: { customOptions: { removeAdditional: false } },
    ...(options.trustProxy && options.trustProxy.length > 0 ? { trustProxy: [...options.trustProxy] } : {}),
  });
  useProblems(app);
  // Registered first so that it sees every route and schema below.
  await app.register(swagger, { openapi: { info: { title: 'MedShare platform', version: '0.1.0' } } });
  await app.register(rateLimit, { global: true, max: options.requestsPerMinute ?? 600, timeWindow: 60_000 });
  const trust = new TrustList();
  const issuers = new Map<string, string>();
  const relyingParty = options.relyingParty ?? { id: 'localhost', origins: ['http://localhost'] };
  for (const hospital of options.hospitals) {
    const issuer = `urn:medshare:idp:${hospital}`;
    const adminToken = options.adminTokens[hospital];
    if (adminToken === undefined) throw new MalformedInputError(`hospital ${hospital} has no administrator credential`);
    const service = await createSqlHospital(db, {
      hospital, issuer, adminToken, scrypt: options.scrypt, limits: options.limits, now, kek: options.kek,
      audiences: [PLATFORM_AUDIENCE, TA_AUDIENCE],
      relyingParty: { ...relyingParty, name: `MedShare ${hospital}` },
    });
    trust.add({ issuer, hospital, jwks: () => service.keys.jwks(), sessionStatus: localSessionStatus(service.sessions, now) });
    issuers.set(hospital, issuer);
    await app.register(hospitalIdentityPlugin, { ...service, prefix: `/identity/${hospital}` });
  }
  const platformVerifier = new TokenVerifier(PLATFORM_AUDIENCE, trust, { now });
  const authority = new TrustedAuthority({
    verifier: new TokenVerifier(TA_AUDIENCE, trust, { now }), ...setup, usedTokens: new SqlNonceCache(db, 'ta/used-tokens'),
    proofs: new DpopVerifier(new SqlNonceCache(db, 'ta/dpop'), now), now,
  });
  await app.register(trustedAuthorityPlugin, { authority, publicKey: setup.publicKey });
  const emergencyPolicy = options.emergencyPolicy === undefined ? DEFAULT_EMERGENCY_POLICY : options.emergencyPolicy;
  if (emergencyPolicy !== null) abe.compilePolicy(emergencyPolicy);
  const converter = await createConverter(options.conversionWorkers ?? 0);
  const cloud = new CloudService(store, ledger, converter, emergencyPolicy === null ? {} : { emergencyPolicy });
  const categories = options.categories ?? DEFAULT_CATEGORY_MAPPING;
  const identifierKey = options.identifierKey === undefined ? undefined : new IdentifierKey(options.identifierKey);
  const gateway = new GatewayService(db, cloud, categories, setup.publicKey, platformLedger.trust, identifierKey);
  await app.register(cloudPlugin, { cloud, verifier: platformVerifier, categories, prefix: '/cloud' });
  await app.register(gatewayPlugin, { gateway, cloud, verifier: platformVerifier, categories, prefix: '/gateway' });
  const stats = options.statsConsortium === undefined ? undefined : await StatsAggregator.open(db, ledger, options.statsConsortium);
  if (stats !== undefined) await app.register(statsPlugin, { stats, verifier: platformVerifier, prefix: '/stats' });
  await platformLedger.register(app);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return {
    app, cloud, ledger, ...(stats === undefined ? {} : { stats }), abePublicKey: setup.publicKey, issuers,
    close: async () => {
      await app.close();
      await converter.close();
      await ledger.flush();
    },
  };
}
