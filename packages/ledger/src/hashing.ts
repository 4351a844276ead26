/**
 * RFC 9162 §2.1.1 Merkle tree hashing with SHA-256: a leaf hash is SHA-256(0x00 || entry), an interior node
 * SHA-256(0x01 || left || right). The distinct prefixes give second-preimage resistance (a leaf can never be
 * passed off as an interior node). https://www.rfc-editor.org/rfc/rfc9162#section-2.1.1
 */
import { createHash } from 'node:crypto';

/** Bytes in a SHA-256 hash, the size of every node in the tree. */
export const HASH_SIZE = 32;

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** MTH({}): the hash of the empty tree, SHA-256 of the empty string. */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

/** The leaf hash of one log entry's bytes. */
export function hashLeaf(entry: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(entry).digest();
}

/** The hash of an interior node from its two children. */
export function hashChildren(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** The largest power of two strictly less than `n` (n ≥ 2), the split point of RFC 9162 §2.1.1. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
