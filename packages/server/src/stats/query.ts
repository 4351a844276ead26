/**
 * The statistics query language: a small, closed JSON form over FHIR R4 that every hospital evaluates on its own
 * records. A query counts PATIENTS (each patient lands in at most one cell, so one patient changes the released
 * histogram by at most 1 per measure — the sensitivity the noise is calibrated to), optionally with the sum of one
 * clamped observation value per patient.
 *
 *   {
 *     "querySet": "diabetes-2026",                      the budget this query spends from
 *     "asOf": "2026-01-01",                             ages are computed at this date (every hospital the same)
 *     "where": [                                        all criteria must hold (a patient matches if, for each
 *       { "resourceType": "Condition",                  criterion, at least one of its resources matches)
 *         "codes": ["http://snomed.info/sct|44054006"] },
 *       { "resourceType": "Observation", "codes": ["http://loinc.org|4548-4"],
 *         "value": { "min": 7 }, "date": { "from": "2020-01-01", "to": "2025-12-31" } } ],
 *     "age": { "min": 65 },  "gender": ["female", "male"],
 *     "groupBy": ["ageBand"],                            at most two of ageBand, gender, year
 *     "measure": { "kind": "count" }                     or { "kind": "sum", "code": "http://loinc.org|4548-4",
 *                                                           "min": 0, "max": 20, "scale": 10 }
 *     "epsilon": 0.5
 *   }
 *
 * `parseQuery` checks the shape (MalformedInputError, naming the field) and then the allow-list (AccessDeniedError:
 * which resource types, code systems and codes, dimensions and ε a consortium permits). Nothing else runs.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { AccessDeniedError, LimitExceededError, MalformedInputError } from '@medshare/crypto';
import { epsilonFraction } from './noise.ts';

/** The resource types a criterion may name, with the field that dates them. */
export const RESOURCE_DATES = {
  Observation: ['effectiveDateTime', 'issued'],
  Condition: ['onsetDateTime', 'recordedDate'],
  MedicationRequest: ['authoredOn'],
  Procedure: ['performedPeriod.start', 'performedDateTime'],
  Encounter: ['period.start'],
  Immunization: ['occurrenceDateTime'],
} as const;
export type CriterionResourceType = keyof typeof RESOURCE_DATES;

/** The fixed dimensions a query may group by. */
export const DIMENSIONS = ['ageBand', 'gender', 'year'] as const;
export type Dimension = (typeof DIMENSIONS)[number];
/** Age bands (lower bounds, years): 0-17, 18-44, 45-64, 65-74, 75-84, 85+. */
export const AGE_BANDS = [0, 18, 45, 65, 75, 85] as const;
export const GENDERS = ['female', 'male', 'other', 'unknown'] as const;

export interface Range {
  min?: number;
  max?: number;
}
export interface DateRange {
  from?: string;
  to?: string;
}
export interface Criterion {
  resourceType: CriterionResourceType;
  /** `system|code`; a resource matches if any of its codings is listed. */
  codes: string[];
  /** Observation only: valueQuantity.value within the range (inclusive). */
  value?: Range;
  date?: DateRange;
}
export type Measure = { kind: 'count' } | { kind: 'sum'; code: string; min: number; max: number; scale: number };

export interface StatsQuery {
  querySet: string;
  asOf: string;
  where: Criterion[];
  age?: Range;
  gender?: (typeof GENDERS)[number][];
  groupBy: Dimension[];
  measure: Measure;
  epsilon: number;
}

/** What a consortium permits. */
export interface AllowList {
  /** Resource type → allowed code systems; a system mapped to a list allows only those codes, to `'*'` any code. */
  resources: Partial<Record<CriterionResourceType, Record<string, '*' | string[]>>>;
  dimensions: Dimension[];
  /** ε per query: at least min (noise that drowns the answer is pointless), at most max. */
  epsilon: { min: number; max: number };
  /** Codes (`system|code`) whose values may be summed. */
  sumCodes: string[];
}

/** The default allow-list: LOINC observations, SNOMED conditions and procedures, RxNorm prescriptions. */
export const DEFAULT_ALLOW_LIST: AllowList = {
  resources: {
    Observation: { 'http://loinc.org': '*' },
    Condition: { 'http://snomed.info/sct': '*' },
    Procedure: { 'http://snomed.info/sct': '*' },
    MedicationRequest: { 'http://www.nlm.nih.gov/research/umls/rxnorm': '*' },
  },
  dimensions: ['ageBand', 'gender', 'year'],
  epsilon: { min: 0.05, max: 2 },
  sumCodes: ['http://loinc.org|4548-4', 'http://loinc.org|2339-0', 'http://loinc.org|39156-5', 'http://loinc.org|2093-3'],
};

const QUERY_SET = /^[a-z][a-z0-9-]{0,62}$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const CODE = /^[a-z]+:\/\/[!-{}~]{1,200}\|[A-Za-z0-9.\-_]{1,64}$/;
const MAX_CRITERIA = 4;
const MAX_CODES = 32;
/** Years a `year` dimension may span (cells = span). */
const MAX_YEARS = 50;

const fail = (message: string): never => {
  throw new MalformedInputError(`query: ${message}`);
};
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function only(obj: Record<string, unknown>, keys: string[], where: string): void {
  const extra = Object.keys(obj).find((k) => !keys.includes(k));
  if (extra !== undefined) fail(`unknown field '${extra}' in ${where}`);
}

function finite(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${where} must be a finite number`);
  return v as number;
}

function range(v: unknown, where: string): Range | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) return fail(`${where} must be an object { min?, max? }`);
  only(v, ['min', 'max'], where);
  const out: Range = {};
  if (v.min !== undefined) out.min = finite(v.min, `${where}.min`);
  if (v.max !== undefined) out.max = finite(v.max, `${where}.max`);
  if (out.min !== undefined && out.max !== undefined && out.min > out.max) fail(`${where}: min above max`);
  return out;
}

function day(v: unknown, where: string): string {
  if (typeof v !== 'string' || !DAY.test(v) || Number.isNaN(Date.parse(`${v}T00:00:00Z`))) fail(`${where} must be a date YYYY-MM-DD`);
  return v as string;
}

function dateRange(v: unknown, where: string): DateRange | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) return fail(`${where} must be an object { from?, to? }`);
  only(v, ['from', 'to'], where);
  const out: DateRange = {};
  if (v.from !== undefined) out.from = day(v.from, `${where}.from`);
  if (v.to !== undefined) out.to = day(v.to, `${where}.to`);
  if (out.from !== undefined && out.to !== undefined && out.from > out.to) fail(`${where}: from after to`);
  return out;
}

function codeList(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || v.length === 0) fail(`${where} must be a non-empty list of system|code`);
  const list = v as unknown[];
  if (list.length > MAX_CODES) throw new LimitExceededError(`query: at most ${MAX_CODES} codes in ${where}`);
  for (const c of list) if (typeof c !== 'string' || !CODE.test(c)) fail(`${where}: '${String(c).slice(0, 80)}' is not system|code`);
  return [...new Set(list as string[])].sort();
}

/** Parses and validates a query (shape, then allow-list). Throws MalformedInputError, LimitExceededError or AccessDeniedError. */
export function parseQuery(input: unknown, allow: AllowList = DEFAULT_ALLOW_LIST): StatsQuery {
  if (!isObject(input)) return fail('a query is a JSON object');
  only(input, ['querySet', 'asOf', 'where', 'age', 'gender', 'groupBy', 'measure', 'epsilon'], 'the query');
  if (typeof input.querySet !== 'string' || !QUERY_SET.test(input.querySet)) fail('querySet must be a lower-case code');
  const asOf = day(input.asOf, 'asOf');
  if (!Array.isArray(input.where)) fail('where must be a list of criteria');
  const whereList = input.where as unknown[];
  if (whereList.length > MAX_CRITERIA) throw new LimitExceededError(`query: at most ${MAX_CRITERIA} criteria`);
  const where = whereList.map((c, i): Criterion => {
    const at = `where[${i}]`;
    if (!isObject(c)) return fail(`${at} must be an object`);
    only(c, ['resourceType', 'codes', 'value', 'date'], at);
    if (typeof c.resourceType !== 'string' || !(c.resourceType in RESOURCE_DATES))
      fail(`${at}.resourceType must be one of ${Object.keys(RESOURCE_DATES).join(', ')}`);
    const criterion: Criterion = { resourceType: c.resourceType as CriterionResourceType, codes: codeList(c.codes, `${at}.codes`) };
    const value = range(c.value, `${at}.value`);
    if (value !== undefined) {
      if (criterion.resourceType !== 'Observation') fail(`${at}.value applies to Observation only`);
      criterion.value = value;
    }
    const date = dateRange(c.date, `${at}.date`);
    if (date !== undefined) criterion.date = date;
    return criterion;
  });
  const query: StatsQuery = { querySet: input.querySet as string, asOf, where, groupBy: [], measure: { kind: 'count' }, epsilon: 0 };
  const age = range(input.age, 'age');
  if (age !== undefined) query.age = age;
  if (input.gender !== undefined) {
    if (!Array.isArray(input.gender) || input.gender.length === 0 || input.gender.some((g) => !GENDERS.includes(g)))
      fail(`gender must list some of ${GENDERS.join(', ')}`);
    query.gender = [...new Set(input.gender as NonNullable<StatsQuery['gender']>)].sort();
  }
  if (input.groupBy !== undefined) {
    if (!Array.isArray(input.groupBy) || input.groupBy.some((d) => !DIMENSIONS.includes(d))) fail(`groupBy must list some of ${DIMENSIONS.join(', ')}`);
    query.groupBy = input.groupBy as Dimension[];
    if (new Set(query.groupBy).size !== query.groupBy.length) fail('groupBy repeats a dimension');
    if (query.groupBy.length > 2) throw new LimitExceededError('query: at most two groupBy dimensions');
  }
  query.measure = measure(input.measure ?? { kind: 'count' });
  query.epsilon = finite(input.epsilon, 'epsilon');
  if (query.epsilon <= 0) fail('epsilon must be positive');
  // The noise is sampled exactly from ε's fraction (noise.ts).
  try {
    epsilonFraction(query.epsilon);
  } catch {
    fail('epsilon has at most 6 decimals');
  }
  if (query.groupBy.includes('year')) {
    const years = yearsOf(query);
    if (years === undefined) fail('groupBy year needs a criterion with a date range { from, to }');
    if (years!.length > MAX_YEARS) throw new LimitExceededError(`query: groupBy year spans at most ${MAX_YEARS} years`);
  }
  checkAllowed(query, allow);
  return query;
}

function measure(v: unknown): Measure {
  if (!isObject(v)) return fail('measure must be an object');
  if (v.kind === 'count') {
    only(v, ['kind'], 'measure');
    return { kind: 'count' };
  }
  if (v.kind !== 'sum') return fail("measure.kind must be 'count' or 'sum'");
  only(v, ['kind', 'code', 'min', 'max', 'scale'], 'measure');
  const [code] = codeList([v.code], 'measure.code');
  const min = finite(v.min, 'measure.min');
  const max = finite(v.max, 'measure.max');
  const scale = finite(v.scale, 'measure.scale');
  if (min > max) fail('measure: min above max');
  if (!Number.isInteger(scale) || scale < 1 || scale > 1000) fail('measure.scale must be an integer in 1..1000');
  if (Math.max(Math.abs(min), Math.abs(max)) * scale > 1_000_000) throw new LimitExceededError('measure: |value| × scale at most 1,000,000');
  return { kind: 'sum', code: code!, min, max, scale };
}

function checkAllowed(query: StatsQuery, allow: AllowList): void {
  for (const [i, c] of query.where.entries()) {
    const systems = allow.resources[c.resourceType];
    if (systems === undefined) throw new AccessDeniedError(`query: ${c.resourceType} is not on the allow-list`);
    for (const code of c.codes) {
      const [system, value] = code.split('|') as [string, string];
      const allowed = systems[system];
      if (allowed === undefined) throw new AccessDeniedError(`query: where[${i}]: code system ${system} is not allowed for ${c.resourceType}`);
      if (allowed !== '*' && !allowed.includes(value)) throw new AccessDeniedError(`query: where[${i}]: code ${code} is not on the allow-list`);
    }
  }
  for (const d of query.groupBy) if (!allow.dimensions.includes(d)) throw new AccessDeniedError(`query: grouping by ${d} is not allowed`);
  if (query.epsilon < allow.epsilon.min || query.epsilon > allow.epsilon.max) {
    throw new AccessDeniedError(`query: epsilon ${query.epsilon} is outside the allowed ${allow.epsilon.min}..${allow.epsilon.max}`);
  }
  if (query.measure.kind === 'sum' && !allow.sumCodes.includes(query.measure.code))
    throw new AccessDeniedError(`query: summing ${query.measure.code} is not allowed`);
}

/** The years a `year` dimension spans: those of the first criterion with a full date range. */
export function yearsOf(query: StatsQuery): number[] | undefined {
  const dated = query.where.find((c) => c.date?.from !== undefined && c.date.to !== undefined);
  if (dated === undefined) return undefined;
  const from = Number(dated.date!.from!.slice(0, 4));
  const to = Number(dated.date!.to!.slice(0, 4));
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** The labels of one dimension's cells, in cell order. */
export function dimensionLabels(query: StatsQuery, dimension: Dimension): string[] {
  if (dimension === 'ageBand') return AGE_BANDS.map((lo, i) => (i + 1 < AGE_BANDS.length ? `${lo}-${AGE_BANDS[i + 1]! - 1}` : `${lo}+`));
  if (dimension === 'gender') return [...GENDERS];
  return yearsOf(query)!.map(String);
}

/** The groups (cells of one measure) of a query: the cross product of its dimensions, first dimension slowest. */
export function groupsOf(query: StatsQuery): Record<string, string>[] {
  let groups: Record<string, string>[] = [{}];
  for (const d of query.groupBy) groups = groups.flatMap((g) => dimensionLabels(query, d).map((label) => ({ ...g, [d]: label })));
  return groups;
}

/** Number of encrypted cells: one per group for a count, two (count, sum) for a sum. */
export function cellCount(query: StatsQuery): number {
  return groupsOf(query).length * (query.measure.kind === 'sum' ? 2 : 1);
}

/** L1 sensitivity of each measure to one patient: 1 for a count; max |value|·scale for a sum. */
export function sensitivity(query: StatsQuery): { count: number; sum?: number } {
  if (query.measure.kind === 'count') return { count: 1 };
  const { min, max, scale } = query.measure;
  return { count: 1, sum: Math.ceil(Math.max(Math.abs(min), Math.abs(max)) * scale) };
}

/** sha256:<hex> of the canonical JSON of a parsed query: what the ledger, approvals and signatures name. */
export function queryHash(query: StatsQuery): string {
  return `sha256:${createHash('sha256').update(canonicalize(query)!).digest('hex')}`;
}
