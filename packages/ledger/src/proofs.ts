/**
 * Offline verification of RFC 9162 proofs: inclusion (§2.1.3.2) and consistency (§2.1.4.2), exactly the
 * published algorithms. Sizes may exceed 2^32, so the bit steps use arithmetic (x % 2, floor(x / 2)) rather than
 * JS 32-bit bitwise operators. https://www.rfc-editor.org/rfc/rfc9162#section-2.1.3.2
 */
import { timingSafeEqual } from 'node:crypto';
import { EMPTY_ROOT, HASH_SIZE, hashChildren } from './hashing.ts';
import { MAX_TREE_SIZE } from './tree.ts';

const isOdd = (x: number): boolean => x % 2 === 1;
const half = (x: number): number => Math.floor(x / 2);
const sameHash = (a: Uint8Array, b: Uint8Array): boolean => a.length === HASH_SIZE && b.length === HASH_SIZE && timingSafeEqual(a, b);
const wellFormed = (proof: readonly Uint8Array[]): boolean => proof.length <= 64 && proof.every((hash) => hash.length === HASH_SIZE);
const validSize = (n: number): boolean => Number.isSafeInteger(n) && n >= 0 && n <= MAX_TREE_SIZE;

/** True when `proof` shows the leaf with hash `leafHash` at `index` in the tree of `size` leaves with `root`. */
export function verifyInclusion(leafHash: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!validSize(size) || !Number.isSafeInteger(index) || index < 0 || index >= size || !wellFormed(proof)) return false;
  let fn = index;
  let sn = size - 1;
  let r: Uint8Array = leafHash;
  for (const p of proof) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      r = hashChildren(p, r);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = hashChildren(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && sameHash(r, root);
}

/** True when `proof` shows the tree (`first`, `firstRoot`) is a prefix of the tree (`second`, `secondRoot`). */
export function verifyConsistency(first: number, second: number, proof: readonly Uint8Array[], firstRoot: Uint8Array, secondRoot: Uint8Array): boolean {
  if (!validSize(first) || !validSize(second) || first > second || !wellFormed(proof)) return false;
  if (first === second) return proof.length === 0 && sameHash(firstRoot, secondRoot);
  // Every tree extends the empty tree; RFC 9162 leaves size 0 out, we accept it with an empty proof.
  if (first === 0) return proof.length === 0 && sameHash(firstRoot, EMPTY_ROOT);
  if (proof.length === 0) return false;
  const path = Number.isInteger(Math.log2(first)) ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr: Uint8Array = path[0]!;
  let sr: Uint8Array = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = hashChildren(c, fr);
      sr = hashChildren(c, sr);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = hashChildren(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && sameHash(fr, firstRoot) && sameHash(sr, secondRoot);
}
