/**
 * `@medshare/db` in the browser bundle: the ledger's proof modules import it for their server-side paths
 * (migrations), which the portal never runs. Calling it is a bug, so it throws.
 */
export function migrate(): never {
  throw new Error('no database in the browser');
}
