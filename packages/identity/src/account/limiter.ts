/**
 * Throttling of authentication attempts (NIST SP 800-63B §5.2.2 "rate limiting") that cannot be turned into a
 * lockout of the account's owner.
 *
 * Failures are counted under two keys, both applied to every attempt whether or not the account exists:
 *  - per (account, client address): after `accountFreeFailures` failures from one address, each further failure
 *    makes that address wait `baseDelaySeconds`, doubling up to `maxDelaySeconds`, before its next attempt on that
 *    account. Another address is not affected: the owner, logging in from where she has not been failing, gets in.
 *  - per client address across accounts: after `clientFreeFailures` failures, the same growing delays for every
 *    account (password spraying from one address).
 * A success clears the (account, address) count only; the address count is not cleared by a success (an attacker
 * with one account of her own cannot reset it) and, like the other, is forgotten after `forgetAfterSeconds`
 * without a failure. Retry-After is rounded up to a whole `retryQuantumSeconds`, and concerns only the caller's own
 * address. The guesses per account per day these defaults allow are computed in test/limiter.test.ts and stated
 * in docs/identity.md.
 */
import type { AttemptStore } from '../stores.ts';
import { RateLimitedError } from '../errors.ts';

/** Limits (defaults: DEFAULT_LIMITS). */
export interface LimiterOptions {
  readonly accountFreeFailures: number;
  readonly clientFreeFailures: number;
  readonly baseDelaySeconds: number;
  readonly maxDelaySeconds: number;
  readonly forgetAfterSeconds: number;
  readonly retryQuantumSeconds: number;
}

export const DEFAULT_LIMITS: LimiterOptions = {
  accountFreeFailures: 5,
  clientFreeFailures: 20,
  baseDelaySeconds: 30,
  maxDelaySeconds: 3600,
  forgetAfterSeconds: 24 * 3600,
  retryQuantumSeconds: 60,
};

const pairKey = (account: string, client: string) => `pair:${account.length}:${account}|${client}`;
const clientKey = (client: string) => `client:${client}`;

/** Tracks failures per (account, address) and per address. */
export class AttemptLimiter {
  private readonly limits: LimiterOptions;

  constructor(
    private readonly store: AttemptStore,
    limits: Partial<LimiterOptions> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** How long (ms) this address must still wait before trying this account; 0 when it may try now. */
  async wait(account: string, client: string): Promise<number> {
    const nowMs = this.now();
    const waits = await Promise.all(
      [pairKey(account, client), clientKey(client)].map((key) => this.store.update(key, (record) => record.lockedUntilMs - nowMs)),
    );
    return Math.max(0, ...waits);
  }

  /** Throws RateLimitedError if this address must still wait before trying this account. */
  async check(account: string, client: string): Promise<void> {
    const waitMs = await this.wait(account, client);
    if (waitMs > 0) {
      const quantum = this.limits.retryQuantumSeconds;
      const seconds = Math.ceil(waitMs / 1000 / quantum) * quantum;
      throw new RateLimitedError(`too many failed attempts from this address; retry after ${seconds} s`, seconds);
    }
  }

  /** Records a failed attempt of `client` on `account`. */
  async fail(account: string, client: string): Promise<void> {
    const { accountFreeFailures, clientFreeFailures } = this.limits;
    await this.count(pairKey(account, client), accountFreeFailures);
    await this.count(clientKey(client), clientFreeFailures);
  }

  /** Clears the (account, address) failures after a complete successful login. */
  async succeed(account: string, client: string): Promise<void> {
    await this.store.remove(pairKey(account, client));
  }

  /** Forgets every address's failures on `account` (an administrator's unlock). */
  async unlock(account: string): Promise<void> {
    await this.store.removeAll(pairKey(account, ''));
  }

  private async count(key: string, free: number): Promise<void> {
    const nowMs = this.now();
    const { baseDelaySeconds, maxDelaySeconds, forgetAfterSeconds } = this.limits;
    await this.store.update(key, (record) => {
      if (nowMs - record.lastFailureMs >= forgetAfterSeconds * 1000) record.failures = 0;
      record.failures++;
      record.lastFailureMs = nowMs;
      if (record.failures > free) {
        const seconds = Math.min(maxDelaySeconds, baseDelaySeconds * 2 ** Math.min(30, record.failures - free - 1));
        record.lockedUntilMs = nowMs + seconds * 1000;
      }
    });
  }
}
