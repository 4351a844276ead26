import { MedShareError, type ErrorCode } from '@medshare/crypto';

/** Exit codes, the CLI's contract with scripts (see README). */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  denied: 3,
  integrity: 4,
  unavailable: 5,
} as const;

const EXIT_BY_CODE: Record<ErrorCode, number> = {
  MALFORMED: EXIT.usage,
  UNSUPPORTED: EXIT.usage,
  LIMIT: EXIT.usage,
  POLICY_SYNTAX: EXIT.usage,
  ACCESS_DENIED: EXIT.denied,
  INTEGRITY: EXIT.integrity,
  UNAUTHENTICATED: EXIT.denied,
  NOT_FOUND: EXIT.usage,
  CONFLICT: EXIT.usage,
  RATE_LIMITED: EXIT.failure,
  UNAVAILABLE: EXIT.unavailable,
};

/** A usage problem found by a command itself (a missing file, a bad option value). */
export class UsageError extends Error {}

/** Maps any thrown value to a one-line message and an exit code; never a stack trace. */
export function describeFailure(error: unknown): { message: string; exitCode: number } {
  if (error instanceof MedShareError) return { message: error.message, exitCode: EXIT_BY_CODE[error.code] };
  if (error instanceof UsageError) return { message: error.message, exitCode: EXIT.usage };
  const nodeError = error as NodeJS.ErrnoException;
  if (nodeError && typeof nodeError.code === 'string' && typeof nodeError.path === 'string') {
    const reason = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a directory', EEXIST: 'already exists' }[nodeError.code];
    return { message: `${nodeError.path}: ${reason ?? nodeError.code}`, exitCode: EXIT.usage };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { message: `unexpected error: ${message.split('\n')[0]}`, exitCode: EXIT.failure };
}
