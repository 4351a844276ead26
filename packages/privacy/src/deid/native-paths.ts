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
  choiceTypePaths: Record<string, string[]>;
  pathsDefinedElsewhere: Record<string, string>;
};

const PRIMITIVES = new Set(['boolean', 'integer', 'integer64', 'string', 'decimal', 'uri', 'url', 'canonical', 'base64Binary', 'instant', 'date', 'dateTime', 'time', 'code', 'oid', 'id', 'markdown', 'unsignedInt', 'positiveInt', 'uuid']);

/** An element of a resource with its FHIR type and the model path its children are typed under. */
export interface TypedNode extends NodeLocation {
  typePath: string;
}

/** Every element of one resource (nested resources are listed but not entered), indexed for rule evaluation. */
export interface NodeIndex {
  root: TypedNode;
  all: TypedNode[];
  byType: Map<string, TypedNode[]>;
  byName: Map<string, TypedNode[]>;
  children: Map<object, TypedNode[]>;
}

function push<K>(map: Map<K, TypedNode[]>, key: K, node: TypedNode): void {
  const list = map.get(key);
  if (list) list.push(node);
  else map.set(key, [node]);
}

/** The FHIR type of element `key` under model path `typePath`, the path its own children use, and its element name (`value` for `valueQuantity`). */
function childType(typePath: string, key: string): { type: string; next: string; name: string } {
  let byKey = childTypeCache.get(typePath);
  if (!byKey) childTypeCache.set(typePath, (byKey = new Map()));
  let info = byKey.get(key);
  if (!info) byKey.set(key, (info = resolveChildType(typePath, key)));
  return info;
}

const childTypeCache = new Map<string, Map<string, { type: string; next: string; name: string }>>();

function resolveChildType(typePath: string, key: string): { type: string; next: string; name: string } {
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
      choiceType = PRIMITIVES.has(lower) ? lower : suffix;
      break;
    }
  }
  const elsewhere = model.pathsDefinedElsewhere[path];
  if (elsewhere) return { type: model.path2Type[elsewhere] ?? 'BackboneElement', next: elsewhere, name };
  const type = model.path2Type[path] ?? choiceType;
  if (type === undefined) return { type: '', next: path, name };
  return { type, next: type === 'BackboneElement' || type === 'Element' ? path : type, name };
}

/** Walks a resource once, typing every element. */
export function indexResource(resource: JsonObject): NodeIndex {
  const rootType = String(resource['resourceType']);
  const root: TypedNode = { parent: { root: resource }, key: 'root', index: null, type: rootType, value: resource, typePath: rootType };
  const index: NodeIndex = { root, all: [], byType: new Map(), byName: new Map(), children: new Map() };
  const visit = (object: JsonObject, typePath: string) => {
    const children: TypedNode[] = [];
    for (const key of Object.keys(object)) {
      if (key === 'resourceType' || key.charCodeAt(0) === 95 /* _ */) continue;
      const value = object[key];
      if (value === null || value === undefined) continue;
      const { type, next, name } = childType(typePath, key);
      const items = Array.isArray(value) ? value : [value];
      for (let i = 0; i < items.length; i++) {
        const item: unknown = items[i];
        if (item === null || item === undefined) continue;
        const nested = typeof item === 'object' && typeof (item as JsonObject)['resourceType'] === 'string';
        const node: TypedNode = { parent: object, key, index: Array.isArray(value) ? i : null, type: nested ? String((item as JsonObject)['resourceType']) : type, value: item, typePath: next };
        children.push(node);
        index.all.push(node);
        push(index.byType, node.type, node);
        push(index.byName, name, node);
        if (name !== key) push(index.byName, key, node);
        if (!nested && typeof item === 'object') visit(item as JsonObject, next);
      }
    }
    index.children.set(object, children);
  };
  visit(resource, rootType);
  return index;
}

type Step = (nodes: TypedNode[], index: NodeIndex) => TypedNode[];

const START = /^(?:nodesByType\('([^']+)'\)|nodesByName\('([^']+)'\)|([A-Z][A-Za-z]*))/;
const MEMBER = /^\.(?:([A-Za-z_][A-Za-z0-9_]*)|`([^`]+)`)/;
const WHERE = /^\.where\(((?:[^()]|\((?:[^()]|\([^()]*\))*\))*)\)/;

/** Compiles a rule path into a native evaluator, or `undefined` when fhirpath must evaluate it. */
export function compileNative(path: string): ((index: NodeIndex) => TypedNode[]) | undefined {
  const branches = splitUnion(path);
  const compiled = branches.map(compileBranch);
  if (compiled.some((c) => c === undefined)) return undefined;
  const evaluators = compiled as ((index: NodeIndex) => TypedNode[])[];
  if (evaluators.length === 1) return evaluators[0];
  return (index) => [...new Set(evaluators.flatMap((evaluate) => evaluate(index)))];
}

function compileBranch(branch: string): ((index: NodeIndex) => TypedNode[]) | undefined {
  const start = START.exec(branch);
  if (!start) return undefined;
  const [, byType, byName, typeName] = start;
  const steps: Step[] = [];
  let rest = branch.slice(start[0].length);
  while (rest.length > 0) {
    const where = WHERE.exec(rest);
    if (where) {
      steps.push(whereStep(where[1] ?? ''));
      rest = rest.slice(where[0].length);
      continue;
    }
    const member = MEMBER.exec(rest);
    if (member) {
      const name = member[1] ?? member[2] ?? '';
      if (name === 'where') return undefined;
      steps.push((nodes, index) => nodes.flatMap((node) => (typeof node.value === 'object' ? (index.children.get(node.value as object) ?? []).filter((c) => c.key === name || isChoiceOf(c.key, name)) : [])));
      rest = rest.slice(member[0].length);
      continue;
    }
    return undefined;
  }
  return (index) => {
    let nodes: TypedNode[];
    if (byType !== undefined) nodes = index.byType.get(byType) ?? [];
    else if (byName !== undefined) nodes = index.byName.get(byName) ?? [];
    else nodes = typeName === index.root.type || typeName === 'Resource' || typeName === 'DomainResource' ? [index.root] : [];
    for (const step of steps) nodes = step(nodes, index);
    return nodes;
  };
}

function isChoiceOf(key: string, name: string): boolean {
  return key.length > name.length && key.startsWith(name) && /[A-Z]/.test(key[name.length] ?? '');
}

/** A `where(condition)` filter: fhirpath evaluates the condition on each element, typed by its model path. */
function whereStep(condition: string): Step {
  const compiledByBase = new Map<string, (resource: unknown) => unknown[]>();
  // Compiling validates the condition now, so a bad rule fails at configuration time.
  fhirpath.compile(condition, r4Model);
  return (nodes) =>
    nodes.filter((node) => {
      if (typeof node.value !== "object") return (fhirpath.evaluate(node.value as never, condition, {}, r4Model) as unknown[])[0] === true;
      let compiled = compiledByBase.get(node.typePath);
      if (!compiled) {
        const fn = fhirpath.compile({ base: node.typePath, expression: condition } as never, r4Model);
        compiled = (resource) => fn(resource as never) as unknown[];
        compiledByBase.set(node.typePath, compiled);
      }
      return compiled(node.value)[0] === true;
    });
}
