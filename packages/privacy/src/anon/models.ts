/**
 * Privacy models checked on every equivalence class (a group of records with the same
 * generalised quasi-identifiers):
 * - k-anonymity (Sweeney 2002): every class has at least k records;
 * - l-diversity (Machanavajjhala et al., ICDE 2006): distinct (at least l distinct sensitive
 *   values), entropy (entropy of the sensitive values at least log l) and recursive (c,l)
 *   (r1 < c * (r_l + ... + r_m) with r_i the i-th largest frequency);
 * - t-closeness (Li, Li, Venkatasubramanian, ICDE 2007): the Earth Mover's Distance between the
 *   class's sensitive distribution and the whole table's is at most t; ordered distance for
 *   numeric attributes, equal distance (half the L1 distance) for categorical ones.
 */
import { MalformedInputError } from '@medshare/crypto';

export type LDiversity = { kind: 'distinct'; l: number } | { kind: 'entropy'; l: number } | { kind: 'recursive'; l: number; c: number };

export interface PrivacyModel {
  k: number;
  l?: LDiversity;
  t?: number;
}

/** Validates a privacy model's parameters. */
export function checkModel(model: PrivacyModel): void {
  if (!Number.isInteger(model.k) || model.k < 1) throw new MalformedInputError('k must be a positive integer');
  if (model.l && (!(model.l.l >= 1) || (model.l.kind === 'recursive' && !(model.l.c > 0)))) throw new MalformedInputError('l must be >= 1 (and c > 0 for recursive l-diversity)');
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
