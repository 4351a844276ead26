/**
 * A fast path for the FHIRPath shapes that de-identification rules mostly use:
 * `nodesByType('T')`, `nodesByName('n')` or a type name, followed by `.element` and
 * `.where(condition)` steps, and unions of those. One typed walk of the resource (types from the
 * fhirpath package's R4 model: path2Type, choiceTypePaths, pathsDefinedElsewhere) serves every
 * such rule; `where` conditions are evaluated by fhirpath on the candidate element. Any other
 * expression is left to fhirpath itself (fhir-nodes.ts). A test checks both give the same nodes.
 */
import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import type { JsonObject, NodeLocation } from './fhir-nodes.ts';
import { splitUnion } from './union.ts';

const model = r4Model as unknown as {
  path2Type: Record<string, string>;
  path2Repeating: Record<string, boolean>;
  type2Parent: Record<string, string>;
  choiceTypePaths: Record<string, string[]>;
  pathsDefinedElsewhere: Record<string, string>;
};

/** FHIR R4's primitive types (one list for the engine, the path reader and the tests). */
export const PRIMITIVE_TYPES: ReadonlySet<string> = new Set([
  'boolean',
  'integer',
  'integer64',
  'string',
  'decimal',
  'uri',
  'url',
  'canonical',
  'base64Binary',
  'instant',
  'date',
  'dateTime',
  'time',
  'code',
  'oid',
  'id',
  'markdown',
  'unsignedInt',
  'positiveInt',
  'uuid',
  'xhtml',
]);

/**
 * An element of a resource with its FHIR type, the model path its children are typed under, and
 * its children. A primitive's children are the `id` and `extension` of its `_name` element part
 * (FHIR JSON, https://hl7.org/fhir/R4/json.html#primitive), so rules reach primitive extensions
 * as the reference tool does; a primitive that has only an element part has `value` undefined.
 */
export interface TypedNode extends NodeLocation {
  typePath: string;
  children: TypedNode[];
  parentNode: TypedNode | undefined;
  /** A nested resource (contained, Bundle entry, Parameters resource): listed, not entered. */
  nested: boolean;
  /** Its element name (`value` for `valueQuantity`). */
  name: string;
  /** Processed by a rule already (the engine's first-rule-wins mark; a node belongs to one processing run). */
  visited: boolean;
}

/** Every element of one resource (nested resources are listed but not entered), indexed for rule evaluation. */
export interface NodeIndex {
  root: TypedNode;
  all: TypedNode[];
  byType: Map<string, TypedNode[]>;
  /** The nodes of an element name (a choice element under both names: `value` and `valueQuantity`); built on first use. */
  byName(name: string): TypedNode[] | undefined;
  /** The nodes whose JSON parent is a given object (to map fhirpath results back to nodes); built on first use. */
  byParent(parent: object): TypedNode[] | undefined;
  /** Nested resources, in document order. */
  resources: TypedNode[];
}

function push<K>(map: Map<K, TypedNode[]>, key: K, node: TypedNode): void {
  const list = map.get(key);
  if (list) list.push(node);
  else map.set(key, [node]);
}

export interface ChildType {
  type: string;
  next: string;
  name: string;
  /** The element repeats (0..*): it is written as an array, as FHIR JSON requires. */
  repeating: boolean;
  /** The key of its element part (`_key`), built once. */
  partKey: string;
  /** A number of its own (0, 1, 2...): a walk keeps what it derives from a child type in an array by it. */
  id: number;
  /** The types of its own children (under `next`). */
  nextTypes: ChildTypes;
}

/** The child types under one model path, each resolved on first use; a walk looks up the path once per object, not once per key. */
export class ChildTypes {
  private readonly byKey = new Map<string, ChildType>();
  constructor(private readonly typePath: string) {}

  get(key: string): ChildType {
    let info = this.byKey.get(key);
    if (!info) this.byKey.set(key, (info = resolveChildType(this.typePath, key)));
    return info;
  }
}

/** The child types under model path `typePath` (see ChildTypes). */
export function childTypes(typePath: string): ChildTypes {
  let types = childTypesCache.get(typePath);
  if (!types) childTypesCache.set(typePath, (types = new ChildTypes(typePath)));
  return types;
}

/** The FHIR type of element `key` under model path `typePath`, the path its own children use, and its element name (`value` for `valueQuantity`). */
export function childType(typePath: string, key: string): ChildType {
  return childTypes(typePath).get(key);
}

const childTypesCache = new Map<string, ChildTypes>();
let childTypeCount = 0;

function isResourceType(type: string): boolean {
  for (let t: string | undefined = type; t; t = model.type2Parent[t]) if (t === 'Resource') return true;
  return false;
}

/** The R4 resource types (from the model's type hierarchy). */
export const RESOURCE_TYPES: ReadonlySet<string> = new Set(Object.keys(model.type2Parent).filter(isResourceType));

/** The model names FHIRPath system types for a few elements (Element.id, Extension.url); FHIR calls them string and uri. */
const SYSTEM_TYPES: Record<string, string> = {
  'System.String': 'string',
  'System.Boolean': 'boolean',
  'System.Integer': 'integer',
  'System.Decimal': 'decimal',
};

function resolveChildType(typePath: string, key: string): ChildType {
  const id = childTypeCount++;
  const path = `${typePath}.${key}`;
  let name = key;
  let choiceType: string | undefined;
  for (let i = 1; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 65 || c > 90) continue;
    const suffix = key.slice(i);
    if (model.choiceTypePaths[`${typePath}.${key.slice(0, i)}`]?.includes(suffix)) {
      name = key.slice(0, i);
      const lower = suffix[0]!.toLowerCase() + suffix.slice(1);
      choiceType = lower !== 'xhtml' && PRIMITIVE_TYPES.has(lower) ? lower : suffix; // xhtml is never a choice type
      break;
    }
  }
  const repeating = model.path2Repeating[path] === true;
  const elsewhere = model.pathsDefinedElsewhere[path];
  const partKey = `_${key}`;
  if (elsewhere)
    return { type: model.path2Type[elsewhere] ?? 'BackboneElement', next: elsewhere, name, repeating, partKey, id, nextTypes: childTypes(elsewhere) };
  let type = model.path2Type[path] ?? choiceType;
  if (type === undefined) return { type: '', next: path, name, repeating, partKey, id, nextTypes: childTypes(path) };
  if (type.startsWith('System.'))
    type = key === 'url' && typePath === 'Extension' ? 'uri' : key === 'id' && RESOURCE_TYPES.has(typePath) ? 'id' : (SYSTEM_TYPES[type] ?? type);
  const next = type === 'BackboneElement' || type === 'Element' ? path : type;
  return { type, next, name, repeating, partKey, id, nextTypes: childTypes(next) };
}

/** The element part (`_key`) of a primitive: `object._key` or `object._key[index]`. */
export function elementPart(object: JsonObject, key: string, index: number | null): JsonObject | undefined {
  return partItem(object[`_${key}`], index);
}

/** Item `index` of an element part value (see elementPart). */
export function partItem(part: unknown, index: number | null): JsonObject | undefined {
  if (part === undefined || part === null) return undefined;
  const item = index === null ? (Array.isArray(part) ? part[0] : part) : Array.isArray(part) ? part[index] : index === 0 ? part : undefined;
  return item && typeof item === 'object' ? (item as JsonObject) : undefined;
}

/**
 * The items of element part `partKey` (`_given`) whose primitive is absent: such a primitive
 * exists with its id and extensions only. Calls `each` with the primitive's key and the item's
 * index (null for a single value). Nothing when the primitive is present (it carries its part).
 */
export function eachLonePart(object: JsonObject, partKey: string, each: (key: string, index: number | null) => void): void {
  const key = partKey.slice(1);
  if (object[key] !== undefined && object[key] !== null) return;
  const part = object[partKey];
  if (!Array.isArray(part)) {
    if (part && typeof part === 'object') each(key, null);
    return;
  }
  for (let i = 0; i < part.length; i++) if (part[i] && typeof part[i] === 'object') each(key, i);
}

/** The children of a leaf: one shared empty list (most nodes are leaves; fewer allocations). */
const NO_CHILDREN: TypedNode[] = [];

/** Walks a resource once, typing every element. */
export function indexResource(resource: JsonObject): NodeIndex {
  const rootType = String(resource['resourceType']);
  const root: TypedNode = {
    parent: { root: resource },
    key: 'root',
    index: null,
    type: rootType,
    value: resource,
    typePath: rootType,
    children: [],
    parentNode: undefined,
    nested: false,
    name: 'root',
    visited: false,
  };
  let byParent: Map<object, TypedNode[]> | undefined;
  let byName: Map<string, TypedNode[]> | undefined;
  const index: NodeIndex = {
    root,
    all: [],
    byType: new Map(),
    resources: [],
    byName: (name) => {
      if (!byName) {
        byName = new Map();
        for (const node of index.all) {
          push(byName, node.name, node);
          if (node.name !== node.key) push(byName, node.key, node);
        }
      }
      return byName.get(name);
    },
    byParent: (parent) => {
      if (!byParent) {
        byParent = new Map();
        for (const node of index.all) push(byParent, node.parent, node);
      }
      return byParent.get(parent);
    },
  };
  const add = (parentNode: TypedNode, object: JsonObject, key: string, i: number | null, item: unknown, info: ChildType): TypedNode => {
    const nested = item !== null && typeof item === 'object' && typeof (item as JsonObject)['resourceType'] === 'string';
    const node: TypedNode = {
      parent: object,
      key,
      index: i,
      type: nested ? String((item as JsonObject)['resourceType']) : info.type,
      value: item ?? undefined,
      typePath: info.next,
      children: NO_CHILDREN,
      parentNode,
      nested,
      name: info.name,
      visited: false,
    };
    if (parentNode.children === NO_CHILDREN) parentNode.children = [node];
    else parentNode.children.push(node);
    index.all.push(node);
    push(index.byType, node.type, node);
    if (nested) index.resources.push(node);
    else if (item !== null && typeof item === 'object') visit(item as JsonObject, info.next, node);
    else {
      const part = partItem(object[info.partKey], i);
      if (part) visit(part, 'Element', node);
    }
    return node;
  };
  const visit = (object: JsonObject, typePath: string, parentNode: TypedNode) => {
    for (const key of Object.keys(object)) {
      if (key === 'resourceType') continue;
      let value = object[key];
      if (key.charCodeAt(0) === 95 /* _ */) {
        eachLonePart(object, key, (base, i) => add(parentNode, object, base, i, undefined, childType(typePath, base)));
        continue;
      }
      if (value === null || value === undefined) continue;
      const info = childType(typePath, key);
      if (info.repeating && !Array.isArray(value)) {
        // A repeating element given as a single value is written as an array, as the reference tool's serializer does.
        value = object[key] = [value];
      }
      const part = object[info.partKey];
      if (Array.isArray(value) && part !== undefined && part !== null && !Array.isArray(part)) object[info.partKey] = [part];
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === null || item === undefined) {
            if (partItem(object[info.partKey], i)) add(parentNode, object, key, i, undefined, info);
            continue;
          }
          add(parentNode, object, key, i, item, info);
        }
      } else add(parentNode, object, key, null, value, info);
    }
  };
  visit(resource, rootType, root);
  return index;
}

type Step = (nodes: TypedNode[], index: NodeIndex) => TypedNode[];

const START = /^(?:nodesByType\(['"]([^'"]+)['"]\)|nodesByName\(['"]([^'"]+)['"]\)|([A-Z][A-Za-z]*)|(?=[a-z]|where\())/;
const MEMBER = /^\.(?:([A-Za-z_][A-Za-z0-9_]*)|`([^`]+)`)/;
const WHERE = /^\.where\(((?:[^()]|\((?:[^()]|\([^()]*\))*\))*)\)/;

/** Compiles a rule path into a native evaluator, or `undefined` when fhirpath must evaluate it. */
export function compileNative(path: string): ((index: NodeIndex) => TypedNode[]) | undefined {
  const branches = splitUnion(path);
  const compiled = branches.map(compileBranch);
  if (compiled.some((c) => c === undefined)) return undefined;
  const evaluators = compiled as ((index: NodeIndex) => TypedNode[])[];
  if (evaluators.length === 1) return evaluators[0];
  return (index) => {
    // Branches rarely share a node: deduplicate only when one is seen twice.
    const out: TypedNode[] = [];
    let seen: Set<TypedNode> | undefined;
    for (const evaluate of evaluators) {
      const nodes = evaluate(index);
      if (out.length === 0) {
        for (const node of nodes) out.push(node);
        continue;
      }
      seen ??= new Set(out);
      for (const node of nodes)
        if (!seen.has(node)) {
          seen.add(node);
          out.push(node);
        }
    }
    return out;
  };
}

/** Where a native branch starts: the nodes of a FHIR type, of an element name, or the resource (of a type, when named). */
export type BranchStart = { byType: string } | { byName: string } | { root: string | undefined };
/** A step of a native branch: a child element name, or a `where` condition (`simple` when it reads the JSON directly). */
export type BranchStep = { member: string } | { where: string; simple: ((value: JsonObject) => boolean) | undefined };

/** Parses one union branch of the native shapes, or `undefined` when fhirpath must evaluate it. */
export function parseBranch(branch: string): { start: BranchStart; steps: BranchStep[] } | undefined {
  const start = START.exec(branch);
  if (!start) return undefined;
  const [, byType, byName, typeName] = start;
  const steps: BranchStep[] = [];
  // A path relative to the resource (`name.family`, the expression after a rule's resource type) starts at the root.
  let rest = start[0] === '' ? `.${branch}` : branch.slice(start[0].length);
  while (rest.length > 0) {
    const where = WHERE.exec(rest);
    if (where) {
      const condition = where[1] ?? '';
      steps.push({ where: condition, simple: simpleCondition(condition) });
      rest = rest.slice(where[0].length);
      continue;
    }
    const member = MEMBER.exec(rest);
    if (member) {
      const name = member[1] ?? member[2] ?? '';
      if (name === 'where') return undefined;
      steps.push({ member: name });
      rest = rest.slice(member[0].length);
      continue;
    }
    return undefined;
  }
  return { start: byType !== undefined ? { byType } : byName !== undefined ? { byName } : { root: typeName }, steps };
}

/** A root start named `Resource` or `DomainResource` matches every resource; another type name only its own. */
export function startsAtRoot(typeName: string | undefined, resourceType: string): boolean {
  return typeName === undefined || typeName === resourceType || typeName === 'Resource' || typeName === 'DomainResource';
}

function compileBranch(branch: string): ((index: NodeIndex) => TypedNode[]) | undefined {
  const parsed = parseBranch(branch);
  if (!parsed) return undefined;
  const { start } = parsed;
  const steps: Step[] = parsed.steps.map((step) =>
    'member' in step ? (nodes: TypedNode[]) => memberStep(nodes, step.member) : whereStep(step.where, step.simple),
  );
  return (index) => {
    let nodes: TypedNode[];
    if ('byType' in start) nodes = index.byType.get(start.byType) ?? [];
    else if ('byName' in start) nodes = index.byName(start.byName) ?? [];
    else nodes = startsAtRoot(start.root, index.root.type) ? [index.root] : [];
    for (const step of steps) nodes = step(nodes, index);
    return nodes;
  };
}

/** The children named `name` of the nodes (a choice element under either name), in order; one loop, no intermediate arrays. */
function memberStep(nodes: TypedNode[], name: string): TypedNode[] {
  const out: TypedNode[] = [];
  for (const node of nodes) {
    for (const c of node.children)
      if (c.key === name || (c.key.length > name.length && c.key.charCodeAt(0) === name.charCodeAt(0) && isChoiceOf(c.key, name))) out.push(c);
  }
  return out;
}

export function isChoiceOf(key: string, name: string): boolean {
  return key.length > name.length && key.startsWith(name) && /[A-Z]/.test(key[name.length] ?? '');
}

const SIMPLE_TERM = /^\s*([A-Za-z][A-Za-z0-9]*)(?:\s*(=|!=)\s*'([^'\\]*)'|\.(exists)\(\)|\.(startsWith)\('([^'\\]*)'\))\s*$/;

/**
 * Conditions made of `child = 'text'`, `child != 'text'`, `child.exists()` and
 * `child.startsWith('text')` joined by one kind of `and`/`or` are evaluated directly on the JSON
 * (fhirpath on each candidate is slow when a candidate holds a large base64 attachment); their
 * FHIRPath meaning on a single string value is kept, and anything else goes to fhirpath.
 */
function simpleCondition(condition: string): ((value: JsonObject) => boolean) | undefined {
  const hasAnd = / and /.test(condition);
  const hasOr = / or /.test(condition);
  if ((hasAnd && hasOr) || /[()]/.test(condition.replace(/\.(exists)\(\)|\.startsWith\('[^']*'\)/g, ''))) return undefined;
  const tests: ((value: JsonObject) => boolean)[] = [];
  for (const term of condition.split(hasAnd ? / and / : / or /)) {
    const match = SIMPLE_TERM.exec(term);
    if (!match) return undefined;
    const [, name = '', operator, literal = '', exists, startsWith, prefix = ''] = match;
    const single = (value: JsonObject): string | undefined => {
      const v = value[name];
      const item = Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v;
      return typeof item === 'string' ? item : undefined;
    };
    if (exists)
      tests.push((value) => value[name] !== undefined && value[name] !== null && !(Array.isArray(value[name]) && (value[name] as unknown[]).length === 0));
    else if (startsWith) tests.push((value) => single(value)?.startsWith(prefix) === true);
    else if (operator === '=') tests.push((value) => single(value) === literal);
    else
      tests.push((value) => {
        const v = single(value);
        return v !== undefined && v !== literal;
      });
  }
  return hasAnd || !hasOr ? (value) => tests.every((t) => t(value)) : (value) => tests.some((t) => t(value));
}

/** A `where(condition)` filter: fhirpath evaluates the condition on each element, typed by its model path. */
function whereStep(condition: string, simple: ((value: JsonObject) => boolean) | undefined): Step {
  if (simple) return (nodes) => nodes.filter((node) => node.value !== null && typeof node.value === 'object' && simple(node.value as JsonObject));
  const compiledByBase = new Map<string, (resource: unknown) => unknown[]>();
  // Compiling validates the condition now, so a bad rule fails at configuration time.
  fhirpath.compile(condition, r4Model);
  return (nodes) =>
    nodes.filter((node) => {
      if (node.value === undefined) return false;
      if (typeof node.value !== 'object') return (fhirpath.evaluate(node.value as never, condition, {}, r4Model) as unknown[])[0] === true;
      let compiled = compiledByBase.get(node.typePath);
      if (!compiled) {
        const fn = fhirpath.compile({ base: node.typePath, expression: condition } as never, r4Model);
        compiled = (resource) => fn(resource as never) as unknown[];
        compiledByBase.set(node.typePath, compiled);
      }
      return compiled(node.value)[0] === true;
    });
}
