/** @medshare/ledger: the tamper-evident audit ledger (RFC 9162 log, C2SP checkpoints, witnesses, EVM anchoring). */
export { hashLeaf, hashChildren, EMPTY_ROOT } from './hashing.ts';
export { MerkleTree } from './tree.ts';
export { verifyInclusion, verifyConsistency } from './proofs.ts';
export {
  buildAuditEvent,
  canonicalBytes,
  parseEntry,
  EVENT_TYPES,
  EMERGENCY_REASONS,
  STATS_ROLES,
  type AuditEvent,
  type StatsEventDetail,
  type AuditEventInput,
  type AuditEventType,
  storageCommitmentOf,
  type StorageCommitment,
  type StorageAuditDetail,
} from './entry.ts';
export { generateCheckpointKey, parseSignerKey, parseVerifierKey, type CheckpointKeyType, type CheckpointSigner, type CheckpointVerifier } from './keys.ts';
export { loadChainKey, loadNoteSigner, type NoteSignerOptions } from './signing-key.ts';
export { formatCheckpoint, parseCheckpoint, parseNote, formatNote, signNote, type Checkpoint, type NoteSignature } from './note.ts';
export { AuditLog, type AppendResult, type StoredEntry, type BatchOptions, type LogOptions, type LedgerHealth } from './log.ts';
export { CheckpointFile, type TrustedCheckpoint } from './trusted.ts';
export {
  Witness,
  type WitnessOptions,
  collectCosignatures,
  findFork,
  verifyCheckpointNote,
  type VerifiedCheckpoint,
  type AddCheckpointRequest,
} from './witness.ts';
export { HttpCosigner, formatAddCheckpoint, parseAddCheckpoint, cosignatureFrom, type Cosigner } from './cosigner.ts';
export { witnessPlugin, type WitnessPluginOptions } from './witness-http.ts';
export { ledgerRoutesPlugin, MAX_ENTRIES_PER_PAGE, type LedgerRoutesOptions } from './http.ts';
export { LedgerClient, verifyRemoteLog, verifyRemoteLogEntries, fetchVerifiedEntries } from './remote.ts';
export { verifyLog, cosignersOf, defaultQuorum, type TrustPolicy, type VerifyReport, type Fault } from './verify.ts';
export { buildInclusionBundle, buildWitnessedBundles, verifyInclusionBundle, type InclusionBundle } from './bundle.ts';
export { ChainCallError, ForkDetectedError, WitnessConflictError } from './errors.ts';
export { AnchorClient, anchorClientFromEnv, originHash, checkpointHash, type AnchorReceipt, type ConsentRecord, type LogRegistration } from './anchor.ts';
export {
  HttpChainCosigner,
  chainAddressOf,
  parseChainAddress,
  chainCosignatureDigest,
  checkChainCosignature,
  checkpointBodyHash,
  CHAIN_COSIGNATURE_PREFIX,
  type ChainCosigner,
} from './chain-cosign.ts';
export { compileAnchorContract, loadAnchorArtifact, formatArtifact, type ContractArtifact } from './contract.ts';
