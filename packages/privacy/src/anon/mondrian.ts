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
import { columnIndex, type Table } from './table.ts';
import { Hierarchy, type HierarchyNode } from './hierarchy.ts';
import { checkModel, earthMoversDistance, histogram, isLDiverse, type PrivacyModel } from './models.ts';

export type QuasiIdentifier = { column: string; kind: 'numeric' } | { column: string; kind: 'categorical'; hierarchy: Hierarchy };

export interface MondrianOptions {
  quasiIdentifiers: QuasiIdentifier[];
  sensitive?: string;
  model: PrivacyModel;
  mode?: 'strict' | 'relaxed';
  /** Largest share of rows that may be suppressed, in [0, 1); default 0. */
  maxSuppression?: number;
}

/** One equivalence class: its records and, per QI, the generalised bounds. */
export interface EquivalenceClass {
  records: number[];
  /** Numeric QIs: [min, max]; categorical: the hierarchy node. Indexed like `quasiIdentifiers`. */
  bounds: ([number, number] | HierarchyNode)[];
}

export interface MondrianResult {
  /** The generalised table: the input's rows in order, without suppressed rows. */
  table: Table;
  classes: EquivalenceClass[];
  /** Indices (in the input) of the suppressed rows. */
  suppressed: number[];
}

/** Columnar encoding of the QIs and the sensitive attribute. */
export interface EncodedTable {
  n: number;
  numeric: (Float64Array | null)[];
  paths: (HierarchyNode[][] | null)[];
  ranges: number[];
  sensitive?: { values: Int32Array; domain: number; global: Float64Array; ordered: boolean };
}

/** Encodes the QI columns (numbers, or root-to-leaf hierarchy paths) and the sensitive column. */
export function encode(table: Table, options: MondrianOptions): EncodedTable {
  const n = table.rows.length;
  const numeric: (Float64Array | null)[] = [];
  const paths: (HierarchyNode[][] | null)[] = [];
  const ranges: number[] = [];
  for (const qi of options.quasiIdentifiers) {
    const col = columnIndex(table, qi.column);
    if (qi.kind === 'numeric') {
      const values = new Float64Array(n);
      table.rows.forEach((row, r) => {
        const v = Number(row[col]);
        if (row[col] === '' || !Number.isFinite(v)) throw new MalformedInputError(`column ${qi.column}, row ${r + 1}: "${row[col]}" is not a number`);
        values[r] = v;
      });
      let min = Infinity;
      let max = -Infinity;
      for (const v of values) (min = Math.min(min, v)), (max = Math.max(max, v));
      numeric.push(values), paths.push(null), ranges.push(n === 0 ? 0 : max - min);
    } else {
      paths.push(table.rows.map((row, r) => {
        try {
          return qi.hierarchy.path(row[col] ?? '');
        } catch (error) {
          throw new MalformedInputError(`column ${qi.column}, row ${r + 1}: ${(error as Error).message}`);
        }
      }));
      numeric.push(null), ranges.push(qi.hierarchy.size);
    }
  }
  const encoded: EncodedTable = { n, numeric, paths, ranges };
  if (options.sensitive !== undefined) {
    const col = columnIndex(table, options.sensitive);
    const raw = table.rows.map((row) => row[col] ?? '');
    const ordered = raw.every((v) => v !== '' && Number.isFinite(Number(v)));
    const domainValues = [...new Set(raw)].sort(ordered ? (a, b) => Number(a) - Number(b) : undefined);
    const index = new Map(domainValues.map((v, i) => [v, i]));
    const values = Int32Array.from(raw, (v) => index.get(v) ?? 0);
    const global = histogram(values, [...Array(n).keys()], domainValues.length).map((c) => c / Math.max(n, 1));
    encoded.sensitive = { values, domain: domainValues.length, global, ordered };
  }
  return encoded;
}

/** Runs Mondrian and returns the generalised table (same row order) and its equivalence classes. */
export function mondrian(table: Table, options: MondrianOptions): MondrianResult {
  checkModel(options.model);
  if (options.quasiIdentifiers.length === 0) throw new MalformedInputError('at least one quasi-identifier is needed');
  if ((options.model.l || options.model.t !== undefined) && options.sensitive === undefined) throw new MalformedInputError('l-diversity and t-closeness need a sensitive attribute');
  const data = encode(table, options);
  const satisfies = modelCheck(data, options.model);
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
    const parts = splitOnce(partition, data, satisfies, options.mode ?? 'strict', suppression, options.model.k);
    if (parts) stack.push(...parts.map((records) => tighten({ records, bounds: partition.bounds }, data)));
    else classes.push(partition);
  }
  const suppressed = suppression.records.sort((a, b) => a - b);
  return { table: generalise(table, options, classes, new Set(suppressed)), classes, suppressed };
}

/** The privacy-model predicate on a set of records. */
export function modelCheck(data: EncodedTable, model: PrivacyModel): (records: number[]) => boolean {
  return (records) => {
    if (records.length < model.k) return false;
    if (!data.sensitive || (!model.l && model.t === undefined)) return true;
    const counts = histogram(data.sensitive.values, records, data.sensitive.domain);
    if (model.l && !isLDiverse(counts, records.length, model.l)) return false;
    if (model.t !== undefined && earthMoversDistance(counts, records.length, data.sensitive.global, data.sensitive.ordered) > model.t + 1e-12) return false;
    return true;
  };
}

/** Sets each QI's bounds to the tightest that cover the partition's records. */
function tighten(partition: EquivalenceClass, data: EncodedTable): EquivalenceClass {
  const bounds = data.numeric.map((values, q) => {
    if (values) {
      let min = Infinity;
      let max = -Infinity;
      for (const r of partition.records) (min = Math.min(min, values[r] ?? 0)), (max = Math.max(max, values[r] ?? 0));
      return [min, max] as [number, number];
    }
    const paths = data.paths[q] as HierarchyNode[][];
    let depth = 0;
    const first = paths[partition.records[0] ?? 0] as HierarchyNode[];
    // The lowest common ancestor of the partition's values.
    while (depth + 1 < first.length && partition.records.every((r) => paths[r]?.[depth + 1] === first[depth + 1])) depth++;
    return first[depth] as HierarchyNode;
  });
  return { records: partition.records, bounds };
}

function normalisedWidth(bound: [number, number] | HierarchyNode, range: number): number {
  if (Array.isArray(bound)) return range === 0 ? 0 : (bound[1] - bound[0]) / range;
  return bound.children.length === 0 ? 0 : bound.leafCount / range;
}

/** Tries the QIs from widest to narrowest; returns the parts of the first allowed split, or null. */
function splitOnce(partition: EquivalenceClass, data: EncodedTable, satisfies: (records: number[]) => boolean, mode: 'strict' | 'relaxed', suppression: { budget: number; records: number[] }, minimumClassSize: number): number[][] | null {
  const order = partition.bounds
    .map((bound, q) => ({ q, width: normalisedWidth(bound, data.ranges[q] ?? 0) }))
    .filter((d) => d.width > 0)
    .sort((a, b) => b.width - a.width);
  for (const { q } of order) {
    const values = data.numeric[q];
    const parts = values ? splitNumeric(partition.records, values, mode) : splitCategorical(partition.records, data.paths[q] as HierarchyNode[][], (partition.bounds[q] as HierarchyNode).depth);
    if (!parts || parts.length < 2) continue;
    if (parts.every(satisfies)) return parts;
    if (values || suppression.records.length >= suppression.budget) continue;
    // Categorical split with suppression: withhold the invalid child groups if the budget allows.
    const valid = parts.filter(satisfies);
    const invalid = parts.filter((part) => !valid.includes(part)).flat();
    // Only outliers are withheld: fewer records than one class, so the budget is not spent early.
    if (valid.length > 0 && invalid.length < minimumClassSize && suppression.records.length + invalid.length <= suppression.budget) {
      suppression.records.push(...invalid);
      return valid; // one valid group left: the partition narrows to it
    }
  }
  return null;
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

function splitCategorical(records: number[], paths: HierarchyNode[][], depth: number): number[][] | null {
  const groups = new Map<HierarchyNode, number[]>();
  for (const r of records) {
    const child = paths[r]?.[depth + 1];
    if (!child) return null;
    const group = groups.get(child);
    if (group) group.push(r);
    else groups.set(child, [r]);
  }
  return groups.size > 1 ? [...groups.values()] : null;
}

/** Writes each record's QI cells as its class's generalised value: `lo-hi` ranges or hierarchy labels. */
function generalise(table: Table, options: MondrianOptions, classes: EquivalenceClass[], suppressed: Set<number>): Table {
  const rows = table.rows.map((row) => [...row]);
  const columns = options.quasiIdentifiers.map((qi) => table.columns.indexOf(qi.column));
  for (const cls of classes) {
    const labels = cls.bounds.map((bound) => (Array.isArray(bound) ? (bound[0] === bound[1] ? String(bound[0]) : `${bound[0]}-${bound[1]}`) : bound.label));
    for (const r of cls.records) columns.forEach((col, q) => ((rows[r] as string[])[col] = labels[q] ?? ''));
  }
  return { columns: [...table.columns], rows: rows.filter((_, r) => !suppressed.has(r)) };
}
