/**
 * An append-only Merkle tree (RFC 9162 §2.1) that produces roots, inclusion proofs (§2.1.3.1) and consistency
 * proofs (§2.1.4.1) for the current size and for every earlier size.
 *
 * Storage: every perfect, aligned subtree hash is kept, level by level (level l, index i covers leaves
 * [i·2^l, (i+1)·2^l)). Perfect subtrees never change once complete, so any subtree that RFC 9162's recursion
 * asks for is composed of at most O(log n) stored hashes, and proofs cost O(log² n) hashing at worst. Each level
 * is one growable byte array (32 bytes a node) rather than one object a node: 10^6 leaves take ~64 MB.
 */
import { IntegrityError, LimitExceededError, MalformedInputError } from '@medshare/crypto';
import { EMPTY_ROOT, HASH_SIZE, hashChildren, splitPoint } from './hashing.ts';

/** The largest tree this implementation handles (indices stay exact JS integers). */
export const MAX_TREE_SIZE = 2 ** 40;

/** Hashes per persisted chunk of a level (log.ts stores each level as rows of up to this many hashes). */
export const CHUNK_HASHES = 1024;

/** One persisted piece of a level: hashes [chunk·CHUNK_HASHES, …) of `level`, back to back. */
export interface TreeChunk {
  level: number;
  chunk: number;
  hashes: Uint8Array;
}

/** One level of the tree: `count` hashes stored back to back. */
class HashLevel {
  private bytes: Uint8Array = new Uint8Array(HASH_SIZE * 16);
  count = 0;

  /** A level holding exactly `hashes` (32 bytes each). */
  static of(hashes: Uint8Array): HashLevel {
    const level = new HashLevel();
    level.bytes = hashes;
    level.count = hashes.length / HASH_SIZE;
    return level;
  }

  /** The bytes of hashes [start, end). */
  range(start: number, end: number): Uint8Array {
    return this.bytes.subarray(start * HASH_SIZE, end * HASH_SIZE);
  }

  push(hash: Uint8Array): void {
    if ((this.count + 1) * HASH_SIZE > this.bytes.length) {
      const grown = new Uint8Array(Math.max(HASH_SIZE * 16, this.bytes.length * 2));
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
  private levels: HashLevel[] = [new HashLevel()];

  /**
   * A tree from its persisted chunks (see `chunksSince`), in any order. Only the shape is checked here — chunks
   * contiguous and full but the last, level l holding ⌊n / 2^l⌋ hashes — not the hashes: the caller checks the
   * root against a signed checkpoint (log.ts), and the full audit recomputes everything.
   * @throws IntegrityError for chunks that do not form a tree.
   */
  static fromChunks(chunks: readonly TreeChunk[]): MerkleTree {
    const byLevel: TreeChunk[][] = [];
    for (const chunk of chunks) (byLevel[chunk.level] ??= []).push(chunk);
    const tree = new MerkleTree();
    if (byLevel.length === 0) return tree;
    const levels: HashLevel[] = [];
    for (let level = 0; level < byLevel.length; level++) {
      const parts = (byLevel[level] ?? []).sort((a, b) => a.chunk - b.chunk);
      parts.forEach((part, i) => {
        const full = part.hashes.length === CHUNK_HASHES * HASH_SIZE;
        if (part.chunk !== i || part.hashes.length === 0 || part.hashes.length % HASH_SIZE !== 0 || (!full && i !== parts.length - 1)) {
          throw new IntegrityError(`the stored tree's level ${level} is not contiguous at chunk ${part.chunk}`);
        }
      });
      const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.hashes.length, 0));
      let offset = 0;
      for (const part of parts) {
        bytes.set(part.hashes, offset);
        offset += part.hashes.length;
      }
      levels.push(HashLevel.of(bytes));
    }
    const size = levels[0]!.count;
    if (size > MAX_TREE_SIZE) throw new IntegrityError('the stored tree is too large');
    levels.forEach((level, l) => {
      if (level.count !== Math.floor(size / 2 ** l))
        throw new IntegrityError(`the stored tree's level ${l} has ${level.count} nodes, ${Math.floor(size / 2 ** l)} expected`);
    });
    // append() keeps one level above the last complete pair only while it is being filled.
    if (Math.floor(size / 2 ** levels.length) !== 0) throw new IntegrityError('the stored tree lacks its top levels');
    tree.levels = levels;
    return tree;
  }

  /** The chunks (level, index, hashes so far) that changed since the tree had `oldSize` leaves: what to persist. */
  chunksSince(oldSize: number): TreeChunk[] {
    const changed: TreeChunk[] = [];
    this.levels.forEach((nodes, level) => {
      const before = Math.floor(oldSize / 2 ** level);
      if (nodes.count === before) return;
      for (let chunk = Math.floor(before / CHUNK_HASHES); chunk * CHUNK_HASHES < nodes.count; chunk++) {
        changed.push({ level, chunk, hashes: nodes.range(chunk * CHUNK_HASHES, Math.min(nodes.count, (chunk + 1) * CHUNK_HASHES)) });
      }
    });
    return changed;
  }

  /**
   * The first node (level, index) where this tree and `other` differ, over the nodes both hold; undefined when
   * one is a prefix of the other.
   */
  firstDifference(other: MerkleTree): { level: number; index: number } | undefined {
    for (let level = 0; level < Math.min(this.levels.length, other.levels.length); level++) {
      const count = Math.min(this.levels[level]!.count, other.levels[level]!.count);
      const a = this.levels[level]!.range(0, count);
      const b = other.levels[level]!.range(0, count);
      if (Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))) continue;
      for (let index = 0; index < count; index++) {
        if (!this.levels[level]!.get(index).equals(other.levels[level]!.get(index))) return { level, index };
      }
    }
    return undefined;
  }

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
