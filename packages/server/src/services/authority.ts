/**
 * `medshare serve authority`: the trusted authority as its own service, process and database. It holds the
 * CP-ABE master key (only here: `ta_setup` in its own database, wrapped by the authority's own KEK) and the record of tokens it already issued a key
 * for; it trusts the hospitals of its trust list (their JWKS and session-status routes, over HTTP) to say who a
 * user is and which attributes she holds, and seals each issued key to the user's device key.
 *
 *   GET  /ta/public-key   the CP-ABE public parameters
 *   POST /ta/keys         (SSO token for audience medshare-ta, bound to a device key) a key sealed to that device
 */
import type { FastifyInstance } from 'fastify';
import { abe } from '@medshare/crypto';
import type { Database, KeyEncryptionKey } from '@medshare/db';
import { DpopVerifier, migrateIdentity, SqlNonceCache, TokenVerifier, trustedAuthorityPlugin, TrustedAuthority } from '@medshare/identity';
import { loadAuthoritySetup } from '../authority.ts';
import { serviceApp, type ServiceHttpOptions } from './app.ts';
import { federationTrust, type HospitalPeer } from './trust.ts';

/** The audience of trusted-authority tokens (identity's TA plugin checks it). */
export const TA_AUDIENCE = 'medshare-ta';

/** The authority's settings. */
export interface AuthorityServiceOptions extends ServiceHttpOptions {
  /** The authority's own database. */
  readonly db: Database;
  /** Wraps the CP-ABE master key at rest (the authority's own KEK, never in the database). */
  readonly kek: KeyEncryptionKey;
  /** The hospitals whose tokens it accepts. */
  readonly hospitals: readonly HospitalPeer[];
  /** The clock of token verification (tests move it). */
  readonly now?: () => number;
}

/** A composed authority service (not yet listening). */
export interface AuthorityService {
  readonly app: FastifyInstance;
  readonly abePublicKey: abe.PublicKey;
  close(): Promise<void>;
}

/** Builds the authority's app on its own database (its CP-ABE setup is made once and reloaded). */
export async function createAuthorityService(options: AuthorityServiceOptions): Promise<AuthorityService> {
  await abe.init();
  const { db } = options;
  // The identity component's tables hold the TA's used-token record (identity_nonces); no account lives here.
  await migrateIdentity(db);
  const setup = await loadAuthoritySetup(db, options.kek);
  const trust = federationTrust(options.hospitals);
  const now = options.now ?? Date.now;
  const usedTokens = new SqlNonceCache(db, 'ta/used-tokens');
  const usedProofs = new SqlNonceCache(db, 'ta/dpop');
  // Key requests carry a DPoP proof of the device key the token is bound to; proofs are single-use (ta/dpop).
  const authority = new TrustedAuthority({
    verifier: new TokenVerifier(TA_AUDIENCE, trust, { now }),
    ...setup,
    usedTokens,
    proofs: new DpopVerifier(usedProofs, now),
    now,
  });
  // Every key names its hospital: hash those attributes now, in the background, rather than in the first keygens.
  void authority.warm(options.hospitals.map((peer) => `hospital:${peer.name}`)).catch(() => undefined);
  const app = await serviceApp('MedShare trusted authority', options);
  await app.register(trustedAuthorityPlugin, { authority, publicKey: setup.publicKey });
  return {
    app,
    abePublicKey: setup.publicKey,
    close: async () => {
      await app.close();
      // A sweep of expired nonces may still be running: it ends before the caller closes the database.
      await Promise.all([usedTokens.idle(), usedProofs.idle()]);
    },
  };
}
