/**
 * What a tag binds and how one ciphertext is tagged (docs/crypto.md, "Proofs of storage"): pure computation, shared
 * by the hospital's tagger (tagger.ts) and its gateway's encryption workers (cloud/conversion-pool.ts), which tag
 * each ciphertext in the thread that encrypted it.
 */
import { createHash } from 'node:crypto';
import { por } from '@medshare/crypto';

/** The file name tags bind: the 32 bytes of SHA-256(ciphertext), the ledger's name for the record. */
export function storageName(ciphertext: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(ciphertext).digest());
}

/** The encoded tag set of one ciphertext (one hash to G1, s multiply-adds in Z_r and one two-term multi-exponentiation per block). */
export function tagCiphertext(key: por.PorSecretKey, ciphertext: Uint8Array, sectors: number): Uint8Array {
  return por.encodeTagSet(por.tagFile(key, storageName(ciphertext), ciphertext, sectors));
}

/** A record's tag set as uploaded, still encoded, with the file name it binds and the ciphertext. */
export interface UploadedTags {
  readonly name: Uint8Array;
  readonly data: Uint8Array;
  readonly tags: Uint8Array;
}

/** Owners' public keys decoded (proof of possession checked), by their encoding, bounded. */
export class PublicKeyCache {
  private readonly keys = new Map<string, por.PorPublicKey>();

  constructor(private readonly max = 1_000) {}

  /** @throws as por.decodePublicKey. */
  get(bytes: Uint8Array): por.PorPublicKey {
    const hex = Buffer.from(bytes).toString('hex');
    let key = this.keys.get(hex);
    if (key === undefined) {
      key = por.decodePublicKey(bytes);
      if (this.keys.size >= this.max) this.keys.delete(this.keys.keys().next().value!);
      this.keys.set(hex, key);
    }
    return key;
  }
}

/**
 * Decodes every tag set (each tag's subgroup check included) and checks them all against their files in one
 * randomised test (por.verifyTagSets: the Bellare–Garay–Rabin small-exponents batch test).
 * @throws MalformedInputError, UnsupportedError, LimitExceededError for a tag set that does not decode.
 */
export function verifyUploadedTags(key: por.PorPublicKey, files: readonly UploadedTags[]): boolean {
  return por.verifyTagSets(
    key,
    files.map((f) => ({ name: f.name, data: f.data, tags: por.decodeTagSet(f.tags) })),
  );
}

/** Where the cloud checks an upload's tag sets of one owner: in its own thread, or split across its worker pool. */
export interface TagChecker {
  /** True only if every tag set matches its file under the key (a false true with probability ≤ 2^-128 per part). @throws as verifyUploadedTags. */
  verify(publicKey: Uint8Array, files: readonly UploadedTags[]): Promise<boolean>;
}

/** The checks in the calling thread (a cloud without workers). */
export class InThreadTagChecker implements TagChecker {
  private readonly keys = new PublicKeyCache();

  async verify(publicKey: Uint8Array, files: readonly UploadedTags[]): Promise<boolean> {
    return verifyUploadedTags(this.keys.get(publicKey), files);
  }
}
