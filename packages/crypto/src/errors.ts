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
  | 'INTEGRITY'; // authenticated data failed verification: tampered or corrupted

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
