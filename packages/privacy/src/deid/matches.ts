/**
 * The matches of a global pattern, as `text.matchAll(pattern)` gives them, found by an exec loop on
 * the pattern itself. matchAll clones the pattern (a new RegExp object per text and detector) and
 * yields through an iterator; the free-text detectors scan every scrubbed text with dozens of
 * patterns, so they collect their spans in plain arrays instead.
 */

/** A [start, end) span of a text. */
export type Span = [number, number];

/**
 * Calls `visit` with each match of a global pattern, in order, exactly as matchAll would give
 * them: from the pattern's lastIndex (0 unless a caller set it), past an empty match by one code
 * point under `u`. The lastIndex is put back after, so a pattern shared by callers is left as it was.
 * @throws TypeError when the pattern is not global (matchAll throws too).
 */
export function forEachMatch(text: string, pattern: RegExp, visit: (match: RegExpExecArray) => void): void {
  if (!pattern.global) throw new TypeError('a detector pattern must be global (flag g)');
  const saved = pattern.lastIndex;
  try {
    for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
      if (match[0] === '') pattern.lastIndex = advanceStringIndex(text, pattern.lastIndex, pattern.unicode);
      visit(match);
    }
  } finally {
    pattern.lastIndex = saved;
  }
}

/** The span of each match of a global pattern (see forEachMatch). */
export function wholeSpans(text: string, pattern: RegExp): Span[] {
  const found: Span[] = [];
  forEachMatch(text, pattern, (m) => found.push([m.index, m.index + m[0].length]));
  return found;
}

/** The span of each match's first capture group (which the pattern must always capture). */
export function groupSpans(text: string, pattern: RegExp): Span[] {
  const found: Span[] = [];
  forEachMatch(text, pattern, (m) => {
    const start = m.index + m[0].length - m[1]!.length;
    found.push([start, start + m[1]!.length]);
  });
  return found;
}

/** ECMA-262 AdvanceStringIndex: past an empty match, by one code point under the `u` flag. */
function advanceStringIndex(text: string, index: number, unicode: boolean): number {
  if (!unicode || index + 1 >= text.length) return index + 1;
  const c = text.charCodeAt(index);
  return c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(index + 1) & 0xfc00) === 0xdc00 ? index + 2 : index + 1;
}
