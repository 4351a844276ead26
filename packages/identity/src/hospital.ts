/**
 * Wiring of one hospital's identity service: on in-memory stores (a single-process demo, the CLI's
 * `identity serve`, the tests) or on SQL stores in a @medshare/db database (the platform server), where
 * accounts, sessions, tickets, lockout counters and signing keys survive a restart.
 */
import { migrate, type Database } from '@medshare/db';
import { AccountService, type LoginTicket } from './account/accounts.ts';
import { CredentialService } from './account/credentials.ts';
import { AttemptLimiter, type LimiterOptions } from './account/limiter.ts';
import type { ScryptParams } from './account/password.ts';
import type { RelyingParty } from './account/webauthn.ts';
import type { HospitalPluginOptions } from './http/hospital-plugin.ts';
import { localSessionStatus, TokenVerifier, TrustList } from './sso/federation.ts';
import { TokenIssuer } from './sso/issuer.ts';
import { SigningKeyRing } from './sso/keyring.ts';
import { MemoryAttemptStore, MemorySessionStore, MemorySigningKeyStore, MemoryTicketStore, MemoryUserStore } from './memory-stores.ts';
import { IDENTITY_MIGRATIONS } from './sql/schema.ts';
import { SqlAttemptStore, SqlSessionStore, SqlSigningKeyStore, SqlTicketStore, SqlUserStore } from './sql/stores.ts';
import type { AttemptStore, SessionStore, SigningKeyStore, TicketStore, UserStore } from './stores.ts';

export interface HospitalConfig {
  readonly hospital: string;
  readonly issuer: string;
  readonly adminToken: string;
  readonly relyingParty: RelyingParty;
  readonly scrypt?: ScryptParams;
  readonly limits?: Partial<LimiterOptions>;
  readonly tokenSeconds?: number;
  readonly now?: () => number;
}

/** What a hospital's identity service keeps. */
interface HospitalStores {
  readonly users: UserStore;
  readonly sessions: SessionStore;
  readonly loginTickets: TicketStore<LoginTicket>;
  readonly challenges: TicketStore<string>;
  readonly attempts: AttemptStore;
  readonly keys: SigningKeyStore;
}

/** A hospital identity service, ready to mount with hospitalIdentityPlugin. */
export type HospitalService = HospitalPluginOptions & { trust: TrustList };

/** A hospital identity service on in-memory stores: everything is forgotten when the process ends. */
export async function createMemoryHospital(config: HospitalConfig): Promise<HospitalService> {
  const now = config.now ?? Date.now;
  return wire(config, now, {
    users: new MemoryUserStore(),
    sessions: new MemorySessionStore(now),
    loginTickets: new MemoryTicketStore<LoginTicket>(),
    challenges: new MemoryTicketStore<string>(),
    attempts: new MemoryAttemptStore(100_000, now),
    keys: new MemorySigningKeyStore(),
  });
}

/** Applies the identity component's migrations (idempotent; concurrent starters are serialised). */
export async function migrateIdentity(db: Database): Promise<void> {
  await migrate(db, 'identity', IDENTITY_MIGRATIONS);
}

/**
 * A hospital identity service on SQL stores in `db`, rows keyed by `config.hospital` (several hospitals can
 * share one database). Its signing keys are reloaded, so tokens issued before a restart still verify.
 */
export async function createSqlHospital(db: Database, config: HospitalConfig): Promise<HospitalService> {
  await migrateIdentity(db);
  const now = config.now ?? Date.now;
  const { hospital } = config;
  return wire(config, now, {
    users: new SqlUserStore(db, hospital),
    sessions: new SqlSessionStore(db, hospital, now),
    loginTickets: new SqlTicketStore<LoginTicket>(db, `${hospital}/login`),
    challenges: new SqlTicketStore<string>(db, `${hospital}/webauthn`),
    attempts: new SqlAttemptStore(db, hospital, now),
    keys: new SqlSigningKeyStore(db, hospital),
  });
}

async function wire(config: HospitalConfig, now: () => number, stores: HospitalStores): Promise<HospitalService> {
  const tokenSeconds = config.tokenSeconds ?? 300;
  const { users, sessions } = stores;
  const keys = await SigningKeyRing.open(stores.keys, (tokenSeconds + 60) * 1000, now);
  const credentials = new CredentialService({ users, challenges: stores.challenges, relyingParty: config.relyingParty, now });
  const accounts = new AccountService({
    hospital: config.hospital,
    users,
    tickets: stores.loginTickets,
    limiter: new AttemptLimiter(stores.attempts, config.limits, now),
    relyingParty: config.relyingParty,
    scrypt: config.scrypt,
    now,
  });
  const issuer = new TokenIssuer({ issuer: config.issuer, hospital: config.hospital, keys, sessions, tokenSeconds, now });
  const trust = new TrustList();
  trust.add({ issuer: config.issuer, hospital: config.hospital, jwks: () => keys.jwks(), sessionStatus: localSessionStatus(sessions, now) });
  const verifier = new TokenVerifier(config.issuer, trust, { now });
  return { accounts, credentials, issuer, keys, sessions, verifier, trust, adminToken: config.adminToken, now };
}
