/** Splitting a FHIRPath expression at its top-level union operators (outside quotes and parentheses). */

/** The branches of `a | b | c`; an expression without a top-level `|` is one branch. */
export function splitUnion(path: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote = false;
  let start = 0;
  for (let i = 0; i < path.length; i++) {
    const ch = path[i];
    if (ch === "'") quote = !quote;
    else if (!quote && ch === '(') depth++;
    else if (!quote && ch === ')') depth--;
    else if (!quote && depth === 0 && ch === '|') {
      parts.push(path.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(path.slice(start).trim());
  return parts;
}
