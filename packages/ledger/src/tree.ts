/**
 * An append-only Merkle tree (RFC 9162 §2.1) that produces roots, inclusion proofs (§2.1.3.1) and consistency
 * proofs (§2.1.4.1) for the current size and for every earlier size.
 *
 * Storage: every perfect, aligned subtree hash is kept, level by level (level l, index i covers leaves
 * [i·2^l, (i+1)·2^l)). Perfect subtrees never change once complete, so any subtree that RFC 9162's recursion
 * asks for is composed of at most O(log n) stored hashes, and proofs cost O(log² n) hashing at worst. Each level
 * is one growable byte array (32 bytes a node) rather than one object a node: 10^6 leaves take ~64 MB.
 */
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';
import { EMPTY_ROOT, HASH_SIZE, hashChildren, splitPoint } from './hashing.ts';

/** The largest tree this implementation handles (indices stay exact JS integers). */
export const MAX_TREE_SIZE = 2 ** 40;

/** One level of the tree: `count` hashes stored back to back. */
class HashLevel {
  private bytes = new Uint8Array(HASH_SIZE * 16);
  count = 0;

  push(hash: Uint8Array): void {
    if ((this.count + 1) * HASH_SIZE > this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    this.bytes.set(hash, this.count * HASH_SIZE);
    this.count += 1;
  }

  get(index: number): Buffer {
    return Buffer.from(this.bytes.subarray(index * HASH_SIZE, (index + 1) * HASH_SIZE));
  }
}

/** An in-memory RFC 9162 tree over leaf hashes, appended in order. */
export class MerkleTree {
  private readonly levels: HashLevel[] = [new HashLevel()];

  /** Number of leaves. */
  get size(): number {
    return this.levels[0]!.count;
  }

  /** Appends one leaf hash (see `hashLeaf`) and completes every perfect subtree it closes. */
  append(leafHash: Uint8Array): void {
    if (leafHash.length !== HASH_SIZE) throw new MalformedInputError('a leaf hash is 32 bytes');
    if (this.size >= MAX_TREE_SIZE) throw new LimitExceededError('the tree is full');
    let hash: Uint8Array = leafHash;
    let level = 0;
    for (;;) {
      const nodes = this.levels[level]!;
      nodes.push(hash);
      // An odd index closes a pair: its parent is complete.
      if (nodes.count % 2 !== 0) return;
      hash = hashChildren(nodes.get(nodes.count - 2), hash);
      level += 1;
      if (this.levels.length === level) this.levels.push(new HashLevel());
    }
  }

  /** The stored leaf hash at `index`. */
  leafHash(index: number): Buffer {
    this.checkIndex(index, this.size);
    return this.levels[0]!.get(index);
  }

  /** MTH(D[0:size]), the root hash of the tree when it had `size` leaves. */
  rootHash(size: number = this.size): Buffer {
    this.checkSize(size);
    return size === 0 ? Buffer.from(EMPTY_ROOT) : this.subtreeHash(0, size);
  }

  /** PATH(index, D[0:size]) of RFC 9162 §2.1.3.1: the audit path of one leaf, leaf-side first. */
  inclusionProof(index: number, size: number = this.size): Buffer[] {
    this.checkSize(size);
    this.checkIndex(index, size);
    let start = 0;
    let end = size;
    const path: Buffer[] = [];
    while (end - start > 1) {
      const k = splitPoint(end - start);
      if (index - start < k) {
        path.push(this.subtreeHash(start + k, end));
        end = start + k;
      } else {
        path.push(this.subtreeHash(start, start + k));
        start += k;
      }
    }
    // The recursion emits the root-side sibling first; the proof lists leaf-side first.
    return path.reverse();
  }

  /** PROOF(first, D[0:second]) of RFC 9162 §2.1.4.1: proves the tree of size `first` is a prefix of `second`. */
  consistencyProof(first: number, second: number = this.size): Buffer[] {
    this.checkSize(second);
    if (!Number.isSafeInteger(first) || first < 0 || first > second) {
      throw new MalformedInputError(`consistency proof sizes must satisfy 0 ≤ first ≤ second (${first}, ${second})`);
    }
    if (first === 0 || first === second) return [];
    const path: Buffer[] = [];
    let m = first;
    let start = 0;
    let end = second;
    let startsAtFirstRoot = true;
    // SUBPROOF(m, D[start:end], b), unrolled: each step adds one sibling, emitted root-side first.
    while (m !== end - start) {
      const k = splitPoint(end - start);
      if (m <= k) {
        path.push(this.subtreeHash(start + k, end));
        end = start + k;
      } else {
        path.push(this.subtreeHash(start, start + k));
        start += k;
        m -= k;
        startsAtFirstRoot = false;
      }
    }
    if (!startsAtFirstRoot) path.push(this.subtreeHash(start, end));
    return path.reverse();
  }

  /** MTH(D[start:end]) for a range produced by RFC 9162's recursion (every perfect part of it is aligned, so it is stored). */
  private subtreeHash(start: number, end: number): Buffer {
    const width = end - start;
    const level = Math.log2(width);
    if (Number.isInteger(level)) {
      return this.levels[level]!.get(start / width);
    }
    const k = splitPoint(width);
    return hashChildren(this.subtreeHash(start, start + k), this.subtreeHash(start + k, end));
  }

  private checkSize(size: number): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) {
      throw new MalformedInputError(`tree size ${size} is not between 0 and ${this.size}`);
    }
  }

  private checkIndex(index: number, size: number): void {
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new MalformedInputError(`leaf index ${index} is not in a tree of size ${size}`);
    }
  }
}
