/**
 * Privacy models checked on every equivalence class (a group of records with the same
 * generalised quasi-identifiers):
 * - k-anonymity (Sweeney 2002): every class has at least k records;
 * - l-diversity (Machanavajjhala et al., ICDE 2006): distinct (at least l distinct sensitive
 *   values), entropy (entropy of the sensitive values at least log l) and recursive (c,l)
 *   (r1 < c * (r_l + ... + r_m) with r_i the i-th largest frequency);
 * - t-closeness (Li, Li, Venkatasubramanian, "t-Closeness: Privacy Beyond k-Anonymity and
 *   l-Diversity", ICDE 2007): the Earth Mover's Distance between the class's sensitive
 *   distribution and the whole table's is at most t. Section 4.2 of the paper gives the three
 *   ground distances used here: ordered distance for numeric attributes, hierarchical distance
 *   for categorical attributes with a generalisation hierarchy, and equal distance (half the L1
 *   distance, a one-level hierarchy) for categorical attributes without one.
 */
import { MalformedInputError } from '@medshare/crypto';
import type { Hierarchy, HierarchyNode } from './hierarchy.ts';

export type LDiversity = { kind: 'distinct'; l: number } | { kind: 'entropy'; l: number } | { kind: 'recursive'; l: number; c: number };

export interface PrivacyModel {
  k: number;
  l?: LDiversity;
  t?: number;
}

/** Validates a privacy model's parameters. */
export function checkModel(model: PrivacyModel): void {
  if (!Number.isInteger(model.k) || model.k < 1) throw new MalformedInputError('k must be a positive integer');
  if (model.l && (!(model.l.l >= 1) || (model.l.kind === 'recursive' && !(model.l.c > 0))))
    throw new MalformedInputError('l must be >= 1 (and c > 0 for recursive l-diversity)');
  if (model.t !== undefined && !(model.t >= 0 && model.t <= 1)) throw new MalformedInputError('t must be within [0, 1]');
}

/** Counts of each sensitive value (as a dense index) in a class. */
export function histogram(sensitive: Int32Array, records: number[], domain: number): Float64Array {
  const counts = new Float64Array(domain);
  for (const r of records) counts[sensitive[r] as number]! += 1;
  return counts;
}

/** True when a class satisfies l-diversity of the given kind. */
export function isLDiverse(counts: Float64Array, size: number, model: LDiversity): boolean {
  const nonzero = [...counts].filter((c) => c > 0).sort((a, b) => b - a);
  switch (model.kind) {
    case 'distinct':
      return nonzero.length >= model.l;
    case 'entropy': {
      const entropy = -nonzero.reduce((sum, c) => sum + (c / size) * Math.log(c / size), 0);
      return entropy >= Math.log(model.l) - 1e-12;
    }
    case 'recursive': {
      if (nonzero.length < model.l) return false;
      const tail = nonzero.slice(model.l - 1).reduce((a, b) => a + b, 0);
      return (nonzero[0] ?? 0) < model.c * tail;
    }
  }
}

/**
 * Earth Mover's Distance between a class distribution and the table's. With `ordered`, values
 * are ranked (their index order) and the ground distance is |i-j|/(m-1); otherwise all distinct
 * values are at distance 1.
 */
export function earthMoversDistance(counts: Float64Array, size: number, global: Float64Array, ordered: boolean): number {
  const m = global.length;
  if (!ordered) {
    let sum = 0;
    for (let i = 0; i < m; i++) sum += Math.abs((counts[i] ?? 0) / size - (global[i] ?? 0));
    return sum / 2;
  }
  if (m < 2) return 0;
  let cumulative = 0;
  let sum = 0;
  for (let i = 0; i < m - 1; i++) {
    cumulative += (counts[i] ?? 0) / size - (global[i] ?? 0);
    sum += Math.abs(cumulative);
  }
  return sum / (m - 1);
}

/**
 * The hierarchical Earth Mover's Distance of Li et al. (ICDE 2007, section 4.2): the ground
 * distance between two leaves is height(lowest common ancestor) / H, with H the hierarchy's
 * height, and the EMD is the sum over inner nodes N of height(N)/H * min(pos_extra(N), neg_extra(N)),
 * where the extras are the positive and negative surpluses (class minus table probability) that
 * N's children pass up. A one-level hierarchy gives the equal distance (half the L1 distance).
 */
export class HierarchicalDistance {
  /** Inner nodes, children before parents; each with the indices of its children in `nodes` or leaves. */
  private readonly inner: { weight: number; children: number[] }[] = [];
  /** Number of leaf slots (the domain): slot i is `domain[i]`. */
  private readonly leaves: number;
  private readonly extra: Float64Array;

  /**
   * @param hierarchy the sensitive attribute's hierarchy
   * @param domain the dense value index used by the histograms (value → slot)
   * @throws MalformedInputError when a domain value is not in the hierarchy
   */
  constructor(hierarchy: Hierarchy, domain: readonly string[]) {
    this.leaves = domain.length;
    const slot = new Map<HierarchyNode, number>();
    domain.forEach((value, i) => slot.set(hierarchy.path(value).at(-1) as HierarchyNode, i));
    const heights = new Map<HierarchyNode, number>();
    const height = (node: HierarchyNode): number => {
      let h = heights.get(node);
      if (h === undefined) {
        h = node.children.length === 0 ? 0 : 1 + Math.max(...node.children.map(height));
        heights.set(node, h);
      }
      return h;
    };
    const total = Math.max(height(hierarchy.root), 1);
    // Post-order: every inner node after its children, so one pass accumulates the extras bottom-up.
    let next = this.leaves;
    const visit = (node: HierarchyNode): number | undefined => {
      if (node.children.length === 0) return slot.get(node); // a leaf no record holds has no mass
      const children = node.children.map(visit).filter((c): c is number => c !== undefined);
      if (children.length === 0) return undefined;
      this.inner.push({ weight: height(node) / total, children });
      return next++;
    };
    visit(hierarchy.root);
    this.extra = new Float64Array(next);
  }

  /** EMD between a class's counts (over the domain slots, `size` records) and the table's probabilities. */
  distance(counts: Float64Array, size: number, global: Float64Array): number {
    const extra = this.extra;
    for (let i = 0; i < this.leaves; i++) extra[i] = (counts[i] ?? 0) / size - (global[i] ?? 0);
    let emd = 0;
    let at = this.leaves;
    for (const node of this.inner) {
      let positive = 0;
      let negative = 0;
      let sum = 0;
      for (const c of node.children) {
        const e = extra[c] as number;
        if (e > 0) positive += e;
        else negative -= e;
        sum += e;
      }
      emd += node.weight * Math.min(positive, negative);
      extra[at++] = sum;
    }
    return emd;
  }
}
