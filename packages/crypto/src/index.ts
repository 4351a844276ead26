/**
 * @medshare/crypto — MedShare's cryptography. Pure computation: no files, no network, no clocks.
 *
 *   abe      CP-ABE (FAME) with hybrid STREAM payloads and versioned encodings
 *   policy   the policy language (parse, format, span programs)
 *   curve    the BLS12-381 layer over mcl-wasm
 *   por      proofs of storage from KZG polynomial commitments (Ethereum ceremony SRS) for auditing the cloud
 *   sse      searchable encryption (Mitra, per-writer sub-indexes)
 *   threshold  threshold exponential ElGamal (DKG, proofs of partial decryption) for cross-hospital statistics
 */
export * from './errors.ts';
export * as abe from './abe.ts';
export * as pre from './pre.ts';
export * as curve from './curve/bls12381.ts';
export * as threshold from './threshold.ts';
export * as por from './por/kzg.ts';
export * as sse from './sse/index.ts';
export { parsePolicy, parseAttributes, DEFAULT_POLICY_LIMITS, type PolicyLimits, type KeyAttribute } from './policy/parser.ts';
export { formatPolicy, type PolicyNode, type Attribute } from './policy/ast.ts';
export { armor, dearmor, detectType } from './encoding/armor.ts';
export { ObjectType, SchemeId, typeName, envelopeLength, formatVersion } from './encoding/envelope.ts';
export { PayloadSealer, PayloadOpener, CHUNK_BYTES, SEALED_CHUNK_BYTES } from './hybrid/stream.ts';
