/**
 * Threshold additively homomorphic encryption for cross-hospital statistics: exponential ElGamal over BLS12-381
 * G1 with a dealerless key (Gennaro–Jarecki–Krawczyk–Rabin DKG), t-of-n decryption with Chaum–Pedersen proofs
 * of every partial decryption, and baby-step giant-step decoding. See threshold/*.ts for the papers and
 * docs/crypto.md ("Threshold ElGamal for statistics") for the construction and its limits.
 */
export { checkParameters, keyIdOf, MAX_PARTICIPANTS, type KeyShare, type ThresholdParameters, type ThresholdPublicKey } from './threshold/keys.ts';
export {
  accusationsOf,
  accusedDealers,
  adoptedShare,
  complaintsOf,
  deal,
  dealingOf,
  dkgOutcome,
  evaluateCommitments,
  feldmanCommitments,
  pedersenGenerator,
  qualify,
  runDkg,
  shareOf,
  verifyDealtShare,
  verifyFeldmanShare,
  type DealerFault,
  type DealerSecret,
  type DealtShare,
  type DkgChannel,
  type DkgFault,
  type DkgResult,
  type DkgTranscript,
} from './threshold/dkg.ts';
export {
  addCiphertexts,
  combine,
  combineUnchecked,
  encrypt,
  partialDecrypt,
  verifyPartial,
  type Ciphertext,
  type Decryption,
  type PartialDecryption,
} from './threshold/elgamal.ts';
export { encryptInRange, rangeFailures, MAX_RANGE_BITS, type BitProof, type RangeProof } from './threshold/range.ts';
export { decodeSmall, DEFAULT_DECODE_BOUND, MAX_DECODE_BOUND } from './threshold/bsgs.ts';
export {
  decodeCiphertext,
  decodeKeyShare,
  decodePartial,
  decodePublicKey,
  decodeRangeProof,
  encodeCiphertext,
  encodeKeyShare,
  encodePartial,
  encodePublicKey,
  encodeRangeProof,
  keyFingerprint,
  MAX_CELLS,
  MAX_RANGE_PROOF_BITS,
} from './threshold/encoding.ts';
