/**
 * `medshare serve cloud`: the semi-trusted cloud as its own service, process and database — the store, the
 * re-encryption proxy and the audit log. Its database holds only what the cloud may hold: ciphertexts, patients'
 * signed public keys, re-encryption keys, emergency capsules and grants (public-key material), pseudonyms, the
 * access log and the ledger; its one secret (the ledger's checkpoint signing key) is stored wrapped by the
 * cloud's key-encryption key, which lives outside the database. It trusts the hospitals of its trust list, whose
 * witnesses cosign its ledger over HTTP (ledger.ts), and, for statistics, is the bulletin board on which the
 * hospitals' agents generate their threshold key and aggregates their encrypted histograms at /stats (the key
 * shares are made and stay in the hospitals' domains).
 *
 * Stateless apart from the database: several cloud processes can serve the same PostgreSQL database at once.
 */
import type { FastifyInstance } from 'fastify';
import { abe } from '@medshare/crypto';
import { migrate, type Database, type KeyEncryptionKey } from '@medshare/db';
import { DpopVerifier, SenderConstrainedVerifier, SqlNonceCache, TokenVerifier } from '@medshare/identity';
import type { AnchorClient, AuditLog, TrustPolicy } from '@medshare/ledger';
import { ConversionPool, createConverter } from '../cloud/conversion-pool.ts';
import { cloudPlugin } from '../cloud/plugin.ts';
import { CloudService } from '../cloud/service.ts';
import { CloudStore } from '../cloud/store.ts';
import { DEFAULT_CATEGORY_MAPPING, type CategoryMapping } from '../gateway/fhir.ts';
import { PLATFORM_AUDIENCE } from '../http.ts';
import { openCloudLedger, type LedgerAnchoring } from '../ledger.ts';
import { CLOUD_MIGRATIONS } from '../migrations.ts';
import { StatsAggregator } from '../stats/aggregator.ts';
import type { Consortium } from '../stats/consortium.ts';
import { StatsDkgBoard } from '../stats/dkg-board.ts';
import { statsPlugin } from '../stats/plugin.ts';
import { StorageAuditCloud } from '../storage-audit/cloud.ts';
import { storageAuditPlugin } from '../storage-audit/plugin.ts';
import { serviceApp, type ServiceHttpOptions } from './app.ts';
import { federationTrust, type HospitalPeer } from './trust.ts';

/** The default platform emergency policy. */
export const DEFAULT_EMERGENCY_POLICY = 'role:emergency';
/**
 * Group commit of the audit ledger under concurrent load (AuditLog's lingerMs): 20 doctors reading on PostgreSQL
 * went from ~3 to ~6 entries per transaction and the database's CPU time per read fell by a third
 * (docs/benchmarks.md § Platform); a lone request never waits.
 */
const LEDGER_LINGER_MS = 10;
/**
 * Under load, at most one round of witness cosignatures per this many milliseconds (AuditLog's cosignIntervalMs),
 * each for the latest checkpoint: 20 reading doctors commit a checkpoint every few milliseconds, and a round per
 * commit (two HTTP requests, the witnesses' checks and signatures) took 11–13% of the cloud's event-loop time
 * (docs/benchmarks.md § Platform). A lone commit is still offered at once; an upload's receipt waits at most this much longer.
 */
const LEDGER_COSIGN_INTERVAL_MS = 100;

/** The cloud's settings. */
export interface CloudServiceOptions extends ServiceHttpOptions {
  /** The cloud's own database. */
  readonly db: Database;
  /** Wraps the cloud's secrets at rest (from the service's data directory or MEDSHARE_KEK, never the database). */
  readonly kek: KeyEncryptionKey;
  /** The hospitals whose tokens it accepts and whose witnesses cosign its ledger. */
  readonly hospitals: readonly HospitalPeer[];
  /**
   * The platform's emergency policy: gateways grant every record under it, and role:emergency staff whose
   * attributes satisfy it may break the glass where the patient has no emergency delegation of her own (unless
   * she opted out). Default `role:emergency`; null for no platform emergency access.
   */
  readonly emergencyPolicy?: string | null;
  /** Resource type → category mapping (for SMART scopes on reads). */
  readonly categories?: CategoryMapping;
  /** Worker threads converting records on read (default 0: in the event loop's thread). */
  readonly conversionWorkers?: number;
  /**
   * Statistics at /stats: `{ threshold: t }` has the hospitals of the trust list generate a t-of-n key among
   * themselves over the cloud's bulletin board (dkg-board.ts); `{ consortium }` takes one made elsewhere (tests, the
   * single-machine CLI). None: no statistics routes.
   */
  readonly stats?: { readonly threshold: number } | { readonly consortium: Consortium };
  /** A file outside the database where the ledger keeps its last signed checkpoint (checked on open and before each signature). */
  readonly ledgerCheckpointFile?: string;
  /**
   * The anchor contract the ledger's witnessed checkpoints are put on (the client carries the anchorer account's key,
   * from the environment, never from the database), every `intervalMs` (default 5 minutes) and on `anchorNow`.
   */
  readonly ledgerAnchor?: { readonly client: AnchorClient; readonly intervalMs?: number };
  /** While a checkpoint lacks the witness quorum (a witness down), the witnesses are asked again after this long, backing off (default 5 s). */
  readonly ledgerCosignRetryMs?: number;
  /** The clock of token verification (tests move it). */
  readonly now?: () => number;
}

/** A composed cloud service (not yet listening). */
export interface CloudDeployment {
  readonly app: FastifyInstance;
  readonly cloud: CloudService;
  readonly ledger: AuditLog;
  /** The ledger keys (log, witnesses, quorum) receipts verify against. */
  readonly ledgerTrust: TrustPolicy;
  /** Anchoring of the ledger on chain, when `ledgerAnchor` was given. */
  readonly anchoring?: LedgerAnchoring;
  /** The statistics service, when a consortium was given. */
  readonly stats?: StatsAggregator;
  close(): Promise<void>;
}

/** Builds the cloud's app on its own database (the hospitals' witnesses must answer for their keys the first time). */
export async function createCloudService(options: CloudServiceOptions): Promise<CloudDeployment> {
  await abe.init();
  const { db } = options;
  await migrate(db, 'cloud', CLOUD_MIGRATIONS);
  const store = new CloudStore(db);
  const ledger = await openCloudLedger(db, {
    kek: options.kek,
    lingerMs: LEDGER_LINGER_MS,
    cosignIntervalMs: LEDGER_COSIGN_INTERVAL_MS,
    witnesses: options.hospitals.map((h) => ({ hospital: h.name, url: new URL(h.url), ...(h.witnessKey === undefined ? {} : { key: h.witnessKey }) })),
    ...(options.ledgerCheckpointFile === undefined ? {} : { checkpointFile: options.ledgerCheckpointFile }),
    ...(options.ledgerAnchor === undefined ? {} : { anchor: options.ledgerAnchor.client }),
    ...(options.ledgerCosignRetryMs === undefined ? {} : { cosignRetryMs: options.ledgerCosignRetryMs }),
  });
  const emergencyPolicy = options.emergencyPolicy === undefined ? DEFAULT_EMERGENCY_POLICY : options.emergencyPolicy;
  if (emergencyPolicy !== null) abe.compilePolicy(emergencyPolicy);
  // Tokens only with a DPoP proof by the key they are bound to, or by their issuing hospital's signing key (its
  // gateway calling for its user, dpop/verify.ts); used proofs are kept in the cloud's database, so every cloud
  // process on it refuses a proof replayed to another.
  const usedProofs = new SqlNonceCache(db, 'cloud', 'cloud_dpop_nonces');
  const verifier = new SenderConstrainedVerifier(
    new TokenVerifier(PLATFORM_AUDIENCE, federationTrust(options.hospitals), { now: options.now }),
    new DpopVerifier(usedProofs, options.now),
    { issuerProofs: true },
  );
  const converter = await createConverter(options.conversionWorkers ?? 0);
  // With workers, an upload's storage-tag checks are split across them too.
  const storage = await StorageAuditCloud.open(db, ledger.log, converter instanceof ConversionPool ? converter : undefined);
  const cloud = new CloudService(store, ledger.log, converter, { storage, ...(emergencyPolicy === null ? {} : { emergencyPolicy }) });
  const app = await serviceApp('MedShare cloud', options);
  await app.register(cloudPlugin, { cloud, verifier, categories: options.categories ?? DEFAULT_CATEGORY_MAPPING, prefix: '/cloud' });
  // Bearer tokens still (docs/identity.md §8: its CLI has no device key yet).
  await app.register(storageAuditPlugin, { storage, verifier: verifier.tokens, prefix: '/cloud/storage' });
  const given = options.stats;
  const stats = given === undefined ? undefined : await StatsAggregator.open(db, ledger.log, 'consortium' in given ? given.consortium : undefined);
  const board =
    given === undefined || !('threshold' in given)
      ? undefined
      : await StatsDkgBoard.open(db, { t: given.threshold, members: () => options.hospitals, formed: (consortium) => stats!.adopt(consortium) });
  if (stats !== undefined) await app.register(statsPlugin, { stats, verifier, ...(board === undefined ? {} : { board }), prefix: '/stats' });
  await ledger.register(app);
  const anchoring = ledger.anchoring;
  // Anchoring costs a transaction: on a timer, not per batch. A failure is logged and counted; the next tick retries.
  const anchorTimer =
    anchoring === undefined
      ? undefined
      : setInterval(() => {
          anchoring
            .anchorNow()
            .catch((error: unknown) => app.log.warn({ err: error instanceof Error ? error.message : 'unknown' }, 'anchoring the audit ledger failed'));
        }, options.ledgerAnchor?.intervalMs ?? 300_000);
  anchorTimer?.unref();
  return {
    app,
    cloud,
    ledger: ledger.log,
    ledgerTrust: ledger.trust,
    ...(stats === undefined ? {} : { stats }),
    ...(anchoring === undefined ? {} : { anchoring }),
    close: async () => {
      clearInterval(anchorTimer);
      await app.close();
      await converter.close();
      await ledger.log.close();
      // A sweep of expired nonces may still be running: it ends before the caller closes the database.
      await usedProofs.idle();
    },
  };
}
