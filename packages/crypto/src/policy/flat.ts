/**
 * A short path for the commonest policies — one flat `and` or `or` of plain `name:value` attributes written with
 * single spaces and lower-case keywords (`role:doctor and dept:cardiology and …`) — straight to the span program
 * that `toSpanProgram` builds for them, without tokenizing, parsing or building a tree of vectors. A process's
 * first decryption pays for every function it runs for the first time (V8 compiles them lazily and interprets
 * them before optimising); for a 50-attribute AND the general compiler's first run costs about 0.8 pairings, this
 * path a fraction of it (docs/benchmarks.md, "Decrypt in a fresh process").
 *
 * It gives either exactly the general compiler's program or `undefined`, never its own error: anything it is not
 * sure of (other spacing or case, quotes, comparisons, parentheses, a keyword as a name, a limit reached) goes to
 * the general path, which then accepts or refuses it. `fast-paths.test.ts` checks the equality on random policies.
 */
import { attributeKey, NAME, type StringAttribute } from './ast.ts';
import { WORD_CHAR } from './lexer.ts';
import type { SpanProgram, SpanRow, SpanTree } from './msp.ts';
import type { PolicyLimits } from './parser.ts';

/** `name:value` as one term of a flat policy: a name as `NAME` allows, a value of word characters (lexer.ts). */
const TERM = new RegExp(`^(${NAME.source.slice(1, -1)}):(${WORD_CHAR.source}+)$`);
/** Names the parser reads as keywords in operand position (it refuses them there). */
const KEYWORD = /^(and|or)$/i;

/** The span program of a flat `and`/`or` policy, or undefined when the policy is not one (see the file comment). */
export function flatSpanProgram(policy: string, limits: PolicyLimits): SpanProgram | undefined {
  if (policy.length > limits.maxLength) return undefined;
  const isOr = !policy.includes(' and ');
  const terms = policy.split(isOr ? ' or ' : ' and ');
  if (terms.length > limits.maxChildren || terms.length > limits.maxLeaves) return undefined;
  const rows: SpanRow[] = [];
  const occurrences = new Map<string, number>();
  const n = terms.length;
  for (let i = 0; i < n; i++) {
    const match = TERM.exec(terms[i]!);
    if (match === null || KEYWORD.test(match[1]!)) return undefined;
    const attribute: StringAttribute = { kind: 'string', name: match[1]!, value: match[2]! };
    const key = attributeKey(attribute);
    const occurrence = (occurrences.get(key) ?? 0) + 1;
    if (occurrence > limits.maxOccurrences) return undefined;
    occurrences.set(key, occurrence);
    rows.push({ attribute, key, occurrence, entries: n === 1 || isOr ? [[0, 1n]] : andEntries(i, n) });
  }
  const leaves: SpanTree[] = rows.map((row, i) => ({ kind: 'leaf', row: i, attribute: row.attribute }));
  if (n === 1) return { rows, columns: 1, tree: leaves[0]! };
  return { rows, columns: isOr ? 1 : n, tree: { kind: isOr ? 'or' : 'and', children: leaves } };
}

/**
 * Row i of an n-of-n gate at the root (msp.ts, Lewko–Waters): fresh columns 1..n−1; row 0 is e_0 + e_1, row i is
 * −e_i + e_{i+1}, the last row −e_{n−1}.
 */
function andEntries(i: number, n: number): Array<[number, bigint]> {
  const entries: Array<[number, bigint]> = i === 0 ? [[0, 1n]] : [[i, -1n]];
  if (i < n - 1) entries.push([i + 1, 1n]);
  return entries;
}
