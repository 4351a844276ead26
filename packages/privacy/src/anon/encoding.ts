/**
 * The columnar encoding both anonymization methods (Mondrian's local recoding and the lattice
 * search's global recoding) work on: QI columns as numbers or root-to-leaf hierarchy paths, the
 * sensitive column as dense value indices with the table's distribution and its t-closeness
 * ground distance, and the privacy-model predicate on a set of records.
 */
import { MalformedInputError } from '@medshare/crypto';
import { columnIndex, type Table } from './table.ts';
import type { Hierarchy, HierarchyNode } from './hierarchy.ts';
import { checkModel, earthMoversDistance, HierarchicalDistance, histogram, isLDiverse, type PrivacyModel } from './models.ts';

export type QuasiIdentifier = { column: string; kind: 'numeric' } | { column: string; kind: 'categorical'; hierarchy: Hierarchy };

/** What both methods are given: QIs, the sensitive attribute and the privacy model. */
export interface AnonymizationOptions {
  quasiIdentifiers: QuasiIdentifier[];
  sensitive?: string;
  /**
   * The sensitive attribute's generalisation hierarchy: t-closeness then uses the hierarchical
   * EMD (Li et al. 2007) instead of the equal distance. Ignored for a numeric sensitive attribute
   * (ordered distance).
   */
  sensitiveHierarchy?: Hierarchy;
  model: PrivacyModel;
}

/** The sensitive column: dense value indices, the table's distribution, and the EMD to it. */
export interface EncodedSensitive {
  values: Int32Array;
  domain: number;
  /** The distinct values, in slot order. */
  labels: string[];
  global: Float64Array;
  ordered: boolean;
  /** The ground distance t-closeness uses. */
  distance: 'ordered' | 'hierarchical' | 'equal';
  /** EMD between a class's counts (`size` records) and the table's distribution. */
  emd(counts: Float64Array, size: number): number;
}

/** Columnar encoding of the QIs and the sensitive attribute. */
export interface EncodedTable {
  n: number;
  numeric: (Float64Array | null)[];
  paths: (HierarchyNode[][] | null)[];
  ranges: number[];
  sensitive?: EncodedSensitive;
}

/**
 * Encodes the QI columns (numbers, or root-to-leaf hierarchy paths) and the sensitive column.
 * @throws MalformedInputError for an unknown column, a non-numeric value in a numeric QI, or a value missing from a hierarchy
 */
export function encode(table: Table, options: AnonymizationOptions): EncodedTable {
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
      for (const v of values) ((min = Math.min(min, v)), (max = Math.max(max, v)));
      (numeric.push(values), paths.push(null), ranges.push(n === 0 ? 0 : max - min));
    } else {
      paths.push(
        table.rows.map((row, r) => {
          try {
            return qi.hierarchy.path(row[col] ?? '');
          } catch (error) {
            throw new MalformedInputError(`column ${qi.column}, row ${r + 1}: ${(error as Error).message}`);
          }
        }),
      );
      (numeric.push(null), ranges.push(qi.hierarchy.size));
    }
  }
  const encoded: EncodedTable = { n, numeric, paths, ranges };
  if (options.sensitive !== undefined) encoded.sensitive = encodeSensitive(table, options.sensitive, options.sensitiveHierarchy);
  return encoded;
}

function encodeSensitive(table: Table, column: string, hierarchy: Hierarchy | undefined): EncodedSensitive {
  const n = table.rows.length;
  const col = columnIndex(table, column);
  const raw = table.rows.map((row) => row[col] ?? '');
  const ordered = raw.every((v) => v !== '' && Number.isFinite(Number(v)));
  const labels = [...new Set(raw)].sort(ordered ? (a, b) => Number(a) - Number(b) : undefined);
  const index = new Map(labels.map((v, i) => [v, i]));
  const values = Int32Array.from(raw, (v) => index.get(v) ?? 0);
  const global = histogram(values, [...Array(n).keys()], labels.length).map((c) => c / Math.max(n, 1));
  let tree: HierarchicalDistance | undefined;
  if (!ordered && hierarchy) {
    try {
      tree = new HierarchicalDistance(hierarchy, labels);
    } catch (error) {
      throw new MalformedInputError(`sensitive column ${column}: ${(error as Error).message}`);
    }
  }
  const emd = tree
    ? (counts: Float64Array, size: number) => tree.distance(counts, size, global)
    : (counts: Float64Array, size: number) => earthMoversDistance(counts, size, global, ordered);
  return { values, domain: labels.length, labels, global, ordered, distance: ordered ? 'ordered' : tree ? 'hierarchical' : 'equal', emd };
}

/**
 * Validates the options shared by both methods.
 * @throws MalformedInputError for a bad model, no QIs, or l/t without a sensitive attribute
 */
export function checkOptions(options: AnonymizationOptions): void {
  checkModel(options.model);
  if (options.quasiIdentifiers.length === 0) throw new MalformedInputError('at least one quasi-identifier is needed');
  if ((options.model.l || options.model.t !== undefined) && options.sensitive === undefined)
    throw new MalformedInputError('l-diversity and t-closeness need a sensitive attribute');
}

/** The privacy-model predicate on a set of records. */
export function modelCheck(data: EncodedTable, model: PrivacyModel): (records: number[]) => boolean {
  return (records) => {
    if (records.length < model.k) return false;
    if (!data.sensitive || (!model.l && model.t === undefined)) return true;
    return sensitiveCheck(data.sensitive, model)(histogram(data.sensitive.values, records, data.sensitive.domain), records.length);
  };
}

/** The whole model on a class's size and sensitive counts (counts unused without a sensitive attribute). */
export function countsCheck(data: EncodedTable, model: PrivacyModel): (counts: Float64Array, size: number) => boolean {
  const sensitive = data.sensitive && (model.l || model.t !== undefined) ? sensitiveCheck(data.sensitive, model) : undefined;
  return (counts, size) => size >= model.k && (!sensitive || sensitive(counts, size));
}

/** The l-diversity and t-closeness part of the model, on a class's sensitive counts. */
export function sensitiveCheck(sensitive: EncodedSensitive, model: PrivacyModel): (counts: Float64Array, size: number) => boolean {
  return (counts, size) => {
    if (model.l && !isLDiverse(counts, size, model.l)) return false;
    if (model.t !== undefined && sensitive.emd(counts, size) > model.t + 1e-12) return false;
    return true;
  };
}
