/**
 * Typed errors shared by every MedShare package. Each carries a stable `code` so callers
 * (the CLI's exit codes, the server's problem+json types) can branch without string matching.
 * Messages name the problem and never include secret material.
 */

/** Stable machine-readable error codes. */
export type ErrorCode =
  | 'MALFORMED' // input is not a well-formed object of the expected kind
  | 'UNSUPPORTED' // a well-formed object of a version, scheme or curve this build does not handle
  | 'LIMIT' // input exceeds a configured bound (policy size, attribute count, length)
  | 'POLICY_SYNTAX' // the policy or attribute text does not parse
  | 'ACCESS_DENIED' // the key's attributes do not satisfy the policy, or the key is for something else
  | 'INTEGRITY' // authenticated data failed verification: tampered or corrupted
  | 'UNAUTHENTICATED' // no usable credential: missing, expired or not verifiable
  | 'NOT_FOUND' // the named object does not exist (or is not visible to the caller)
  | 'CONFLICT' // the request contradicts the current state (a duplicate, a stale epoch, a lost race)
  | 'RATE_LIMITED' // too many attempts; try again later
  | 'UNAVAILABLE'; // a dependency (database, remote service) is down or timed out; safe to retry later

/** Base class of all MedShare errors. */
export class MedShareError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Input is not a well-formed object of the expected kind. */
export class MalformedInputError extends MedShareError {
  constructor(message: string) {
    super('MALFORMED', message);
  }
}

/** A well-formed object whose version, scheme or curve this build does not support. */
export class UnsupportedError extends MedShareError {
  constructor(message: string) {
    super('UNSUPPORTED', message);
  }
}

/** Input exceeds a configured bound; refused before any work proportional to it is done. */
export class LimitExceededError extends MedShareError {
  constructor(message: string) {
    super('LIMIT', message);
  }
}

/** Policy or attribute text that does not parse; `position` is a 0-based character offset. */
export class PolicySyntaxError extends MedShareError {
  readonly position: number;
  constructor(message: string, position: number) {
    super('POLICY_SYNTAX', `${message} at position ${position}`);
    this.position = position;
  }
}

/** The key's attributes do not satisfy the ciphertext's policy (or the key belongs elsewhere). */
export class AccessDeniedError extends MedShareError {
  constructor(message: string) {
    super('ACCESS_DENIED', message);
  }
}

/** Authenticated data failed verification: the object was tampered with or corrupted. */
export class IntegrityError extends MedShareError {
  constructor(message: string) {
    super('INTEGRITY', message);
  }
}

/** The request carries no usable credential (missing, expired, not verifiable). */
export class UnauthenticatedError extends MedShareError {
  constructor(message: string) {
    super('UNAUTHENTICATED', message);
  }
}

/** The named object does not exist, or is not visible to the caller. */
export class NotFoundError extends MedShareError {
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}

/** The request contradicts the current state: a duplicate, a stale or backwards epoch, a lost race. */
export class ConflictError extends MedShareError {
  constructor(message: string) {
    super('CONFLICT', message);
  }
}

/** Too many attempts; `retryAfterSeconds` says when to try again (rounded, never another account's exact unlock time). */
export class RateLimitedError extends MedShareError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    super('RATE_LIMITED', message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** A dependency (database, remote service) is down or timed out; the same request may succeed later. */
export class UnavailableError extends MedShareError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds = 5) {
    super('UNAVAILABLE', message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}
