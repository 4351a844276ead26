/**
 * Utility and risk of a release, before and after anonymization.
 * - NCP / GCP (Xu et al., "Utility-based anonymization", KDD 2006): per record and QI, a numeric
 *   range costs (max-min)/(column range) and a hierarchy node costs leaves(node)/leaves(root)
 *   (0 for a leaf); GCP is their mean over records and QIs, in percent.
 * - Discernibility (Bayardo & Agrawal, ICDE 2005): the sum of squared class sizes.
 * - Average class size metric C_avg = (n / #classes) / k (LeFevre et al. 2006).
 * - Prosecutor re-identification risk (El Emam): highest 1/|class| and the mean, #classes/n;
 *   the share of records that are unique on their QIs.
 * Suppressed records count as fully generalised (NCP 1 on every QI) and cost n each in the
 * discernibility metric, as Bayardo & Agrawal define it; risks are over the published records.
 */
import type { EncodedTable } from './encoding.ts';
import type { EquivalenceClass } from './mondrian.ts';
import type { HierarchyNode } from './hierarchy.ts';

export interface Metrics {
  records: number;
  suppressedRecords: number;
  classes: number;
  /** Normalised certainty penalty, percent (0 = original values). */
  ncpPercent: number;
  /** NCP of each QI alone, percent, in the order of the QIs (the per-attribute loss). */
  attributeNcpPercent: number[];
  discernibility: number;
  averageClassSize: number;
  /** C_avg for the given k. */
  normalisedAverageClassSize: number;
  highestProsecutorRisk: number;
  averageProsecutorRisk: number;
  uniqueRecordShare: number;
}

/** Metrics of a partition of the table into equivalence classes. */
export function measure(data: EncodedTable, classes: EquivalenceClass[], k: number, suppressedRecords = 0): Metrics {
  const n = data.n;
  const published = n - suppressedRecords;
  const d = data.ranges.length;
  const perAttribute = new Array<number>(d).fill(suppressedRecords);
  let discernibility = suppressedRecords * n;
  let smallest = Infinity;
  let uniques = 0;
  for (const cls of classes) {
    const size = cls.records.length;
    cls.bounds.forEach((bound, q) => (perAttribute[q] = (perAttribute[q] ?? 0) + size * certaintyPenalty(bound, data.ranges[q] ?? 0)));
    discernibility += size * size;
    smallest = Math.min(smallest, size);
    if (size === 1) uniques++;
  }
  const penalty = perAttribute.reduce((a, b) => a + b, 0);
  return {
    records: n,
    suppressedRecords,
    classes: classes.length,
    ncpPercent: n === 0 || d === 0 ? 0 : (100 * penalty) / (n * d),
    attributeNcpPercent: perAttribute.map((p) => (n === 0 ? 0 : (100 * p) / n)),
    discernibility,
    averageClassSize: classes.length === 0 ? 0 : published / classes.length,
    normalisedAverageClassSize: classes.length === 0 ? 0 : published / classes.length / k,
    highestProsecutorRisk: classes.length === 0 ? 0 : 1 / smallest,
    averageProsecutorRisk: published === 0 ? 0 : classes.length / published,
    uniqueRecordShare: published === 0 ? 0 : uniques / published,
  };
}

function certaintyPenalty(bound: [number, number] | HierarchyNode, range: number): number {
  if (Array.isArray(bound)) return range === 0 ? 0 : (bound[1] - bound[0]) / range;
  return bound.children.length === 0 ? 0 : bound.leafCount / range;
}

/** The original table's equivalence classes: records grouped by identical QI values. */
export function originalClasses(data: EncodedTable): EquivalenceClass[] {
  const groups = new Map<string, number[]>();
  for (let r = 0; r < data.n; r++) {
    const key = data.numeric.map((values, q) => (values ? String(values[r]) : (data.paths[q]?.[r]?.at(-1)?.label ?? ''))).join('\u0000');
    const group = groups.get(key);
    if (group) group.push(r);
    else groups.set(key, [r]);
  }
  return [...groups.values()].map((records) => {
    const r = records[0] ?? 0;
    return {
      records,
      bounds: data.numeric.map((values, q) => (values ? ([values[r], values[r]] as [number, number]) : (data.paths[q]?.[r]?.at(-1) as HierarchyNode))),
    };
  });
}
