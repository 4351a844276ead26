/**
 * `medshare serve hospital --name st-marys`: one hospital's domain as its own service, process and database —
 * its identity service (accounts, MFA login, SSO tokens and their signing keys, sessions), its FHIR gateway
 * (enrolments FHIR id → pseudonym, upload receipts; it sees plaintext FHIR and encrypts it before anything
 * leaves) and its ledger witness (its own key and state, ledger.ts). The gateway reaches the cloud through
 * `CloudApi` (HTTP in production) with the caller's own token, and fetches the TA's public key from the authority
 * once, at the first upload that needs it. Its secrets (TOTP secrets, token-signing and witness keys) are stored
 * wrapped by the hospital's own KEK, and so is its gateway's record-signing key (record-signature.ts).
 *
 *   /identity/<name>/...   identity (@medshare/identity hospitalIdentityPlugin)
 *   /gateway/...           FHIR R4 gateway
 *   /gateway/admin/...     its administrator's view of upload receipts and witness (gateway/admin-plugin.ts)
 *   /witness/<name>/...    its ledger witness: add-checkpoint (c2sp.org/tlog-witness) and its public key
 *   /identity/<name>/oidc/ its OpenID Connect provider (discovery under /identity/<name>/.well-known/)
 *   /portal/               the web portal, signing in here (portal.ts; / redirects there)
 *   /stats-agent/...       its statistics agent (with `stats`): its share of the consortium's threshold key, made
 *                          by key generation with the other hospitals over the cloud's board, and its half of each query
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { abe, IntegrityError } from '@medshare/crypto';
import { LedgerClient, loadNoteSigner } from '@medshare/ledger';
import { migrate, type Database, type KeyEncryptionKey } from '@medshare/db';
import {
  adminCredentialCheck,
  createSqlHospital,
  hospitalIdentityPlugin,
  oidcPlugin,
  requestOrigin,
  SenderConstrainedVerifier,
  TokenVerifier,
  type HospitalService,
  type LimiterOptions,
  type OidcClient,
  type RelyingParty,
  type ScryptParams,
} from '@medshare/identity';
import { ConversionPool, InThreadEncryptor } from '../cloud/conversion-pool.ts';
import { HttpCloudApi, type CloudApi } from '../gateway/cloud-api.ts';
import { DEFAULT_CATEGORY_MAPPING, type CategoryMapping } from '../gateway/fhir.ts';
import { IdentifierKey } from '../gateway/identifier-index.ts';
import { gatewayAdminPlugin } from '../gateway/admin-plugin.ts';
import { gatewayPlugin } from '../gateway/plugin.ts';
import { ResearchExporter } from '../gateway/research-export.ts';
import { SearchIndexWriter } from '../gateway/search-index.ts';
import { publicBundles, ReceiptBook } from '../gateway/receipts.ts';
import { GatewayService } from '../gateway/service.ts';
import { callJson } from '../http-client.ts';
import { PLATFORM_AUDIENCE } from '../http.ts';
import { openHospitalWitness, pinnedPeerKey } from '../ledger.ts';
import { recordKeyName } from '../record-signature.ts';
import { GATEWAY_MIGRATIONS } from '../migrations.ts';
import { portalPlugin } from '../portal.ts';
import { StatsAgent, type StatsAgentOptions } from '../stats/agent.ts';
import { statsAgentPlugin } from '../stats/agent-plugin.ts';
import { StorageTagger } from '../storage-audit/tagger.ts';
import { serviceApp, type ServiceHttpOptions } from './app.ts';
import { TA_AUDIENCE } from './authority.ts';
import { checkHospitalName, issuerOf, type HospitalPeer } from './trust.ts';

/** A service's URL, or a function giving it (a service on one machine learns another's port once it listens). */
export type ServiceUrl = URL | (() => URL);
const resolve = (url: ServiceUrl): URL => (url instanceof URL ? url : url());

/** One hospital's settings. */
export interface HospitalServiceOptions extends ServiceHttpOptions {
  /** The hospital's own database. */
  readonly db: Database;
  /** Wraps the hospital's secrets at rest (its own; never the database, never another domain's). */
  readonly kek: KeyEncryptionKey;
  /** Lower-case code (`st-marys`). */
  readonly name: string;
  /** This hospital's administrator credential (register users, administration). */
  readonly adminToken: string;
  /** The cloud: its URL (HTTP client) or any CloudApi. */
  readonly cloud: ServiceUrl | CloudApi;
  /** The cloud's URL for the ledger's keys, when `cloud` is a CloudApi (default: `cloud` itself). */
  readonly cloudUrl?: ServiceUrl;
  /** The ledger's verifier key, when the config pins it (else learnt from the cloud once and pinned). */
  readonly logKey?: string;
  /**
   * The federation's hospitals, as this hospital's own configuration lists them (itself may be among them): its
   * gateway checks receipts against their witnesses and its own (docs/ledger.md §Upload receipts), never against the
   * witnesses the cloud lists. Absent: the cloud's list, with this hospital's own witness's cosignature required.
   */
  readonly federation?: () => readonly HospitalPeer[];
  /** The trusted authority's URL (its public key is fetched for platform emergency grants). */
  readonly authorityUrl: ServiceUrl;
  /** The WebAuthn relying party (id and origins) of its identity service (default localhost, http://localhost). */
  readonly relyingParty?: Pick<RelyingParty, 'id' | 'origins'>;
  /** Resource type → category mapping of the gateway. */
  readonly categories?: CategoryMapping;
  /** The consortium's identifier key (32 bytes, the same at every hospital, never the cloud's): lookup by identifier. */
  readonly identifierKey?: Uint8Array;
  /** scrypt parameters for passwords (identity's production default when absent). */
  readonly scrypt?: ScryptParams;
  /** Login rate limits and lockout (identity's defaults when absent). */
  readonly limits?: Partial<LimiterOptions>;
  /** The clock of token issuance and verification (tests move it). */
  readonly now?: () => number;
  /** OpenID Connect clients besides the portal (PORTAL_CLIENT). */
  readonly oidcClients?: readonly OidcClient[];
  /** The origin browsers reach this service at, for its OIDC issuer URL (default: the origin each request names). */
  readonly publicOrigin?: string;
  /** Serve the web portal at /portal/ (default true). */
  readonly portal?: boolean;
  /** Worker threads encrypting the gateway's uploads (default 0: in the event loop's thread). */
  readonly encryptionWorkers?: number;
  /** How long an upload waits for a witnessed checkpoint before its receipts are kept pending (default and at most 10 s). */
  readonly receiptWaitMs?: number;
  /** How often pending receipts are completed from the cloud's public ledger routes (default 30 s). */
  readonly receiptRetryMs?: number;
  /** Run a statistics agent: its data, budgets and approval policy (stats/agent.ts). Needs `federation` and the cloud's URL. */
  readonly stats?: StatsAgentOptions;
}

/** The web portal (served at /portal/) as the hospital's OpenID Connect client. */
export const PORTAL_CLIENT: OidcClient = {
  clientId: 'medshare-portal',
  name: 'MedShare portal',
  redirectUris: ['/portal/'],
  audiences: [PLATFORM_AUDIENCE, TA_AUDIENCE],
  accountAccess: true,
};
/** What the OIDC discovery documents list as supported scopes. */
const OIDC_SCOPES = ['openid', 'profile', 'offline_access', 'patient/*.rs', 'user/*.rs'];

/** A composed hospital service (not yet listening). */
export interface HospitalDeployment {
  readonly app: FastifyInstance;
  readonly name: string;
  readonly issuer: string;
  readonly identity: HospitalService;
  /** Its ledger witness's verifier key (c2sp.org signed-note vkey). */
  readonly witnessKey: string;
  /** Its gateway's record-signing key (signed-note vkey, record-signature.ts). */
  readonly recordKey: string;
  /** Its statistics agent, when it runs one. */
  readonly statsAgent?: StatsAgent;
  close(): Promise<void>;
}

/** The TA's public key, fetched once; a failed fetch is retried at the next need. */
function authorityKey(url: ServiceUrl): () => Promise<abe.PublicKey> {
  let key: Promise<abe.PublicKey> | undefined;
  return () => {
    key ??= callJson<{ publicKey: string }>(resolve(url), 'GET', '/ta/public-key', { timeoutMs: 10_000 })
      .then(({ publicKey }) => abe.decodePublicKey(new Uint8Array(Buffer.from(publicKey, 'base64'))))
      .catch((error: unknown) => {
        key = undefined;
        throw error;
      });
    return key;
  };
}

/**
 * The record keys this hospital's readers trust: its own and, for each hospital of its own federation list, the key
 * its configuration pins, else the one that hospital publishes (GET /gateway/record-key), pinned on first sight. A
 * hospital that cannot be reached yet is left out (its records are refused until it can be), so one hospital down
 * does not stop reads of the others'. Never the cloud's word.
 */
async function federationWriterKeys(
  db: Database,
  self: string,
  own: string,
  peers: readonly HospitalPeer[],
): Promise<Array<{ hospital: string; key: string }>> {
  const others = peers.filter((peer) => peer.name !== self);
  const keys = await Promise.allSettled(
    others.map((peer) =>
      pinnedPeerKey(db, {
        pin: `records/${peer.name}`,
        name: recordKeyName(peer.name),
        what: `record key of ${peer.name}`,
        ...(peer.recordKey === undefined ? {} : { configured: peer.recordKey }),
        published: async () => {
          const answer = await callJson<{ hospital: string; key: string }>(new URL(peer.url), 'GET', '/gateway/record-key', { timeoutMs: 10_000 });
          return answer.key;
        },
      }),
    ),
  );
  const found: Array<{ hospital: string; key: string }> = [{ hospital: self, key: own }];
  for (const [i, key] of keys.entries()) {
    if (key.status === 'fulfilled') found.push({ hospital: others[i]!.name, key: key.value.vkey });
    else if (key.reason instanceof IntegrityError) throw key.reason;
  }
  return found;
}

/** Builds one hospital's app on its own database. */
export async function createHospitalService(options: HospitalServiceOptions): Promise<HospitalDeployment> {
  const name = checkHospitalName(options.name);
  // The gateway decodes patients' key bundles and encrypts on the pairing curve.
  await abe.init();
  const { db, kek } = options;
  await migrate(db, 'gateway', GATEWAY_MIGRATIONS);
  const issuer = issuerOf(name);
  const relyingParty = options.relyingParty ?? { id: 'localhost', origins: ['http://localhost'] };
  const identity = await createSqlHospital(db, {
    hospital: name,
    issuer,
    adminToken: options.adminToken,
    scrypt: options.scrypt,
    limits: options.limits,
    now: options.now,
    kek,
    audiences: [PLATFORM_AUDIENCE, TA_AUDIENCE],
    relyingParty: { ...relyingParty, name: `MedShare ${name}` },
    oidcClients: [PORTAL_CLIENT, ...(options.oidcClients ?? [])],
    fhirServers: ['/gateway/fhir'],
  });
  const given = options.cloud;
  const cloudUrl = options.cloudUrl ?? (given instanceof URL || typeof given === 'function' ? given : undefined);
  // The gateway's calls to the cloud carry its caller's token with a DPoP proof by this hospital's signing key.
  const cloud =
    given instanceof URL || typeof given === 'function' ? new HttpCloudApi(() => resolve(given), { proofKey: () => identity.keys.proofKey() }) : given;
  const witness = await openHospitalWitness(db, {
    kek,
    hospital: name,
    cloudUrl: () => {
      if (cloudUrl === undefined) throw new Error('createHospitalService: cloudUrl is needed with a CloudApi');
      return resolve(cloudUrl);
    },
    ...(options.logKey === undefined ? {} : { logKey: options.logKey }),
    ...(options.federation === undefined
      ? {}
      : {
          peers: () =>
            options.federation!().map((h) => ({ hospital: h.name, url: new URL(h.url), ...(h.witnessKey === undefined ? {} : { key: h.witnessKey }) })),
        }),
  });
  const categories = options.categories ?? DEFAULT_CATEGORY_MAPPING;
  const tagger = await StorageTagger.open(db);
  const workers = options.encryptionWorkers ?? 0;
  const encryptor = workers === 0 ? new InThreadEncryptor() : await ConversionPool.start(workers);
  const identifierKey = options.identifierKey === undefined ? undefined : new IdentifierKey(options.identifierKey);
  const recordSigner = await loadNoteSigner(db, { name: recordKeyName(name), kek, type: 'ed25519' });
  const receipts = new ReceiptBook(db, () => witness.receiptTrust(), options.receiptWaitMs);
  const gateway = new GatewayService(
    db,
    cloud,
    categories,
    recordSigner,
    authorityKey(options.authorityUrl),
    receipts,
    new SearchIndexWriter(db, kek),
    tagger,
    identifierKey,
    encryptor,
  );
  const app = await serviceApp(`MedShare hospital ${name}`, options);
  const identityPrefix = `/identity/${name}`;
  await app.register(hospitalIdentityPlugin, { ...identity, prefix: identityPrefix });
  await app.register(oidcPlugin, {
    hospital: name,
    provider: identity.oidc,
    accounts: identity.accounts,
    proofs: identity.proofs,
    scopesSupported: OIDC_SCOPES,
    prefix: identityPrefix,
    ...(options.publicOrigin === undefined ? {} : { publicOrigin: options.publicOrigin }),
  });
  if (options.portal !== false) {
    await app.register(portalPlugin, {
      hospital: name,
      authority: () => resolve(options.authorityUrl),
      cloud: () => {
        if (cloudUrl === undefined) throw new Error('createHospitalService: cloudUrl is needed for the portal with a CloudApi');
        return resolve(cloudUrl);
      },
    });
  }
  // The gateway's callers are this hospital's own systems and staff: its own trust list (live keys, local sessions).
  // Their tokens only with a DPoP proof of their device key (the identity service's replay cache).
  const verifier = new SenderConstrainedVerifier(new TokenVerifier(PLATFORM_AUDIENCE, identity.trust, { now: options.now }), identity.proofs);
  const exporter = new ResearchExporter(
    db,
    kek,
    { recordResearchExport: (caller, patient, release) => cloud.recordResearchExport(caller.bearer, patient, release) },
    (hospital, fhirId) => gateway.pseudonymOf(hospital, fhirId),
  );
  const identityIssuer = (request: FastifyRequest) => `${requestOrigin(request, options.publicOrigin)}${identityPrefix}`;
  const writers = {
    hospital: name,
    key: recordSigner.verifier.vkey,
    trusted: () => federationWriterKeys(db, name, recordSigner.verifier.vkey, options.federation?.() ?? []),
  };
  await app.register(gatewayPlugin, {
    gateway,
    cloud,
    verifier,
    categories,
    exporter,
    writers,
    receipts,
    identity: { issuerOf: identityIssuer, scopesSupported: OIDC_SCOPES },
    prefix: '/gateway',
  });
  await app.register(gatewayAdminPlugin, { db, hospital: name, witness, requireAdmin: adminCredentialCheck(options.adminToken), prefix: '/gateway/admin' });
  await witness.register(app);
  // Pending receipts (a witness was down at upload) are completed from the public ledger routes, which need no token.
  const completeReceipts = async () => {
    if (cloudUrl === undefined) return;
    // Resolved at each round: the cloud may not be listening yet when this hospital starts.
    const ledger = () => new LedgerClient(new URL('/ledger', resolve(cloudUrl)).href);
    await receipts.complete(name, (entries) => publicBundles(ledger(), entries));
  };
  let completing: Promise<void> | undefined;
  const receiptTimer = setInterval(() => {
    // One round at a time: a slow cloud must not pile them up.
    completing ??= completeReceipts()
      .catch((error: unknown) => app.log.warn({ err: error instanceof Error ? error.message : 'unknown' }, 'completing pending upload receipts failed'))
      .finally(() => (completing = undefined));
  }, options.receiptRetryMs ?? 30_000);
  receiptTimer.unref();
  let agent: StatsAgent | undefined;
  if (options.stats !== undefined) {
    if (cloudUrl === undefined || options.federation === undefined)
      throw new Error("createHospitalService: a statistics agent needs the cloud's URL and the federation");
    agent = await StatsAgent.open(db, kek, name, () => resolve(cloudUrl), options.federation, options.stats);
    await app.register(statsAgentPlugin, { agent, adminToken: options.adminToken, prefix: '/stats-agent' });
    // It starts polling once the service listens (its peers fetch its keys from it).
    app.addHook('onListen', async () => agent!.start());
  }
  return {
    app,
    name,
    issuer,
    identity,
    witnessKey: witness.verifier.vkey,
    recordKey: recordSigner.verifier.vkey,
    ...(agent === undefined ? {} : { statsAgent: agent }),
    close: async () => {
      clearInterval(receiptTimer);
      await completing;
      await agent?.close();
      await app.close();
      await encryptor.close();
    },
  };
}
