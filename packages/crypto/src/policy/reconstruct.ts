/**
 * Finds, for a set of attributes, the rows of a span program to use and their coefficients γ_i with
 * Σ γ_i·M_i = e_0 — or reports that the attributes do not satisfy the policy. It walks the annotated
 * tree instead of solving a linear system: `and` takes every child with coefficient 1, `or` its cheapest
 * satisfied child, a t-of-n gate its t cheapest satisfied children scaled by their Lagrange coefficients at 0.
 */
import { frFromBigInt, frInv, frMul, frSub, type Fr } from '../curve/bls12381.ts';
import type { SpanProgram, SpanRow, SpanTree } from './msp.ts';

interface Solution {
  /** Row index → coefficient, or undefined for the coefficient 1 (combined by plain addition). */
  rows: Map<number, Fr | undefined>;
  cost: number;
}

/** Lagrange coefficient at 0 of point x among `points`: Π_{y≠x} y / (y − x) mod r. */
function lagrangeAtZero(x: number, points: number[]): Fr {
  let numerator = frFromBigInt(1n);
  let denominator = frFromBigInt(1n);
  for (const y of points) {
    if (y === x) continue;
    numerator = frMul(numerator, frFromBigInt(BigInt(y)));
    denominator = frMul(denominator, frSub(frFromBigInt(BigInt(y)), frFromBigInt(BigInt(x))));
  }
  return frMul(numerator, frInv(denominator));
}

function scale(solution: Solution, factor: Fr): Solution {
  const rows = new Map<number, Fr | undefined>();
  for (const [row, coefficient] of solution.rows) rows.set(row, coefficient ? frMul(coefficient, factor) : factor);
  return { rows, cost: solution.cost };
}

function merge(parts: Solution[]): Solution {
  const rows = new Map<number, Fr | undefined>();
  for (const part of parts) for (const [row, c] of part.rows) rows.set(row, c);
  return { rows, cost: parts.reduce((sum, p) => sum + p.cost, 0) };
}

function solve(node: SpanTree, rows: SpanRow[], holds: (row: SpanRow, index: number) => boolean): Solution | undefined {
  switch (node.kind) {
    case 'leaf':
      return holds(rows[node.row]!, node.row) ? { rows: new Map([[node.row, undefined]]), cost: 1 } : undefined;
    case 'and': {
      const parts: Solution[] = [];
      for (const child of node.children) {
        const part = solve(child, rows, holds);
        if (!part) return undefined;
        parts.push(part);
      }
      return merge(parts);
    }
    case 'or': {
      let best: Solution | undefined;
      for (const child of node.children) {
        const part = solve(child, rows, holds);
        if (part && (!best || part.cost < best.cost)) best = part;
      }
      return best;
    }
    case 'threshold': {
      const satisfied = node.children
        .map((child, k) => ({ x: k + 1, part: solve(child, rows, holds) }))
        .filter((c): c is { x: number; part: Solution } => c.part !== undefined)
        .sort((a, b) => a.part.cost - b.part.cost)
        .slice(0, node.threshold);
      if (satisfied.length < node.threshold) return undefined;
      const points = satisfied.map((c) => c.x);
      return merge(satisfied.map((c) => scale(c.part, lagrangeAtZero(c.x, points))));
    }
  }
}

/**
 * The rows and coefficients that reconstruct e_0 from the rows the key can use (`holds`, given the row and its
 * index), or undefined if they do not satisfy the policy. A coefficient of undefined means 1.
 */
export function reconstruct(program: SpanProgram, holds: (row: SpanRow, index: number) => boolean): Map<number, Fr | undefined> | undefined {
  return solve(program.tree, program.rows, holds)?.rows;
}
