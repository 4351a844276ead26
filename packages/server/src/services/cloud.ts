/**
 * `medshare serve cloud`: the semi-trusted cloud as its own service, process and database — the store, the
 * re-encryption proxy and the audit log. Its database holds only what the cloud may hold: ciphertexts, patients'
 * signed public keys, re-encryption keys, emergency capsules and grants (public-key material), pseudonyms, the
 * access log and the ledger; its one secret (the ledger's checkpoint signing key) is stored wrapped by the
 * cloud's key-encryption key, which lives outside the database. It trusts the hospitals of its trust list.
 *
 * Stateless apart from the database: several cloud processes can serve the same PostgreSQL database at once.
 */
import type { FastifyInstance } from 'fastify';
import { abe } from '@medshare/crypto';
import { migrate, type Database, type KeyEncryptionKey } from '@medshare/db';
import { TokenVerifier, type TrustList } from '@medshare/identity';
import { AuditLog, generateCheckpointKey, parseSignerKey } from '@medshare/ledger';
import { createConverter } from '../cloud/conversion-pool.ts';
import { cloudPlugin } from '../cloud/plugin.ts';
import { CloudService } from '../cloud/service.ts';
import { CloudStore } from '../cloud/store.ts';
import { PLATFORM_AUDIENCE } from '../http.ts';
import { CLOUD_MIGRATIONS } from '../migrations.ts';
import { serviceApp, type ServiceHttpOptions } from './app.ts';
import { federationTrust, type HospitalPeer } from './trust.ts';

/** The default platform emergency policy. */
export const DEFAULT_EMERGENCY_POLICY = 'role:emergency';
const LEDGER_KEY_NAME = 'medshare.cloud/audit';
/**
 * Group commit of the audit ledger under concurrent load (AuditLog's lingerMs): 20 doctors reading on PostgreSQL
 * went from ~3 to ~6 entries per transaction and the database's CPU time per read fell by a third
 * (docs/benchmarks.md § Platform); a lone request never waits.
 */
const LEDGER_LINGER_MS = 10;

/** The cloud's settings. */
export interface CloudServiceOptions extends ServiceHttpOptions {
  /** The cloud's own database. */
  readonly db: Database;
  /** Wraps the cloud's secrets at rest (from the service's data directory or MEDSHARE_KEK, never the database). */
  readonly kek: KeyEncryptionKey;
  /** The hospitals whose tokens it accepts; or a trust list built by the caller. */
  readonly hospitals: readonly HospitalPeer[] | TrustList;
  /**
   * The platform's emergency policy: gateways grant every record under it, and role:emergency staff whose
   * attributes satisfy it may break the glass where the patient has no emergency delegation of her own (unless
   * she opted out). Default `role:emergency`; null for no platform emergency access.
   */
  readonly emergencyPolicy?: string | null;
  /** Worker threads converting records on read (default 0: in the event loop's thread). */
  readonly conversionWorkers?: number;
  /** The clock of token verification (tests move it). */
  readonly now?: () => number;
}

/** A composed cloud service (not yet listening). */
export interface CloudDeployment {
  readonly app: FastifyInstance;
  readonly cloud: CloudService;
  readonly ledger: AuditLog;
  close(): Promise<void>;
}

/** Builds the cloud's app on its own database. */
export async function createCloudService(options: CloudServiceOptions): Promise<CloudDeployment> {
  await abe.init();
  const { db } = options;
  await migrate(db, 'cloud', CLOUD_MIGRATIONS);
  const store = new CloudStore(db);
  const ledgerKey = await store.platformSecret(LEDGER_KEY_NAME, () => generateCheckpointKey(LEDGER_KEY_NAME).skey, options.kek);
  const ledger = await AuditLog.open(db, parseSignerKey(ledgerKey), { lingerMs: LEDGER_LINGER_MS });
  const emergencyPolicy = options.emergencyPolicy === undefined ? DEFAULT_EMERGENCY_POLICY : options.emergencyPolicy;
  if (emergencyPolicy !== null) abe.compilePolicy(emergencyPolicy);
  const trust = Array.isArray(options.hospitals) ? federationTrust(options.hospitals) : (options.hospitals as TrustList);
  const converter = await createConverter(options.conversionWorkers ?? 0);
  const cloud = new CloudService(store, ledger, converter, emergencyPolicy === null ? {} : { emergencyPolicy });
  const app = await serviceApp('MedShare cloud', options);
  await app.register(cloudPlugin, { cloud, verifier: new TokenVerifier(PLATFORM_AUDIENCE, trust, { now: options.now }), prefix: '/cloud' });
  return {
    app, cloud, ledger,
    close: async () => {
      await app.close();
      await converter.close();
      await ledger.flush();
    },
  };
}
