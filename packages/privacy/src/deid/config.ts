/**
 * De-identification configuration: the JSON format of Microsoft's "Tools for Health Data
 * Anonymization" FHIR tool (https://github.com/microsoft/Tools-for-Health-Data-Anonymization,
 * docs/FHIR-anonymization.md), validated up front so that a bad rule is reported with the file,
 * rule index and path instead of leaving an identifier silently unprocessed.
 */
import { MalformedInputError, UnsupportedError } from '@medshare/crypto';
import { compilePath, type CompiledPath } from './fhir-nodes.ts';
import { compileNative, type NodeIndex, type TypedNode } from './native-paths.ts';
import type { TextScope } from './free-text.ts';

export const METHODS = ['keep', 'redact', 'dateShift', 'cryptoHash', 'encrypt', 'substitute', 'perturb', 'generalize', 'scrubText'] as const;
export type Method = (typeof METHODS)[number];

/** One `fhirPathRules` entry, with its FHIRPath compiled. */
export interface Rule {
  index: number;
  path: string;
  method: Method;
  /**
   * The resource type the path starts with (`Patient` in `Patient.name`), or '' for a path that
   * applies to every resource (`nodesByType(...)`, `Resource.…`, `DomainResource.…`). As in the
   * reference tool, a rule only runs on resources of its type.
   */
  resourceType: string;
  /** The path is a resource type alone (`Patient`, `Resource`): it matches the resource itself. */
  wholeResource: boolean;
  compiled: CompiledPath;
  /** The same path evaluated on the typed walk, when its shape allows (see native-paths.ts). */
  native?: (index: NodeIndex) => TypedNode[];
  replaceWith?: unknown;
  span?: number;
  rangeType?: 'fixed' | 'proportional';
  roundTo?: number;
  cases?: { condition: string; expression: string }[];
  otherValues?: 'redact' | 'keep';
  /** scrubText (MedShare): `terminology` looks in coded text for the record's own terms and fixed-form identifiers only. */
  scope?: TextScope;
}

/** The `parameters` block. `dateShiftAlgorithm`, `dateShiftScope: patient`, `nameDictionary` and `builtinNameDictionary` are MedShare extensions. */
export interface Parameters {
  dateShiftKey: string;
  /** A fixed shift in days (-365..365) used instead of the keyed offset, as in the reference tool. */
  dateShiftFixedOffsetInDays: number | undefined;
  /** Settings for the reference tool's custom processors: accepted so its configurations load, not used. */
  customSettings: Record<string, unknown> | undefined;
  dateShiftScope: 'resource' | 'file' | 'folder' | 'patient';
  dateShiftAlgorithm: 'fold' | 'hmac';
  cryptoHashKey: string;
  encryptKey: string;
  enablePartialAgesForRedact: boolean;
  enablePartialDatesForRedact: boolean;
  enablePartialZipCodesForRedact: boolean;
  restrictedZipCodeTabulationAreas: string[];
  nameDictionary: string[];
  builtinNameDictionary: boolean;
  /**
   * MedShare extension: cryptoHash keeps links and forms valid — a UUID hashes to a UUID, and
   * `fullUrl` and `Bundle.entry.request.url` are hashed like references (id part only; a bare
   * resource type is kept and a search query dropped, since it may carry identifiers).
   */
  cryptoHashKeepsForm: boolean;
  /**
   * MedShare extension: a Quantity in years (UCUM `a`) is typed Age, so `nodesByType('Age')`
   * rules and partial ages apply to it (kept up to 89, removed over).
   */
  quantityAgesAsAges: boolean;
}

export interface DeidConfig {
  fhirVersion: string;
  processingErrors: 'raise' | 'skip';
  rules: Rule[];
  parameters: Parameters;
  /** The rules may run in one walk of each resource (rule-walk.ts); set by the built-in profiles only. */
  singlePass?: boolean;
}

const PARAMETER_KINDS: Record<keyof Parameters, 'string' | 'boolean' | 'string[]' | 'integer' | 'object'> = {
  dateShiftKey: 'string',
  dateShiftFixedOffsetInDays: 'integer',
  customSettings: 'object',
  dateShiftScope: 'string',
  dateShiftAlgorithm: 'string',
  cryptoHashKey: 'string',
  encryptKey: 'string',
  enablePartialAgesForRedact: 'boolean',
  enablePartialDatesForRedact: 'boolean',
  enablePartialZipCodesForRedact: 'boolean',
  restrictedZipCodeTabulationAreas: 'string[]',
  nameDictionary: 'string[]',
  builtinNameDictionary: 'boolean',
  cryptoHashKeepsForm: 'boolean',
  quantityAgesAsAges: 'boolean',
};

const RULE_KEYS: Record<Method, string[]> = {
  keep: [],
  redact: [],
  dateShift: [],
  cryptoHash: [],
  encrypt: [],
  scrubText: ['scope'],
  substitute: ['replaceWith'],
  perturb: ['span', 'rangeType', 'roundTo'],
  generalize: ['cases', 'otherValues'],
};

/** Parses config JSON text; `source` (a file name) prefixes every error message. */
export function parseConfigText(text: string, source = 'config'): DeidConfig {
  let json: unknown;
  try {
    json = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    throw new MalformedInputError(`${source}: not valid JSON (${(error as Error).message})`);
  }
  return parseConfig(json, source);
}

/** Validates a parsed config object and compiles every FHIRPath in it. */
export function parseConfig(json: unknown, source = 'config'): DeidConfig {
  const fail = (message: string): never => {
    throw new MalformedInputError(`${source}: ${message}`);
  };
  if (!isObject(json)) fail('the configuration must be a JSON object');
  const root = json as Record<string, unknown>;
  for (const key of Object.keys(root)) {
    if (!['fhirVersion', 'processingErrors', 'fhirPathRules', 'parameters'].includes(key)) fail(`unknown top-level key "${key}"`);
  }
  const fhirVersion = root['fhirVersion'] ?? 'R4';
  if (typeof fhirVersion !== 'string' || (fhirVersion.toUpperCase() !== 'R4' && fhirVersion !== '')) {
    throw new UnsupportedError(`${source}: fhirVersion "${String(fhirVersion)}" is not supported (only R4)`);
  }
  // Enumerations are case-insensitive in the reference tool (its JSON reader maps them to C# enums).
  const processingErrors = lower(root['processingErrors'] ?? 'raise');
  if (processingErrors !== 'raise' && processingErrors !== 'skip') fail('processingErrors must be "raise" or "skip"');
  const rawRules = root['fhirPathRules'] ?? [];
  if (!Array.isArray(rawRules)) fail('fhirPathRules must be an array');
  const rules = (rawRules as unknown[]).map((raw, index) => parseRule(raw, index, fail));
  return {
    fhirVersion: 'R4',
    processingErrors: processingErrors as 'raise' | 'skip',
    rules,
    parameters: parseParameters(root['parameters'] ?? {}, fail),
  };
}

function parseRule(raw: unknown, index: number, fail: (m: string) => never): Rule {
  const where = `fhirPathRules[${index}]`;
  if (!isObject(raw)) fail(`${where} must be an object`);
  const rule = raw as Record<string, unknown>;
  const path = rule['path'];
  const method = rule['method'];
  if (typeof path !== 'string' || path.trim() === '') fail(`${where}: "path" must be a non-empty string`);
  const m = METHODS.find((known) => typeof method === 'string' && known.toLowerCase() === method.toLowerCase());
  if (m === undefined) fail(`${where} (${String(path)}): unknown method "${String(method)}"; expected one of ${METHODS.join(', ')} (any case)`);
  const at = `${where} (${String(path)})`;
  for (const key of Object.keys(rule)) {
    if (!['path', 'method', ...RULE_KEYS[m]].includes(key)) fail(`${at}: unknown key "${key}" for method ${m}`);
  }
  const compile = (expression: string, what: string): CompiledPath => {
    try {
      return compilePath(expression);
    } catch (error) {
      return fail(`${at}: invalid FHIRPath in ${what} "${expression}": ${firstLine(error)}`);
    }
  };
  const split = splitResourceType(path as string);
  const parsed: Rule = { index, path: path as string, method: m!, ...split, compiled: compile(split.wholeResource ? 'true' : split.expression, 'path') };
  compile(path as string, 'path');
  try {
    const native = split.wholeResource ? (nodes: NodeIndex) => [nodes.root] : compileNative(split.expression);
    if (native) parsed.native = native;
  } catch (error) {
    fail(`${at}: invalid FHIRPath in path "${String(path)}": ${firstLine(error)}`);
  }
  if (m === 'substitute') {
    if (!('replaceWith' in rule)) fail(`${at}: substitute needs "replaceWith"`);
    parsed.replaceWith = rule['replaceWith'];
  }
  if (m === 'perturb') {
    const span = rule['span'];
    if (typeof span !== 'number' || !Number.isFinite(span) || span < 0) fail(`${at}: perturb needs a non-negative numeric "span"`);
    const rangeType = lower(rule['rangeType'] ?? 'fixed');
    if (rangeType !== 'fixed' && rangeType !== 'proportional') fail(`${at}: rangeType must be "fixed" or "proportional"`);
    const roundTo = rule['roundTo'] ?? 2;
    if (typeof roundTo !== 'number' || !Number.isInteger(roundTo) || roundTo < 0 || roundTo > 28) fail(`${at}: roundTo must be an integer 0..28`);
    Object.assign(parsed, { span, rangeType, roundTo });
  }
  if (m === 'scrubText') {
    const scope = rule['scope'] ?? 'all';
    if (scope !== 'all' && scope !== 'terminology') fail(`${at}: scope must be "all" or "terminology"`);
    parsed.scope = scope as TextScope;
  }
  if (m === 'generalize') {
    const cases = rule['cases'];
    if (!isObject(cases)) fail(`${at}: generalize needs a "cases" object of FHIRPath condition -> expression`);
    parsed.cases = Object.entries(cases as Record<string, unknown>).map(([condition, expression]) => {
      if (typeof expression !== 'string') fail(`${at}: the expression for case "${condition}" must be a string`);
      compile(condition, 'case');
      compile(expression as string, 'expression');
      return { condition, expression: expression as string };
    });
    const otherValues = lower(rule['otherValues'] ?? 'redact');
    if (otherValues !== 'redact' && otherValues !== 'keep') fail(`${at}: otherValues must be "redact" or "keep"`);
    parsed.otherValues = otherValues as 'redact' | 'keep';
  }
  return parsed;
}

function parseParameters(raw: unknown, fail: (m: string) => never): Parameters {
  if (!isObject(raw)) fail('parameters must be an object');
  const params: Parameters = {
    dateShiftKey: '',
    dateShiftFixedOffsetInDays: undefined,
    customSettings: undefined,
    dateShiftScope: 'resource',
    dateShiftAlgorithm: 'fold',
    cryptoHashKey: '',
    encryptKey: '',
    enablePartialAgesForRedact: false,
    enablePartialDatesForRedact: false,
    enablePartialZipCodesForRedact: false,
    restrictedZipCodeTabulationAreas: [],
    nameDictionary: [],
    builtinNameDictionary: false,
    cryptoHashKeepsForm: false,
    quantityAgesAsAges: false,
  };
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const kind = PARAMETER_KINDS[key as keyof Parameters];
    if (!kind) fail(`unknown parameter "${key}"`);
    if (value === null && (kind === 'integer' || kind === 'object')) continue;
    const ok =
      kind === 'string[]'
        ? Array.isArray(value) && value.every((v) => typeof v === 'string')
        : kind === 'integer'
          ? Number.isInteger(value)
          : kind === 'object'
            ? isObject(value)
            : typeof value === kind;
    if (!ok) fail(`parameter "${key}" must be ${kind === 'string[]' ? 'an array of strings' : kind === 'integer' ? 'an integer' : `a ${kind}`}`);
    (params as unknown as Record<string, unknown>)[key] = key === 'dateShiftScope' || key === 'dateShiftAlgorithm' ? lower(value) : value;
  }
  const fixed = params.dateShiftFixedOffsetInDays;
  if (fixed !== undefined && (fixed < -365 || fixed > 365)) fail(`dateShiftFixedOffsetInDays ${fixed} is outside -365..365`);
  if (!['resource', 'file', 'folder', 'patient'].includes(params.dateShiftScope)) fail('dateShiftScope must be resource, file, folder or patient');
  if (!['fold', 'hmac'].includes(params.dateShiftAlgorithm)) fail('dateShiftAlgorithm must be fold or hmac');
  return params;
}

const PATH_RESOURCE_TYPE = /^([A-Z][a-zA-Z]*)?\.?(.*)$/s;

/** Splits `Patient.name` into its resource type and the expression evaluated on the resource; `Resource`/`DomainResource` apply to all. */
function splitResourceType(path: string): { resourceType: string; wholeResource: boolean; expression: string } {
  const [, type = '', rest = ''] = PATH_RESOURCE_TYPE.exec(path) ?? [];
  const resourceType = type === 'Resource' || type === 'DomainResource' ? '' : type;
  return { resourceType, wholeResource: path === type, expression: rest === '' ? path : rest };
}

function lower(value: unknown): unknown {
  return typeof value === 'string' ? value.toLowerCase() : value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}
