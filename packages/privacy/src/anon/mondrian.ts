/**
 * Mondrian multidimensional k-anonymity (LeFevre, DeWitt, Ramakrishnan, "Mondrian
 * Multidimensional K-Anonymity", ICDE 2006). Top-down greedy partitioning: split the partition
 * on the quasi-identifier with the widest normalised range, at the median (numeric) or along the
 * children of the current hierarchy node (categorical, as in the authors' follow-up and the
 * qiyuangong/Mondrian reference implementation), while every part still satisfies the privacy
 * model (k-anonymity plus optional l-diversity and t-closeness on the sensitive attribute).
 * - strict: records equal to the median all go left (partitions do not overlap);
 * - relaxed: records are sorted and cut in two halves, so the median value may fall on both sides.
 * Each final partition is published with its tight bounds (min-max of its own records).
 * Optional suppression (`maxSuppression`, a fraction of the rows): a categorical split whose
 * child groups are not all valid may still be made by suppressing (withholding) the records of
 * the invalid groups, while the budget lasts; suppressed rows are left out of the output.
 */
import { MalformedInputError } from '@medshare/crypto';
import type { Table } from './table.ts';
import type { HierarchyNode } from './hierarchy.ts';
import { checkOptions, countsCheck, encode, modelCheck, type AnonymizationOptions, type EncodedTable } from './encoding.ts';

export interface MondrianOptions extends AnonymizationOptions {
  mode?: 'strict' | 'relaxed';
  /** Largest share of rows that may be suppressed, in [0, 1); default 0. */
  maxSuppression?: number;
}

/** One equivalence class: its records and, per QI, the generalised bounds. */
export interface EquivalenceClass {
  records: number[];
  /**
   * Numeric QIs: [min, max]; categorical: the hierarchy node, or a `SiblingGroup` of some of a
   * node's children. Indexed like `quasiIdentifiers`.
   */
  bounds: ([number, number] | HierarchyNode)[];
}

/**
 * A generalisation to some of one node's children (a set-valued generalisation), made when
 * splitting along all the children is blocked by a child group too small for the model. It is a
 * node of its own: `depth` is its parent's (its records split along `children` next), `leafCount`
 * the leaves it covers, the label `{a,b}` (or `lo-hi` when the children are ranges such as ages).
 */
export interface SiblingGroup extends HierarchyNode {
  groupOf: HierarchyNode;
}

export interface MondrianResult {
  /** The generalised table: the input's rows in order, without suppressed rows. */
  table: Table;
  classes: EquivalenceClass[];
  /** Indices (in the input) of the suppressed rows. */
  suppressed: number[];
}

/** Runs Mondrian and returns the generalised table (same row order) and its equivalence classes. */
export function mondrian(table: Table, options: MondrianOptions): MondrianResult {
  checkOptions(options);
  const data = encode(table, options);
  const satisfies = modelCheck(data, options.model);
  const countsSatisfy = countsCheck(data, options.model);
  const all = [...Array(data.n).keys()];
  const maxSuppression = options.maxSuppression ?? 0;
  if (!(maxSuppression >= 0 && maxSuppression < 1)) throw new MalformedInputError('maxSuppression must be within [0, 1)');
  if (data.n === 0) return { table: { columns: table.columns, rows: [] }, classes: [], suppressed: [] };
  if (!satisfies(all)) throw new MalformedInputError(`the table (${data.n} rows) cannot satisfy the privacy model even as one class`);
  const classes: EquivalenceClass[] = [];
  const suppression = { budget: Math.floor(maxSuppression * data.n), records: [] as number[] };
  const stack: EquivalenceClass[] = [tighten({ records: all, bounds: [] }, data)];
  while (stack.length > 0) {
    const partition = stack.pop() as EquivalenceClass;
    const parts = splitOnce(partition, data, satisfies, countsSatisfy, options.mode ?? 'strict', suppression, options.model.k);
    if (parts) {
      for (const part of parts) {
        const bounds = part.group ? partition.bounds.map((bound, q) => (q === part.group?.q ? part.group.node : bound)) : partition.bounds;
        stack.push(tighten({ records: part.records, bounds }, data));
      }
    } else classes.push(partition);
  }
  const suppressed = suppression.records.sort((a, b) => a - b);
  return { table: generalise(table, options, classes, new Set(suppressed)), classes, suppressed };
}

/** Sets each QI's bounds to the tightest that cover the partition's records (within a sibling group it came from). */
function tighten(partition: EquivalenceClass, data: EncodedTable): EquivalenceClass {
  const bounds = data.numeric.map((values, q) => {
    if (values) {
      let min = Infinity;
      let max = -Infinity;
      for (const r of partition.records) ((min = Math.min(min, values[r] ?? 0)), (max = Math.max(max, values[r] ?? 0)));
      return [min, max] as [number, number];
    }
    const paths = data.paths[q] as HierarchyNode[][];
    let depth = 0;
    const first = paths[partition.records[0] ?? 0] as HierarchyNode[];
    // The lowest common ancestor of the partition's values.
    while (depth + 1 < first.length && partition.records.every((r) => paths[r]?.[depth + 1] === first[depth + 1])) depth++;
    const lca = first[depth] as HierarchyNode;
    const previous = partition.bounds[q] as HierarchyNode | undefined;
    if (!previous || !('groupOf' in previous)) return lca;
    // Within a set-valued bound: keep the members that still occur, unless they are all of the LCA's children.
    const level = previous.depth + 1;
    const present = new Set(partition.records.map((r) => paths[r]?.[level]));
    const members = previous.children.filter((member) => present.has(member));
    if (members.length < 2 || (level === lca.depth + 1 && members.length === lca.children.length)) return lca;
    return members.length === previous.children.length && (previous as SiblingGroup).groupOf === lca ? previous : siblingGroup(lca, members);
  });
  return { records: partition.records, bounds };
}

/** A generalisation to `members` (nodes of one depth under `ancestor`), labelled `lo-hi` when they are ranges, else `{a,b}`. */
function siblingGroup(ancestor: HierarchyNode, members: HierarchyNode[]): SiblingGroup {
  const ranges = members.map((c) => /^(-?\d+(?:\.\d+)?)(?:-(-?\d+(?:\.\d+)?))?$/.exec(c.label));
  const label = ranges.every(Boolean)
    ? `${Math.min(...ranges.map((m) => Number(m?.[1])))}-${Math.max(...ranges.map((m) => Number(m?.[2] ?? m?.[1])))}`
    : `{${members.map((c) => c.label).join(',')}}`;
  return { label, children: members, leafCount: members.reduce((sum, c) => sum + c.leafCount, 0), depth: (members[0]?.depth ?? 1) - 1, groupOf: ancestor };
}

function normalisedWidth(bound: [number, number] | HierarchyNode, range: number): number {
  if (Array.isArray(bound)) return range === 0 ? 0 : (bound[1] - bound[0]) / range;
  return bound.children.length === 0 ? 0 : bound.leafCount / range;
}

/** One part of a split; a part that covers several hierarchy nodes carries its set-valued bound. */
interface Part {
  records: number[];
  group?: { q: number; node: SiblingGroup };
}

/** A run of records in a QI's order: one distinct value (numeric) or one hierarchy node. */
interface Unit {
  node?: HierarchyNode;
  records: number[];
}

/**
 * Tries the QIs from widest to narrowest; returns the parts of the first allowed split, or null.
 * On each QI, first Mondrian's split (median; all children of the hierarchy node, with suppression
 * of outlier children when allowed); when that is blocked (a child group too small for k, or a
 * part too far from the table's sensitive distribution for t), the most balanced cut into two
 * parts that both satisfy the model, among the QI's values in order (numeric) or its hierarchy
 * nodes in order, one level below the current node first and deeper levels after. So a small
 * child group (ages 80-99 at k = 100) no longer keeps a large partition at the hierarchy's root,
 * and t-closeness no longer stops every median split.
 */
function splitOnce(
  partition: EquivalenceClass,
  data: EncodedTable,
  satisfies: (records: number[]) => boolean,
  countsSatisfy: CountsCheck,
  mode: 'strict' | 'relaxed',
  suppression: { budget: number; records: number[] },
  minimumClassSize: number,
): Part[] | null {
  const order = partition.bounds
    .map((bound, q) => ({ q, width: normalisedWidth(bound, data.ranges[q] ?? 0) }))
    .filter((d) => d.width > 0)
    .sort((a, b) => b.width - a.width);
  if (partition.records.length < 2 * minimumClassSize) return null; // no two parts can both hold k records
  for (const { q } of order) {
    const values = data.numeric[q];
    if (values) {
      const parts = splitNumeric(partition.records, values, mode);
      if (parts && parts.every(satisfies)) return parts.map((records) => ({ records }));
      const cut = balancedCut(numericUnits(partition.records, values), data, countsSatisfy);
      if (cut) return cut.map((units) => ({ records: units.flatMap((u) => u.records) }));
      continue;
    }
    const bound = partition.bounds[q] as HierarchyNode;
    const paths = data.paths[q] as HierarchyNode[][];
    const children = unitsAt(partition.records, paths, bound, bound.depth + 1);
    if (children.length < 2) continue;
    const parts = children.map((unit) => unit.records);
    if (parts.every(satisfies)) return parts.map((records) => ({ records }));
    if (suppression.records.length < suppression.budget) {
      // Categorical split with suppression: withhold the invalid child groups if the budget allows.
      const valid = parts.filter(satisfies);
      const invalid = parts.filter((part) => !valid.includes(part)).flat();
      // Only outliers are withheld: fewer records than one class, so the budget is not spent early.
      if (valid.length > 0 && invalid.length < minimumClassSize && suppression.records.length + invalid.length <= suppression.budget) {
        suppression.records.push(...invalid);
        return valid.map((records) => ({ records })); // one valid group left: the partition narrows to it
      }
    }
    const ancestor = 'groupOf' in bound ? (bound as SiblingGroup).groupOf : bound;
    const deepest = Math.max(...partition.records.map((r) => (paths[r]?.length ?? 1) - 1));
    for (let level = bound.depth + 1; level <= deepest; level++) {
      const units = level === bound.depth + 1 ? children : unitsAt(partition.records, paths, bound, level);
      const cut = balancedCut(units, data, countsSatisfy);
      if (cut) return cut.map((run) => partFromUnits(run, q, ancestor, level === bound.depth + 1 && !('groupOf' in bound)));
    }
  }
  return null;
}

/** The part of a cut: one hierarchy node needs no set-valued bound (tighten finds it). */
function partFromUnits(units: Unit[], q: number, ancestor: HierarchyNode, childrenOfRealNode: boolean): Part {
  const records = units.flatMap((u) => u.records);
  if (units.length === 1 || (childrenOfRealNode && units.length === ancestor.children.length)) return { records };
  return {
    records,
    group: {
      q,
      node: siblingGroup(
        ancestor,
        units.map((u) => u.node as HierarchyNode),
      ),
    },
  };
}

type CountsCheck = (counts: Float64Array, size: number) => boolean;

/**
 * The cut of the ordered units into two runs that both satisfy the model, closest to half the
 * records; null when there is none. Checks every cut on running sensitive histograms, so a
 * partition of m units costs O(records + m * domain).
 */
function balancedCut(units: Unit[], data: EncodedTable, countsSatisfy: CountsCheck): [Unit[], Unit[]] | null {
  if (units.length < 2) return null;
  const domain = data.sensitive?.domain ?? 0;
  const values = data.sensitive?.values;
  const total = new Float64Array(domain);
  let size = 0;
  for (const unit of units) {
    size += unit.records.length;
    if (values) for (const r of unit.records) total[values[r] as number]! += 1;
  }
  const left = new Float64Array(domain);
  const right = new Float64Array(domain);
  let leftSize = 0;
  let best = -1;
  let bestImbalance = Infinity;
  for (let cut = 1; cut < units.length; cut++) {
    const unit = units[cut - 1] as Unit;
    leftSize += unit.records.length;
    if (values) for (const r of unit.records) left[values[r] as number]! += 1;
    const imbalance = Math.abs(2 * leftSize - size);
    if (imbalance >= bestImbalance) continue;
    for (let i = 0; i < domain; i++) right[i] = (total[i] as number) - (left[i] as number);
    if (countsSatisfy(left, leftSize) && countsSatisfy(right, size - leftSize)) ((best = cut), (bestImbalance = imbalance));
  }
  return best < 0 ? null : [units.slice(0, best), units.slice(best)];
}

/** The records grouped by distinct value, in increasing order. */
function numericUnits(records: number[], values: Float64Array): Unit[] {
  const sorted = [...records].sort((a, b) => (values[a] ?? 0) - (values[b] ?? 0));
  const units: Unit[] = [];
  for (const r of sorted) {
    const last = units.at(-1);
    if (last && values[last.records[0] as number] === values[r]) last.records.push(r);
    else units.push({ records: [r] });
  }
  return units;
}

/** Pre-order positions of a hierarchy's nodes, so units at any level come out in the file's order. */
const positions = new WeakMap<HierarchyNode, number>();
function position(node: HierarchyNode, path: HierarchyNode[]): number {
  let at = positions.get(node);
  if (at === undefined) {
    let counter = 0;
    const visit = (n: HierarchyNode): void => {
      positions.set(n, counter++);
      n.children.forEach(visit);
    };
    visit(path[0] as HierarchyNode);
    at = positions.get(node) ?? 0;
  }
  return at;
}

/**
 * The partition's records grouped by their ancestor at `level` (the children of `node` for level
 * node.depth + 1), in the hierarchy's order; records whose path is shorter stay with their leaf.
 */
function unitsAt(records: number[], paths: HierarchyNode[][], node: HierarchyNode, level: number): Unit[] {
  const groups = new Map<HierarchyNode, Unit>();
  for (const r of records) {
    const path = paths[r] as HierarchyNode[];
    const at = path[Math.min(level, path.length - 1)] as HierarchyNode;
    const unit = groups.get(at);
    if (unit) unit.records.push(r);
    else groups.set(at, { node: at, records: [r] });
  }
  const first = paths[records[0] as number] as HierarchyNode[];
  return [...groups.values()]
    .sort((a, b) => position(a.node as HierarchyNode, first) - position(b.node as HierarchyNode, first))
    .filter((u) => u.node !== node);
}

function splitNumeric(records: number[], values: Float64Array, mode: 'strict' | 'relaxed'): number[][] | null {
  const sorted = [...records].sort((a, b) => (values[a] ?? 0) - (values[b] ?? 0));
  const half = sorted.length >> 1;
  if (mode === 'relaxed') return [sorted.slice(0, half), sorted.slice(half)];
  const median = values[sorted[Math.max(half - 1, 0)] ?? 0] ?? 0;
  let cut = sorted.findIndex((r) => (values[r] ?? 0) > median);
  if (cut < 0) {
    // Everything from the median up is equal: cut just below the median value instead.
    cut = sorted.findIndex((r) => (values[r] ?? 0) >= median);
  }
  if (cut <= 0) return null;
  return [sorted.slice(0, cut), sorted.slice(cut)];
}

/** Writes each record's QI cells as its class's generalised value (`lo-hi` ranges or hierarchy labels), without the suppressed rows. */
export function generalise(table: Table, options: AnonymizationOptions, classes: EquivalenceClass[], suppressed: Set<number>): Table {
  const rows = table.rows.map((row) => [...row]);
  const columns = options.quasiIdentifiers.map((qi) => table.columns.indexOf(qi.column));
  for (const cls of classes) {
    const labels = cls.bounds.map((bound) => (Array.isArray(bound) ? (bound[0] === bound[1] ? String(bound[0]) : `${bound[0]}-${bound[1]}`) : bound.label));
    for (const r of cls.records) columns.forEach((col, q) => ((rows[r] as string[])[col] = labels[q] ?? ''));
  }
  return { columns: [...table.columns], rows: rows.filter((_, r) => !suppressed.has(r)) };
}
