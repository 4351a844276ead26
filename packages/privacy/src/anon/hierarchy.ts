/**
 * Generalisation hierarchies in ARX's CSV format (one row per leaf value, ';'-separated, most
 * specific level first, e.g. `Married-civ-spouse;spouse present;*`), as a tree that Mondrian
 * descends when it splits a categorical attribute (LeFevre et al. 2006, section 4.3).
 */
import { parse } from 'csv-parse/sync';
import { MalformedInputError } from '@medshare/crypto';

export interface HierarchyNode {
  label: string;
  children: HierarchyNode[];
  /** Number of leaf values under this node (1 for a leaf). */
  leafCount: number;
  depth: number;
}

/** A categorical generalisation tree with a path from the root to every leaf. */
export class Hierarchy {
  readonly root: HierarchyNode;
  private readonly paths = new Map<string, HierarchyNode[]>();

  private constructor(root: HierarchyNode) {
    this.root = root;
  }

  /** Builds a hierarchy from rows of labels, leaf first; all rows must end in the same root. */
  static fromRows(rows: string[][], source = 'hierarchy'): Hierarchy {
    if (rows.length === 0) throw new MalformedInputError(`${source}: empty hierarchy`);
    const rootLabel = rows[0]?.at(-1) ?? '*';
    const root: HierarchyNode = { label: rootLabel, children: [], leafCount: 0, depth: 0 };
    const hierarchy = new Hierarchy(root);
    const byKey = new Map<string, HierarchyNode>();
    rows.forEach((row, line) => {
      if (row.at(-1) !== rootLabel) throw new MalformedInputError(`${source}: row ${line + 1} does not end in the root "${rootLabel}"`);
      const leaf = row[0] ?? '';
      if (hierarchy.paths.has(leaf)) throw new MalformedInputError(`${source}: value "${leaf}" appears twice`);
      const path = [root];
      let parent = root;
      for (let level = row.length - 2; level >= 0; level--) {
        const key = `${row.slice(level).join('\u0000')}`;
        let node = byKey.get(key);
        if (!node) {
          node = { label: row[level] ?? '', children: [], leafCount: 0, depth: parent.depth + 1 };
          parent.children.push(node);
          byKey.set(key, node);
        }
        path.push(node);
        parent = node;
      }
      for (const node of path) node.leafCount++;
      hierarchy.paths.set(leaf, path);
    });
    return hierarchy;
  }

  /** Parses ARX hierarchy CSV text. */
  static parse(text: string, source = 'hierarchy'): Hierarchy {
    let rows: string[][];
    try {
      rows = parse(text.replace(/^\uFEFF/, ''), { delimiter: ';', trim: true, skip_empty_lines: true, relax_column_count: true });
    } catch (error) {
      throw new MalformedInputError(`${source}: ${(error as Error).message}`);
    }
    return Hierarchy.fromRows(rows, source);
  }

  /** A one-level hierarchy (every value directly under `*`), for a categorical column without a file. */
  static flat(values: Iterable<string>): Hierarchy {
    return Hierarchy.fromRows([...new Set(values)].map((v) => [v, '*']));
  }

  /** Total number of leaf values. */
  get size(): number {
    return this.root.leafCount;
  }

  /** The root-to-leaf path of a value; a clear error when the value is not in the hierarchy. */
  path(value: string): HierarchyNode[] {
    const path = this.paths.get(value);
    if (!path) throw new MalformedInputError(`value "${value}" is not in the generalisation hierarchy`);
    return path;
  }
}
