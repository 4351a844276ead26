/**
 * The de-identification engine: applies an ordered list of FHIRPath rules to each resource, the
 * first rule that reaches a value winning (Microsoft "Tools for Health Data Anonymization"
 * semantics). Rules act on primitive values; a rule matching a complex element acts on every
 * primitive inside it that no earlier rule has claimed. Contained resources and Bundle entries
 * are processed as resources of their own. Every processed resource is tagged in `meta.security`
 * with the HL7 v3 ObservationValue codes of the operations applied.
 */
/// <reference types="fhir" />
import { createSecretKey, type KeyObject } from 'node:crypto';
import { MedShareError, MalformedInputError } from '@medshare/crypto';
import type { DeidConfig, Rule } from './config.ts';
import { compileValueExpression, forgetDescendants, pruneRemoved, REMOVED, toLocations, writeValue, type JsonObject, type NodeLocation } from './fhir-nodes.ts';
import { elementPart, indexResource, PRIMITIVE_TYPES, RESOURCE_TYPES, type NodeIndex, type TypedNode } from './native-paths.ts';
import { dateShiftOffset, partialDate, shiftDate } from './dates.ts';
import { cryptoHash, cryptoHashReference, encryptValue, formKeepingHash, perturbNumber } from './methods.ts';
import { compileWalk, isYearsQuantity, type Leaf, type RuleWalk } from './rule-walk.ts';
import { builtinNameMatchers, nameMatcher, scrubText, termMatcher, type NameMatcher, type TextScope } from './free-text.ts';

const PEOPLE = ['Patient', 'RelatedPerson', 'Practitioner', 'Person'];

const LABEL_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue';
/**
 * The security labels the reference tool writes (its SecurityLabels.cs), in the order it appends
 * them: only REDACTED, ABSTRED and CRYTOHASH carry the v3-ObservationValue system.
 */
const LABELS = {
  REDACTED: { system: LABEL_SYSTEM, code: 'REDACTED', display: 'redacted' },
  ABSTRED: { system: LABEL_SYSTEM, code: 'ABSTRED', display: 'abstracted' },
  CRYTOHASH: { system: LABEL_SYSTEM, code: 'CRYTOHASH', display: 'cryptographic hash function' },
  ENCRYPT: { code: 'ENCRYPT', display: 'exact value is transformed into ciphertext' },
  PERTURBED: { code: 'PERTURBED', display: 'exact value is replaced with another exact value' },
  SUBSTITUTED: { code: 'SUBSTITUTED', display: 'exact value is replaced with a predefined value' },
  GENERALIZED: { code: 'GENERALIZED', display: 'exact value is replaced with a general value' },
} as const;
type Label = keyof typeof LABELS;
const LABEL_ORDER = Object.keys(LABELS) as Label[];
const LABEL_BIT = Object.fromEntries(LABEL_ORDER.map((code, i) => [code, 1 << i])) as Record<Label, number>;

/**
 * The labels of the operations applied to one resource, as bits in LABEL_ORDER's order: one number
 * per resource where a Set and its iterators were allocated for every resource of a record set.
 */
class Labels {
  bits = 0;
  add(label: Label): void {
    this.bits |= LABEL_BIT[label];
  }
}

const DATE_TYPES = new Set(['date', 'dateTime', 'instant']);
const INTEGER_TYPES = new Set(['integer', 'positiveInt', 'unsignedInt', 'integer64']);
const NUMBER_TYPES = new Set(['decimal', ...INTEGER_TYPES]);
const QUANTITY_TYPES = new Set(['Quantity', 'Age', 'Count', 'Distance', 'Duration', 'SimpleQuantity', 'MoneyQuantity']);
const TEXT_TYPES = new Set(['string', 'markdown', 'xhtml', 'base64Binary', '']);
/** How cryptoHash treats a value: a reference or fullUrl (its id part), a Bundle request.url, or any other value (whole). */
type HashForm = 'reference' | 'fullUrl' | 'request' | 'value';
const HASH_CACHE_LIMIT = 50_000;

/** What a resource is processed with, beyond the configuration. */
export interface ResourceContext {
  /** Name matchers for free-text scrubbing (see `namesFor`). */
  names?: readonly NameMatcher[];
  /** The date-shift prefix for `file` and `folder` scopes (the file or folder name). */
  scopeName?: string;
  /** Called after each Bundle entry's resource is processed (progress reporting). */
  onEntry?: () => void;
}

/** The state of one top-level resource's processing (its nested resources included). */
interface Run {
  context: ResourceContext;
  /** The top-level resource: its id is the `resource`-scope date-shift prefix, as in the reference tool. */
  top: JsonObject;
  /**
   * Substituted nodes: everything below them counts as visited. (Nodes processed by an earlier rule,
   * which later rules leave alone under first-rule-wins, are marked `visited` themselves.)
   */
  sealed: Set<TypedNode>;
  /** The labels of the resource the rule walk is in (reset for each resource). */
  found: Labels;
  /** The rule walk's callback for this run, made once per top-level resource rather than once per resource. */
  apply?: (rule: Rule, leaf: Leaf) => void;
}

/** De-identifies FHIR resources under one configuration. */
export class Deidentifier {
  private readonly dictionary: string[];
  /** The form-keeping hash under this configuration's key, made once (not a closure per hashed value), its results kept. */
  private readonly keepFormHash: (id: string) => string;
  /** Hashed values by form (see `hash`), bounded; one engine has one key. */
  private readonly hashes: Record<HashForm, Map<string, string>> = { reference: new Map(), fullUrl: new Map(), request: new Map(), value: new Map() };
  private readonly offsets = new Map<string, number>();
  private readonly generalizers = new Map<
    Rule,
    { condition: (v: unknown, type: string) => unknown[]; expression: (v: unknown, type: string) => unknown[] }[]
  >();
  /** The rules in one walk per resource, when the configuration allows it (rule-walk.ts). */
  private readonly ruleWalk: RuleWalk | undefined;
  /** `cryptoHashKey` as a key object, made once (createHmac converts a string key on every call). */
  private readonly hashKey: KeyObject;

  constructor(readonly config: DeidConfig) {
    this.dictionary = config.parameters.nameDictionary;
    this.hashKey = createSecretKey(Buffer.from(config.parameters.cryptoHashKey, 'utf8'));
    this.ruleWalk = config.singlePass ? compileWalk(config.rules, { quantityAgesAsAges: config.parameters.quantityAgesAsAges }) : undefined;
    const key = this.hashKey;
    // A resource's id recurs in its fullUrl and in every reference to it: each id is hashed once.
    const ids = new Map<string, string>();
    this.keepFormHash = (id) => {
      let hashed = ids.get(id);
      if (hashed === undefined) {
        if (ids.size >= HASH_CACHE_LIMIT) ids.clear();
        ids.set(id, (hashed = formKeepingHash(id, key)));
      }
      return hashed;
    };
    for (const rule of config.rules) {
      if (rule.cases) {
        this.generalizers.set(
          rule,
          rule.cases.map((c) => ({ condition: compileValueExpression(c.condition), expression: compileValueExpression(c.expression) })),
        );
      }
    }
  }

  /**
   * Matchers for free text: the names, address lines, cities and postal codes of the people in
   * `resources` (Patient and its contacts, RelatedPerson, Practitioner, Person) plus
   * `nameDictionary`, and the built-in name and city dictionaries when enabled.
   */
  namesFor(resources: Iterable<JsonObject>): NameMatcher[] {
    const names = new Set(this.dictionary);
    const places = new Set<string>();
    const zips = new Set<string>();
    for (const resource of withContained(resources)) {
      if (!PEOPLE.includes(String(resource['resourceType']))) continue;
      // Input is untrusted JSON: the FHIR types describe the expected shape, typeof checks enforce it.
      const person = resource as unknown as fhir4.Patient;
      const humanNames = [
        ...asArray(person.name),
        ...(asArray(person.contact) as fhir4.PatientContact[]).flatMap((c) => asArray(c?.name)),
      ] as fhir4.HumanName[];
      const parts: unknown[] = [];
      for (const name of humanNames) parts.push(...asArray(name?.given), name?.family, name?.text);
      const maiden = (asArray(person.extension) as fhir4.Extension[]).find(
        (e) => e?.url === 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName',
      );
      parts.push(maiden?.valueString);
      for (const part of parts) if (typeof part === 'string') for (const word of part.split(/\s+/)) names.add(word);
      const addresses = [...asArray(person.address), ...(asArray(person.contact) as fhir4.PatientContact[]).map((c) => c?.address)] as fhir4.Address[];
      for (const address of addresses) {
        for (const part of [...asArray(address?.line), address?.city, address?.district, address?.text])
          if (typeof part === 'string' && part.length >= 3) places.add(part);
        if (typeof address?.postalCode === 'string') zips.add(address.postalCode);
      }
    }
    const matchers = [
      nameMatcher(names),
      termMatcher('ADDRESS', places),
      termMatcher('ZIP', zips),
      ...(this.config.parameters.builtinNameDictionary ? builtinNameMatchers() : []),
    ];
    return matchers.filter((m): m is NameMatcher => m !== undefined);
  }

  /**
   * De-identifies one resource in place, with the resources nested in it (contained resources,
   * Bundle entries), and returns it. As in the reference tool, a resource is processed before the
   * resources inside it, each nested resource with its own rules; the labels of the operations
   * applied are added to `meta.security` of every resource that is not a contained one (a
   * container, a Bundle, also carries the labels of what it contains). With
   * `processingErrors: skip` a resource that fails becomes an empty resource tagged REDACTED.
   * Throws MalformedInputError (naming the resource) for a failure under `raise`.
   */
  processResource(resource: JsonObject, context: ResourceContext = {}): JsonObject {
    if (typeof resource['resourceType'] !== 'string') throw new MalformedInputError('not a FHIR resource: missing resourceType');
    try {
      this.visitResource(resource, false, { context, top: resource, sealed: new Set(), found: new Labels() });
      return resource;
    } catch (error) {
      if (this.config.processingErrors === 'raise') {
        // Name the failing resource; errors of other kinds (integrity, limits) keep their type.
        if (error instanceof MedShareError && error.code !== 'MALFORMED') throw error;
        const reason = error instanceof Error ? error.message : String(error);
        throw new MalformedInputError(`${String(resource['resourceType'])}/${String(resource['id'] ?? '?')}: ${reason}`);
      }
      for (const key of Object.keys(resource)) if (key !== 'resourceType') delete resource[key];
      resource['meta'] = { security: [{ ...LABELS.REDACTED }] };
      return resource;
    }
  }

  /** Processes a resource and those nested in it; returns the bits of the labels of everything applied. */
  private visitResource(resource: JsonObject, contained: boolean, run: Run): number {
    let labels: number;
    let nested: { resource: JsonObject; key: string }[];
    let dirty = true;
    if (this.ruleWalk) {
      // The walk applies this resource's values before any nested resource is visited, so one accumulator per run serves them all.
      run.found.bits = 0;
      ({ nested, dirty } = this.ruleWalk.walk(resource, (run.apply ??= (rule, leaf) => this.applyLeaf(rule, leaf, run, run.found))));
      labels = run.found.bits;
    } else {
      forgetDescendants(resource);
      const index = indexResource(resource);
      if (this.config.parameters.quantityAgesAsAges) retypeQuantityAges(index);
      labels = this.applyRules(resource, index, run);
      nested = index.resources.map((node) => ({ resource: node.value as JsonObject, key: node.key }));
    }
    const entries = resource['resourceType'] === 'Bundle';
    for (const { resource: inner, key } of nested) {
      labels |= this.visitResource(inner, key === 'contained', run);
      if (entries && key === 'resource') run.context.onEntry?.();
    }
    if (!contained && labels !== 0) addSecurityLabels(resource, labels);
    // Each resource prunes its own elements (its nested resources pruned themselves), as the reference tool removes empty nodes.
    if (dirty) pruneRemoved(resource, resource);
    return labels;
  }

  private applyRules(resource: JsonObject, index: NodeIndex, run: Run): number {
    const labels = new Labels();
    const type = String(resource['resourceType']);
    const environment = { resource, rootResource: run.top };
    for (const rule of this.config.rules) {
      if (rule.resourceType !== '' && rule.resourceType !== type) continue;
      let nodes: TypedNode[];
      try {
        nodes = rule.native ? rule.native(index) : fromLocations(rule.compiled(resource, environment), index);
      } catch (error) {
        throw new MalformedInputError(`rule ${rule.index} (${rule.path}): ${(error as Error).message.split('\n')[0]}`);
      }
      for (const node of nodes) this.processRecursive(rule, node, run, labels);
    }
    return labels.bits;
  }

  /** Applies a rule's method to a node and to every node below it not yet processed (nested resources excepted). */
  private processRecursive(rule: Rule, node: TypedNode, run: Run, labels: Labels): void {
    if (isVisited(node, run)) return;
    this.applyMethod(rule, node, run, labels);
    node.visited = true;
    for (const child of node.children) if (!child.nested) this.processRecursive(rule, child, run, labels);
  }

  private applyMethod(rule: Rule, node: TypedNode, run: Run, labels: Labels): void {
    const params = this.config.parameters;
    const value = primitiveValue(node);
    switch (rule.method) {
      case 'dateShift': {
        if (isEmpty(value) || !DATE_TYPES.has(node.type)) return;
        const offset = params.dateShiftFixedOffsetInDays ?? this.shiftOffset(this.shiftPrefix(node, run));
        const shifted = shiftDate(String(value), offset);
        if (shifted !== undefined) return setValue(node, labels, shifted, 'PERTURBED');
        return setValue(node, labels, params.enablePartialDatesForRedact ? partialDate(String(value)) : undefined, 'REDACTED');
      }
      case 'substitute':
        substitute(node, rule.replaceWith, run);
        labels.add('SUBSTITUTED');
        return;
      case 'perturb':
        return this.perturb(rule, node, run, labels);
      case 'generalize': {
        if (!PRIMITIVE_TYPES.has(node.type)) {
          throw new MalformedInputError(`generalize applies to primitive values only, not to ${node.type || 'an untyped element'} at ${node.key}`);
        }
        if (value === undefined) return;
        return setValue(node, labels, this.generalize(rule, value, node.type), 'GENERALIZED');
      }
      default:
        return this.applyLeaf(rule, node, run, labels);
    }
  }

  /** The methods that act on one value alone (the ones the rule walk applies). */
  private applyLeaf(rule: Rule, node: Leaf, run: Run, labels: Labels): void {
    const params = this.config.parameters;
    const value = primitiveValue(node);
    switch (rule.method) {
      case 'keep':
        return;
      case 'redact':
        if (isEmpty(value)) return;
        if (DATE_TYPES.has(node.type)) return setValue(node, labels, params.enablePartialDatesForRedact ? partialDate(String(value)) : undefined, 'REDACTED');
        if (node.type === 'decimal' && node.key === 'value' && node.parentNode?.type === 'Age') {
          return setValue(node, labels, params.enablePartialAgesForRedact && Number(value) <= 89 ? value : undefined, 'REDACTED');
        }
        if (node.key === 'postalCode') {
          if (params.enablePartialZipCodesForRedact)
            return setValue(node, labels, partialZip(String(value), params.restrictedZipCodeTabulationAreas), 'ABSTRED');
          return setValue(node, labels, undefined, 'REDACTED');
        }
        return setValue(node, labels, undefined, 'REDACTED');
      case 'cryptoHash':
        if (isEmpty(value)) return;
        return setValue(node, labels, this.hash(node, String(value)), 'CRYTOHASH');
      case 'encrypt':
        if (isEmpty(value)) return;
        return setValue(node, labels, encryptValue(String(value), params.encryptKey), 'ENCRYPT');
      case 'scrubText': {
        // Free text only: uris, codes and ids below a matched element (an extension's url) are links and terminology.
        if (typeof value !== 'string' || !TEXT_TYPES.has(node.type)) return;
        const scrubbed = scrubLeaf(node, value, run.context.names, rule.scope);
        if (scrubbed !== value) setValue(node, labels, scrubbed, 'REDACTED');
        return;
      }
      default:
        throw new MalformedInputError(`method ${rule.method} does not act on a single value`);
    }
  }

  /**
   * cryptoHash of one value: the id part of a reference; with `cryptoHashKeepsForm`, UUIDs stay
   * UUIDs and Bundle links stay valid. Results are kept per form of hashing: a record set repeats
   * the same references (its patient's, its encounters') tens of thousands of times.
   */
  private hash(node: Leaf, value: string): string {
    const isReference = node.key === 'reference' && node.parentNode?.type === 'Reference';
    let form: HashForm = isReference
      ? 'reference'
      : node.key === 'fullUrl'
        ? 'fullUrl'
        : node.key === 'url' && node.parentNode?.key === 'request'
          ? 'request'
          : 'value';
    if (this.config.parameters.cryptoHashKeepsForm) {
      // A plain value is an id, whose cache keepFormHash is; a fullUrl hashes as a reference does (its id part), so they share one cache.
      if (form === 'value') return this.keepFormHash(value);
      if (form === 'fullUrl') form = 'reference';
    }
    const cache = this.hashes[form];
    let hashed = cache.get(value);
    if (hashed === undefined) {
      hashed = this.hashUncached(form, value);
      if (cache.size >= HASH_CACHE_LIMIT) cache.clear();
      cache.set(value, hashed);
    }
    return hashed;
  }

  private hashUncached(form: HashForm, value: string): string {
    const key = this.hashKey;
    if (!this.config.parameters.cryptoHashKeepsForm) return form === 'reference' ? cryptoHashReference(value, key) : cryptoHash(value, key);
    const hash = this.keepFormHash;
    if (form === 'request') {
      const path = value.split('?')[0] ?? '';
      return RESOURCE_TYPES.has(path) ? path : cryptoHashReference(path, key, hash);
    }
    return cryptoHashReference(value, key, hash);
  }

  /** Perturbs a number, or the `value` of a Quantity-like element; the element is then left to no other rule. */
  private perturb(rule: Rule, node: TypedNode, run: Run, labels: Labels): void {
    const target = NUMBER_TYPES.has(node.type) ? node : QUANTITY_TYPES.has(node.type) ? node.children.find((c) => c.key === 'value') : undefined;
    if (!target || typeof target.value !== 'number' || target.visited) return;
    let next = perturbNumber(target.value, rule.span ?? 0, rule.rangeType ?? 'fixed', rule.roundTo ?? 2, INTEGER_TYPES.has(target.type));
    if (target.type === 'positiveInt' && next <= 0) next = 1;
    if (target.type === 'unsignedInt' && next < 0) next = 0;
    writeValue(target, next);
    target.value = next;
    for (const below of descendants(node)) below.visited = true;
    labels.add('PERTURBED');
  }

  private generalize(rule: Rule, value: unknown, type: string): unknown {
    for (const { condition, expression } of this.generalizers.get(rule) ?? []) {
      let matched: boolean;
      try {
        matched = condition(value, type)[0] === true;
        if (matched) return expression(value, type)[0];
      } catch (error) {
        throw new MalformedInputError(`generalize failed on a ${type} value: ${(error as Error).message.split('\n')[0]}`);
      }
    }
    return rule.otherValues === 'keep' ? value : undefined;
  }

  /** The date-shift offset of a prefix, computed once per prefix (the HMAC variant costs an HMAC per date otherwise). */
  private shiftOffset(prefix: string): number {
    let offset = this.offsets.get(prefix);
    if (offset === undefined) {
      const params = this.config.parameters;
      if (this.offsets.size >= HASH_CACHE_LIMIT) this.offsets.clear();
      this.offsets.set(prefix, (offset = dateShiftOffset(prefix, params.dateShiftKey, params.dateShiftAlgorithm)));
    }
    return offset;
  }

  private shiftPrefix(node: TypedNode, run: Run): string {
    const { context, top } = run;
    switch (this.config.parameters.dateShiftScope) {
      case 'file':
      case 'folder':
        return context.scopeName ?? '';
      case 'patient': {
        const resource = owningResource(node) ?? top;
        return patientId(resource) ?? String(resource['id'] ?? '');
      }
      default:
        return typeof top['id'] === 'string' ? top['id'] : '';
    }
  }
}

/** The resources and the resources they contain (a contained Patient's names are the record's too). */
function* withContained(resources: Iterable<JsonObject>): Generator<JsonObject> {
  for (const resource of resources) {
    yield resource;
    // (Read without asArray: most resources contain none, and an empty array per resource adds up.)
    const contained = resource['contained'];
    if (Array.isArray(contained)) {
      for (const inner of contained) if (isObject(inner)) yield inner;
    } else if (isObject(contained)) yield contained;
  }
}

/** With `quantityAgesAsAges`: a Quantity in years (UCUM `a`) is typed Age, so Age rules (and partial ages) apply to it. */
function retypeQuantityAges(index: NodeIndex): void {
  const quantities = index.byType.get('Quantity');
  if (!quantities) return;
  const ages = quantities.filter((node) => isYearsQuantity(node.value));
  if (ages.length === 0) return;
  index.byType.set(
    'Quantity',
    quantities.filter((node) => !ages.includes(node)),
  );
  for (const node of ages) node.type = 'Age';
  index.byType.set('Age', [...(index.byType.get('Age') ?? []), ...ages]);
}

/** Writes a method's result into a node (undefined or null removes it) and records the label. */
function setValue(node: Leaf, labels: Labels, next: unknown, label: Label): void {
  writeValue(node, next ?? REMOVED);
  node.value = next ?? undefined;
  labels.add(label);
}

function isVisited(node: TypedNode, run: Run): boolean {
  if (node.visited) return true;
  if (run.sealed.size === 0) return false;
  for (let current: TypedNode | undefined = node; current; current = current.parentNode) if (run.sealed.has(current)) return true;
  return false;
}

/** A node's primitive value (undefined for a complex element or an absent primitive). */
function primitiveValue(node: Leaf): unknown {
  const value = node.value;
  return value !== null && typeof value === 'object' ? undefined : value;
}

function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || value === '';
}

function* descendants(node: TypedNode): Generator<TypedNode> {
  for (const child of node.children) {
    yield child;
    yield* descendants(child);
  }
}

function owningResource(node: TypedNode): JsonObject | undefined {
  let current: TypedNode | undefined = node;
  while (current?.parentNode) current = current.parentNode;
  return current?.value as JsonObject | undefined;
}

/** Maps fhirpath results to the nodes of the index (results in nested resources and literals are dropped). */
function fromLocations(results: unknown[], index: NodeIndex): TypedNode[] {
  const nodes: TypedNode[] = [];
  for (const location of toLocations(results, index.root.value as JsonObject)) {
    const node = index.byParent(location.parent)?.find((n) => n.key === location.key && n.index === location.index);
    if (node) nodes.push(node);
  }
  for (const result of results)
    if ((result as { data?: unknown })?.data === index.root.value && (result as { parentResNode?: unknown }).parentResNode == null) nodes.push(index.root);
  return nodes;
}

/**
 * The reference tool's substitute: the node takes the replacement's value and children, element
 * by element and item by item; what an earlier rule processed is kept (an emptied copy of an
 * element keeps the processed parts below it), other elements absent from the replacement are
 * removed, extra replacement items are added. Everything below is then left to no other rule.
 */
function substitute(node: TypedNode, replaceWith: unknown, run: Run): void {
  const replacement = replaceWith === null || replaceWith === undefined ? (PRIMITIVE_TYPES.has(node.type) ? null : {}) : replaceWith;
  const keep = new Set<TypedNode>();
  markKept(node, run, keep);
  substituteNode(node, replacement, run, keep);
  run.sealed.add(node);
}

function markKept(node: TypedNode, run: Run, keep: Set<TypedNode>): boolean {
  let kept = false;
  for (const child of node.children) kept = markKept(child, run, keep) || kept;
  if (kept || node.visited) {
    keep.add(node);
    return true;
  }
  return false;
}

/** Writes `replacement` into the node's place, keeping processed descendants. */
function substituteNode(node: TypedNode, replacement: unknown, run: Run, keep: Set<TypedNode>): void {
  if (node.visited) return;
  const complex = node.value !== null && typeof node.value === 'object';
  if (replacement === null ? !complex : typeof replacement !== 'object') {
    // The primitive's own value; its id and extensions (children) go unless processed before.
    writeValue(node, replacement === null ? REMOVED : replacement);
    for (const child of node.children) {
      if (child.visited) continue;
      if (keep.has(child)) substituteNode(child, null, run, keep);
      else removeNode(child);
    }
    return;
  }
  const target = (replacement ?? {}) as JsonObject;
  let object = node.value;
  if (object === null || typeof object !== 'object') {
    object = {};
    writeValue(node, object);
  }
  const json = object as JsonObject;
  const byName = new Map<string, TypedNode[]>();
  for (const child of node.children) {
    const list = byName.get(child.key);
    if (list) list.push(child);
    else byName.set(child.key, [child]);
  }
  for (const [name, value] of Object.entries(target)) {
    const targets = Array.isArray(value) ? value : [value];
    const children = byName.get(name) ?? [];
    let i = 0;
    for (const child of children) {
      if (child.visited) i++;
      else if (i < targets.length) substituteNode(child, targets[i++], run, keep);
      else if (keep.has(child)) substituteNode(child, null, run, keep);
      else removeNode(child);
    }
    if (i < targets.length) {
      const extra = structuredClone(targets.slice(i));
      const existing = json[name];
      if (existing === undefined || existing === REMOVED) json[name] = Array.isArray(value) ? extra : extra[0];
      else json[name] = [...(Array.isArray(existing) ? existing : [existing]), ...extra];
    }
  }
  for (const [name, children] of byName) {
    if (name in target) continue;
    for (const child of children) {
      if (child.visited) continue;
      if (keep.has(child)) substituteNode(child, null, run, keep);
      else removeNode(child);
    }
  }
}

/** Removes a node (and the element part of a primitive). */
function removeNode(node: TypedNode): void {
  writeValue(node, REMOVED);
  const part = node.parent[`_${node.key}`];
  if (part === undefined) return;
  if (node.index === null || !Array.isArray(part)) node.parent[`_${node.key}`] = REMOVED;
  else part[node.index] = REMOVED;
}

/** Appends the labels not already present (codes compared case-insensitively), in the reference tool's order. */
function addSecurityLabels(resource: JsonObject, labels: number): void {
  let meta = resource['meta'];
  if (meta === REMOVED || typeof meta !== 'object') resource['meta'] = meta = {};
  const metaObject = meta as JsonObject;
  let security = metaObject['security'];
  if (!Array.isArray(security)) metaObject['security'] = security = [];
  const list = security as unknown[];
  // The codes there before (the labels added here differ from one another); most resources have none.
  let present: Set<string> | undefined;
  for (const s of list) if (s !== null && typeof s === 'object') (present ??= new Set()).add(String((s as JsonObject)['code']).toLowerCase());
  for (const code of LABEL_ORDER) if ((labels & LABEL_BIT[code]) !== 0 && !present?.has(LOWER_CASE_LABELS[code])) list.push({ ...LABELS[code] });
}

const LOWER_CASE_LABELS = Object.fromEntries(LABEL_ORDER.map((code) => [code, code.toLowerCase()])) as Record<Label, string>;

function partialZip(zip: string, restricted: string[]): string {
  if (restricted.some((area) => zip.startsWith(area))) return zip.replace(/\d/g, '0');
  if (zip.length < 3) return zip;
  return zip.slice(0, 3) + zip.slice(3).replace(/\d/g, '0');
}

/** Scrubs a text leaf; base64 `data` of a text attachment (DocumentReference, Binary) is decoded and re-encoded. */
function scrubLeaf(leaf: NodeLocation, value: string, names: readonly NameMatcher[] = NO_NAMES, scope: TextScope = 'all'): string {
  // A base64 attachment's contentType is its sibling (read for `data` only).
  const contentType = leaf.key === 'data' ? leaf.parent['contentType'] : undefined;
  if (typeof contentType === 'string') {
    if (!/^text\/|json|xml/.test(contentType)) return value; // non-text binaries cannot be scrubbed: redact with another rule
    // A note is often attached twice (DocumentReference.content and DiagnosticReport.presentedForm): the base64 text is cached too.
    return cachedScrubBase64(value, names);
  }
  if (leaf.type === 'xhtml') return cachedScrubXhtml(value, names);
  return cachedScrub(value, names, scope);
}

/**
 * Scrubbed texts by matcher set: a record set's resources repeat the same displays and texts
 * thousands of times ("Body mass index (BMI) [Ratio]"), and a text scrubs the same way under
 * the same matchers. Bounded; dropped with the matcher set.
 */
const scrubCache = new WeakMap<readonly NameMatcher[], Record<TextScope | 'base64' | 'xhtml', Map<string, string>>>();

const SCRUB_CACHE_LIMIT = 20_000;
/** Decoded notes are large: fewer of them are kept. */
const BASE64_CACHE_LIMIT = 500;
const NO_NAMES: readonly NameMatcher[] = [];

/** The cache of scrubbed texts of a matcher set and kind (one map per kind: no key strings built per lookup). */
function cacheFor(names: readonly NameMatcher[], kind: TextScope | 'base64' | 'xhtml'): Map<string, string> {
  let caches = scrubCache.get(names);
  if (!caches) scrubCache.set(names, (caches = { all: new Map(), terminology: new Map(), base64: new Map(), xhtml: new Map() }));
  const cache = caches[kind];
  if (cache.size >= (kind === 'base64' || kind === 'xhtml' ? BASE64_CACHE_LIMIT : SCRUB_CACHE_LIMIT)) cache.clear();
  return cache;
}

/** A blank line (with any other whitespace around it): where a text is cut into paragraphs. */
const PARAGRAPH_BREAK = /(\n\s*\n)/;

function cachedScrub(value: string, names: readonly NameMatcher[], scope: TextScope): string {
  return scrubParagraphs(value, names, scope, cacheFor(names, scope));
}

/**
 * Scrubs a text through the cache, paragraph by paragraph: a patient's notes repeat most of their
 * paragraphs (in the Synthea bundles 90 % of the notes' paragraph text recurs within the bundle:
 * "# Social History", "# Allergies"), so each is scrubbed once. A finding cannot span a blank line
 * this way; on the corpora and the Synthea bundles the output is the whole text's (tested:
 * `paragraph by paragraph …`, free-text-equivalence.test.ts).
 */
function scrubParagraphs(text: string, names: readonly NameMatcher[], scope: TextScope, cache: Map<string, string>): string {
  let scrubbed = cache.get(text);
  if (scrubbed !== undefined) return scrubbed;
  // A paragraph has no break, so the recursion goes one level deep.
  scrubbed = PARAGRAPH_BREAK.test(text)
    ? text
        .split(PARAGRAPH_BREAK)
        .map((part, i) => (i % 2 === 1 ? part : scrubParagraphs(part, names, scope, cache)))
        .join('')
    : scrubText(text, names, scope).text;
  cache.set(text, scrubbed);
  return scrubbed;
}

/** A narrative scrubs the same way each time it recurs (Synthea repeats them per resource type). */
function cachedScrubXhtml(value: string, names: readonly NameMatcher[]): string {
  const cache = cacheFor(names, 'xhtml');
  let scrubbed = cache.get(value);
  if (scrubbed === undefined) cache.set(value, (scrubbed = scrubXhtml(value, names)));
  return scrubbed;
}

/** Scrubs the text inside base64 data (decoded as UTF-8, re-encoded). */
function cachedScrubBase64(value: string, names: readonly NameMatcher[]): string {
  const cache = cacheFor(names, 'base64');
  let scrubbed = cache.get(value);
  if (scrubbed === undefined) {
    const text = Buffer.from(value, 'base64').toString('utf8');
    scrubbed = Buffer.from(scrubParagraphs(text, names, 'all', cacheFor(names, 'all')), 'utf8').toString('base64');
    cache.set(value, scrubbed);
  }
  return scrubbed;
}

const XHTML_TAG = /(<[^>]*>)/;

/**
 * Scrubs a narrative and keeps it valid XHTML: the text between tags is scrubbed (entities
 * decoded first, so that `&amp;` does not hide a finding), and each tag keeps only its name and
 * `xmlns` (other attributes — titles, links — may carry identifiers and are dropped).
 */
function scrubXhtml(xhtml: string, names: readonly NameMatcher[]): string {
  return xhtml
    .split(XHTML_TAG)
    .map((part, i) => {
      if (i % 2 === 1) {
        const tag = /^<(\/?)([A-Za-z][\w:-]*)[^>]*?(\/?)>$/.exec(part);
        if (!tag) return '';
        const xmlns = /\sxmlns=("[^"]*"|'[^']*')/.exec(part);
        return `<${tag[1]}${tag[2]}${xmlns ? ` xmlns=${xmlns[1]}` : ''}${tag[3]}>`;
      }
      return escapeXml(cachedScrub(unescapeXml(part), names, 'all'));
    })
    .join('');
}

function unescapeXml(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);/gi, (entity, name: string) => {
    const lower = name.toLowerCase();
    if (lower[0] === '#') return String.fromCodePoint(lower[1] === 'x' ? parseInt(lower.slice(2), 16) : parseInt(lower.slice(1), 10));
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[lower] ?? entity;
  });
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
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

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
}
