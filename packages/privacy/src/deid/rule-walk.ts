/**
 * The rules of a built-in profile applied in one walk of the resource, with no node object per
 * element. Under first-rule-wins a primitive value belongs to the earliest rule that matches it or
 * an element above it in the same resource (engine.ts processRecursive), so a walk that carries
 * "the earliest rule matched so far" down the tree, and advances each rule path's member steps as
 * it goes, gives each value its rule directly; only values that a rule acts on become a `Leaf`.
 *
 * This holds for paths of the native shapes (native-paths.ts) with simple `where` conditions and
 * for methods that act on one value alone (keep, redact, cryptoHash, encrypt, scrubText). It also
 * needs that no rule changes a value that a later rule's `where` reads: the sequential engine
 * evaluates a later condition on the partly processed resource, the walk on the original. That is
 * true of the built-in profiles, which alone opt in (`DeidConfig.singlePass`); a test checks that
 * the walk and the rule-by-rule engine give the same output on Synthea bundles and generated resources.
 */
import type { Rule } from './config.ts';
import type { JsonObject } from './fhir-nodes.ts';
import { childType, isChoiceOf, parseBranch, partItem, startsAtRoot, type ChildType } from './native-paths.ts';
import { splitUnion } from './union.ts';

/** A value a rule acts on: where it lives, its FHIR type, and its parent element's type and name. */
export interface Leaf {
  parent: JsonObject;
  key: string;
  index: number | null;
  type: string;
  value: unknown;
  parentNode: ElementFrame | undefined;
}

/** The element a value sits in (what the methods read of it: a reference's, a request's or an Age's value). */
export interface ElementFrame {
  type: string;
  key: string;
}

/** A resource inside the one walked, and the element that holds it (`contained`, `resource`). */
export interface NestedResource {
  resource: JsonObject;
  key: string;
}

export interface WalkResult {
  nested: NestedResource[];
  /** The resource holds a null, an empty object or array (from its input, or a value a rule removed) or element parts: it needs pruning. */
  dirty: boolean;
}

/** The methods the walk can apply: each acts on one value, whatever the others became. */
const WALK_METHODS = new Set(['keep', 'redact', 'cryptoHash', 'encrypt', 'scrubText']);

interface Branch {
  /** The rule's position in the configuration: the lower wins. */
  order: number;
  resourceType: string;
  steps: ({ member: string } | { where: (value: JsonObject) => boolean })[];
}

/** A branch that has matched its steps up to `position`, whose next step is a member name. */
interface Progress {
  branch: Branch;
  position: number;
}

const NONE = Number.MAX_SAFE_INTEGER;
const NO_PROGRESS: Progress[] = [];

export interface RuleWalk {
  /**
   * Walks one resource (nested resources are not entered: they are returned, in document order,
   * to be processed as resources of their own) and calls `apply` for each value a rule acts on.
   */
  walk(resource: JsonObject, apply: (rule: Rule, leaf: Leaf) => void): WalkResult;
}

/** Compiles the rules into a walk, or `undefined` when one of them is outside what the walk can do (see above). */
export function compileWalk(rules: readonly Rule[], options: { quantityAgesAsAges: boolean }): RuleWalk | undefined {
  const byType = new Map<string, Branch[]>();
  const atRoot: { branch: Branch; typeName: string | undefined }[] = [];
  for (const [order, rule] of rules.entries()) {
    if (!WALK_METHODS.has(rule.method)) return undefined;
    if (rule.wholeResource) {
      atRoot.push({ branch: { order, resourceType: rule.resourceType, steps: [] }, typeName: undefined });
      continue;
    }
    // Each branch keeps its resource type name (`Patient.photo`): a root start checks it, as the rule's type filter does.
    for (const text of splitUnion(rule.path)) {
      const parsed = parseBranch(text);
      if (!parsed || 'byName' in parsed.start) return undefined;
      const steps: Branch['steps'] = [];
      for (const step of parsed.steps) {
        if ('member' in step) steps.push(step);
        else if (step.simple) steps.push({ where: step.simple });
        else return undefined;
      }
      const branch: Branch = { order, resourceType: rule.resourceType, steps };
      if ('byType' in parsed.start) {
        const list = byType.get(parsed.start.byType);
        if (list) list.push(branch);
        else byType.set(parsed.start.byType, [branch]);
      } else atRoot.push({ branch, typeName: parsed.start.root });
    }
  }

  return {
    walk(resource, apply) {
      const resourceType = String(resource['resourceType']);
      const nested: NestedResource[] = [];
      let dirty = false;
      const applies = (branch: Branch) => branch.resourceType === '' || branch.resourceType === resourceType;

      /**
       * Advances a branch at an element through its `where` steps: the branch's order when it
       * matches here, NONE when it fails, or -1 - position when its next step is a member name.
       */
      const advance = (branch: Branch, position: number, value: unknown, ruleOrder: number): number => {
        // An earlier rule already holds this element and all below it: a later branch cannot win anywhere here.
        if (branch.order >= ruleOrder) return NONE;
        const steps = branch.steps;
        while (position < steps.length) {
          const step = steps[position]!;
          if ('member' in step) return -1 - position;
          if (value === null || typeof value !== 'object' || !step.where(value as JsonObject)) return NONE;
          position++;
        }
        return branch.order;
      };

      // One leaf and one parent frame, rewritten for each value (apply does not keep them): no allocation per value.
      const frame: ElementFrame = { type: '', key: '' };
      const leaf: Leaf = { parent: resource, key: '', index: null, type: '', value: undefined, parentNode: frame };

      const element = (object: JsonObject, hasParts: boolean, key: string, index: number | null, item: unknown, info: ChildType, parentType: string, parentKey: string, inherited: Progress[], ruleOrder: number) => {
        if (item !== null && typeof item === 'object' && typeof (item as JsonObject)['resourceType'] === 'string') {
          nested.push({ resource: item as JsonObject, key });
          return;
        }
        let type = info.type;
        if (type === 'Quantity' && options.quantityAgesAsAges && isYearsQuantity(item)) type = 'Age';
        // The rule order this element gets, and the progress its children inherit (allocated only when a path goes on below).
        let order = ruleOrder;
        let carry: Progress[] | undefined;
        for (const { branch, position } of inherited) {
          const member = (branch.steps[position] as { member: string }).member;
          if (key !== member && !isChoiceOf(key, member)) continue;
          const result = advance(branch, position + 1, item, order);
          if (result < 0) (carry ??= []).push({ branch, position: -1 - result });
          else if (result < order) order = result;
        }
        const starting = byType.get(type);
        if (starting) {
          for (const branch of starting) {
            if (!applies(branch)) continue;
            const result = advance(branch, 0, item, order);
            if (result < 0) (carry ??= []).push({ branch, position: -1 - result });
            else if (result < order) order = result;
          }
        }
        const progress = carry ?? NO_PROGRESS;
        if (item !== null && typeof item === 'object') {
          visit(item as JsonObject, info.next, type, key, progress, order);
          return;
        }
        if (order !== NONE && item !== undefined) {
          leaf.parent = object;
          leaf.key = key;
          leaf.index = index;
          leaf.type = type;
          leaf.value = item;
          frame.type = parentType;
          frame.key = parentKey;
          apply(rules[order]!, leaf);
          const now = index !== null && Array.isArray(object[key]) ? (object[key] as unknown[])[index] : object[key];
          if (now === null) dirty = true;
        }
        if (!hasParts) return;
        // A primitive's id and extensions (its `_key` part) are below it.
        const part = partItem(object[info.partKey], index);
        if (part) visit(part, 'Element', type, key, progress, order);
      };

      // The same traversal, key order and JSON normalisation as indexResource (native-paths.ts).
      const visit = (object: JsonObject, typePath: string, type: string, objectKey: string, inherited: Progress[], ruleOrder: number) => {
        // (for-in, not Object.keys: no array allocated per object.) Element parts (`_key`) are rare: the lookups for them are made only in an object that has one.
        let hasParts = false;
        let empty = true;
        for (const key in object) {
          empty = false;
          if (key.charCodeAt(0) === 95) hasParts = true;
        }
        if (empty) dirty = true;
        // Pruning also pads a primitive array and its element-part array to one length (FHIR JSON's null placeholders).
        if (hasParts) dirty = true;
        for (const key in object) {
          if (key === 'resourceType') continue;
          let value = object[key];
          if (key.charCodeAt(0) === 95 /* _ */) {
            const base = key.slice(1);
            if (object[base] !== undefined && object[base] !== null) continue;
            const info = childType(typePath, base);
            const parts = Array.isArray(value) ? value : [value];
            for (let i = 0; i < parts.length; i++) if (parts[i] && typeof parts[i] === 'object') element(object, true, base, Array.isArray(value) ? i : null, undefined, info, type, objectKey, inherited, ruleOrder);
            continue;
          }
          if (value === null || value === undefined) {
            dirty = true;
            continue;
          }
          const info = childType(typePath, key);
          if (info.repeating && !Array.isArray(value)) value = object[key] = [value];
          if (hasParts) {
            const part = object[info.partKey];
            if (Array.isArray(value) && part !== undefined && part !== null && !Array.isArray(part)) object[info.partKey] = [part];
          }
          if (Array.isArray(value)) {
            if (value.length === 0) dirty = true;
            for (let i = 0; i < value.length; i++) {
              const item: unknown = value[i];
              if (item === null || item === undefined) {
                dirty = true;
                if (hasParts && partItem(object[info.partKey], i)) element(object, hasParts, key, i, undefined, info, type, objectKey, inherited, ruleOrder);
                continue;
              }
              element(object, hasParts, key, i, item, info, type, objectKey, inherited, ruleOrder);
            }
          } else element(object, hasParts, key, null, value, info, type, objectKey, inherited, ruleOrder);
        }
      };

      let carry: Progress[] = NO_PROGRESS;
      let order = NONE;
      for (const { branch, typeName } of atRoot) {
        if (!applies(branch) || !startsAtRoot(typeName, resourceType)) continue;
        const result = advance(branch, 0, resource, order);
        if (result < 0) carry = [...carry, { branch, position: -1 - result }];
        else if (result < order) order = result;
      }
      visit(resource, resourceType, resourceType, 'root', carry, order);
      return { nested, dirty };
    },
  };
}

/** A Quantity in years (UCUM `a`), which `quantityAgesAsAges` types as an Age. */
export function isYearsQuantity(quantity: unknown): boolean {
  if (quantity === null || typeof quantity !== 'object') return false; // (`_valueQuantity` alone: no quantity)
  const { code, unit } = quantity as JsonObject;
  return code === 'a' || ['a', 'yr', 'year', 'years'].includes(String(unit));
}
