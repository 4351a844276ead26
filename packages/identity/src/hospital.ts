/**
 * Wiring of one hospital's identity service from in-memory stores: what a single-process demo,
 * the CLI's `identity serve` and the tests use. The platform server (issue #5) wires the same
 * services to SQL-backed stores instead.
 */
import { AccountService, type LoginTicket } from './account/accounts.ts';
import { CredentialService } from './account/credentials.ts';
import { AttemptLimiter, type LimiterOptions } from './account/limiter.ts';
import type { ScryptParams } from './account/password.ts';
import type { RelyingParty } from './account/webauthn.ts';
import type { HospitalPluginOptions } from './http/hospital-plugin.ts';
import { localSessionStatus, TokenVerifier, TrustList } from './sso/federation.ts';
import { TokenIssuer } from './sso/issuer.ts';
import { SigningKeyRing } from './sso/keyring.ts';
import { MemoryAttemptStore, MemorySessionStore, MemoryTicketStore, MemoryUserStore } from './memory-stores.ts';

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

/** A hospital identity service on in-memory stores, ready to mount with hospitalIdentityPlugin. */
export async function createMemoryHospital(config: HospitalConfig): Promise<HospitalPluginOptions & { trust: TrustList }> {
  const now = config.now ?? Date.now;
  const tokenSeconds = config.tokenSeconds ?? 300;
  const sessions = new MemorySessionStore(now);
  const keys = await SigningKeyRing.create((tokenSeconds + 60) * 1000, now);
  const users = new MemoryUserStore();
  const credentials = new CredentialService({ users, challenges: new MemoryTicketStore<string>(), relyingParty: config.relyingParty, now });
  const accounts = new AccountService({
    hospital: config.hospital,
    users,
    tickets: new MemoryTicketStore<LoginTicket>(),
    limiter: new AttemptLimiter(new MemoryAttemptStore(100_000, now), config.limits, now),
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
