/**
 * How one ciphertext is tagged and how the cloud checks an upload's tags (docs/crypto.md §13, "Proofs of storage"):
 * pure computation over KZG chunk commitments (A. Kate, G. M. Zaverucha and I. Goldberg, ASIACRYPT 2010; por in
 * @medshare/crypto), shared by the hospital's tagger (tagger.ts), its gateway's encryption workers and the cloud's
 * worker pool (cloud/conversion-pool.ts).
 */
import { por } from '@medshare/crypto';

/**
 * The encoded tag set of one ciphertext: the KZG commitment of each chunk of `chunkSectors` 31-byte sectors (one
 * multi-exponentiation over the SRS per chunk). @throws MalformedInputError (chunk size), LimitExceededError.
 */
export function tagCiphertext(ciphertext: Uint8Array, chunkSectors: number = por.DEFAULT_CHUNK_SECTORS): Uint8Array {
  return por.encodeTagSet(por.commitChunks(ciphertext, chunkSectors));
}

/** A record's tag set as uploaded, still encoded, with the ciphertext it commits to. */
export interface UploadedTags {
  readonly data: Uint8Array;
  readonly tags: Uint8Array;
}

/**
 * Decodes every tag set (each commitment's subgroup check included: once, at upload) and checks them all against
 * their ciphertexts in one randomised equation (por.verifyTagSets: 128-bit weights, error 2^-128).
 * @throws MalformedInputError, UnsupportedError, LimitExceededError for a tag set that does not decode.
 */
export function verifyUploadedTags(files: readonly UploadedTags[]): boolean {
  return por.verifyTagSets(files.map((f) => ({ data: f.data, tags: por.decodeTagSet(f.tags) })));
}

/** Where the cloud checks an upload's tag sets: in its own thread, or split across its worker pool. */
export interface TagChecker {
  /** True only if every tag set matches its ciphertext (a false true with probability ≤ 2^-128 per part). @throws as verifyUploadedTags. */
  verify(files: readonly UploadedTags[]): Promise<boolean>;
}

/** The checks in the calling thread (a cloud without workers). */
export class InThreadTagChecker implements TagChecker {
  async verify(files: readonly UploadedTags[]): Promise<boolean> {
    return verifyUploadedTags(files);
  }
}
