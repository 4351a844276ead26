/**
 * Lockout and rate limiting of authentication attempts (NIST SP 800-63B §5.2.2 "rate limiting").
 *
 * Two independent limits, both applied to every attempt whether or not the account exists:
 *  - per account: after `maxFailures` consecutive failures the account is locked for
 *    `lockBaseSeconds`, doubling with each further failure up to `lockMaxSeconds`; a success resets it.
 *    Locking is temporary on purpose, so an attacker cannot lock a clinician out for good.
 *  - per client (IP address): at most `clientAttemptsPerWindow` attempts per `clientWindowSeconds`.
 */
import type { AttemptStore } from '../stores.ts';
import { RateLimitedError } from '../errors.ts';

function tooManyAttempts(waitMs: number): RateLimitedError {
  const seconds = Math.ceil(waitMs / 1000);
  return new RateLimitedError(`too many attempts; retry after ${seconds} s`, seconds);
}

/** Limits; the defaults allow 5 failures before a 60 s lock and 30 attempts a minute per client. */
export interface LimiterOptions {
  readonly maxFailures: number;
  readonly lockBaseSeconds: number;
  readonly lockMaxSeconds: number;
  readonly clientAttemptsPerWindow: number;
  readonly clientWindowSeconds: number;
}

export const DEFAULT_LIMITS: LimiterOptions = {
  maxFailures: 5,
  lockBaseSeconds: 60,
  lockMaxSeconds: 3600,
  clientAttemptsPerWindow: 30,
  clientWindowSeconds: 60,
};

/** Tracks failures per account and attempts per client. */
export class AttemptLimiter {
  private readonly limits: LimiterOptions;

  constructor(private readonly store: AttemptStore, limits: Partial<LimiterOptions> = {}, private readonly now: () => number = Date.now) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** Throws RateLimitedError if the account is locked or the client is over its budget; counts the attempt. */
  async check(accountKey: string, clientKey: string): Promise<void> {
    const nowMs = this.now();
    const { clientAttemptsPerWindow, clientWindowSeconds } = this.limits;
    const clientWait = await this.store.update(`client:${clientKey}`, (record) => {
      if (nowMs - record.windowStartMs >= clientWindowSeconds * 1000) {
        record.windowStartMs = nowMs;
        record.windowCount = 0;
      }
      record.windowCount++;
      return record.windowCount > clientAttemptsPerWindow ? record.windowStartMs + clientWindowSeconds * 1000 - nowMs : 0;
    });
    if (clientWait > 0) throw tooManyAttempts(clientWait);
    const lockWait = await this.store.update(`account:${accountKey}`, (record) => record.lockedUntilMs - nowMs);
    if (lockWait > 0) throw tooManyAttempts(lockWait);
  }

  /** Records a failed attempt on an account, locking it once the threshold is reached. */
  async fail(accountKey: string): Promise<void> {
    const nowMs = this.now();
    const { maxFailures, lockBaseSeconds, lockMaxSeconds } = this.limits;
    await this.store.update(`account:${accountKey}`, (record) => {
      record.failures++;
      if (record.failures >= maxFailures) {
        const seconds = Math.min(lockMaxSeconds, lockBaseSeconds * 2 ** (record.failures - maxFailures));
        record.lockedUntilMs = nowMs + seconds * 1000;
      }
    });
  }

  /** Clears an account's failures after a complete successful login. */
  async succeed(accountKey: string): Promise<void> {
    await this.store.update(`account:${accountKey}`, (record) => {
      record.failures = 0;
      record.lockedUntilMs = 0;
    });
  }
}
