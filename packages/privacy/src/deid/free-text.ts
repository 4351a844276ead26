/**
 * Free-text PHI scrubbing for narratives, annotations and clinical notes. Two detectors, in the
 * manner of Philter (Norgeot et al., npj Digital Medicine 2020) and Presidio: a dictionary of the
 * names known for this record set (the bundle's own Patient, RelatedPerson and Practitioner names,
 * plus a configured dictionary), and patterns for the other HIPAA Safe Harbor identifier kinds
 * (45 CFR 164.514(b)(2)(i)): dates, ages over 89, phone/fax, e-mail, SSN, MRN and other labelled
 * identifiers, UUIDs, street addresses, ZIP codes, URLs and IP addresses.
 * Each finding is replaced by a bracketed category tag such as `[NAME]` or `[DATE]`.
 */

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
  ['DATE', new RegExp(`\\b\\d{4}-\\d{2}-\\d{2}(?:T[\\d:.]+(?:Z|[+-]\\d{2}:\\d{2})?)?|\\b\\d{1,2}[/.-]\\d{1,2}[/.-]\\d{2,4}\\b|\\b(?:${MONTHS})\\.?\\s+\\d{1,2}(?:st|nd|rd|th)?,?\\s+\\d{4}\\b|\\b\\d{1,2}\\s+(?:${MONTHS})\\.?,?\\s+\\d{4}\\b|\\b(?:${MONTHS})\\.?\\s+\\d{4}\\b`, 'gi'), hasDigit],
  ['ID', /\b(?:MRN|medical record(?: number)?|account(?: number)?|acct|member id|policy(?: number)?|licen[cs]e(?: number)?|passport(?: number)?|DL|device id|serial(?: number)?|plan id|health plan(?: number)?)[\s#:.]*(?:no\.?|number|#)?[\s#:.]*[A-Z0-9][A-Z0-9-]{3,}\b/gi, (t) => t.length > 5],
  ['ADDRESS', /\b\d{1,6}\s+(?:[A-Z][A-Za-z0-9'.-]*\s+){1,4}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Circle|Highway|Hwy|Parkway|Pkwy|Square|Sq)\b\.?(?:\s+(?:Apt|Suite|Unit)\.?\s*#?\w+)?/g, hasDigit],
  ['AGE', /\b(?:9\d|1[0-4]\d)(?=[\s-]*(?:years?|yrs?|y\/?o)\b)/gi, hasDigit],
  ['AGE', /\b(?:aged?|age of)\s+(?:9\d|1[0-4]\d)\b/gi, hasDigit],
  ['ZIP', /\b\d{5}(?:-\d{4})?\b/g, hasDigit],
];

/** Builds a case-insensitive whole-word matcher for a set of names; `undefined` when the set is empty. */
export function nameMatcher(names: Iterable<string>): RegExp | undefined {
  const unique = [...new Set([...names].map((n) => n.trim()).filter((n) => n.length >= 2))];
  if (unique.length === 0) return undefined;
  unique.sort((a, b) => b.length - a.length);
  const escaped = unique.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join('|')})(?![\\p{L}\\p{N}])`, 'giu');
}

/** Finds PHI spans in `text`: non-overlapping, sorted by position. */
export function findPhi(text: string, names?: RegExp): Finding[] {
  const findings: Finding[] = [];
  const taken = (start: number, end: number) => findings.some((f) => start < f.end && f.start < end);
  const detectors: [PhiKind, RegExp, (text: string) => boolean][] = names ? [['NAME', names, () => true], ...PATTERNS] : PATTERNS;
  for (const [kind, pattern, guard] of detectors) {
    if (!guard(text)) continue;
    pattern.lastIndex = 0;
    for (const match of text.matchAll(pattern)) {
      const start = match.index;
      const end = start + match[0].length;
      if (match[0].length > 0 && !taken(start, end)) findings.push({ kind, start, end });
    }
  }
  return findings.sort((a, b) => a.start - b.start);
}

/** Replaces every PHI finding by its `[KIND]` tag. */
export function scrubText(text: string, names?: RegExp): { text: string; findings: Finding[] } {
  const findings = findPhi(text, names);
  let out = '';
  let cursor = 0;
  for (const finding of findings) {
    out += text.slice(cursor, finding.start) + `[${finding.kind}]`;
    cursor = finding.end;
  }
  return { text: out + text.slice(cursor), findings };
}
