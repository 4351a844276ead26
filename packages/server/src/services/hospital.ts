/**
 * `medshare serve hospital --name st-marys`: one hospital's domain as its own service, process and database —
 * its identity service (accounts, MFA login, SSO tokens and their signing keys, sessions), its FHIR gateway
 * (enrolments FHIR id → pseudonym; it sees plaintext FHIR and encrypts it before anything leaves) and a mount
 * point for its ledger witness. The gateway reaches the cloud through `CloudApi` (HTTP in production) with the
 * caller's own token, and fetches the TA's public key from the authority once, at the first upload that needs it.
 *
 *   /identity/<name>/...   identity (@medshare/identity hospitalIdentityPlugin)
 *   /gateway/...           FHIR R4 gateway
 *   /witness/...           the ledger witness, when one is given
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { abe } from '@medshare/crypto';
import { migrate, type Database } from '@medshare/db';
import { createSqlHospital, hospitalIdentityPlugin, TokenVerifier, type HospitalService, type LimiterOptions, type ScryptParams } from '@medshare/identity';
import { HttpCloudApi, type CloudApi } from '../gateway/cloud-api.ts';
import { DEFAULT_CATEGORY_MAPPING, type CategoryMapping } from '../gateway/fhir.ts';
import { gatewayPlugin } from '../gateway/plugin.ts';
import { GatewayService } from '../gateway/service.ts';
import { callJson } from '../http-client.ts';
import { PLATFORM_AUDIENCE } from '../http.ts';
import { GATEWAY_MIGRATIONS } from '../migrations.ts';
import { serviceApp, type ServiceHttpOptions } from './app.ts';
import { checkHospitalName, issuerOf } from './trust.ts';

/** One hospital's settings. */
export interface HospitalServiceOptions extends ServiceHttpOptions {
  /** The hospital's own database. */
  readonly db: Database;
  /** Lower-case code (`st-marys`). */
  readonly name: string;
  /** Administrator credential of its identity service (register users). */
  readonly adminToken: string;
  /** The cloud: its URL (HTTP client) or any CloudApi. */
  readonly cloud: URL | CloudApi;
  /** The trusted authority's URL (its public key is fetched for platform emergency grants). */
  readonly authorityUrl: URL;
  /** Resource type → category mapping of the gateway. */
  readonly categories?: CategoryMapping;
  /** scrypt parameters for passwords (identity's production default when absent). */
  readonly scrypt?: ScryptParams;
  /** Login rate limits and lockout (identity's defaults when absent). */
  readonly limits?: Partial<LimiterOptions>;
  /** The clock of token issuance and verification (tests move it). */
  readonly now?: () => number;
  /** The hospital's ledger witness routes, mounted under /witness. */
  readonly witness?: FastifyPluginAsync;
}

/** A composed hospital service (not yet listening). */
export interface HospitalDeployment {
  readonly app: FastifyInstance;
  readonly name: string;
  readonly issuer: string;
  readonly identity: HospitalService;
  close(): Promise<void>;
}

/** The TA's public key, fetched once; a failed fetch is retried at the next need. */
function authorityKey(url: URL): () => Promise<abe.PublicKey> {
  let key: Promise<abe.PublicKey> | undefined;
  return () => {
    key ??= callJson<{ publicKey: string }>(url, 'GET', '/ta/public-key', { timeoutMs: 10_000 })
      .then(({ publicKey }) => abe.decodePublicKey(new Uint8Array(Buffer.from(publicKey, 'base64'))))
      .catch((error: unknown) => {
        key = undefined;
        throw error;
      });
    return key;
  };
}

/** Builds one hospital's app on its own database. */
export async function createHospitalService(options: HospitalServiceOptions): Promise<HospitalDeployment> {
  const name = checkHospitalName(options.name);
  // The gateway decodes patients' key bundles and encrypts on the pairing curve.
  await abe.init();
  const { db } = options;
  await migrate(db, 'gateway', GATEWAY_MIGRATIONS);
  const issuer = issuerOf(name);
  const identity = await createSqlHospital(db, {
    hospital: name, issuer, adminToken: options.adminToken, scrypt: options.scrypt, limits: options.limits, now: options.now,
    relyingParty: { id: 'localhost', name: `MedShare ${name}`, origins: ['http://localhost'] },
  });
  const cloud = options.cloud instanceof URL ? new HttpCloudApi(options.cloud) : options.cloud;
  const gateway = new GatewayService(db, cloud, options.categories ?? DEFAULT_CATEGORY_MAPPING, authorityKey(options.authorityUrl));
  const app = await serviceApp(`MedShare hospital ${name}`, options);
  await app.register(hospitalIdentityPlugin, { ...identity, prefix: `/identity/${name}` });
  // The gateway's callers are this hospital's own systems and staff: its own trust list (live keys, local sessions).
  await app.register(gatewayPlugin, { gateway, cloud, verifier: new TokenVerifier(PLATFORM_AUDIENCE, identity.trust, { now: options.now }), prefix: '/gateway' });
  if (options.witness) await app.register(options.witness, { prefix: '/witness' });
  return { app, name, issuer, identity, close: () => app.close() };
}
