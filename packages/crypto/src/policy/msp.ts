/**
 * Monotone span programs from policy trees (Lewko & Waters, "Decentralizing Attribute-Based Encryption",
 * EUROCRYPT 2011, Appendix G), generalised to threshold gates with Vandermonde rows.
 *
 * Every node carries a vector; the root carries the target e_0 = (1, 0, …, 0). For a gate with vector v:
 *  - `and` of n children (n-of-n): n-1 fresh columns c_1..c_{n-1}; child 1 gets v + e_{c_1}, child k gets
 *    −e_{c_{k-1}} + e_{c_k}, child n gets −e_{c_{n-1}}. They sum to v; any n-1 of them do not span v.
 *  - `or` (1-of-n): every child gets v.
 *  - t-of-n: t-1 fresh columns; child x (x = 1..n) gets v + Σ_j x^j e_{c_j}. Any t children reconstruct v
 *    with their Lagrange coefficients at 0; fewer than t cannot (a Vandermonde argument).
 * Leaves become rows, labelled by their attribute and its occurrence: the k-th row (in leaf order) naming an
 * attribute has occurrence k, which `occurrence.ts` turns into a distinct oracle label. With `and`/`or` only, every reconstruction coefficient
 * is 1, so decryption combines rows with group additions alone.
 */
import { attributeKey, type Attribute, type ExpandedNode } from './ast.ts';

export interface SpanRow {
  attribute: Attribute;
  /** attributeKey(attribute), computed once. */
  key: string;
  /** 1 for the first row naming this attribute, 2 for the second, … (the one-use transformation's copy index). */
  occurrence: number;
  /** Non-zero entries as (column, integer value); columns not listed are zero. */
  entries: Array<[column: number, value: bigint]>;
}

/** The policy tree, annotated with the rows and construction the span program used. */
export type SpanTree =
  | { kind: 'leaf'; row: number; attribute: Attribute }
  | { kind: 'and' | 'or'; children: SpanTree[] }
  | { kind: 'threshold'; threshold: number; children: SpanTree[] };

export interface SpanProgram {
  rows: SpanRow[];
  columns: number;
  tree: SpanTree;
}

type Vector = Map<number, bigint>;

function plus(v: Vector, extra: Array<[number, bigint]>): Vector {
  const out = new Map(v);
  for (const [c, x] of extra) out.set(c, (out.get(c) ?? 0n) + x);
  return out;
}

/** Builds the span program of an expanded policy (deterministic: the same policy gives the same matrix). */
export function toSpanProgram(root: ExpandedNode): SpanProgram {
  const rows: SpanRow[] = [];
  const occurrences = new Map<string, number>();
  let columns = 1;
  const build = (node: ExpandedNode, v: Vector): SpanTree => {
    if (node.kind === 'leaf') {
      const key = attributeKey(node.attribute);
      const occurrence = (occurrences.get(key) ?? 0) + 1;
      occurrences.set(key, occurrence);
      rows.push({ attribute: node.attribute, key, occurrence, entries: [...v].filter(([, x]) => x !== 0n).sort((a, b) => a[0] - b[0]) });
      return { kind: 'leaf', row: rows.length - 1, attribute: node.attribute };
    }
    const n = node.children.length;
    const fresh = (count: number) => Array.from({ length: count }, () => columns++);
    if (node.threshold === 1) {
      return { kind: 'or', children: node.children.map((c) => build(c, v)) };
    }
    if (node.threshold === n) {
      const cols = fresh(n - 1);
      const children = node.children.map((child, k) => {
        const entries: Array<[number, bigint]> = [];
        if (k > 0) entries.push([cols[k - 1]!, -1n]);
        if (k < n - 1) entries.push([cols[k]!, 1n]);
        return build(child, k === 0 ? plus(v, entries) : new Map(entries));
      });
      return { kind: 'and', children };
    }
    const cols = fresh(node.threshold - 1);
    const children = node.children.map((child, k) => {
      const x = BigInt(k + 1);
      return build(
        child,
        plus(
          v,
          cols.map((c, j) => [c, x ** BigInt(j + 1)] as [number, bigint]),
        ),
      );
    });
    return { kind: 'threshold', threshold: node.threshold, children };
  };
  const tree = build(root, new Map([[0, 1n]]));
  return { rows, columns, tree };
}

/** Number of leaves of an expanded policy (= rows of its span program). */
export function countLeaves(node: ExpandedNode): number {
  return node.kind === 'leaf' ? 1 : node.children.reduce((sum, c) => sum + countLeaves(c), 0);
}
