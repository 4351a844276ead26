/**
 * The policy language's syntax tree and its attributes.
 *
 * A policy is a monotone boolean formula: leaves are attributes, inner nodes are threshold gates
 * (`and` is n-of-n, `or` is 1-of-n, `2 of (a, b, c)` is 2-of-3). Numeric comparisons (`level >= 3`) are
 * syntax: `expandComparisons` turns them into gates over bit attributes before anything cryptographic.
 */
import { LimitExceededError } from '../errors.ts';

/** `name:value`, held by a key as is. */
export interface StringAttribute {
  kind: 'string';
  name: string;
  value: string;
}

/** Bit `bit` of the integer attribute `name` equals `set` (BSW07 bit decomposition). */
export interface BitAttribute {
  kind: 'bit';
  name: string;
  bit: number;
  set: boolean;
}

export type Attribute = StringAttribute | BitAttribute;

export type ComparisonOperator = '<' | '<=' | '>' | '>=' | '==';

export interface LeafNode {
  kind: 'leaf';
  attribute: Attribute;
}

export interface ComparisonNode {
  kind: 'compare';
  name: string;
  op: ComparisonOperator;
  value: number;
}

export interface GateNode {
  kind: 'gate';
  /** How many children must be satisfied: children.length for `and`, 1 for `or`. */
  threshold: number;
  children: PolicyNode[];
}

export type PolicyNode = LeafNode | ComparisonNode | GateNode;

/** A policy with comparisons expanded: only leaves and gates. */
export type ExpandedNode = LeafNode | (Omit<GateNode, 'children'> & { children: ExpandedNode[] });

/** Width of integer attributes: values are unsigned and below 2^32. */
export const INTEGER_BITS = 32;
export const MAX_INTEGER = 2 ** INTEGER_BITS - 1;

const utf8 = new TextEncoder();

/** Largest field of an attribute encoding: its length prefix is a u16. */
export const MAX_ATTRIBUTE_FIELD_BYTES = 0xffff;

/** UTF-8 bytes of an attribute's name or value; LimitExceededError past the u16 length prefix (no silent wrap). */
function fieldBytes(text: string, what: string): Uint8Array {
  const bytes = utf8.encode(text);
  if (bytes.length > MAX_ATTRIBUTE_FIELD_BYTES) {
    throw new LimitExceededError(`attribute ${what} of ${bytes.length} bytes exceeds the limit of ${MAX_ATTRIBUTE_FIELD_BYTES}`);
  }
  return bytes;
}

/**
 * The canonical, unambiguous byte encoding of an attribute: a kind tag then length-prefixed fields.
 * It is what the scheme hashes and what keys store, so `role:doctor` and a bit of `role` can never collide,
 * and no choice of name or value can make one attribute's encoding a prefix of another's.
 * Throws LimitExceededError for a name or value over 65,535 bytes.
 */
export function attributeBytes(attribute: Attribute): Uint8Array {
  const name = fieldBytes(attribute.name, 'name');
  if (attribute.kind === 'string') {
    const value = fieldBytes(attribute.value, 'value');
    const out = new Uint8Array(1 + 2 + name.length + 2 + value.length);
    const view = new DataView(out.buffer);
    out[0] = 0x01;
    view.setUint16(1, name.length);
    out.set(name, 3);
    view.setUint16(3 + name.length, value.length);
    out.set(value, 5 + name.length);
    return out;
  }
  const out = new Uint8Array(1 + 2 + name.length + 2);
  out[0] = 0x02;
  new DataView(out.buffer).setUint16(1, name.length);
  out.set(name, 3);
  out[3 + name.length] = attribute.bit;
  out[4 + name.length] = attribute.set ? 1 : 0;
  return out;
}

/** A stable string key for maps and sets (the hex of attributeBytes). */
export function attributeKey(attribute: Attribute): string {
  return Buffer.from(attributeBytes(attribute)).toString('hex');
}

/** Readable form: `role:doctor`, `level#3=1`. */
export function attributeLabel(attribute: Attribute): string {
  return attribute.kind === 'string' ? `${attribute.name}:${quoteIfNeeded(attribute.value)}` : `${attribute.name}#${attribute.bit}=${attribute.set ? 1 : 0}`;
}

/** Characters a value may contain without quotes (must agree with the lexer's bare words). */
export const BARE_WORD = /^[A-Za-z0-9_.@/+-]+$/;
/** Attribute names: an identifier. */
export const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

export function quoteIfNeeded(value: string): string {
  return BARE_WORD.test(value) && !/^(and|or|of)$/i.test(value) ? value : `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** Prints a policy back as text that parses to the same tree. */
export function formatPolicy(node: PolicyNode): string {
  switch (node.kind) {
    case 'leaf':
      return attributeLabel(node.attribute);
    case 'compare':
      return `${node.name} ${node.op} ${node.value}`;
    case 'gate': {
      // and/or operands that are themselves and/or gates need parentheses; `k of (...)` is self-delimiting.
      const isChain = (c: PolicyNode) => c.kind === 'gate' && (c.threshold === 1 || c.threshold === c.children.length);
      const parts = node.children.map((c) => (isChain(c) ? `(${formatPolicy(c)})` : formatPolicy(c)));
      if (node.threshold === node.children.length && node.children.length > 1) return parts.join(' and ');
      if (node.threshold === 1 && node.children.length > 1) return parts.join(' or ');
      return `${node.threshold} of (${node.children.map(formatPolicy).join(', ')})`;
    }
  }
}
