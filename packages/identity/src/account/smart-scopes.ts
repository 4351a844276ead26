/**
 * SMART on FHIR scopes (HL7 SMART App Launch 2.0, §"Scopes for requesting clinical data"), both syntaxes:
 *   v1  `<context>/<type>.<read|write|*>`                      e.g. `user/Observation.read`
 *   v2  `<context>/<type>.<c?r?u?d?s?>[?<param>=<value>...]`   e.g. `user/Observation.rs?category=laboratory`
 * with context `patient`, `user` or `system` and type a FHIR resource type or `*`. v1 `read` is v2 `rs`, `write`
 * is `cud`, `*` is `cruds`. A v2 granular scope's `category` criterion (a FHIR category code, optionally
 * `system|code`) narrows it to the records of that category. Parsing here; what a scope grants in MedShare's record
 * categories is `grantsCategory`.
 */
/** A parsed scope. */
export interface SmartScope {
  readonly context: 'patient' | 'user' | 'system';
  /** A resource type, or `*`. */
  readonly resourceType: string;
  /** v2 interactions the scope allows: a subset of `cruds`. */
  readonly interactions: ReadonlySet<string>;
  /** Codes of its `category=` criteria (the code part of `system|code`); empty when it has none. */
  readonly categories: readonly string[];
}

const SCOPE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]{0,63})\.(read|write|\*|c?r?u?d?s?)(?:\?(.{1,200}))?$/;
const V1: Record<string, string> = { read: 'rs', write: 'cud', '*': 'cruds' };
const CODE = /^[A-Za-z0-9._:/-]{1,64}$/;

/** The parsed scope, or undefined when `text` is not a SMART clinical-data scope (OpenID scopes are not). */
export function parseSmartScope(text: string): SmartScope | undefined {
  const match = SCOPE.exec(text);
  if (!match) return undefined;
  const [, context, resourceType, verbs, query] = match as unknown as [string, SmartScope['context'], string, string, string | undefined];
  const interactions = V1[verbs] ?? verbs;
  if (interactions === '') return undefined;
  if (query !== undefined && V1[verbs] !== undefined) return undefined; // granular criteria are v2 only
  const categories: string[] = [];
  for (const pair of query === undefined ? [] : query.split('&')) {
    const [name, value, extra] = pair.split('=');
    if (name !== 'category' || value === undefined || extra !== undefined) return undefined;
    const code = decodeURIComponent(value).split('|').pop()!;
    if (!CODE.test(code)) return undefined;
    categories.push(code);
  }
  return { context, resourceType, interactions: new Set(interactions), categories };
}

/** FHIR category codes (Observation, DiagnosticReport, DocumentReference, Condition ...) → MedShare record category. */
export const FHIR_CATEGORY_CODES: Readonly<Record<string, string>> = {
  laboratory: 'lab',
  LAB: 'lab',
  imaging: 'imaging',
  RAD: 'imaging',
  'clinical-note': 'notes',
  'vital-signs': 'clinical',
  'problem-list-item': 'clinical',
  'encounter-diagnosis': 'clinical',
};

/** Whether resources of `resourceType` go into record category `category` (the gateway's mapping). */
export type CategoryTypes = (resourceType: string, category: string) => boolean;

/**
 * Whether any of `scopes` allows `interaction` (`r` read, `s` search) on records of `category` in `context`: a
 * scope of that context, allowing the interaction, on `*` or a resource type that goes into the category, and,
 * with `category=` criteria, one whose code names that category. (Records are grouped by category, so a scope on
 * one resource type of a category grants the category: the cloud cannot see which resources a ciphertext holds.)
 */
export function grantsCategory(
  scopes: readonly string[],
  contexts: readonly SmartScope['context'][],
  category: string,
  interaction: 'r' | 's',
  inCategory: CategoryTypes,
): boolean {
  return scopes.some((text) => {
    const scope = parseSmartScope(text);
    if (!scope || !contexts.includes(scope.context) || !scope.interactions.has(interaction)) return false;
    if (scope.resourceType !== '*' && !inCategory(scope.resourceType, category)) return false;
    return scope.categories.length === 0 || scope.categories.some((code) => FHIR_CATEGORY_CODES[code] === category);
  });
}

/**
 * Whether any of `scopes` allows `interaction` (`c` create, `u` update, ...) on one resource of `resourceType`
 * going into record category `category`, in `context`: a scope of that context allowing the interaction, on `*` or
 * that type, and, with `category=` criteria, one whose code names that category.
 */
export function grantsResource(
  scopes: readonly string[],
  contexts: readonly SmartScope['context'][],
  resourceType: string,
  category: string,
  interaction: 'c' | 'r' | 'u' | 'd' | 's',
): boolean {
  return scopes.some((text) => {
    const scope = parseSmartScope(text);
    if (!scope || !contexts.includes(scope.context) || !scope.interactions.has(interaction)) return false;
    if (scope.resourceType !== '*' && scope.resourceType !== resourceType) return false;
    return scope.categories.length === 0 || scope.categories.some((code) => FHIR_CATEGORY_CODES[code] === category);
  });
}
