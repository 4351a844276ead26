/**
 * Identity's error kinds are the shared taxonomy's (one set of codes across packages, mapped to HTTP and exit
 * codes in one place each); re-exported so identity callers keep one import.
 */
export { ConflictError, RateLimitedError } from '@medshare/crypto';
