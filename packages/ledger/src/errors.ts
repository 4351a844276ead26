/** Ledger-specific errors, subclasses of the platform's typed errors (see @medshare/crypto). */
import { ConflictError, MedShareError } from '@medshare/crypto';

/**
 * Two checkpoints of one log that cannot both be true: same size with different roots, or a consistency proof
 * between them that fails. Carries both signed notes as evidence for others to check.
 */
export class ForkDetectedError extends MedShareError {
  readonly evidence: readonly [string, string];
  constructor(message: string, evidence: readonly [string, string]) {
    super('INTEGRITY', message);
    this.evidence = evidence;
  }
}

/** A witness's view is at another size than the caller assumed (C2SP tlog-witness answers 409 Conflict). */
export class WitnessConflictError extends ConflictError {
  readonly witnessSize: number;
  constructor(witnessSize: number) {
    super(`the witness has already cosigned size ${witnessSize}`);
    this.witnessSize = witnessSize;
  }
}

/** A chain call that failed for a reason other than a known contract refusal (node unreachable, out of gas, ...). */
export class ChainCallError extends MedShareError {
  constructor(message: string) {
    super('UNSUPPORTED', message);
  }
}
