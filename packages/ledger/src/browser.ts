/**
 * What a browser needs of the ledger (`@medshare/ledger/proofs`): checking an entry's inclusion bundle against
 * pinned keys, and parsing those keys. Nothing here touches a database or the network.
 */
export { verifyInclusionBundle, type InclusionBundle } from './bundle.ts';
export { parseVerifierKey, type CheckpointSigner, type CheckpointVerifier } from './keys.ts';
export type { AuditEvent } from './entry.ts';
