/**
 * The de-identification engine: applies an ordered list of FHIRPath rules to each resource, the
 * first rule that reaches a value winning (Microsoft "Tools for Health Data Anonymization"
 * semantics). Rules act on primitive values; a rule matching a complex element acts on every
 * primitive inside it that no earlier rule has claimed. Contained resources and Bundle entries
 * are processed as resources of their own. Every processed resource is tagged in `meta.security`
 * with the HL7 v3 ObservationValue codes of the operations applied.
 */
/// <reference types="fhir" />
import { MedShareError, MalformedInputError } from '@medshare/crypto';
import type { DeidConfig, Rule } from './config.ts';
import { compileValueExpression, forgetDescendants, pruneRemoved, readValue, REMOVED, toLocations, writeValue, type JsonObject, type NodeLocation } from './fhir-nodes.ts';
import { indexResource } from './native-paths.ts';
import { dateShiftOffset, partialDate, shiftDate } from './dates.ts';
import { cryptoHash, cryptoHashReference, encryptValue, perturbNumber } from './methods.ts';
import { builtinNameMatcher, nameMatcher, scrubText, type NameMatcher } from './free-text.ts';

const LABEL_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue';
const LABELS = {
  REDACTED: 'redacted',
  ABSTRED: 'abstracted',
  CRYTOHASH: 'cryptographic hash function',
  MASKED: 'masked',
  PERTURBED: 'exact value is replaced with another exact value',
  SUBSTITUTED: 'substituted',
  GENERALIZED: 'exact value is replaced with a general value',
} as const;
type Label = keyof typeof LABELS;

const DATE_TYPES = new Set(['date', 'dateTime', 'instant']);
const INTEGER_TYPES = new Set(['integer', 'positiveInt', 'unsignedInt', 'integer64']);

/** What a resource is processed with, beyond the configuration. */
export interface ResourceContext {
  /** Name matchers for free-text scrubbing (see `namesFor`). */
  names?: readonly NameMatcher[];
  /** The date-shift prefix for `file` and `folder` scopes (the file or folder name). */
  scopeName?: string;
  /** Called after each Bundle entry's resource is processed (progress reporting). */
  onEntry?: () => void;
}

/** De-identifies FHIR resources under one configuration. */
export class Deidentifier {
  private readonly dictionary: string[];
  private readonly generalizers = new Map<Rule, { condition: (v: unknown) => unknown[]; expression: (v: unknown) => unknown[] }[]>();

  constructor(readonly config: DeidConfig) {
    this.dictionary = config.parameters.nameDictionary;
    for (const rule of config.rules) {
      if (rule.cases) {
        this.generalizers.set(rule, rule.cases.map((c) => ({ condition: compileValueExpression(c.condition), expression: compileValueExpression(c.expression) })));
      }
    }
  }

  /**
   * Name matchers for free text: the names in `resources` (Patient, RelatedPerson, Practitioner)
   * plus `nameDictionary`, and the built-in first-name dictionary when enabled.
   */
  namesFor(resources: Iterable<JsonObject>): NameMatcher[] {
    const names = new Set(this.dictionary);
    for (const resource of resources) {
      if (!['Patient', 'RelatedPerson', 'Practitioner', 'Person'].includes(String(resource['resourceType']))) continue;
      // Input is untrusted JSON: the FHIR types describe the expected shape, typeof checks enforce it.
      const person = resource as unknown as fhir4.Patient | fhir4.RelatedPerson | fhir4.Practitioner | fhir4.Person;
      const parts: unknown[] = [];
      for (const name of asArray(person.name) as fhir4.HumanName[]) parts.push(...asArray(name?.given), name?.family, name?.text);
      const maiden = (asArray(person.extension) as fhir4.Extension[]).find((e) => e?.url === 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName');
      parts.push(maiden?.valueString);
      for (const part of parts) if (typeof part === 'string') for (const word of part.split(/\s+/)) names.add(word);
    }
    const matchers = [nameMatcher(names), this.config.parameters.builtinNameDictionary ? builtinNameMatcher() : undefined];
    return matchers.filter((m): m is NameMatcher => m !== undefined);
  }

  /**
   * De-identifies one resource in place (with its contained resources) and returns it. With
   * `processingErrors: skip` a resource that fails becomes an empty resource tagged REDACTED.
   */
  processResource(resource: JsonObject, context: ResourceContext = {}): JsonObject {
    if (typeof resource['resourceType'] !== 'string') throw new MalformedInputError('not a FHIR resource: missing resourceType');
    try {
      for (const contained of asArray(resource['contained'])) this.processOne(contained as JsonObject, context, resource);
      const entries = resource['resourceType'] === 'Bundle' ? (asArray(resource['entry']) as JsonObject[]).filter((e) => isObject(e['resource'])) : [];
      const entryContext = { ...context, onEntry: undefined };
      for (const entry of entries) {
        this.processResource(entry['resource'] as JsonObject, entryContext);
        context.onEntry?.();
      }
      // The Bundle's own elements are processed with its entries' resources detached, so the
      // rules do not walk every entry a second time.
      const detached = entries.map((entry) => entry['resource']);
      for (const entry of entries) delete entry['resource'];
      try {
        this.processOne(resource, context, resource);
      } finally {
        entries.forEach((entry, i) => (entry['resource'] = detached[i]));
      }
      return resource;
    } catch (error) {
      if (this.config.processingErrors === 'raise') {
        // Name the failing resource; errors of other kinds (integrity, limits) keep their type.
        if (error instanceof MedShareError && error.code !== 'MALFORMED') throw error;
        const reason = error instanceof Error ? error.message : String(error);
        throw new MalformedInputError(`${String(resource['resourceType'])}/${String(resource['id'] ?? '?')}: ${reason}`);
      }
      for (const key of Object.keys(resource)) if (key !== 'resourceType' && key !== 'id') delete resource[key];
      resource['meta'] = { security: [label('REDACTED')] };
      return resource;
    }
  }

  private processOne(resource: JsonObject, context: ResourceContext, container: JsonObject): void {
    forgetDescendants(resource);
    const index = indexResource(resource);
    const types = new WeakMap<object, Map<string, string>>();
    for (const node of index.all) {
      let byKey = types.get(node.parent);
      if (!byKey) types.set(node.parent, (byKey = new Map()));
      byKey.set(node.key, node.type);
    }
    const claimed = new WeakMap<object, Set<string>>();
    const labels = new Set<Label>();
    const environment = { resource, rootResource: container };
    for (const rule of this.config.rules) {
      let locations: NodeLocation[];
      try {
        locations = rule.native
          ? rule.native(index).map((node) => ({ parent: node.parent, key: node.key, index: node.index, type: node.type, value: readValue(node.parent, node.key, node.index) }))
          : toLocations(rule.compiled(resource, environment), resource);
      } catch (error) {
        throw new MalformedInputError(`rule ${rule.index} (${rule.path}): ${(error as Error).message.split('\n')[0]}`);
      }
      for (const location of locations) {
        if (isClaimed(claimed, location)) continue;
        this.applyToNode(rule, location, { resource, context, types, claimed, labels });
      }
    }
    pruneRemoved(resource);
    if (labels.size > 0) {
      const meta = (resource['meta'] ??= {}) as JsonObject;
      const security = (meta['security'] ??= []) as JsonObject[];
      for (const code of labels) if (!security.some((s) => s['code'] === code)) security.push(label(code));
    }
  }

  private applyToNode(rule: Rule, location: NodeLocation, state: State): void {
    const value = location.value;
    if (value === REMOVED || value === undefined) return;
    if (typeof value !== 'object' || value === null) return this.applyToLeaf(rule, location, state);
    const object = value as JsonObject;
    if (rule.method === 'substitute' && typeof rule.replaceWith === 'object' && !hasClaimedLeaf(object, state.claimed)) {
      writeValue(location, structuredClone(rule.replaceWith));
      claimSubtree(location, state.claimed);
      state.labels.add('SUBSTITUTED');
      return;
    }
    if (location.type === 'Age' && rule.method === 'redact' && this.config.parameters.enablePartialAgesForRedact && typeof object['value'] === 'number') {
      if (object['value'] <= 89) return claimSubtree(location, state.claimed);
    }
    for (const leaf of leaves(object, state.types)) {
      if (!isClaimed(state.claimed, leaf)) this.applyToLeaf(rule, leaf, state);
    }
  }

  private applyToLeaf(rule: Rule, leaf: NodeLocation, state: State): void {
    const params = this.config.parameters;
    const value = leaf.value;
    const set = (next: unknown, labelCode?: Label) => {
      writeValue(leaf, next === undefined ? REMOVED : next);
      if (labelCode) state.labels.add(labelCode);
    };
    const isDate = DATE_TYPES.has(leaf.type) && typeof value === 'string';
    switch (rule.method) {
      case 'keep':
        break;
      case 'redact':
        if (isDate && params.enablePartialDatesForRedact) set(partialDate(value), 'ABSTRED');
        else if (leaf.key === 'postalCode' && typeof value === 'string' && params.enablePartialZipCodesForRedact) set(partialZip(value, params.restrictedZipCodeTabulationAreas), 'ABSTRED');
        else set(undefined, 'REDACTED');
        break;
      case 'dateShift': {
        if (!isDate) return; // not claimed: a later rule may still handle a non-date value
        const offset = dateShiftOffset(this.shiftPrefix(state), params.dateShiftKey, params.dateShiftAlgorithm);
        const shifted = shiftDate(value, offset);
        if (shifted !== undefined) set(shifted, 'PERTURBED');
        else set(params.enablePartialDatesForRedact ? partialDate(value) : undefined, 'REDACTED');
        break;
      }
      case 'cryptoHash':
        if (typeof value !== 'string') return;
        set(leaf.key === 'reference' || leaf.key === 'fullUrl' ? cryptoHashReference(value, params.cryptoHashKey) : cryptoHash(value, params.cryptoHashKey), 'CRYTOHASH');
        break;
      case 'encrypt':
        set(encryptValue(String(value), params.encryptKey), 'MASKED');
        break;
      case 'substitute':
        set(structuredClone(rule.replaceWith), 'SUBSTITUTED');
        break;
      case 'perturb':
        if (typeof value !== 'number') return;
        set(perturbNumber(value, rule.span ?? 0, rule.rangeType ?? 'fixed', rule.roundTo ?? 2, INTEGER_TYPES.has(leaf.type)), 'PERTURBED');
        break;
      case 'generalize':
        set(this.generalize(rule, value), 'GENERALIZED');
        break;
      case 'scrubText':
        if (typeof value !== 'string') return;
        set(scrubLeaf(leaf, value, state.context.names), 'REDACTED');
        break;
    }
    claim(state.claimed, leaf);
  }

  private generalize(rule: Rule, value: unknown): unknown {
    for (const { condition, expression } of this.generalizers.get(rule) ?? []) {
      if (condition(value)[0] === true) return expression(value)[0];
    }
    return rule.otherValues === 'keep' ? value : undefined;
  }

  private shiftPrefix(state: State): string {
    const { resource, context } = state;
    switch (this.config.parameters.dateShiftScope) {
      case 'file':
      case 'folder':
        return context.scopeName ?? '';
      case 'patient':
        return patientId(resource) ?? String(resource['id'] ?? '');
      default:
        return String(resource['id'] ?? '');
    }
  }
}

interface State {
  resource: JsonObject;
  context: ResourceContext;
  types: WeakMap<object, Map<string, string>>;
  claimed: WeakMap<object, Set<string>>;
  labels: Set<Label>;
}

function label(code: Label): JsonObject {
  return { system: LABEL_SYSTEM, code, display: LABELS[code] };
}

function partialZip(zip: string, restricted: string[]): string {
  const digits = zip.slice(0, 3);
  if (restricted.includes(digits)) return zip.replace(/\d/g, '0');
  return digits + zip.slice(3).replace(/\d/g, '0');
}

/** Scrubs a text leaf; base64 `data` of a text attachment (DocumentReference, Binary) is decoded and re-encoded. */
function scrubLeaf(leaf: NodeLocation, value: string, names: readonly NameMatcher[] = []): string {
  const contentType = leaf.parent['contentType'];
  if (leaf.key === 'data' && typeof contentType === 'string') {
    if (!/^text\/|json|xml/.test(contentType)) return value; // non-text binaries cannot be scrubbed: redact with another rule
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    return Buffer.from(scrubText(decoded, names).text, 'utf8').toString('base64');
  }
  return scrubText(value, names).text;
}

/** The id of the patient a resource belongs to (itself, or its subject/patient reference). */
export function patientId(resource: JsonObject): string | undefined {
  if (resource['resourceType'] === 'Patient') return typeof resource['id'] === 'string' ? resource['id'] : undefined;
  for (const key of ['subject', 'patient', 'beneficiary']) {
    const reference = (resource[key] as JsonObject | undefined)?.['reference'];
    if (typeof reference === 'string') return reference.replace(/^urn:uuid:|^.*Patient\//, '');
  }
  return undefined;
}

function leafKey(location: Pick<NodeLocation, 'key' | 'index'>): string {
  return `${location.key}|${location.index ?? ''}`;
}

function isClaimed(claimed: WeakMap<object, Set<string>>, location: NodeLocation): boolean {
  return claimed.get(location.parent)?.has(leafKey(location)) ?? false;
}

function claim(claimed: WeakMap<object, Set<string>>, location: Pick<NodeLocation, 'parent' | 'key' | 'index'>): void {
  let keys = claimed.get(location.parent);
  if (!keys) claimed.set(location.parent, (keys = new Set()));
  keys.add(leafKey(location));
}

function claimSubtree(location: NodeLocation, claimed: WeakMap<object, Set<string>>): void {
  claim(claimed, location);
  const value = readValue(location.parent, location.key, location.index);
  if (value && typeof value === 'object') for (const leaf of leaves(value as JsonObject, new WeakMap())) claim(claimed, leaf);
}

function hasClaimedLeaf(object: JsonObject, claimed: WeakMap<object, Set<string>>): boolean {
  for (const leaf of leaves(object, new WeakMap())) if (isClaimed(claimed, leaf)) return true;
  return false;
}

/** Every primitive value inside an element, skipping nested resources. */
function* leaves(object: JsonObject, types: WeakMap<object, Map<string, string>>): Generator<NodeLocation> {
  for (const [key, value] of Object.entries(object)) {
    const items = Array.isArray(value) ? value : [value];
    for (let i = 0; i < items.length; i++) {
      const item: unknown = items[i];
      const index = Array.isArray(value) ? i : null;
      if (item === REMOVED) continue;
      if (item && typeof item === 'object') {
        if (typeof (item as JsonObject)['resourceType'] !== 'string') yield* leaves(item as JsonObject, types);
      } else {
        yield { parent: object, key, index, type: types.get(object)?.get(key) ?? typeof item, value: item };
      }
    }
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
}
