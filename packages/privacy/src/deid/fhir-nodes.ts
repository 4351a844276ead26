/**
 * FHIRPath evaluation that returns *locations* (parent object, key, array index) rather than
 * copies, so that de-identification methods can rewrite the matched nodes in place.
 * FHIRPath: HL7 FHIRPath N1 (http://hl7.org/fhirpath/N1/), evaluated by the `fhirpath` package
 * with its R4 model. The helpers `nodesByType('T')` and `nodesByName('n')` of Microsoft's
 * anonymization tool are rewritten to `descendants()` filtered by FHIR type or element name.
 */
import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import { splitUnion } from './union.ts';

/** A JSON object node of a FHIR resource. */
export type JsonObject = Record<string, unknown>;

/** Where a matched node lives: `parent[key]` or `parent[key][index]`, with its FHIR type. */
export interface NodeLocation {
  parent: JsonObject;
  key: string;
  index: number | null;
  type: string;
  value: unknown;
}

/** A compiled FHIRPath; call it on a resource to get fhirpath's internal ResourceNodes. */
export type CompiledPath = (resource: unknown, environment?: Record<string, unknown>) => unknown[];

interface ResourceNodeLike {
  data: unknown;
  parentResNode: ResourceNodeLike | null;
  propName: string | null;
  index: number | null;
  fhirNodeDataType: string | null;
  path: string | null;
}

/** The `descendants()` of each resource being processed, computed once, grouped by type and by name. */
interface DescendantIndex {
  byType: Map<string, ResourceNodeLike[]>;
  byName: Map<string, ResourceNodeLike[]>;
}
const descendantsCache = new WeakMap<object, DescendantIndex>();

function indexDescendants(nodes: ResourceNodeLike[]): DescendantIndex {
  const index: DescendantIndex = { byType: new Map(), byName: new Map() };
  const add = (map: Map<string, ResourceNodeLike[]>, key: string, node: ResourceNodeLike) => {
    const list = map.get(key);
    if (list) list.push(node);
    else map.set(key, [node]);
  };
  for (const node of nodes) {
    add(index.byType, nodeType(node), node);
    if (node.propName !== null) {
      add(index.byName, node.propName, node);
      const choice = /^([a-z][A-Za-z]*?)[A-Z]/.exec(node.propName)?.[1];
      if (choice && choice !== node.propName) add(index.byName, choice, node);
    }
  }
  return index;
}

function cachedDescendants(inputs: ResourceNodeLike[]): DescendantIndex[] {
  return inputs.map((input) => {
    const data = input.data as object;
    let cached = descendantsCache.get(data);
    if (!cached) descendantsCache.set(data, (cached = indexDescendants(DESCENDANTS(data) as ResourceNodeLike[])));
    return cached;
  });
}

const userInvocationTable = {
  rootNodesOfType: {
    fn: (inputs: ResourceNodeLike[], type: string) => cachedDescendants(inputs).flatMap((index) => index.byType.get(type) ?? []),
    arity: { 1: ['String'] },
    internalStructures: true,
  },
  rootNodesNamed: {
    fn: (inputs: ResourceNodeLike[], name: string) => cachedDescendants(inputs).flatMap((index) => index.byName.get(name) ?? []),
    arity: { 1: ['String'] },
    internalStructures: true,
  },
  nodesOfType: {
    fn: (inputs: ResourceNodeLike[], type: string) => inputs.filter((node) => nodeType(node) === type),
    arity: { 1: ['String'] },
    internalStructures: true,
  },
  nodesNamed: {
    fn: (inputs: ResourceNodeLike[], name: string) => inputs.filter((node) => hasName(node, name)),
    arity: { 1: ['String'] },
    internalStructures: true,
  },
};

function hasName(node: ResourceNodeLike, name: string): boolean {
  return node.propName === name || (node.propName?.startsWith(name) === true && /^[A-Z]/.test(node.propName.slice(name.length)));
}

/**
 * Rewrites the anonymizer helper functions: at the start of a path (or of a union branch) they
 * read the resource's cached descendants; elsewhere they become `descendants()` plus a filter.
 */
function rewriteHelpers(path: string): string {
  return path
    .replace(/(^|\|\s*)nodesByType\(\s*'([^']*)'\s*\)/g, "$1rootNodesOfType('$2')")
    .replace(/(^|\|\s*)nodesByName\(\s*'([^']*)'\s*\)/g, "$1rootNodesNamed('$2')")
    .replace(/nodesByType\(\s*'([^']*)'\s*\)/g, "descendants().nodesOfType('$1')")
    .replace(/nodesByName\(\s*'([^']*)'\s*\)/g, "descendants().nodesNamed('$1')");
}

/**
 * Compiles a FHIRPath (throws fhirpath's own error on a syntax error). A top-level union is
 * compiled branch by branch and concatenated: FHIRPath's `|` removes duplicates by value, which
 * would let a second element with the same value as the first escape its rule.
 */
export function compilePath(path: string): CompiledPath {
  const branches = splitUnion(path).map((branch) =>
    fhirpath.compile(rewriteHelpers(branch), r4Model, { resolveInternalTypes: false, userInvocationTable } as never),
  );
  return (resource, environment) => branches.flatMap((compiled) => compiled(resource as never, environment as never) as unknown[]);
}

/**
 * Compiles an expression whose results are plain values (generalize cases), evaluated with
 * `$this` typed as the FHIR type of the value (so `$this >= @1990-01-01` compares dates).
 * Numbers and booleans are evaluated untyped: they need no FHIR type to compare.
 */
export function compileValueExpression(expression: string): (input: unknown, type?: string) => unknown[] {
  const byType = new Map<string, (input: unknown) => unknown[]>();
  const untyped = fhirpath.compile(expression, r4Model);
  return (input, type) => {
    if (type === undefined || typeof input !== 'string') return untyped(input as never) as unknown[];
    let compiled = byType.get(type);
    if (!compiled) {
      const fn = fhirpath.compile({ base: type, expression } as never, r4Model);
      byType.set(type, (compiled = (value) => fn(value as never) as unknown[]));
    }
    return compiled(input);
  };
}

function nodeType(node: ResourceNodeLike): string {
  const type = node.fhirNodeDataType ?? node.path ?? '';
  return type;
}

/**
 * Turns fhirpath ResourceNodes into locations inside `resource`, dropping results that are not
 * resource elements (literals) and elements that belong to a nested resource (contained
 * resources and Bundle entries are processed as resources of their own).
 */
export function toLocations(results: unknown[], resource: JsonObject): NodeLocation[] {
  const locations: NodeLocation[] = [];
  for (const result of results) {
    const node = result as ResourceNodeLike;
    if (typeof node !== 'object' || node === null || !('parentResNode' in node)) continue;
    const parentNode = node.parentResNode;
    if (!parentNode || node.propName === null) continue;
    if (owningResource(parentNode) !== resource) continue;
    const parent = parentNode.data as JsonObject;
    const key = actualKey(parent, node.propName);
    if (key === undefined) continue;
    locations.push({ parent, key, index: node.index, type: nodeType(node), value: readValue(parent, key, node.index) });
  }
  return locations;
}

function owningResource(node: ResourceNodeLike): unknown {
  let current: ResourceNodeLike | null = node;
  while (current) {
    const data = current.data as JsonObject | null;
    if (data && typeof data === 'object' && typeof data['resourceType'] === 'string') return data;
    current = current.parentResNode;
  }
  return undefined;
}

/** Choice elements (`value[x]`) are reported by their short name; find the JSON key. */
function actualKey(parent: JsonObject, propName: string): string | undefined {
  if (propName in parent) return propName;
  return Object.keys(parent).find((key) => key.startsWith(propName) && /^[A-Z]/.test(key.slice(propName.length)));
}

/** Reads the value at a location. */
export function readValue(parent: JsonObject, key: string, index: number | null): unknown {
  const value = parent[key];
  return index === null ? value : Array.isArray(value) ? value[index] : index === 0 ? value : undefined;
}

/** Writes a value at a location. */
export function writeValue(location: Pick<NodeLocation, 'parent' | 'key' | 'index'>, value: unknown): void {
  const { parent, key, index } = location;
  if (index !== null && Array.isArray(parent[key])) (parent[key] as unknown[])[index] = value;
  else parent[key] = value;
}

/**
 * Marks a location as removed; `pruneRemoved` deletes the markers and any object left empty.
 * It is JSON `null`, which FHIRPath reads as empty, so later rules' conditions evaluate on the
 * partly processed resource without tripping over a marker.
 */
export const REMOVED = null;

/**
 * Deletes removed markers and the empty objects and arrays they leave behind. A primitive array
 * and its element-part array (`given`, `_given`) are pruned together so their items stay aligned
 * (an item whose value went but whose extensions stay becomes `null`). Returns true if `node` is
 * to go whole: it became empty, or nothing in it stays (its members may then be left in place, so
 * the caller removes it).
 */
export function pruneRemoved(node: unknown, root?: object): boolean {
  if (Array.isArray(node)) {
    // Kept items moved down in place (splice would allocate an array of the removed item each time).
    let kept = 0;
    for (let i = 0; i < node.length; i++) {
      const item: unknown = node[i];
      if (item === REMOVED || pruneRemoved(item, root)) continue;
      if (kept !== i) node[kept] = item;
      kept++;
    }
    if (kept !== node.length) node.length = kept;
    return kept === 0;
  }
  if (typeof node === 'object' && node !== null) {
    const object = node as JsonObject;
    // With a root given, nested resources (contained, entries) are left alone: they were pruned with their own rules.
    if (root !== undefined && object !== root && typeof object['resourceType'] === 'string') return false;
    // (for-in, not Object.keys: no array allocated per object; deleting the key being visited is safe in for-in.)
    let hasParts = false;
    for (const key in object) {
      if (key.charCodeAt(0) === 95) {
        hasParts = true;
        break;
      }
    }
    if (!hasParts) {
      // The common case: no element parts, no string building. An object all of whose members go (an identifier
      // whose system and value were redacted) is left as it is for its parent to drop: deleting its members one
      // by one would first turn it into a slower dictionary-mode object.
      let kept = false;
      let gone: string[] | undefined;
      for (const key in object) {
        const value = object[key];
        if (value === REMOVED || (typeof value === 'object' && pruneRemoved(value, root))) (gone ??= []).push(key);
        else kept = true;
      }
      if (!kept) return true;
      if (gone !== undefined) for (const key of gone) delete object[key];
      return false;
    }
    for (const key of Object.keys(object)) {
      if (!(key in object)) continue;
      const partKey = key.charCodeAt(0) === 95 ? key : `_${key}`;
      const valueKey = partKey.slice(1);
      if (partKey in object && (key === valueKey || !(valueKey in object))) {
        prunePrimitive(object, valueKey, partKey, root);
        continue;
      }
      if (key === partKey) continue;
      if (object[key] === REMOVED || pruneRemoved(object[key], root)) delete object[key];
    }
    return isEmptyObject(object);
  }
  return false;
}

function isEmptyObject(object: JsonObject): boolean {
  for (const _ in object) return false;
  return true;
}

const gone = (value: unknown) => value === REMOVED || value === undefined;

function prunePrimitive(object: JsonObject, valueKey: string, partKey: string, root?: object): void {
  const value = object[valueKey];
  const part = object[partKey];
  if (Array.isArray(value) || Array.isArray(part)) {
    const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
    const parts = Array.isArray(part) ? part : gone(part) ? [] : [part];
    const length = Math.max(values.length, parts.length);
    const keptValues: unknown[] = [];
    const keptParts: unknown[] = [];
    for (let i = 0; i < length; i++) {
      const v = values[i];
      const p = parts[i];
      const partGone = gone(p) || pruneRemoved(p, root);
      if (gone(v) && partGone) continue;
      keptValues.push(gone(v) ? null : v);
      keptParts.push(partGone ? null : p);
    }
    if (keptValues.some((v) => v !== null)) object[valueKey] = keptValues;
    else delete object[valueKey];
    if (keptParts.some((p) => p !== null)) object[partKey] = keptParts;
    else delete object[partKey];
    return;
  }
  if (gone(value)) delete object[valueKey];
  if (gone(part) || pruneRemoved(part, root)) delete object[partKey];
}

/** Drops the cached descendants of a resource (its content is about to change or be re-read). */
export function forgetDescendants(resource: JsonObject): void {
  descendantsCache.delete(resource);
}

const DESCENDANTS = compilePath('descendants()');
