/**
 * Numeric comparisons by bit decomposition (Bethencourt, Sahai, Waters, "Ciphertext-Policy Attribute-Based
 * Encryption", IEEE S&P 2007, §4.3). A key holding `level=5` holds one attribute per bit of 5 (32 bits);
 * `level >= 3` becomes a gate formula over "bit i of level is 1" leaves with at most 32 leaves.
 *
 *   GE(i): the bits i..0 of a are ≥ those of k     LT(i): the bits i..0 of a are < those of k
 *   k_i = 1: GE(i) = a_i=1 and GE(i-1)              k_i = 1: LT(i) = a_i=0 or LT(i-1)
 *   k_i = 0: GE(i) = a_i=1 or  GE(i-1)              k_i = 0: LT(i) = a_i=0 and LT(i-1)
 *
 * starting at the lowest set bit i0 of k, where GE(i0) = (a_i0 = 1) and LT(i0) = (a_i0 = 0).
 */
import { PolicySyntaxError } from '../errors.ts';
import { INTEGER_BITS, MAX_INTEGER, type BitAttribute, type ComparisonNode, type ExpandedNode, type PolicyNode } from './ast.ts';

const bit = (name: string, i: number, set: boolean): ExpandedNode => ({
  kind: 'leaf',
  attribute: { kind: 'bit', name, bit: i, set } satisfies BitAttribute,
});

const and = (a: ExpandedNode, b: ExpandedNode): ExpandedNode => join(2, a, b);
const or = (a: ExpandedNode, b: ExpandedNode): ExpandedNode => join(1, a, b);

/** A binary gate, merged into its right operand when that is a gate of the same kind. */
function join(threshold: 1 | 2, a: ExpandedNode, b: ExpandedNode): ExpandedNode {
  const sameKind = b.kind === 'gate' && (threshold === 1 ? b.threshold === 1 : b.threshold === b.children.length);
  const children = sameKind ? [a, ...b.children] : [a, b];
  return { kind: 'gate', threshold: threshold === 1 ? 1 : children.length, children };
}

function lowestSetBit(k: number): number {
  let i = 0;
  while (((k >>> i) & 1) === 0) i++;
  return i;
}

/** a ≥ k, for 1 ≤ k ≤ MAX_INTEGER. */
function atLeast(name: string, k: number): ExpandedNode {
  const i0 = lowestSetBit(k);
  let node = bit(name, i0, true);
  for (let i = i0 + 1; i < INTEGER_BITS; i++) node = ((k >>> i) & 1) === 1 ? and(bit(name, i, true), node) : or(bit(name, i, true), node);
  return node;
}

/** a < k, for 1 ≤ k ≤ MAX_INTEGER. */
function lessThan(name: string, k: number): ExpandedNode {
  const i0 = lowestSetBit(k);
  let node = bit(name, i0, false);
  for (let i = i0 + 1; i < INTEGER_BITS; i++) node = ((k >>> i) & 1) === 1 ? or(bit(name, i, false), node) : and(bit(name, i, false), node);
  return node;
}

/** "The key has some value for `name`": bit 0 is either 0 or 1. Used where a comparison is always true. */
function present(name: string): ExpandedNode {
  return or(bit(name, 0, false), bit(name, 0, true));
}

/** The bit formula for one comparison; an unsatisfiable comparison is rejected, not silently kept. */
export function expandComparison(node: ComparisonNode): ExpandedNode {
  const { name, op, value } = node;
  const never = () => {
    throw new PolicySyntaxError(`comparison '${name} ${op} ${value}' can never be satisfied (integers are 0 to ${MAX_INTEGER})`, 0);
  };
  switch (op) {
    case '>=':
      return value === 0 ? present(name) : atLeast(name, value);
    case '>':
      return value === MAX_INTEGER ? never() : atLeast(name, value + 1);
    case '<':
      return value === 0 ? never() : lessThan(name, value);
    case '<=':
      return value === MAX_INTEGER ? present(name) : lessThan(name, value + 1);
    case '==': {
      let node = bit(name, INTEGER_BITS - 1, ((value >>> (INTEGER_BITS - 1)) & 1) === 1);
      for (let i = INTEGER_BITS - 2; i >= 0; i--) node = and(bit(name, i, ((value >>> i) & 1) === 1), node);
      return node;
    }
  }
}

/** The bit attributes a key holds for `name = value`. */
export function integerBits(name: string, value: number): BitAttribute[] {
  return Array.from({ length: INTEGER_BITS }, (_, i) => ({ kind: 'bit', name, bit: i, set: ((value >>> i) & 1) === 1 }));
}

/** Replaces every comparison in the tree by its bit formula. */
export function expandComparisons(node: PolicyNode): ExpandedNode {
  switch (node.kind) {
    case 'leaf':
      return node;
    case 'compare':
      return expandComparison(node);
    case 'gate':
      return { kind: 'gate', threshold: node.threshold, children: node.children.map(expandComparisons) };
  }
}
