import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The trimmed Synthea Bundle shipped with the tests. */
export const FIXTURE_BUNDLE = fileURLToPath(new URL('./fixtures/synthea-carolee-trimmed.json', import.meta.url));
export const FIXTURE_ADULT = fileURLToPath(new URL('./fixtures/adult_subset.csv', import.meta.url));
export const FIXTURE_HIERARCHIES = fileURLToPath(new URL('./fixtures/adult-hierarchies', import.meta.url));

/** ../shared beside the repository root (CI), or MEDSHARE_SHARED_DIR (a worktree elsewhere). */
export const SHARED = process.env['MEDSHARE_SHARED_DIR'] ?? fileURLToPath(new URL('../../../../shared', import.meta.url));
/** ../shared/data, when present. */
export const SHARED_DATA = `${SHARED}/data`;
export const SYNTHEA_DIR = `${SHARED_DATA}/synthea`;
export const hasSharedData = existsSync(SYNTHEA_DIR);
export const SKIP_NO_DATA = hasSharedData ? false : 'needs ../shared/data (the full Synthea and Adult data) beside the repository';

/** Reads a JSON file that may start with a byte-order mark. */
export function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8').replace(/^\uFEFF/, '')) as Record<string, unknown>;
}

/** The 11 Synthea patient bundles. */
export function patientBundles(): string[] {
  return readdirSync(SYNTHEA_DIR)
    .filter((f) => /^[A-Z][a-z]+\d+_.*\.json$/.test(f))
    .map((f) => `${SYNTHEA_DIR}/${f}`);
}

type Json = Record<string, unknown>;

/** Identifier strings of a Patient that must not survive de-identification. */
export function patientIdentifiers(patient: Json): string[] {
  const out: string[] = [String(patient['id'])];
  for (const id of (patient['identifier'] as Json[] | undefined) ?? []) out.push(String(id['value']));
  for (const name of (patient['name'] as Json[] | undefined) ?? []) out.push(...((name['given'] as string[]) ?? []), String(name['family']));
  for (const t of (patient['telecom'] as Json[] | undefined) ?? []) out.push(String(t['value']));
  for (const a of (patient['address'] as Json[] | undefined) ?? []) out.push(...((a['line'] as string[]) ?? []), String(a['city']), String(a['postalCode']));
  for (const e of (patient['extension'] as Json[] | undefined) ?? [])
    if (typeof e['valueString'] === 'string' && String(e['url']).includes('mothersMaidenName')) out.push(...e['valueString'].split(' '));
  out.push(String(patient['birthDate']));
  return [...new Set(out.filter((s) => s && s !== 'undefined'))];
}

/** Every string in a JSON value, with base64 attachment data decoded. */
export function allText(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) value.forEach((v) => allText(v, out));
  else if (value && typeof value === 'object') {
    const object = value as Json;
    for (const [key, v] of Object.entries(object)) {
      if (key === 'data' && typeof v === 'string') out.push(Buffer.from(v, 'base64').toString('utf8'));
      allText(v, out);
    }
  }
  return out;
}
