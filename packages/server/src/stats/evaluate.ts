/**
 * The hospital-side evaluation of a statistics query on its own plaintext FHIR resources, inside its domain: the
 * histogram this returns is encrypted before it leaves (hospital.ts). Each patient is counted at most once (in
 * the cell of its age band at `asOf`, its gender, and the year of its first match), which is what bounds the
 * sensitivity of the release.
 */
import { AGE_BANDS, GENDERS, RESOURCE_DATES, cellCount, dimensionLabels, yearsOf, type Criterion, type StatsQuery } from './query.ts';

/** The parts of FHIR resources the evaluator reads (everything else is ignored). */
export interface StatsResource {
  resourceType: string;
  id?: string;
  birthDate?: string;
  gender?: string;
  subject?: { reference?: string };
  patient?: { reference?: string };
  code?: { coding?: { system?: string; code?: string }[] };
  medicationCodeableConcept?: { coding?: { system?: string; code?: string }[] };
  valueQuantity?: { value?: number };
  [field: string]: unknown;
}

interface PatientFacts {
  birthDate?: string;
  gender: string;
  resources: StatsResource[];
}

/** The patient id a resource is about: `Patient/<id>` or `urn:uuid:<id>`. */
function patientIdOf(resource: StatsResource): string | undefined {
  if (resource.resourceType === 'Patient') return resource.id;
  const ref = resource.subject?.reference ?? resource.patient?.reference;
  if (typeof ref !== 'string') return undefined;
  return ref.startsWith('urn:uuid:') ? ref.slice(9) : ref.startsWith('Patient/') ? ref.slice(8) : undefined;
}

function field(resource: StatsResource, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined), resource);
}

/** The resource's date (YYYY-MM-DD) by its type's date fields, first present wins. */
function dateOf(resource: StatsResource): string | undefined {
  const paths = RESOURCE_DATES[resource.resourceType as keyof typeof RESOURCE_DATES] ?? [];
  for (const path of paths) {
    const v = field(resource, path);
    if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}/.test(v)) return v.slice(0, 10);
  }
  return undefined;
}

function codingsOf(resource: StatsResource): string[] {
  const codings = resource.code?.coding ?? resource.medicationCodeableConcept?.coding ?? [];
  return Array.isArray(codings) ? codings.map((c) => `${c?.system}|${c?.code}`) : [];
}

function matches(resource: StatsResource, c: Criterion): boolean {
  if (resource.resourceType !== c.resourceType) return false;
  if (!codingsOf(resource).some((code) => c.codes.includes(code))) return false;
  if (c.value !== undefined) {
    const v = resource.valueQuantity?.value;
    if (typeof v !== 'number' || !Number.isFinite(v)) return false;
    if (c.value.min !== undefined && v < c.value.min) return false;
    if (c.value.max !== undefined && v > c.value.max) return false;
  }
  if (c.date !== undefined) {
    const d = dateOf(resource);
    if (d === undefined) return false;
    if (c.date.from !== undefined && d < c.date.from) return false;
    if (c.date.to !== undefined && d > c.date.to) return false;
  }
  return true;
}

/** Whole years between birth and asOf (both YYYY-MM-DD). */
export function ageAt(birthDate: string, asOf: string): number {
  const [by, bm, bd] = birthDate.split('-').map(Number) as [number, number, number];
  const [ay, am, ad] = asOf.split('-').map(Number) as [number, number, number];
  return ay - by - (am < bm || (am === bm && ad < bd) ? 1 : 0);
}

function ageBandIndex(age: number): number {
  let band = 0;
  for (let i = 0; i < AGE_BANDS.length; i++) if (age >= AGE_BANDS[i]!) band = i;
  return band;
}

/**
 * The query's histogram over `resources` (any mix of Patient and clinical resources): one integer per cell, in the
 * order of `groupsOf(query)` (for a sum: all counts, then all sums). Resources of patients without a Patient
 * resource, and patients born after `asOf`, are not counted.
 */
export function evaluateQuery(query: StatsQuery, resources: Iterable<StatsResource>): number[] {
  const patients = new Map<string, PatientFacts>();
  const facts = (id: string) => {
    let p = patients.get(id);
    if (!p) patients.set(id, (p = { gender: 'unknown', resources: [] }));
    return p;
  };
  for (const r of resources) {
    if (typeof r !== 'object' || r === null) continue;
    const id = patientIdOf(r);
    if (id === undefined) continue;
    if (r.resourceType === 'Patient') {
      const p = facts(id);
      if (typeof r.birthDate === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(r.birthDate)) p.birthDate = r.birthDate;
      p.gender = GENDERS.includes(r.gender as (typeof GENDERS)[number]) ? (r.gender as string) : 'unknown';
    } else facts(id).resources.push(r);
  }
  const groups = query.groupBy.map((d) => dimensionLabels(query, d).length);
  const groupCount = groups.reduce((a, b) => a * b, 1);
  const cells = new Array<number>(cellCount(query)).fill(0);
  const years = yearsOf(query);
  const datedIndex = query.where.findIndex((c) => c.date?.from !== undefined && c.date.to !== undefined);
  for (const p of patients.values()) {
    if (p.birthDate === undefined || p.birthDate > query.asOf) continue;
    const age = ageAt(p.birthDate, query.asOf);
    if (query.age?.min !== undefined && age < query.age.min) continue;
    if (query.age?.max !== undefined && age > query.age.max) continue;
    if (query.gender !== undefined && !query.gender.includes(p.gender as (typeof GENDERS)[number])) continue;
    const firstMatch: (string | undefined)[] = [];
    let ok = true;
    for (const c of query.where) {
      const dates = p.resources.filter((r) => matches(r, c)).map((r) => dateOf(r) ?? '');
      if (dates.length === 0) {
        ok = false;
        break;
      }
      firstMatch.push(dates.sort()[0]);
    }
    if (!ok) continue;
    let value = 0;
    if (query.measure.kind === 'sum') {
      const { code, min, max, scale } = query.measure;
      const latest = p.resources
        .filter(
          (r) =>
            r.resourceType === 'Observation' && codingsOf(r).includes(code) && typeof r.valueQuantity?.value === 'number' && (dateOf(r) ?? '') <= query.asOf,
        )
        .sort((a, b) => (dateOf(a) ?? '').localeCompare(dateOf(b) ?? ''))
        .at(-1);
      if (latest === undefined) continue; // a sum counts only patients that have the value
      value = Math.round(Math.min(max, Math.max(min, latest.valueQuantity!.value!)) * scale);
    }
    let cell = 0;
    for (const [k, d] of query.groupBy.entries()) {
      const position =
        d === 'ageBand'
          ? ageBandIndex(age)
          : d === 'gender'
            ? GENDERS.indexOf(p.gender as (typeof GENDERS)[number])
            : years!.indexOf(Number(firstMatch[datedIndex]!.slice(0, 4)));
      cell = cell * groups[k]! + position;
    }
    cells[cell]! += 1;
    if (query.measure.kind === 'sum') cells[groupCount + cell]! += value;
  }
  return cells;
}
