/**
 * The research-release table from FHIR data: one row per Patient with chosen fields (age in
 * years at a reference date, administrative sex, the three-digit ZIP area, the patient's
 * condition codes), the input of k-anonymity / l-diversity / t-closeness. Resources come from
 * Bundles, single resources or NDJSON (`resourcesFromText`); Conditions are joined to their
 * Patient by `subject` reference (`Patient/<id>` or the Bundle's `urn:uuid:<id>`).
 */
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';
import type { Table } from './table.ts';

export type ResearchField = 'age' | 'sex' | 'zip3' | 'conditions';

export interface ResearchTableOptions {
  fields: ResearchField[];
  /** The date ages are computed at (default: now). */
  asOf?: Date;
  /** Keep only condition codings of this system (e.g. `http://snomed.info/sct`). */
  conditionSystem?: string;
  /** One 0/1 column `condition:<code>` per code, besides or instead of the `conditions` list. */
  conditionFlags?: string[];
}

type Json = Record<string, unknown>;

/** Upper bound on resources read from one text, so a hostile file cannot exhaust memory. */
export const MAX_RESOURCES = 5_000_000;

/**
 * The resources of a FHIR JSON text: a resource, a Bundle (its entries' resources), or NDJSON
 * (one resource or Bundle a line).
 * @throws MalformedInputError naming the line for invalid JSON; LimitExceededError past MAX_RESOURCES
 */
export function resourcesFromText(text: string, source = 'fhir'): Json[] {
  const body = text.replace(/^\uFEFF/, '');
  const trimmed = body.trim();
  const documents: unknown[] = [];
  const parse = (line: string, at: string) => {
    try {
      documents.push(JSON.parse(line));
    } catch (error) {
      throw new MalformedInputError(`${source}${at}: not valid JSON (${(error as Error).message})`);
    }
  };
  // A single JSON document, else NDJSON.
  if (trimmed.startsWith('{') && !/\}\s*\n\s*\{/.test(trimmed)) parse(trimmed, '');
  else body.split('\n').forEach((line, i) => line.trim() !== '' && parse(line, `, line ${i + 1}`));
  const resources: Json[] = [];
  for (const document of documents) {
    const doc = document as Json;
    if (!doc || typeof doc !== 'object' || typeof doc['resourceType'] !== 'string')
      throw new MalformedInputError(`${source}: not a FHIR resource (no resourceType)`);
    const items = doc['resourceType'] === 'Bundle' ? ((doc['entry'] as Json[] | undefined) ?? []).map((e) => e?.['resource'] as Json) : [doc];
    for (const item of items) if (item && typeof item === 'object') resources.push(item);
    if (resources.length > MAX_RESOURCES) throw new LimitExceededError(`${source}: more than ${MAX_RESOURCES} resources`);
  }
  return resources;
}

/**
 * One row per Patient with the chosen fields, in the order given. A missing value is '' (age
 * when there is no birth date, ZIP3 without a postal code). Conditions are the distinct codes,
 * sorted, joined by a space.
 * @throws MalformedInputError for an unknown field or a bad reference date
 */
export function researchTable(resources: Iterable<Json>, options: ResearchTableOptions): Table {
  const known: ResearchField[] = ['age', 'sex', 'zip3', 'conditions'];
  for (const field of options.fields)
    if (!known.includes(field)) throw new MalformedInputError(`unknown research field "${field}"; known: ${known.join(', ')}`);
  const asOf = options.asOf ?? new Date();
  if (Number.isNaN(asOf.getTime())) throw new MalformedInputError('the reference date for ages is not a date');
  const patients: Json[] = [];
  const codes = new Map<string, Set<string>>();
  for (const resource of resources) {
    if (resource['resourceType'] === 'Patient') patients.push(resource);
    else if (resource['resourceType'] === 'Condition') {
      const reference = String((resource['subject'] as Json | undefined)?.['reference'] ?? '');
      const id = reference.replace(/^(Patient\/|urn:uuid:)/, '');
      const set = codes.get(id) ?? new Set<string>();
      for (const coding of ((resource['code'] as Json | undefined)?.['coding'] as Json[] | undefined) ?? []) {
        if (typeof coding?.['code'] !== 'string') continue;
        if (options.conditionSystem !== undefined && coding['system'] !== options.conditionSystem) continue;
        set.add(coding['code']);
      }
      codes.set(id, set);
    }
  }
  const flags = options.conditionFlags ?? [];
  const columns = [...options.fields, ...flags.map((code) => `condition:${code}`)];
  const rows = patients.map((patient) => {
    const own = codes.get(String(patient['id'] ?? '')) ?? new Set<string>();
    const cells = options.fields.map((field) => {
      switch (field) {
        case 'age':
          return ageAt(patient['birthDate'], asOf);
        case 'sex':
          return typeof patient['gender'] === 'string' ? patient['gender'] : '';
        case 'zip3': {
          const postal = ((patient['address'] as Json[] | undefined) ?? []).map((a) => a?.['postalCode']).find((p) => typeof p === 'string') as
            string | undefined;
          const digits = postal?.replace(/\D/g, '') ?? '';
          return digits.length >= 3 ? digits.slice(0, 3) : '';
        }
        case 'conditions':
          return [...own].sort().join(' ');
      }
    });
    return [...cells, ...flags.map((code) => (own.has(code) ? '1' : '0'))];
  });
  return { columns, rows };
}

/** Whole years from a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD; missing parts taken as the start) to `asOf`. */
function ageAt(birthDate: unknown, asOf: Date): string {
  const match = typeof birthDate === 'string' ? /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?/.exec(birthDate) : null;
  if (!match) return '';
  const [year, month, day] = [Number(match[1]), Number(match[2] ?? 1), Number(match[3] ?? 1)];
  let age = asOf.getUTCFullYear() - year;
  if (asOf.getUTCMonth() + 1 < month || (asOf.getUTCMonth() + 1 === month && asOf.getUTCDate() < day)) age--;
  return age < 0 ? '' : String(age);
}
