/**
 * Identity-specific error kinds. They subclass MedShareError with the existing codes so that the
 * CLI's exit codes and the HTTP layer's problem types keep working without new codes.
 */
import { MedShareError } from '@medshare/crypto';

/** Too many attempts: the caller must wait `retryAfterSeconds` before trying again. */
export class RateLimitedError extends MedShareError {
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super('LIMIT', `too many attempts; retry after ${retryAfterSeconds} s`);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The object already exists (a username, a device id). Only administrators can trigger it. */
export class ConflictError extends MedShareError {
  constructor(message: string) {
    super('MALFORMED', message);
  }
}
