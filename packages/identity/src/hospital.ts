/**
 * Wiring of one hospital's identity service: on in-memory stores (a single-process demo, the CLI's
 * `identity serve`, the tests) or on SQL stores in a @medshare/db database (the platform server), where
 * accounts, sessions, tickets, lockout counters and signing keys survive a restart.
 */
import { randomBytes } from 'node:crypto';
import { migrate, type Database, type KeyEncryptionKey } from '@medshare/db';
import { AdminService } from './account/admin.ts';
import { AccountService, type LoginTicket } from './account/accounts.ts';
import { CredentialService } from './account/credentials.ts';
import { AttemptLimiter, type LimiterOptions } from './account/limiter.ts';
import type { ScryptParams } from './account/password.ts';
import type { RelyingParty } from './account/webauthn.ts';
import type { HospitalPluginOptions } from './http/hospital-plugin.ts';
import { DpopVerifier } from './sso/dpop.ts';
import { localSessionStatus, TokenVerifier, TrustList } from './sso/federation.ts';
import { TokenIssuer } from './sso/issuer.ts';
import { SigningKeyRing } from './sso/keyring.ts';
import { SessionPseudonyms, TRACING_KEY_BYTES } from './sso/pseudonyms.ts';
import { MemoryAttemptStore, MemoryNonceCache, MemorySessionStore, MemorySigningKeyStore, MemoryTicketStore, MemoryUserStore } from './memory-stores.ts';
import { ClientRegistry, type OidcClient } from './oidc/clients.ts';
import { OidcProvider, type IssuedCode, type PendingAuthorization } from './oidc/provider.ts';
import { IDENTITY_MIGRATIONS } from './sql/schema.ts';
import { SqlAttemptStore, SqlNonceCache, SqlSessionStore, SqlSigningKeyStore, SqlTicketStore, SqlUserStore } from './sql/stores.ts';
import type { AttemptStore, NonceCache, SessionStore, SigningKeyStore, TicketStore, UserStore } from './stores.ts';

export interface HospitalConfig {
  readonly hospital: string;
  readonly issuer: string;
  /** This hospital's administrator credential (no other hospital's works here). */
  readonly adminToken: string;
  /** The services its tokens may be for (registered audiences); its issuer URL is the audience of its account endpoints. */
  readonly audiences: readonly string[];
  /** Registered clients (RFC 9068 `client_id`); the first is the default. Default: `medshare-app`. */
  readonly clients?: readonly string[];
  readonly relyingParty: RelyingParty;
  /** OpenID Connect clients (oidc/clients.ts); their ids are registered clients of the tokens too. */
  readonly oidcClients?: readonly OidcClient[];
  /** FHIR servers a SMART `aud` may name (a path is the service's own origin). */
  readonly fhirServers?: readonly string[];
  readonly scrypt?: ScryptParams;
  readonly limits?: Partial<LimiterOptions>;
  readonly tokenSeconds?: number;
  readonly now?: () => number;
}

/** The client a login names when it names none. */
export const DEFAULT_CLIENT = 'medshare-app';

/** What a hospital's identity service keeps. */
interface HospitalStores {
  readonly users: UserStore;
  readonly sessions: SessionStore;
  readonly loginTickets: TicketStore<LoginTicket>;
  readonly challenges: TicketStore<string>;
  readonly passkeys: TicketStore<string>;
  readonly attempts: AttemptStore;
  readonly keys: SigningKeyStore;
  readonly proofs: NonceCache;
  readonly oidcRequests: TicketStore<PendingAuthorization>;
  readonly oidcCodes: TicketStore<IssuedCode>;
  readonly oidcRedeemed: TicketStore<string>;
  /** The hospital's tracing key (sso/pseudonyms.ts). */
  readonly tracingKey: Uint8Array;
}

/** A hospital identity service, ready to mount with hospitalIdentityPlugin. */
export type HospitalService = HospitalPluginOptions & { trust: TrustList; oidc: OidcProvider };

/** A hospital identity service on in-memory stores: everything is forgotten when the process ends. */
export async function createMemoryHospital(config: HospitalConfig): Promise<HospitalService> {
  const now = config.now ?? Date.now;
  return wire(config, now, {
    users: new MemoryUserStore(),
    sessions: new MemorySessionStore(now),
    loginTickets: new MemoryTicketStore<LoginTicket>(),
    challenges: new MemoryTicketStore<string>(),
    passkeys: new MemoryTicketStore<string>(),
    attempts: new MemoryAttemptStore(100_000, now),
    keys: new MemorySigningKeyStore(),
    proofs: new MemoryNonceCache(),
    oidcRequests: new MemoryTicketStore<PendingAuthorization>(),
    oidcCodes: new MemoryTicketStore<IssuedCode>(),
    oidcRedeemed: new MemoryTicketStore<string>(),
    tracingKey: randomBytes(TRACING_KEY_BYTES),
  });
}

/** Applies the identity component's migrations (idempotent; concurrent starters are serialised). */
export async function migrateIdentity(db: Database): Promise<void> {
  await migrate(db, 'identity', IDENTITY_MIGRATIONS);
}

/**
 * A hospital identity service on SQL stores in `db`, rows keyed by `config.hospital` (several hospitals can
 * share one database). Its signing keys are reloaded, so tokens issued before a restart still verify. TOTP secrets
 * and private signing keys are stored wrapped by `config.kek`, which never enters the database.
 */
export async function createSqlHospital(db: Database, config: HospitalConfig & { readonly kek: KeyEncryptionKey }): Promise<HospitalService> {
  await migrateIdentity(db);
  const now = config.now ?? Date.now;
  const { hospital } = config;
  return wire(config, now, {
    users: new SqlUserStore(db, hospital, config.kek),
    sessions: new SqlSessionStore(db, hospital, now),
    loginTickets: new SqlTicketStore<LoginTicket>(db, `${hospital}/login`),
    challenges: new SqlTicketStore<string>(db, `${hospital}/webauthn`),
    passkeys: new SqlTicketStore<string>(db, `${hospital}/passkey`),
    attempts: new SqlAttemptStore(db, hospital, now),
    keys: new SqlSigningKeyStore(db, hospital, config.kek),
    proofs: new SqlNonceCache(db, `${hospital}/dpop`),
    oidcRequests: new SqlTicketStore<PendingAuthorization>(db, `${hospital}/oidc-request`),
    oidcCodes: new SqlTicketStore<IssuedCode>(db, `${hospital}/oidc-code`),
    oidcRedeemed: new SqlTicketStore<string>(db, `${hospital}/oidc-redeemed`),
    tracingKey: await sqlTracingKey(db, hospital, config.kek),
  });
}

/**
 * The hospital's tracing key, created on first start and stored wrapped by its KEK (the cloud never holds it: it
 * lives in the hospital's identity database). Two starters racing keep the first committed key.
 */
async function sqlTracingKey(db: Database, hospital: string, kek: KeyEncryptionKey): Promise<Uint8Array> {
  const context = `identity_tracing_keys.key_wrapped|${hospital}`;
  await db.query('INSERT INTO identity_tracing_keys (hospital, key_wrapped) VALUES ($1, $2) ON CONFLICT (hospital) DO NOTHING', [
    hospital,
    await kek.wrap(randomBytes(TRACING_KEY_BYTES), context),
  ]);
  const row = (await db.query<{ key_wrapped: Uint8Array }>('SELECT key_wrapped FROM identity_tracing_keys WHERE hospital = $1', [hospital])).rows[0]!;
  return kek.unwrap(row.key_wrapped, context);
}

async function wire(config: HospitalConfig, now: () => number, stores: HospitalStores): Promise<HospitalService> {
  const tokenSeconds = config.tokenSeconds ?? 300;
  const { users, sessions } = stores;
  const keys = await SigningKeyRing.open(stores.keys, (tokenSeconds + 60) * 1000, now);
  const credentials = new CredentialService({
    hospital: config.hospital,
    users,
    challenges: stores.challenges,
    relyingParty: config.relyingParty,
    scrypt: config.scrypt,
    now,
  });
  const limiter = new AttemptLimiter(stores.attempts, config.limits, now);
  const pseudonyms = new SessionPseudonyms(stores.tracingKey, config.issuer);
  const admin = new AdminService({ hospital: config.hospital, users, sessions, limiter, pseudonyms });
  const accounts = new AccountService({
    hospital: config.hospital,
    users,
    tickets: stores.loginTickets,
    passkeyChallenges: stores.passkeys,
    limiter,
    relyingParty: config.relyingParty,
    scrypt: config.scrypt,
    now,
  });
  const oidcClients = new ClientRegistry(config.oidcClients ?? []);
  const issuer = new TokenIssuer({
    issuer: config.issuer,
    hospital: config.hospital,
    keys,
    sessions,
    pseudonyms,
    tokenSeconds,
    now,
    audiences: config.audiences,
    clients: [...(config.clients ?? [DEFAULT_CLIENT]), ...oidcClients.ids()],
  });
  const oidc = new OidcProvider({
    hospital: config.hospital,
    clients: oidcClients,
    credentials,
    issuer,
    keys,
    sessions,
    now,
    requests: stores.oidcRequests,
    codes: stores.oidcCodes,
    redeemed: stores.oidcRedeemed,
    fhirServers: config.fhirServers ?? [],
    accountAudience: config.issuer,
  });
  const trust = new TrustList();
  trust.add({ issuer: config.issuer, hospital: config.hospital, jwks: () => keys.jwks(), sessionStatus: localSessionStatus(sessions, now) });
  const verifier = new TokenVerifier(config.issuer, trust, { now });
  // Ending a session is no privilege: logout takes any token of this hospital, whatever its audience.
  const logoutVerifier = new TokenVerifier([config.issuer, ...config.audiences], trust, { now });
  const proofs = new DpopVerifier(stores.proofs, now);
  return { accounts, admin, credentials, issuer, keys, proofs, sessions, verifier, logoutVerifier, trust, oidc, adminToken: config.adminToken, now };
}
