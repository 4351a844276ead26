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
import { childTypes, eachLonePart, isChoiceOf, parseBranch, partItem, startsAtRoot, type ChildType, type ChildTypes } from './native-paths.ts';
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
  /** The progress at each member step, made with the branch: the walk refers to them and makes none. */
  progress: (Progress | undefined)[];
}

/** A branch that has matched its steps up to `position`, whose next step is a member name. */
interface Progress {
  branch: Branch;
  position: number;
  /** This progress alone, the carry of most elements a path goes on below (never pushed to: see withProgress). */
  alone: Progress[];
}

/** A branch of a rule, with its progress at each member step. */
function makeBranch(order: number, resourceType: string, steps: Branch['steps']): Branch {
  const branch: Branch = { order, resourceType, steps, progress: [] };
  steps.forEach((step, position) => {
    if (!('member' in step)) return;
    const progress: Progress = { branch, position, alone: [] };
    progress.alone.push(progress);
    branch.progress[position] = progress;
  });
  return branch;
}

/** The progress of a branch whose next step, at `position`, is a member name (advance's -1 - position). */
function progressAt(branch: Branch, position: number): Progress {
  return branch.progress[position]!;
}

const NONE = Number.MAX_SAFE_INTEGER;
const NO_PROGRESS: Progress[] = [];
/** The nested resources of a resource that has none (most): an array is made for the first one found. */
const NO_NESTED: NestedResource[] = [];
const NO_APPLY = (): void => {};

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
  const atRoot: RootBranch[] = [];
  for (const [order, rule] of rules.entries()) {
    if (!WALK_METHODS.has(rule.method)) return undefined;
    if (rule.wholeResource) {
      atRoot.push({ branch: makeBranch(order, rule.resourceType, []), typeName: undefined });
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
      const branch = makeBranch(order, rule.resourceType, steps);
      if ('byType' in parsed.start) {
        const list = byType.get(parsed.start.byType);
        if (list) list.push(branch);
        else byType.set(parsed.start.byType, [branch]);
      } else atRoot.push({ branch, typeName: parsed.start.root });
    }
  }
  return new CompiledWalk(rules, byType, atRoot, options.quantityAgesAsAges);
}

interface RootBranch {
  branch: Branch;
  typeName: string | undefined;
}

/** The branches that start at elements of one type, for one resource type (those whose rule applies to it). */
interface Start {
  branches: readonly Branch[];
  /**
   * When no branch has a `where` step before its first member step, what they give an element
   * under no rule to which no inherited path applies, whatever its value: its rule order and the
   * progress its children inherit, made once (most elements are in this case).
   */
  fixed: { order: number; carry: Progress[] } | undefined;
}

/** The starts of one resource type. */
interface Starts {
  /** By child type id, for an element of its child type's own type; null: none. Filled on first use. */
  byChildType: (Start | null | undefined)[];
  /** By type name (a Quantity in years walked as an Age). */
  byName: Map<string, Start | null>;
  /**
   * What the branches starting at the root give the resource, when none of them reads the resource
   * first (a `where` before its first member): made once. Null when one does; undefined until first use.
   */
  root: { order: number; carry: Progress[] } | null | undefined;
}

const ELEMENT_TYPES = childTypes('Element');

/**
 * One compiled walk. Its methods share the state of the resource under way in fields (nested
 * resources are collected, not entered, so a walk never re-enters itself), so the walk allocates no
 * closure per resource and no object per value.
 */
class CompiledWalk implements RuleWalk {
  private readonly starts = new Map<string, Starts>();
  // The resource under way.
  private nested: NestedResource[] = NO_NESTED;
  private dirty = false;
  private apply: (rule: Rule, leaf: Leaf) => void = NO_APPLY;
  private current: Starts = { byChildType: [], byName: new Map(), root: undefined };
  private resourceType = '';
  // One leaf and one parent frame, rewritten for each value (apply does not keep them): no allocation per value.
  private readonly frame: ElementFrame = { type: '', key: '' };
  private readonly leaf: Leaf = { parent: {}, key: '', index: null, type: '', value: undefined, parentNode: this.frame };

  constructor(
    private readonly rules: readonly Rule[],
    private readonly byType: ReadonlyMap<string, readonly Branch[]>,
    private readonly atRoot: readonly RootBranch[],
    private readonly quantityAgesAsAges: boolean,
  ) {}

  walk(resource: JsonObject, apply: (rule: Rule, leaf: Leaf) => void): WalkResult {
    const resourceType = String(resource['resourceType']);
    let starts = this.starts.get(resourceType);
    if (!starts) this.starts.set(resourceType, (starts = { byChildType: [], byName: new Map(), root: undefined }));
    this.current = starts;
    this.resourceType = resourceType;
    this.nested = NO_NESTED;
    this.dirty = false;
    this.apply = apply;
    if (starts.root === undefined) starts.root = this.rootReadsResource(resourceType) ? null : this.rootStart(resource, resourceType);
    const { order, carry } = starts.root ?? this.rootStart(resource, resourceType);
    this.visit(resource, childTypes(resourceType), resourceType, 'root', carry, order);
    const result = { nested: this.nested, dirty: this.dirty };
    this.nested = NO_NESTED;
    this.apply = NO_APPLY;
    return result;
  }

  /** The rule order the resource gets from the branches starting at its root, and the progress its members inherit. */
  private rootStart(resource: JsonObject, resourceType: string): { order: number; carry: Progress[] } {
    let carry: Progress[] | undefined;
    let order = NONE;
    for (const { branch, typeName } of this.atRoot) {
      if (!applies(branch, resourceType) || !startsAtRoot(typeName, resourceType)) continue;
      const result = advance(branch, 0, resource, order);
      if (result < 0) carry = withProgress(carry, progressAt(branch, -1 - result));
      else if (result < order) order = result;
    }
    return { order, carry: carry ?? NO_PROGRESS };
  }

  /** Whether a root branch of this resource type reads the resource before its first member step (a `where`). */
  private rootReadsResource(resourceType: string): boolean {
    return this.atRoot.some(({ branch, typeName }) => applies(branch, resourceType) && startsAtRoot(typeName, resourceType) && readsValueFirst(branch));
  }

  /** The branches that start at an element of `type` (its child type's own, or Age for a Quantity in years). */
  private startsAt(type: string, info: ChildType): Start | null {
    const starts = this.current;
    if (type === info.type) {
      const table = starts.byChildType;
      let start = table[info.id];
      if (start === undefined) {
        // Filled up to the id, not written past the end: a sparse array would turn into a slower dictionary.
        while (table.length <= info.id) table.push(undefined);
        table[info.id] = start = this.startOfType(type);
      }
      return start;
    }
    let start = starts.byName.get(type);
    if (start === undefined) starts.byName.set(type, (start = this.startOfType(type)));
    return start;
  }

  private startOfType(type: string): Start | null {
    const branches = this.byType.get(type)?.filter((branch) => applies(branch, this.resourceType));
    if (!branches || branches.length === 0) return null;
    if (branches.some(readsValueFirst)) return { branches, fixed: undefined };
    let order = NONE;
    let carry: Progress[] | undefined;
    for (const branch of branches) {
      const result = advance(branch, 0, undefined, order);
      if (result < 0) carry = withProgress(carry, progressAt(branch, -1 - result));
      else if (result < order) order = result;
    }
    return { branches, fixed: { order, carry: carry ?? NO_PROGRESS } };
  }

  private element(
    object: JsonObject,
    hasParts: boolean,
    key: string,
    index: number | null,
    item: unknown,
    info: ChildType,
    parentType: string,
    parentKey: string,
    inherited: Progress[],
    ruleOrder: number,
  ): void {
    if (item !== null && typeof item === 'object' && typeof (item as JsonObject)['resourceType'] === 'string') {
      if (this.nested === NO_NESTED) this.nested = [];
      this.nested.push({ resource: item as JsonObject, key });
      return;
    }
    let type = info.type;
    if (type === 'Quantity' && this.quantityAgesAsAges && isYearsQuantity(item)) type = 'Age';
    // The rule order this element gets, and the progress its children inherit (allocated only when a path goes on below).
    let order = ruleOrder;
    let carry: Progress[] | undefined;
    for (let i = 0; i < inherited.length; i++) {
      const { branch, position } = inherited[i]!;
      const member = (branch.steps[position] as { member: string }).member;
      if (key !== member && !isChoiceOf(key, member)) continue;
      const result = advance(branch, position + 1, item, order);
      if (result < 0) carry = withProgress(carry, progressAt(branch, -1 - result));
      else if (result < order) order = result;
    }
    const start = this.startsAt(type, info);
    let progress: Progress[];
    // Nothing inherited applies here: the branches starting here give what was worked out for their type.
    if (start !== null && start.fixed && carry === undefined && order === NONE) ({ order, carry: progress } = start.fixed);
    else {
      if (start !== null) {
        for (const branch of start.branches) {
          const result = advance(branch, 0, item, order);
          if (result < 0) carry = withProgress(carry, progressAt(branch, -1 - result));
          else if (result < order) order = result;
        }
      }
      progress = carry ?? NO_PROGRESS;
    }
    if (item !== null && typeof item === 'object') {
      this.visit(item as JsonObject, info.nextTypes, type, key, progress, order);
      return;
    }
    if (order !== NONE && item !== undefined) {
      const leaf = this.leaf;
      leaf.parent = object;
      leaf.key = key;
      leaf.index = index;
      leaf.type = type;
      leaf.value = item;
      this.frame.type = parentType;
      this.frame.key = parentKey;
      this.apply(this.rules[order]!, leaf);
      const now = index !== null && Array.isArray(object[key]) ? (object[key] as unknown[])[index] : object[key];
      if (now === null) this.dirty = true;
    }
    if (!hasParts) return;
    // A primitive's id and extensions (its `_key` part) are below it.
    const part = partItem(object[info.partKey], index);
    if (part) this.visit(part, ELEMENT_TYPES, type, key, progress, order);
  }

  private lonePart(object: JsonObject, key: string, types: ChildTypes, type: string, objectKey: string, inherited: Progress[], ruleOrder: number): void {
    eachLonePart(object, key, (base, i) => this.element(object, true, base, i, undefined, types.get(base), type, objectKey, inherited, ruleOrder));
  }

  // The same traversal, key order and JSON normalisation as indexResource (native-paths.ts).
  private visit(object: JsonObject, types: ChildTypes, type: string, objectKey: string, inherited: Progress[], ruleOrder: number): void {
    // (for-in, not Object.keys: no array allocated per object.) Element parts (`_key`) are rare: the lookups for them are made only in an object that has one.
    let hasParts = false;
    let empty = true;
    for (const key in object) {
      empty = false;
      if (key.charCodeAt(0) === 95) hasParts = true;
    }
    if (empty) this.dirty = true;
    // Pruning also pads a primitive array and its element-part array to one length (FHIR JSON's null placeholders).
    if (hasParts) this.dirty = true;
    for (const key in object) {
      if (key === 'resourceType') continue;
      let value = object[key];
      if (key.charCodeAt(0) === 95 /* _ */) {
        this.lonePart(object, key, types, type, objectKey, inherited, ruleOrder);
        continue;
      }
      if (value === null || value === undefined) {
        this.dirty = true;
        continue;
      }
      const info = types.get(key);
      if (info.repeating && !Array.isArray(value)) value = object[key] = [value];
      if (hasParts) {
        const part = object[info.partKey];
        if (Array.isArray(value) && part !== undefined && part !== null && !Array.isArray(part)) object[info.partKey] = [part];
      }
      if (Array.isArray(value)) {
        if (value.length === 0) this.dirty = true;
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === null || item === undefined) {
            this.dirty = true;
            if (hasParts && partItem(object[info.partKey], i)) this.element(object, hasParts, key, i, undefined, info, type, objectKey, inherited, ruleOrder);
            continue;
          }
          this.element(object, hasParts, key, i, item, info, type, objectKey, inherited, ruleOrder);
        }
      } else this.element(object, hasParts, key, null, value, info, type, objectKey, inherited, ruleOrder);
    }
  }
}

/**
 * Adds a progress to a carry: the progress's own `alone` array for the first (most carries have
 * one), copied for the second (`alone` is shared, never pushed to), then pushed to.
 */
function withProgress(carry: Progress[] | undefined, progress: Progress): Progress[] {
  if (carry === undefined) return progress.alone;
  if (carry === carry[0]!.alone) return [carry[0]!, progress];
  carry.push(progress);
  return carry;
}

/** The branch's first step is a `where` on the element it starts at: what it gives depends on that element's value. */
function readsValueFirst(branch: Branch): boolean {
  return branch.steps.length > 0 && !('member' in branch.steps[0]!);
}

function applies(branch: Branch, resourceType: string): boolean {
  return branch.resourceType === '' || branch.resourceType === resourceType;
}

/**
 * Advances a branch at an element through its `where` steps: the branch's order when it matches
 * here, NONE when it fails, or -1 - position when its next step is a member name.
 */
function advance(branch: Branch, position: number, value: unknown, ruleOrder: number): number {
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
}

/** A Quantity in years (UCUM `a`), which `quantityAgesAsAges` types as an Age. */
export function isYearsQuantity(quantity: unknown): boolean {
  if (quantity === null || typeof quantity !== 'object') return false; // (`_valueQuantity` alone: no quantity)
  const { code, unit } = quantity as JsonObject;
  return code === 'a' || YEAR_UNITS.has(String(unit));
}

/** The units of a Quantity in years (a module constant: the walk reads every Quantity's unit). */
const YEAR_UNITS: ReadonlySet<string> = new Set(['a', 'yr', 'year', 'years']);
