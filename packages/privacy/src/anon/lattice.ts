/**
 * Global (full-domain) recoding: every value of a QI is replaced by its ancestor at one level of
 * the QI's hierarchy, the same level for the whole column; a transformation is a node of the
 * generalisation lattice (one level per QI). Classes that still violate the privacy model are
 * suppressed (withheld) while their records fit a suppression limit (e.g. 5 % of the rows).
 *
 * The search returns the node of least NCP (suppressed records cost 1 on every QI) and is exact.
 * It follows the optimal lattice searches of OLA (El Emam et al., "A Globally Optimal
 * k-Anonymity Method for the De-Identification of Health Data", JAMIA 2009) and Flash (Kohlmayer,
 * Prasser, Eckert, Kemper, Kuhn, "Flash: Efficient, Stable and Optimal K-Anonymity", PASSAT 2012):
 * - predictive tagging (monotonic pruning): without suppression every model here is monotonic
 *   (Machanavajjhala et al. 2006 for l-diversity, Li et al. 2007 for t-closeness: a merged class
 *   keeps the property), so the lattice is first classified as OLA and Flash do: paths up the
 *   lattice (Flash's greedy paths), a binary search on each, a passing node tagging all its
 *   generalisations anonymous and a failing one all its specialisations not anonymous; a
 *   generalisation of an anonymous node is then never better (NCP is monotonic) and is skipped.
 *   With suppression, a node that fails a part of the model that stays monotonic (k-anonymity,
 *   distinct l-diversity: a record in a passing class stays in a passing class) still rules out
 *   every specialisation;
 * - nodes are visited in the order of a lower bound of their NCP (the NCP of the node's
 *   generalisation without suppression, which only grows up the lattice), as ARX does with its
 *   metrics' lower bounds; the search stops when the bound reaches the best NCP found, because no
 *   later node can beat it. With suppression the NCP is not monotonic (a higher node may suppress
 *   fewer records), which this bound handles where tagging alone could not.
 * Numeric QIs without a hierarchy get intervals of doubling width (`intervalLevels`).
 * A node's classes are rolled up from those of a cached specialisation (ARX's roll-up optimisation):
 * grouping the specialisation's class representatives, weighted by size, is cheaper than every tuple.
 */
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';
import type { Table } from './table.ts';
import type { HierarchyNode } from './hierarchy.ts';
import { checkOptions, encode, sensitiveCheck, type AnonymizationOptions, type EncodedTable } from './encoding.ts';
import { generalise, type EquivalenceClass } from './mondrian.ts';

export interface GlobalOptions extends AnonymizationOptions {
  /** Largest share of rows that may be suppressed, in [0, 1); default 0. */
  maxSuppression?: number;
}

export interface GlobalResult {
  /** The generalised table: the input's rows in order, without suppressed rows. */
  table: Table;
  classes: EquivalenceClass[];
  suppressed: number[];
  /** The optimal node: one generalisation level per QI (0 = original values). */
  node: number[];
  /** Per QI, the number of levels above the original values. */
  heights: number[];
  /** NCP of the node, percent (suppressed records fully generalised). */
  ncpPercent: number;
  search: { latticeSize: number; checked: number; taggedNotAnonymous: number; taggedAnonymous: number; boundStopped: number };
}

/** Lattices larger than this are refused (a hierarchy with too many levels per QI). */
export const MAX_LATTICE = 1 << 20;

/** One QI's generalisation: per level, each record's code and each code's published bound. */
interface LevelColumn {
  codes: Int32Array[];
  bounds: ([number, number] | HierarchyNode)[][];
  /** Per level, the sum over records of the certainty penalty. */
  penalty: number[];
}

/** Interval widths for a numeric QI: a round width near range/16, doubling until one interval covers the range. */
export function intervalLevels(min: number, max: number): number[] {
  const range = max - min;
  if (!(range > 0)) return [];
  const rough = range / 16;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const base = [1, 2, 5, 10].map((m) => m * magnitude).find((w) => w >= rough) ?? 10 * magnitude;
  const widths: number[] = [];
  for (let w = base; w < range * 2 && widths.length < 12; w *= 2) widths.push(w);
  return widths;
}

function levelColumns(data: EncodedTable, options: GlobalOptions): LevelColumn[] {
  return options.quasiIdentifiers.map((qi, q) => {
    const values = data.numeric[q];
    if (values) {
      let min = Infinity;
      let max = -Infinity;
      for (const v of values) ((min = Math.min(min, v)), (max = Math.max(max, v)));
      const range = data.ranges[q] ?? 0;
      const column: LevelColumn = { codes: [], bounds: [], penalty: [] };
      const distinct = [...new Set(values)].sort((a, b) => a - b);
      const index = new Map(distinct.map((v, i) => [v, i]));
      column.codes.push(Int32Array.from(values, (v) => index.get(v) ?? 0));
      column.bounds.push(distinct.map((v) => [v, v]));
      column.penalty.push(0);
      for (const width of [...intervalLevels(min, max), Infinity]) {
        const origin = Number.isFinite(width) ? Math.floor(min / width) * width : min;
        const codes = Int32Array.from(values, (v) => (Number.isFinite(width) ? Math.floor((v - origin) / width) : 0));
        const buckets = Number.isFinite(width) ? Math.floor((max - origin) / width) + 1 : 1;
        const bounds = Array.from({ length: buckets }, (_, c): [number, number] =>
          Number.isFinite(width) ? [Math.max(origin + c * width, min), Math.min(origin + (c + 1) * width, max)] : [min, max],
        );
        let penalty = 0;
        for (const c of codes) penalty += range === 0 ? 0 : ((bounds[c]?.[1] ?? 0) - (bounds[c]?.[0] ?? 0)) / range;
        (column.codes.push(codes), column.bounds.push(bounds), column.penalty.push(penalty));
      }
      return column;
    }
    return categoricalLevels(data.paths[q] as HierarchyNode[][], qi.kind === 'categorical' ? qi.hierarchy.size : 1);
  });
}

/**
 * A categorical QI's levels. The records' distinct leaves are found once, then each level's codes
 * come from a per-leaf lookup table (a Map lookup per leaf, not per record and level). Codes are
 * numbered in the order of each value's first record, and penalties summed in record order.
 */
function categoricalLevels(paths: HierarchyNode[][], size: number): LevelColumn {
  const leafIds = new Map<HierarchyNode[], number>();
  const leaves: HierarchyNode[][] = [];
  const leafOf = new Int32Array(paths.length);
  let height = 0;
  for (let r = 0; r < paths.length; r++) {
    const path = paths[r] as HierarchyNode[];
    let id = leafIds.get(path);
    if (id === undefined) (leafIds.set(path, (id = leaves.length)), leaves.push(path), (height = Math.max(height, path.length - 1)));
    leafOf[r] = id;
  }
  const column: LevelColumn = { codes: [], bounds: [], penalty: [] };
  for (let level = 0; level <= height; level++) {
    const ids = new Map<HierarchyNode, number>();
    const nodes: HierarchyNode[] = [];
    const codeOfLeaf = new Int32Array(leaves.length);
    const costOfLeaf = new Float64Array(leaves.length);
    leaves.forEach((path, leaf) => {
      const node = path[Math.max(path.length - 1 - level, 0)] as HierarchyNode;
      let id = ids.get(node);
      if (id === undefined) (ids.set(node, (id = nodes.length)), nodes.push(node));
      codeOfLeaf[leaf] = id;
      costOfLeaf[leaf] = node.children.length === 0 ? 0 : node.leafCount / size;
    });
    const codes = gather(codeOfLeaf, leafOf);
    let penalty = 0;
    for (let r = 0; r < paths.length; r++) penalty += costOfLeaf[leafOf[r] as number] as number;
    (column.codes.push(codes), column.bounds.push(nodes), column.penalty.push(penalty));
  }
  return column;
}

/** \`values[rows[i]]\` for each i, in a plain loop (Int32Array.from with a callback goes through the iterator protocol). */
function gather(values: Int32Array, rows: ArrayLike<number>): Int32Array {
  const out = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) out[i] = values[rows[i] as number] as number;
  return out;
}

/** The records collapsed to their distinct (QI codes, sensitive value) tuples, each with its weight. */
interface Tuples {
  m: number;
  columns: LevelColumn[];
  weight: Float64Array;
  sensitive: Int32Array | null;
  /** The tuple of each record. */
  tupleOf: Int32Array;
}

function compress(columns: LevelColumn[], sensitive: Int32Array | null, n: number): Tuples {
  const bottom: LevelColumn = { codes: [], bounds: [], penalty: [] };
  const all = sensitive ? [...columns, { ...bottom, codes: [sensitive], bounds: [[...new Set(sensitive)].map(() => [0, 0] as [number, number])] }] : columns;
  const radices = all.map((c) => Math.max(...(c.codes[0] as Int32Array), 0) + 1);
  const grouping = groupRecords(
    all.map((c, q) => ({ ...c, bounds: [Array.from({ length: radices[q] as number })] as never })),
    all.map(() => 0),
    n,
    null,
  );
  const m = grouping.sizes.length;
  const first = grouping.representative;
  return {
    m,
    columns: columns.map((c) => ({ ...c, codes: c.codes.map((codes) => gather(codes, first)) })),
    weight: Float64Array.from(grouping.sizes),
    sensitive: sensitive ? gather(sensitive, first) : null,
    tupleOf: grouping.classOf,
  };
}

/** Dense ids for integer keys below 2^52: an open-addressing hash table (a Map of doubles is several times slower). */
class DenseIds {
  private readonly keys: Float64Array;
  private readonly ids: Int32Array;
  private readonly mask: number;
  size = 0;

  constructor(capacity: number) {
    let slots = 16;
    while (slots < capacity * 2) slots *= 2;
    this.keys = new Float64Array(slots);
    this.ids = new Int32Array(slots).fill(-1);
    this.mask = slots - 1;
  }

  /** The key's id, a new one (the next integer) the first time it is seen. */
  id(key: number): number {
    let slot = (Math.imul(key | 0, 0x9e3779b1) ^ Math.imul((key / 4294967296) | 0, 0x85ebca77)) & this.mask;
    for (;;) {
      const id = this.ids[slot] as number;
      if (id < 0) {
        this.keys[slot] = key;
        this.ids[slot] = this.size;
        return this.size++;
      }
      if (this.keys[slot] === key) return id;
      slot = (slot + 1) & this.mask;
    }
  }
}

/** The grouping of the records under one node: class of each record, class sizes, sensitive counts. */
interface NodeClasses {
  classOf: Int32Array;
  sizes: number[];
  representative: number[];
}

function groupRecords(columns: LevelColumn[], node: number[], n: number, weight: Float64Array | null): NodeClasses {
  const { codes, radix } = splittingColumns(columns, node);
  return groupByCodes(codes, radix, n, weight);
}

/** The node's code columns and their widths, leaving out columns generalised to one value (they cannot split a class). */
function splittingColumns(columns: LevelColumn[], node: number[]): { codes: Int32Array[]; radix: number[] } {
  const codes: Int32Array[] = [];
  const radix: number[] = [];
  columns.forEach((c, q) => {
    const width = (c.bounds[node[q] ?? 0] as unknown[]).length;
    if (width > 1) (codes.push(c.codes[node[q] ?? 0] as Int32Array), radix.push(width));
  });
  return { codes, radix };
}

/** Classes numbered in the order of their first record (each class's representative). */
function groupByCodes(codes: Int32Array[], radix: number[], n: number, weight: Float64Array | ArrayLike<number> | null): NodeClasses {
  const keys = packedKeys(codes, radix, n);
  const classOf = new Int32Array(n);
  const sizes: number[] = [];
  const representative: number[] = [];
  const table = new DenseIds(n);
  for (let r = 0; r < n; r++) {
    const c = table.id(keys[r] as number);
    if (c === sizes.length) (sizes.push(0), representative.push(r));
    classOf[r] = c;
    sizes[c]! += weight ? (weight[r] as number) : 1;
  }
  return { classOf, sizes, representative };
}

/**
 * The classes of `node` from those of one of its specialisations (ARX's roll-up): each class of
 * `from` lies inside one class of `node`, so only `from`'s representatives are grouped, weighted
 * by their class sizes, instead of every tuple. The numbering is the one `groupRecords` gives:
 * `from`'s classes are in first-tuple order, so the merged classes are too.
 */
function rollUp(columns: LevelColumn[], node: number[], from: NodeClasses): NodeClasses {
  const { codes, radix } = splittingColumns(columns, node);
  const reps = from.representative;
  const merged = groupByCodes(
    codes.map((column) => gather(column, reps)),
    radix,
    reps.length,
    from.sizes,
  );
  return { classOf: gather(merged.classOf, from.classOf), sizes: merged.sizes, representative: merged.representative.map((c) => reps[c] as number) };
}

/**
 * One integer key per record, equal exactly when the records' codes are: mixed-radix keys while
 * they stay exact doubles; beyond that, the key so far is renumbered densely before the next QI.
 * Column by column in plain loops over typed arrays, so each loop is one tight monomorphic pass.
 */
function packedKeys(codes: Int32Array[], radix: number[], n: number): Float64Array {
  const keys = new Float64Array(n);
  let span = 1;
  for (let q = 0; q < codes.length; q++) {
    const column = codes[q] as Int32Array;
    const width = radix[q] as number;
    if (span * width > 2 ** 52) {
      const ids = new DenseIds(n);
      for (let r = 0; r < n; r++) keys[r] = ids.id(keys[r] as number);
      span = ids.size;
    }
    for (let r = 0; r < n; r++) keys[r] = (keys[r] as number) * width + (column[r] as number);
    span *= width;
  }
  return keys;
}

/** Evaluation of one node: which classes fail (and why), and how many records that suppresses. */
interface Evaluation {
  grouping: NodeClasses;
  failing: boolean[];
  suppressedRecords: number;
  /** Records in classes failing the part of the model that is monotonic under suppression. */
  monotoneFailures: number;
}

/** \`from\`, when given, is the grouping of a specialisation of \`node\` to roll the classes up from. */
function evaluate(tuples: Tuples, node: number[], options: GlobalOptions, data: EncodedTable, from?: NodeClasses): Evaluation {
  const grouping = from ? rollUp(tuples.columns, node, from) : groupRecords(tuples.columns, node, tuples.m, tuples.weight);
  const { sizes } = grouping;
  const model = options.model;
  const failing = sizes.map((size) => size < model.k);
  let monotoneFailures = 0;
  sizes.forEach((size, c) => failing[c] && (monotoneFailures += size));
  const sensitive = data.sensitive;
  if (sensitive && tuples.sensitive && (model.l || model.t !== undefined)) {
    const domain = sensitive.domain;
    const counts = new Float64Array(sizes.length * domain);
    for (let t = 0; t < tuples.m; t++) counts[(grouping.classOf[t] as number) * domain + (tuples.sensitive[t] as number)]! += tuples.weight[t] as number;
    const check = sensitiveCheck(sensitive, model);
    const distinct = model.l?.kind === 'distinct' ? model.l.l : 0;
    sizes.forEach((size, c) => {
      if (failing[c]) return;
      const slice = counts.subarray(c * domain, (c + 1) * domain);
      if (!check(slice, size)) {
        failing[c] = true;
        if (distinct > 0 && slice.reduce((a, v) => a + (v > 0 ? 1 : 0), 0) < distinct) monotoneFailures += size;
      }
    });
  }
  let suppressedRecords = 0;
  sizes.forEach((size, c) => failing[c] && (suppressedRecords += size));
  return { grouping, failing, suppressedRecords, monotoneFailures };
}

/** NCP (percent) of a node's evaluation: published records at their level's penalty, suppressed at 1 per QI. */
function nodeLoss(tuples: Tuples, node: number[], evaluation: Evaluation, n: number): number {
  const columns = tuples.columns;
  if (n === 0) return 0;
  const d = columns.length;
  let penalty = evaluation.suppressedRecords * d;
  for (let q = 0; q < d; q++) {
    const column = columns[q] as LevelColumn;
    const level = node[q] ?? 0;
    const codes = column.codes[level] as Int32Array;
    const bounds = column.bounds[level] as ([number, number] | HierarchyNode)[];
    const cost = bounds.map((bound) => boundPenalty(bound, columns, q));
    for (let t = 0; t < tuples.m; t++)
      if (!evaluation.failing[evaluation.grouping.classOf[t] as number]) penalty += (cost[codes[t] as number] as number) * (tuples.weight[t] as number);
  }
  return (100 * penalty) / (n * d);
}

function boundPenalty(bound: [number, number] | HierarchyNode, columns: LevelColumn[], q: number): number {
  const column = columns[q] as LevelColumn;
  if (Array.isArray(bound)) {
    const top = column.bounds.at(-1)?.[0] as [number, number];
    const range = top[1] - top[0];
    return range === 0 ? 0 : (bound[1] - bound[0]) / range;
  }
  const root = column.bounds.at(-1)?.[0] as HierarchyNode;
  return bound.children.length === 0 ? 0 : bound.leafCount / root.leafCount;
}

/** Every node of the lattice, with its NCP lower bound (percent). */
function latticeNodes(columns: LevelColumn[], n: number): { node: number[]; bound: number }[] {
  const heights = columns.map((c) => c.codes.length - 1);
  const size = heights.reduce((product, h) => product * (h + 1), 1);
  if (size > MAX_LATTICE)
    throw new LimitExceededError(`the generalisation lattice has ${size} nodes (more than ${MAX_LATTICE}); use hierarchies with fewer levels`);
  const d = columns.length;
  const nodes: { node: number[]; bound: number }[] = [];
  for (let index = 0; index < size; index++) {
    const node: number[] = [];
    let rest = index;
    let penalty = 0;
    for (let q = 0; q < d; q++) {
      const levels = (heights[q] as number) + 1;
      const level = rest % levels;
      rest = Math.floor(rest / levels);
      node.push(level);
      penalty += columns[q]?.penalty[level] ?? 0;
    }
    nodes.push({ node, bound: n === 0 ? 0 : (100 * penalty) / (n * d) });
  }
  return nodes;
}

/** Recent groupings (a bounded number: each holds a class per tuple), to roll later nodes up from. */
class GroupingCache {
  private readonly entries = new Map<number, { node: number[]; grouping: NodeClasses }>();

  constructor(private readonly capacity: number) {}

  add(index: number, node: number[], grouping: NodeClasses): void {
    if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value as number);
    this.entries.set(index, { node, grouping });
  }

  /** Of the cached specialisations of \`node\`, the grouping with the fewest classes (the cheapest to roll up). */
  fewestClassesBelow(node: number[]): NodeClasses | undefined {
    let best: NodeClasses | undefined;
    for (const entry of this.entries.values()) {
      if (below(entry.node, node) && (!best || entry.grouping.sizes.length < best.sizes.length)) best = entry.grouping;
    }
    return best;
  }
}

/** Groupings kept for roll-up: enough to hold the recent neighbourhood of the search, a few MB on Adult. */
const CACHED_GROUPINGS = 64;

const below = (a: number[], b: number[]) => a.every((level, q) => level <= (b[q] as number));
const sum = (node: number[]) => node.reduce((s, l) => s + l, 0);
const heightsOf = (columns: LevelColumn[]) => columns.map((c) => c.codes.length - 1);

/** A path from `start` up to the top, each step one level up on one QI, preferring untagged nodes of low bound (Flash's greedy path). */
function pathUp(nodes: { node: number[]; bound: number }[], start: number, tag: Int8Array, heights: number[]): number[] {
  const path = [start];
  let current = nodes[start]?.node as number[];
  const indexOf = (node: number[]) => {
    let index = 0;
    for (let q = node.length - 1; q >= 0; q--) index = index * ((heights[q] as number) + 1) + (node[q] as number);
    return index;
  };
  for (;;) {
    let next = -1;
    for (let q = 0; q < current.length; q++) {
      if ((current[q] as number) >= (heights[q] as number)) continue;
      const up = [...current];
      up[q] = (up[q] as number) + 1;
      const index = indexOf(up);
      if (tag[index] !== 0) continue;
      if (next < 0 || (nodes[index]?.bound ?? 0) < (nodes[next]?.bound ?? 0)) next = index;
    }
    if (next < 0) return path;
    path.push(next);
    current = nodes[next]?.node as number[];
  }
}

/** Predictive tagging: a passing node's generalisations pass, a failing node's specialisations fail. */
function tagAll(
  nodes: { node: number[] }[],
  index: number,
  passes: boolean,
  tag: Int8Array,
  search: { taggedNotAnonymous: number; taggedAnonymous: number },
): void {
  const node = nodes[index]?.node as number[];
  nodes.forEach((other, i) => {
    if (tag[i] !== 0) return;
    if (passes ? below(node, other.node) : below(other.node, node)) {
      tag[i] = passes ? 1 : -1;
      if (i !== index) passes ? search.taggedAnonymous++ : search.taggedNotAnonymous++;
    }
  });
}

/**
 * Finds the optimal full-domain generalisation (least NCP within the suppression limit) and
 * applies it. With `exhaustive`, every node is evaluated (the brute force the tests compare with).
 * @throws MalformedInputError for bad options, or when no node satisfies the model within the limit
 * @throws LimitExceededError when the lattice has more than MAX_LATTICE nodes
 */
export function globalRecoding(table: Table, options: GlobalOptions, exhaustive = false): GlobalResult {
  checkOptions(options);
  const maxSuppression = options.maxSuppression ?? 0;
  if (!(maxSuppression >= 0 && maxSuppression < 1)) throw new MalformedInputError('maxSuppression must be within [0, 1)');
  const data = encode(table, options);
  const columns = levelColumns(data, options);
  const n = data.n;
  const budget = Math.floor(maxSuppression * n);
  const nodes = latticeNodes(columns, n);
  const tuples = compress(columns, data.sensitive?.values ?? null, n);
  const search = { latticeSize: nodes.length, checked: 0, taggedNotAnonymous: 0, taggedAnonymous: 0, boundStopped: 0 };
  const evaluations = new Map<number, Evaluation>();
  const groupings = new GroupingCache(CACHED_GROUPINGS);
  const check = (index: number): Evaluation => {
    let evaluation = evaluations.get(index);
    if (!evaluation) {
      search.checked++;
      const node = (nodes[index] as { node: number[] }).node;
      evaluation = evaluate(tuples, node, options, data, groupings.fewestClassesBelow(node));
      evaluations.set(index, evaluation);
      groupings.add(index, node, evaluation.grouping);
    }
    return evaluation;
  };
  // Without suppression every model here is monotonic: classify the lattice first (OLA / Flash), a
  // few nodes on each path up the lattice checked by binary search, the rest tagged. (With
  // suppression the optimum is usually low in the lattice and the bound below stops the search
  // sooner than a classification of the whole lattice would: 227 checks against 1,260 on Adult.)
  const tag = new Int8Array(nodes.length); // 0 unknown, 1 anonymous, -1 not anonymous
  if (!exhaustive && budget === 0) {
    const heights = heightsOf(columns);
    const byHeight = nodes.map((_, i) => i).sort((a, b) => sum(nodes[a]!.node) - sum(nodes[b]!.node));
    for (const start of byHeight) {
      if (tag[start] !== 0) continue;
      const path = pathUp(nodes, start, tag, heights);
      let lo = 0;
      let hi = path.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        const index = path[mid] as number;
        const passes = check(index).suppressedRecords === 0;
        tagAll(nodes, index, passes, tag, search);
        if (passes) hi = mid - 1;
        else lo = mid + 1;
      }
    }
  }
  // The candidates in the order of their NCP lower bound; stop when the bound reaches the best NCP.
  const order = nodes
    .map((_, i) => i)
    .filter((i) => tag[i] !== -1)
    .sort((a, b) => (exhaustive ? a - b : nodes[a]!.bound - nodes[b]!.bound));
  const failed: number[][] = [];
  const passed: number[][] = [];
  let best: { node: number[]; loss: number; evaluation: Evaluation } | undefined;
  for (let i = 0; i < order.length; i++) {
    const index = order[i] as number;
    const { node, bound } = nodes[index] as { node: number[]; bound: number };
    if (!exhaustive) {
      if (best && bound >= best.loss - 1e-9) {
        search.boundStopped = order.length - i;
        break;
      }
      // A specialisation of a node that failed the monotonic part of the model fails too.
      if (failed.some((f) => below(node, f))) {
        search.taggedNotAnonymous++;
        continue;
      }
      // Without suppression the NCP is monotonic: a generalisation of an anonymous node is never better.
      if (budget === 0 && passed.some((p) => below(p, node))) continue;
    }
    const evaluation = check(index);
    evaluations.delete(index);
    if (evaluation.suppressedRecords > budget) {
      if (evaluation.monotoneFailures > budget) failed.push(node);
      continue;
    }
    passed.push(node);
    const loss = nodeLoss(tuples, node, evaluation, n);
    if (!best || loss < best.loss - 1e-9 || (Math.abs(loss - best.loss) <= 1e-9 && evaluation.suppressedRecords < best.evaluation.suppressedRecords))
      best = { node, loss, evaluation };
  }
  if (!best) throw new MalformedInputError(`no full-domain generalisation satisfies the privacy model with at most ${budget} suppressed rows`);
  return {
    ...apply(table, options, tuples, best.node, best.evaluation),
    node: best.node,
    heights: columns.map((c) => c.codes.length - 1),
    ncpPercent: best.loss,
    search,
  };
}

function apply(
  table: Table,
  options: GlobalOptions,
  tuples: Tuples,
  node: number[],
  evaluation: Evaluation,
): Pick<GlobalResult, 'table' | 'classes' | 'suppressed'> {
  const { grouping, failing } = evaluation;
  const classes: EquivalenceClass[] = grouping.sizes.map((_, c) => {
    const t = grouping.representative[c] as number;
    return {
      records: [],
      bounds: tuples.columns.map(
        (column, q) =>
          (column.bounds[node[q] ?? 0] as ([number, number] | HierarchyNode)[])[(column.codes[node[q] ?? 0] as Int32Array)[t] as number] as
            [number, number] | HierarchyNode,
      ),
    };
  });
  const suppressed: number[] = [];
  for (let r = 0; r < table.rows.length; r++) {
    const c = grouping.classOf[tuples.tupleOf[r] as number] as number;
    if (failing[c]) suppressed.push(r);
    else classes[c]?.records.push(r);
  }
  const published = classes.filter((cls, c) => !failing[c] && cls.records.length > 0);
  return { table: generalise(table, options, published, new Set(suppressed)), classes: published, suppressed };
}
