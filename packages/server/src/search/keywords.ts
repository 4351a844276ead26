/**
 * What the searchable index knows of a FHIR resource, and how a FHIR search becomes index keywords
 * (https://hl7.org/fhir/R4/search.html). The gateway indexes a record under:
 *
 *   type:<resourceType>              the resource type
 *   code:<system>|<code>             every coding of code / vaccineCode / medicationCodeableConcept / type
 *   code-any:<code>                  the same code without its system (FHIR `code=2093-3`)
 *   status:<status>                  the status element
 *   date:y:<yyyy> date:m:<yyyy-mm> date:d:<yyyy-mm-dd>   the clinical date, as day, month and year buckets
 *   word:<word>                      each distinct word (3-40 letters/digits, lower case) of the notes
 *
 * The reader's SDK uses the same extraction to check each decrypted result against the whole query, so the
 * index only has to find candidates: a result the cloud pointed at wrongly is caught here, not trusted.
 */
import { createHash } from 'node:crypto';
import { MalformedInputError, LimitExceededError } from '@medshare/crypto';
import type { FhirResource } from '../gateway/fhir.ts';

/** Most distinct note words indexed per record (the rest are still checked after decryption). */
export const MAX_WORDS_PER_RECORD = 200;
const CODE_FIELDS = ['code', 'vaccineCode', 'medicationCodeableConcept', 'type'] as const;
/** Where each resource type keeps its clinical date, first found wins (FHIR R4 `date` search parameters). */
const DATE_PATHS = [
  'effectiveDateTime',
  'effectivePeriod.start',
  'effectiveInstant',
  'issued',
  'onsetDateTime',
  'performedDateTime',
  'performedPeriod.start',
  'period.start',
  'authoredOn',
  'occurrenceDateTime',
  'recordedDate',
  'date',
  'started',
  'created',
  'billablePeriod.start',
] as const;
const DAY = /^(\d{4})-(\d{2})-(\d{2})/;
const WORD = /[\p{L}\p{N}]+/gu;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function path(resource: FhirResource, dotted: string): unknown {
  let value: unknown = resource;
  for (const part of dotted.split('.')) value = isObject(value) ? value[part] : undefined;
  return value;
}

/** The codings (system, code) of a resource's code-like elements. */
export function codingsOf(resource: FhirResource): Array<{ system: string; code: string }> {
  const out: Array<{ system: string; code: string }> = [];
  for (const field of CODE_FIELDS) {
    const value = resource[field];
    for (const concept of Array.isArray(value) ? value : [value]) {
      if (!isObject(concept) || !Array.isArray(concept.coding)) continue;
      for (const coding of concept.coding) {
        if (isObject(coding) && typeof coding.code === 'string' && coding.code.length > 0)
          out.push({ system: typeof coding.system === 'string' ? coding.system : '', code: coding.code });
      }
    }
  }
  return out;
}

/** The resource's clinical date (yyyy-mm-dd as written, time zone ignored), if it has one. */
export function clinicalDateOf(resource: FhirResource): string | undefined {
  for (const p of DATE_PATHS) {
    const value = path(resource, p);
    if (typeof value === 'string' && DAY.test(value)) return value.slice(0, 10);
  }
  return undefined;
}

/** The free text of the notes: note[].text, valueString, conclusion, and text/plain attachments of DocumentReference. */
function notesOf(resource: FhirResource): string[] {
  const texts: string[] = [];
  if (Array.isArray(resource.note)) for (const n of resource.note) if (isObject(n) && typeof n.text === 'string') texts.push(n.text);
  for (const field of ['valueString', 'conclusion', 'description']) if (typeof resource[field] === 'string') texts.push(resource[field] as string);
  if (Array.isArray(resource.content)) {
    for (const c of resource.content) {
      const a = isObject(c) ? c.attachment : undefined;
      if (isObject(a) && typeof a.data === 'string' && typeof a.contentType === 'string' && a.contentType.startsWith('text/plain'))
        texts.push(Buffer.from(a.data, 'base64').toString('utf8'));
    }
  }
  return texts;
}

/** Distinct lower-case words of `text` of 3-40 characters, in first-seen order. */
export function wordsOf(text: string): string[] {
  const words = new Set<string>();
  for (const match of text.normalize('NFKC').toLowerCase().matchAll(WORD)) {
    const word = match[0];
    if (word.length >= 3 && word.length <= 40) words.add(word);
  }
  return [...words];
}

/** The date bucket keywords of a day. */
export function dateKeywords(day: string): string[] {
  return [`date:y:${day.slice(0, 4)}`, `date:m:${day.slice(0, 7)}`, `date:d:${day}`];
}

/**
 * The patient's desensitisation rules for the words of her notes (docs/platform.md § Search): the gateway leaves out
 * of the index every word whose digest is in `excludedWords` and, with `excludeNumbers`, every word with a digit
 * (dates, phone numbers, identifiers written in a note). Words are digested (salted SHA-256, indexRuleDigest) so
 * the cloud that keeps the rules sees no word; it can still test words it guesses.
 */
export interface IndexRules {
  /** Per-patient salt of the digests (base64url, 16 bytes). */
  readonly salt: string;
  /** indexRuleDigest of each excluded word (lower case, as wordsOf finds it). */
  readonly excludedWords: readonly string[];
  readonly excludeNumbers: boolean;
}

/** Most words one patient may exclude. */
export const MAX_EXCLUDED_WORDS = 1000;

/** The digest of an excluded word under the rules' salt (base64url SHA-256 of salt ‖ word). */
export function indexRuleDigest(salt: string, word: string): string {
  return createHash('sha256').update('medshare/index-rules/v1\0').update(salt).update('\0').update(word).digest('base64url');
}

/** `json` as index rules, or MalformedInputError / LimitExceededError naming what is wrong. */
export function parseIndexRules(json: unknown): IndexRules {
  const r = json as Partial<IndexRules> | null;
  if (typeof r !== 'object' || r === null || Array.isArray(r))
    throw new MalformedInputError('index rules are an object { salt, excludedWords, excludeNumbers }');
  const extra = Object.keys(r).find((k) => !['salt', 'excludedWords', 'excludeNumbers'].includes(k));
  if (extra !== undefined) throw new MalformedInputError(`unknown field '${extra}' in index rules`);
  if (typeof r.salt !== 'string' || !/^[A-Za-z0-9_-]{22}$/.test(r.salt)) throw new MalformedInputError("the index rules' salt is 16 bytes in base64url");
  if (!Array.isArray(r.excludedWords) || r.excludedWords.some((d) => typeof d !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(d)))
    throw new MalformedInputError('excludedWords are SHA-256 digests in base64url');
  if (r.excludedWords.length > MAX_EXCLUDED_WORDS) throw new LimitExceededError(`at most ${MAX_EXCLUDED_WORDS} excluded words`);
  if (typeof r.excludeNumbers !== 'boolean') throw new MalformedInputError('excludeNumbers is true or false');
  return { salt: r.salt, excludedWords: [...r.excludedWords], excludeNumbers: r.excludeNumbers };
}

/** Whether the rules keep `word` out of the index. */
function excluded(rules: IndexRules | undefined, digests: ReadonlySet<string>, word: string): boolean {
  return rules !== undefined && ((rules.excludeNumbers && /\p{N}/u.test(word)) || digests.has(indexRuleDigest(rules.salt, word)));
}

/** Every keyword the index holds for `resource` (distinct), note words after the patient's `rules`. */
export function keywordsOf(resource: FhirResource, rules?: IndexRules): string[] {
  const keywords = new Set<string>([`type:${resource.resourceType}`]);
  for (const { system, code } of codingsOf(resource)) {
    keywords.add(`code:${system}|${code}`);
    keywords.add(`code-any:${code}`);
  }
  if (typeof resource.status === 'string' && resource.status.length > 0) keywords.add(`status:${resource.status}`);
  const day = clinicalDateOf(resource);
  if (day !== undefined) for (const k of dateKeywords(day)) keywords.add(k);
  const words = new Set<string>();
  const digests = new Set(rules?.excludedWords);
  for (const text of notesOf(resource)) for (const w of wordsOf(text)) if (words.size < MAX_WORDS_PER_RECORD && !excluded(rules, digests, w)) words.add(w);
  for (const w of words) keywords.add(`word:${w}`);
  return [...keywords];
}

// ---- queries ---------------------------------------------------------------------------------------

/** One search parameter as index keywords: a record matches if it has any of them. */
export interface KeywordGroup {
  readonly parameter: string;
  readonly anyOf: readonly string[];
}

/** A parsed FHIR search: keyword groups (all must match) and the exact test each decrypted result must pass. */
export interface IndexQuery {
  readonly resourceType: string;
  readonly groups: readonly KeywordGroup[];
  /** The whole query on a decrypted resource (FHIR semantics, not just the index's buckets). */
  matches(resource: FhirResource): boolean;
}

/** Parameters a query understands besides `patient` (which names whose records, not what is in them). */
export const SEARCH_PARAMETERS = ['code', 'status', 'date', '_content', '_text'] as const;
const MAX_VALUES = 64;
const EARLIEST = '1800-01-01';
const LATEST = '2199-12-31';

/** Day arithmetic on yyyy-mm-dd (UTC). */
const toDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const ms = (day: string) => Date.parse(`${day}T00:00:00Z`);
const addDays = (day: string, n: number) => toDay(ms(day) + n * 86_400_000);
const lastDayOfMonth = (ym: string) => toDay(Date.UTC(Number(ym.slice(0, 4)), Number(ym.slice(5, 7)), 0));

/** A FHIR date value (yyyy, yyyy-mm, yyyy-mm-dd, or a dateTime whose day is taken) as its first and last day. */
function dateSpan(value: string): [string, string] {
  let m: RegExpExecArray | null;
  if ((m = /^(\d{4})$/.exec(value))) return [`${m[1]}-01-01`, `${m[1]}-12-31`];
  if ((m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(value))) return [`${value}-01`, lastDayOfMonth(value)];
  if (
    (m = /^(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?$/.exec(value)) &&
    toDay(ms(value.slice(0, 10))) === value.slice(0, 10)
  ) {
    return [value.slice(0, 10), value.slice(0, 10)];
  }
  throw new MalformedInputError(`'${value}' is not a FHIR date`);
}

/** [from, to] of one `date` parameter value with its prefix (eq, ne unsupported, lt, gt, le, ge, sa, eb). */
function dateRange(raw: string): [string, string] {
  const m = /^(eq|lt|gt|le|ge|sa|eb)?(.+)$/.exec(raw)!;
  const [first, last] = dateSpan(m[2]!);
  switch (m[1] ?? 'eq') {
    case 'eq':
      return [first, last];
    case 'ge':
      return [first, LATEST];
    case 'gt':
    case 'sa':
      return [addDays(last, 1), LATEST];
    case 'le':
      return [EARLIEST, last];
    case 'lt':
    case 'eb':
      return [EARLIEST, addDays(first, -1)];
  }
  throw new MalformedInputError(`unsupported date prefix in '${raw}'`);
}

/**
 * The fewest year, month and day buckets that cover exactly the days [from, to] (range query by decomposition):
 * whole years inside, then whole months, then single days at the edges.
 */
export function coverDays(from: string, to: string): string[] {
  const out: string[] = [];
  let day = from;
  while (day <= to) {
    const year = day.slice(0, 4);
    const month = day.slice(0, 7);
    if (day.endsWith('-01-01') && `${year}-12-31` <= to) {
      out.push(`date:y:${year}`);
      day = `${String(Number(year) + 1).padStart(4, '0')}-01-01`;
    } else if (day.endsWith('-01') && lastDayOfMonth(month) <= to) {
      out.push(`date:m:${month}`);
      day = addDays(lastDayOfMonth(month), 1);
    } else {
      out.push(`date:d:${day}`);
      day = addDays(day, 1);
    }
  }
  return out;
}

function values(raw: string, parameter: string): string[] {
  const list = raw.split(',').map((v) => v.trim());
  if (list.length > MAX_VALUES) throw new LimitExceededError(`at most ${MAX_VALUES} values of '${parameter}'`);
  if (list.some((v) => v.length === 0 || v.length > 256)) throw new MalformedInputError(`empty or over-long value of '${parameter}'`);
  return list;
}

/**
 * A FHIR search on `resourceType` (parameters as in the query string; repeated parameters are ANDed, comma
 * values ORed). @throws MalformedInputError for an unknown parameter, modifier or malformed value.
 */
export function parseQuery(resourceType: string, params: URLSearchParams): IndexQuery {
  if (!/^[A-Z][A-Za-z]{1,63}$/.test(resourceType)) throw new MalformedInputError(`'${resourceType}' is not a FHIR resource type`);
  const groups: KeywordGroup[] = [];
  const tests: Array<(r: FhirResource) => boolean> = [];
  for (const [name, raw] of params) {
    if (name === 'patient') continue;
    if (!(SEARCH_PARAMETERS as readonly string[]).includes(name))
      throw new MalformedInputError(`unsupported search parameter '${name}' (supported: patient, ${SEARCH_PARAMETERS.join(', ')})`);
    const list = values(raw, name);
    if (name === 'code') {
      const wanted = list.map((v) =>
        v.includes('|') ? { system: v.slice(0, v.indexOf('|')), code: v.slice(v.indexOf('|') + 1) } : { system: undefined, code: v },
      );
      if (wanted.some((w) => w.code.length === 0)) throw new MalformedInputError('a code value needs a code (system|code or code)');
      groups.push({ parameter: name, anyOf: wanted.map((w) => (w.system === undefined ? `code-any:${w.code}` : `code:${w.system}|${w.code}`)) });
      tests.push((r) => codingsOf(r).some((c) => wanted.some((w) => w.code === c.code && (w.system === undefined || w.system === c.system))));
    } else if (name === 'status') {
      groups.push({ parameter: name, anyOf: list.map((s) => `status:${s}`) });
      tests.push((r) => list.includes(r.status as string));
    } else if (name === 'date') {
      const ranges = list.map(dateRange);
      groups.push({ parameter: name, anyOf: [...new Set(ranges.flatMap(([a, b]) => coverDays(a, b)))] });
      tests.push((r) => {
        const d = clinicalDateOf(r);
        return d !== undefined && ranges.some(([a, b]) => a <= d && d <= b);
      });
    } else {
      // _content / _text: every word of each value (a value is a phrase whose words must all appear).
      for (const phrase of list) {
        const words = wordsOf(phrase);
        if (words.length === 0) throw new MalformedInputError(`'${phrase}' has no word of 3 or more letters to search for`);
        for (const w of words) {
          groups.push({ parameter: name, anyOf: [`word:${w}`] });
          tests.push((r) => keywordsOf(r).includes(`word:${w}`));
        }
      }
    }
  }
  if (groups.length === 0) groups.push({ parameter: '_type', anyOf: [`type:${resourceType}`] });
  return { resourceType, groups, matches: (r) => r.resourceType === resourceType && tests.every((t) => t(r)) };
}
